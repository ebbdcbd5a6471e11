"""The `release` command line: argument parsing only; each verb lives in its own module.

    release plan <stack> | --all          offline: what each stack declares, and parity (release.plan)
    release deploy <stack> --service S --image REPO@sha256:...   blue-green release (release.deploy)
    release rollback <stack> [--to-version N] [--dry-run]        restore from history (release.rollback)
    release history <stack>                                      who released what, when (release.history)
    release health-check --url URL ...                           one health check (release.health)

Shared options are defined once (`--json`, `--verbose`, `--project-dir`, `--operator`). Progress goes
to stderr, results to stdout (JSON under `--json`). Every command catches `ReleaseError` once and
exits with a fixed code:

    0  done: healthy, planned, or nothing to do
    1  a finding: a parity violation, an unhealthy check, a release that failed and was rolled back
    2  bad input: config, usage, a refused request (nothing was changed)
    3  the engine: no Pulumi CLI, a stack that does not exist, a failed engine call
    4  another release or update holds the stack (nothing was changed)
    5  a human is needed: a rollback that failed, was refused (migration risk) or has nothing to restore
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from components.config import HealthCheckSettings, full_key
from release import plan as plan_command
from release.deploy import DeployRequest, deploy
from release.engine import AutomationEngine, Engine
from release.errors import EXIT_CONFIG_ERROR, ReleaseError, UsageError
from release.health import Probe, check_sync, parse_expect_json
from release.history import parse_history, render_history
from release.locking import release_lock
from release.report import ReleaseReport
from release.rollback import RollbackRequest, rollback
from release.stack_files import project_dir_of, read_stack_file, stack_names

EXIT_USAGE = EXIT_CONFIG_ERROR
EngineFactory = Callable[[Path], Engine]


def _shared_options() -> argparse.ArgumentParser:
    shared = argparse.ArgumentParser(add_help=False)
    shared.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    shared.add_argument("--verbose", action="store_true", help="print more progress on stderr")
    shared.add_argument(
        "--project-dir",
        type=Path,
        default=None,
        help="the Pulumi project (default: the nearest directory with Pulumi.yaml)",
    )
    return shared


def _operator_option() -> argparse.ArgumentParser:
    operator = argparse.ArgumentParser(add_help=False)
    operator.add_argument(
        "--operator",
        default=os.environ.get("RELEASE_OPERATOR") or _login(),
        help="who is releasing, recorded in stack history (default: $RELEASE_OPERATOR, else your login)",
    )
    operator.add_argument("--reason", default="", help="why, recorded in stack history")
    return operator


def _url_option(parser: argparse.ArgumentParser, name: str, which: str) -> None:
    parser.add_argument(
        name,
        action="append",
        default=[],
        help=f"check this URL instead of the {which} URL the stack exposes (repeatable; e.g. a port-forward)",
    )


def build_parser() -> argparse.ArgumentParser:
    shared, operator = _shared_options(), _operator_option()
    parser = argparse.ArgumentParser(prog="release", description="The platform's release tool.")
    verbs = parser.add_subparsers(dest="verb", required=True)

    plan = verbs.add_parser(
        "plan",
        parents=[shared],
        help="what each stack declares, evaluated offline; --all also checks parity",
        description=plan_command.HONESTY_NOTE,
    )
    target = plan.add_mutually_exclusive_group(required=True)
    target.add_argument("stack", nargs="?", help="one stack, e.g. staging")
    target.add_argument(
        "--all", action="store_true", help="every Pulumi.<stack>.yaml, and every difference between them"
    )

    deploy_verb = verbs.add_parser(
        "deploy",
        parents=[shared, operator],
        help="blue-green release of one image; rolls back automatically on failure",
        description="Set the image on the idle colour and up (its migration runs first), check the "
        "preview URL, switch the active colour and up, check the stable URL. Any failure restores "
        "the last succeeded update from stack history.",
    )
    deploy_verb.add_argument("stack")
    deploy_verb.add_argument("--service", required=True)
    deploy_verb.add_argument("--image", required=True, help="<repository>@sha256:<digest>")
    _url_option(deploy_verb, "--preview-url", "preview")
    _url_option(deploy_verb, "--stable-url", "stable")

    rollback_verb = verbs.add_parser(
        "rollback",
        parents=[shared, operator],
        help="restore the previous succeeded update (or entry N of `release history`) and up",
    )
    rollback_verb.add_argument("stack")
    rollback_verb.add_argument("--to-version", type=int, default=None, metavar="N")
    rollback_verb.add_argument(
        "--dry-run", action="store_true", help="print what would change; change nothing"
    )
    rollback_verb.add_argument(
        "--force",
        action="store_true",
        help="roll back past a migration that is not declared backward compatible (give --reason)",
    )
    rollback_verb.add_argument("--no-health-check", action="store_true", help="skip the check after the up")
    _url_option(rollback_verb, "--stable-url", "stable")

    history = verbs.add_parser("history", parents=[shared], help="the stack's updates, newest first")
    history.add_argument("stack")
    history.add_argument("--limit", type=int, default=20, help="show at most N entries (0: all)")

    health = verbs.add_parser(
        "health-check",
        parents=[shared],
        help="probe URLs until healthy or unhealthy: exit 0 healthy, 1 unhealthy, 2 bad usage",
    )
    health.add_argument("--url", action="append", required=True, help="repeatable; probed concurrently")
    health.add_argument("--stack", help="take the defaults from this stack's healthCheck knob")
    health.add_argument("--expect-status", type=int)
    health.add_argument("--expect-json", action="append", default=[], metavar="KEY=VALUE")
    health.add_argument("--timeout", type=float, help="seconds per probe")
    health.add_argument("--interval", type=float, help="seconds between probes of one URL")
    health.add_argument("--window", type=float, help="seconds before an undecided check is unhealthy")
    health.add_argument("--successes", type=int, help="consecutive good probes for Healthy")
    health.add_argument("--failures", type=int, help="consecutive bad probes for Degraded")
    health.add_argument("--max-latency-ms", type=int)
    health.add_argument("--follow-redirects", action="store_true")
    return parser


def main(argv: Sequence[str] | None = None, engine_factory: EngineFactory | None = None) -> int:
    args = build_parser().parse_args(argv)
    make_engine = engine_factory or (lambda project_dir: AutomationEngine(project_dir))
    try:
        project_dir = project_dir_of((args.project_dir or Path.cwd()).resolve())
        if args.verb == "plan":
            return _plan(args, project_dir)
        if args.verb == "health-check":
            return _health_check(args, project_dir)
        engine = make_engine(project_dir)
        if args.verb == "deploy":
            return _deploy(args, project_dir, engine)
        if args.verb == "rollback":
            return _rollback(args, project_dir, engine)
        if args.verb == "history":
            return _history(args, engine)
    except ReleaseError as error:
        print(f"release: {error}", file=sys.stderr)
        return error.exit_code
    return EXIT_USAGE


def _progress(message: str) -> None:
    print(f"release: {message}", file=sys.stderr, flush=True)


def _emit(args: argparse.Namespace, document: Any, text: str) -> None:
    if args.json:
        print(json.dumps(document, indent=2, default=str))
    else:
        sys.stdout.write(text)


def _emit_report(args: argparse.Namespace, report: ReleaseReport) -> int:
    _emit(args, report.to_json(), report.render())
    return report.exit_code


def _plan(args: argparse.Namespace, project_dir: Path) -> int:
    stacks = stack_names(project_dir) if args.all else [args.stack]
    if args.all and len(stacks) < 2:
        print(f"release: --all needs at least two Pulumi.<stack>.yaml in {project_dir}", file=sys.stderr)
        return EXIT_USAGE

    def progress(message: str) -> None:
        if args.verbose:
            plan_command.stderr_progress(message)

    report = plan_command.plan(project_dir, stacks, compare=args.all, progress=progress)
    _emit(args, plan_command.to_json(report), plan_command.render_text(report))
    if report.exit_code == 2:
        for stack_plan in report.stacks:
            if stack_plan.error is not None:
                print(f"release: {stack_plan.error}", file=sys.stderr)
    return report.exit_code


def _deploy(args: argparse.Namespace, project_dir: Path, engine: Engine) -> int:
    request = DeployRequest(
        args.stack,
        args.service,
        args.image,
        args.operator,
        reason=args.reason,
        preview_urls=list(args.preview_url),
        stable_urls=list(args.stable_url),
    )
    with release_lock(project_dir, args.stack, f"{args.operator}: release deploy {args.service}"):
        report = deploy(engine, request, project_dir, progress=_progress)
    return _emit_report(args, report)


def _rollback(args: argparse.Namespace, project_dir: Path, engine: Engine) -> int:
    if args.force and not args.reason:
        raise UsageError("--force needs --reason: it is recorded in stack history with who forced it")
    request = RollbackRequest(
        args.stack,
        args.operator,
        to_number=args.to_version,
        dry_run=args.dry_run,
        force=args.force,
        reason=args.reason,
        health_check=not args.no_health_check,
        stable_urls=list(args.stable_url),
    )
    if args.dry_run:
        return _emit_report(args, rollback(engine, request, project_dir, progress=_progress))
    with release_lock(project_dir, args.stack, f"{args.operator}: release rollback"):
        report = rollback(engine, request, project_dir, progress=_progress)
    return _emit_report(args, report)


def _history(args: argparse.Namespace, engine: Engine) -> int:
    entries = parse_history(engine.history(args.stack))
    shown = entries[: args.limit] if args.limit else entries
    _emit(args, [entry.to_json() for entry in shown], render_history(args.stack, shown))
    return 0


def _health_check(args: argparse.Namespace, project_dir: Path) -> int:
    settings = _health_settings(args, project_dir)
    try:
        expected = parse_expect_json(args.expect_json)
    except ValueError as error:
        raise UsageError(str(error)) from error

    def show(probe: Probe) -> None:
        if args.verbose:
            print(f"release: {_probe_line(probe)}", file=sys.stderr)

    verdict = check_sync(args.url, settings, expected, on_probe=show)
    lines = [f"{verdict.phase}: {verdict.reason}"]
    lines += [f"  {probe.at_seconds:6.2f}s {_probe_line(probe)}" for probe in verdict.probes]
    _emit(args, verdict.to_json(), "\n".join(lines) + "\n")
    return 0 if verdict.healthy else 1


def _probe_line(probe: Probe) -> str:
    status = probe.status if probe.status is not None else "-"
    return f"{probe.url} {probe.kind.value} {status} {probe.latency_ms:.0f}ms {probe.detail}".rstrip()


def _health_settings(args: argparse.Namespace, project_dir: Path) -> HealthCheckSettings:
    base: dict[str, Any] = {}
    if args.stack:
        values = read_stack_file(project_dir, args.stack).raw.values
        base = dict(values.get(full_key("healthCheck")) or {})
    overrides = {
        "expectStatus": args.expect_status,
        "timeoutSeconds": args.timeout,
        "intervalSeconds": args.interval,
        "windowSeconds": args.window,
        "successes": args.successes,
        "failures": args.failures,
        "maxLatencyMs": args.max_latency_ms,
        "followRedirects": args.follow_redirects or None,
    }
    base.update({key: value for key, value in overrides.items() if value is not None})
    try:
        return HealthCheckSettings.model_validate(base)
    except ValueError as error:
        raise UsageError(f"health-check settings: {error}") from error


def _login() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


if __name__ == "__main__":
    raise SystemExit(main())
