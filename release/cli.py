"""The `release` command line: argument parsing only; each verb lives in its own module.

    release plan <stack> | --all          offline: what each stack declares, and parity (release.plan)
    release deploy <stack> --service S --image REPO@sha256:...   blue-green release (release.deploy)
    release rollback <stack> [--to-version N] [--dry-run]        restore from history (release.rollback)
    release promote <from> <to> --service S [--digest sha256:...] gated promotion (release.promote)
    release reject <stack> --service S --digest D --reason ...   never promote D again (release.promote)
    release review <stack> <#> --note ...                        acknowledge a break-glass (release.promote)
    release history <stack>                                      who released what, when (release.history)
    release audit [<stack>] [--since DATE] [--markdown]          the change record (release.audit)
    release status                                               colours, digests, verified, waiting
    release diff <a> <b>                                         knobs and parity violations (release.plan)
    release drift <stack>                                        changed outside Pulumi? (release.drift)
    release health-check --url URL ...                           one health check (core.health)

Shared options are defined once (`--json`, `--verbose`, `--project-dir`, `--operator`). Progress goes
to stderr, results to stdout (JSON under `--json`). Every stack argument is checked against Pulumi's
rules before anything else (`core.stack_name`); bad arguments exit 2 with the value and the rule.
Text from outside (stack files, history, engine errors) is printed through `core.text.printable`,
so it cannot forge a line. Every command catches `ReleaseError` once and exits with a fixed code:

    0  done: healthy, planned, or nothing to do
    1  a finding: a parity violation, an unhealthy check, a release that failed and was rolled back
    2  bad input: config, usage, a refused request (nothing was changed)
    3  the engine: no Pulumi CLI, a stack that does not exist, a failed engine call
    4  another release or update holds the stack (nothing was changed)
    5  a human is needed: a rollback that failed, was refused (migration risk) or has nothing to restore
   70  an internal error: a bug, reported as one line (`--verbose` adds the traceback)
  130  interrupted (Ctrl-C)
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import subprocess
import sys
import traceback
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

from core.config.model import KEY_NAME, HealthCheckSettings, full_key
from core.config.sources import project_dir_of, project_settings, read_stack_file, stack_names
from core.errors import ExitCode, ReleaseError, UsageError
from core.health import Probe, check_sync, parse_expect_json
from core.stack_name import parse_stack_name
from core.text import one_line, printable
from release import plan as plan_command
from release.abort import AbortRequest, abort
from release.audit import audit_rows, render_audit, render_status, stack_status, unreviewed_break_glass
from release.deploy import DeployRequest, deploy
from release.drift import parse_drift
from release.engine import AutomationEngine, Engine
from release.gates import run_url
from release.history import RELEASES_KEY, read_history, render_history
from release.locking import release_lock
from release.manifests import write_manifests
from release.notify import Notifier
from release.promote import PromoteRequest, promote, reject, review
from release.report import ReleaseReport
from release.rollback import RollbackRequest, rollback
from release.signing import SIGNING_KEY_ENV, Signer, generate_key_pair

EngineFactory = Callable[[Path], Engine]


class _Parser(argparse.ArgumentParser):
    """argparse, with its error line escaped: it may quote an argument that came from outside."""

    def error(self, message: str) -> NoReturn:
        super().error(one_line(message))


def _shared_options() -> _Parser:
    shared = _Parser(add_help=False)
    shared.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    shared.add_argument("--verbose", action="store_true", help="print more progress on stderr")
    shared.add_argument(
        "--project-dir",
        type=Path,
        default=None,
        help="the Pulumi project (default: the nearest directory with Pulumi.yaml)",
    )
    return shared


def _operator_option() -> _Parser:
    operator = _Parser(add_help=False)
    operator.add_argument(
        "--actor",
        "--operator",
        dest="operator",
        default=None,
        help="who is releasing, recorded in stack history (default: $RELEASE_OPERATOR, "
        "$GITHUB_ACTOR in GitHub Actions, git config user.name, your login)",
    )
    operator.add_argument("--reason", default="", help="why, recorded in stack history")
    operator.add_argument(
        "--report",
        type=Path,
        default=None,
        help="also write a markdown report here (and to $GITHUB_STEP_SUMMARY when it is set)",
    )
    return operator


def positive_int(text: str) -> int:
    """An argparse `type=`: a whole number of at least 1 (an entry number)."""
    return _bounded_int(text, 1, "a whole number of at least 1")


def non_negative_int(text: str) -> int:
    """An argparse `type=`: a whole number of at least 0."""
    return _bounded_int(text, 0, "a whole number of at least 0")


def _bounded_int(text: str, minimum: int, rule: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise argparse.ArgumentTypeError(f"'{one_line(text)}' is not {rule}")
    return value


def _url_option(parser: argparse.ArgumentParser, name: str, which: str) -> None:
    parser.add_argument(
        name,
        action="append",
        default=[],
        help=f"check this URL instead of the {which} URL the stack exposes (repeatable; e.g. a port-forward)",
    )


def build_parser() -> argparse.ArgumentParser:
    shared, operator = _shared_options(), _operator_option()
    parser = _Parser(prog="release", description="The platform's release tool.")
    verbs = parser.add_subparsers(dest="verb", required=True)

    plan = verbs.add_parser(
        "plan",
        parents=[shared],
        help="what each stack declares, evaluated offline; --all also checks parity",
        description=plan_command.HONESTY_NOTE,
    )
    target = plan.add_mutually_exclusive_group(required=True)
    target.add_argument("stack", nargs="?", type=parse_stack_name, help="one stack, e.g. staging")
    target.add_argument(
        "--all", action="store_true", help="every Pulumi.<stack>.yaml, and every difference between them"
    )
    plan.add_argument(
        "--out",
        type=Path,
        default=None,
        help="also write each stack's Kubernetes manifests (secrets redacted) and AWS summary to "
        "DIR/<stack>/",
    )

    deploy_verb = verbs.add_parser(
        "deploy",
        parents=[shared, operator],
        help="blue-green release of one image; rolls back automatically on failure",
        description="Set the image on the idle colour and up (its migration runs first), check the "
        "preview URL, switch the active colour and up, check the stable URL. Any failure restores "
        "the last succeeded update from stack history.",
    )
    deploy_verb.add_argument("stack", type=parse_stack_name)
    deploy_verb.add_argument("--service", required=True)
    deploy_verb.add_argument("--image", required=True, help="<repository>@sha256:<digest>")
    _url_option(deploy_verb, "--preview-url", "preview")
    _url_option(deploy_verb, "--stable-url", "stable")

    rollback_verb = verbs.add_parser(
        "rollback",
        parents=[shared, operator],
        help="restore the previous succeeded update (or entry N of `release history`) and up",
    )
    rollback_verb.add_argument("stack", type=parse_stack_name)
    rollback_verb.add_argument(
        "--to-version", type=positive_int, default=None, metavar="N", help="entry N of `release history`"
    )
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

    abort_verb = verbs.add_parser(
        "abort",
        parents=[shared, operator],
        help="finish an unfinished release of a service: restore it as it was before that release",
        description="A release killed after its stage or switch is unfinished, and every later release "
        "into the stack is refused until it is finished. Abort restores the service's release from the "
        "state before it (other services stay as they are), records that it finished, and checks the "
        "stable URL.",
    )
    abort_verb.add_argument("stack", type=parse_stack_name)
    abort_verb.add_argument("--service", required=True)
    abort_verb.add_argument("--dry-run", action="store_true", help="print what would change; change nothing")
    abort_verb.add_argument(
        "--force",
        action="store_true",
        help="abort past a migration that is not declared backward compatible (give --reason)",
    )
    abort_verb.add_argument("--no-health-check", action="store_true", help="skip the check after the up")
    _url_option(abort_verb, "--stable-url", "stable")

    keygen = verbs.add_parser(
        "keygen",
        parents=[shared],
        help="print a new Ed25519 key pair for signing release records (private: CI secret; public: "
        "Pulumi.yaml)",
    )
    keygen.add_argument(
        "--name",
        default="ci",
        type=_key_name,
        help="the name to give the key in Pulumi.yaml (e.g. ci-2026-11)",
    )

    promote_verb = verbs.add_parser(
        "promote",
        parents=[shared, operator],
        help="release the digest verified in one stack to the next, if its gates allow",
        description="Take the digest live and verified in <from> (or --digest, which must be verified "
        "there) and run the blue-green release on <to>, after checking <to>'s promotion gate in "
        "Pulumi.yaml (stage, verified, soak, freshness, approval, four eyes, freeze windows).",
    )
    promote_verb.add_argument("source", metavar="from", type=parse_stack_name)
    promote_verb.add_argument("target", metavar="to", type=parse_stack_name)
    promote_verb.add_argument("--service", required=True)
    promote_verb.add_argument("--digest", help="sha256:<64 hex> (default: the one live in <from>)")
    promote_verb.add_argument("--approval", help="the approval reference: a change ticket, a review URL")
    promote_verb.add_argument(
        "--approver", help="who approved (must differ from the actor where four eyes apply)"
    )
    promote_verb.add_argument(
        "--break-glass",
        action="store_true",
        help="skip the verified, soak and freeze gates (never approval, never the record); needs --reason",
    )
    _url_option(promote_verb, "--preview-url", "preview")
    _url_option(promote_verb, "--stable-url", "stable")

    reject_verb = verbs.add_parser(
        "reject", parents=[shared, operator], help="mark a digest as never to be promoted again"
    )
    reject_verb.add_argument("stack", type=parse_stack_name)
    reject_verb.add_argument("--service", required=True)
    reject_verb.add_argument("--digest", required=True, help="sha256:<64 hex> or the full image reference")
    reject_verb.add_argument(
        "--force",
        action="store_true",
        help="reject a digest this stack never ran (to block it before it arrives); give --reason",
    )

    review_verb = verbs.add_parser(
        "review", parents=[shared, operator], help="acknowledge a break-glass release (someone else's)"
    )
    review_verb.add_argument("stack", type=parse_stack_name)
    review_verb.add_argument("number", type=positive_int, help="its number in `release audit`")
    review_verb.add_argument("--note", required=True)

    audit = verbs.add_parser(
        "audit", parents=[shared], help="who did what, when: every release, promotion, rollback, verification"
    )
    audit.add_argument(
        "stack", nargs="?", type=parse_stack_name, help="one stack (default: every Pulumi.<stack>.yaml)"
    )
    audit.add_argument("--since", help="only entries on or after this date (YYYY-MM-DD, UTC)")
    audit.add_argument("--markdown", action="store_true", help="a markdown table")

    status = verbs.add_parser(
        "status", parents=[shared], help="per stack and service: colours, digests, verified, waiting"
    )
    status.add_argument("--markdown", action="store_true", help="a markdown table")

    diff = verbs.add_parser(
        "diff",
        parents=[shared],
        help="every difference between two stacks, knob or parity violation (offline); exit 1 on a violation",
    )
    diff.add_argument("stack_a", type=parse_stack_name)
    diff.add_argument("stack_b", type=parse_stack_name)

    drift = verbs.add_parser(
        "drift",
        parents=[shared],
        help="refresh preview: exit 0 no drift, 1 drift (each resource and property listed), 2 error",
    )
    drift.add_argument("stack", type=parse_stack_name)

    history = verbs.add_parser("history", parents=[shared], help="the stack's updates, newest first")
    history.add_argument("stack", type=parse_stack_name)
    history.add_argument("--limit", type=non_negative_int, default=20, help="show at most N entries (0: all)")

    health = verbs.add_parser(
        "health-check",
        parents=[shared],
        help="probe URLs until healthy or unhealthy: exit 0 healthy, 1 unhealthy, 2 bad usage",
    )
    health.add_argument("--url", action="append", required=True, help="repeatable; probed concurrently")
    health.add_argument(
        "--stack", type=parse_stack_name, help="take the defaults from this stack's healthCheck knob"
    )
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
    """Run one command; return its exit code. Never raises (argparse exits 2 on bad arguments).

    A ReleaseError is printed as `release: <message>` and exits with its code; anything else is a
    bug: one line naming the command and the error (the traceback too under --verbose), exit 70.
    """
    args = build_parser().parse_args(argv)
    try:
        return _run(args, engine_factory)
    except ReleaseError as error:
        _error_line(str(error))
        return error.exit_code
    except KeyboardInterrupt:
        print(f"release {args.verb}: interrupted; the command did not finish", file=sys.stderr)
        return ExitCode.INTERRUPTED
    except Exception as error:  # noqa: BLE001 - the one place an unexpected error is caught
        if args.verbose:
            sys.stderr.write(printable(traceback.format_exc()))
        print(_internal_error_line(args.verb, error), file=sys.stderr)
        return ExitCode.INTERNAL


def _internal_error_line(verb: str, error: BaseException) -> str:
    return one_line(
        f"release {verb}: internal error: {type(error).__name__}: {error} "
        "(this is a bug; rerun with --verbose for the traceback)"
    )


def _error_line(message: str) -> None:
    """An error for people: `release: ` and the message, control characters escaped."""
    print(f"release: {printable(message)}", file=sys.stderr, flush=True)


def _run(args: argparse.Namespace, engine_factory: EngineFactory | None) -> int:
    make_engine = engine_factory or (lambda project_dir: AutomationEngine(project_dir))
    if args.verb == "keygen":
        return _keygen(args)
    project_dir = project_dir_of((args.project_dir or Path.cwd()).resolve())
    if args.verb == "plan":
        return _plan(args, project_dir)
    if args.verb == "health-check":
        return _health_check(args, project_dir)
    if args.verb == "diff":
        return _diff(args, project_dir)
    if getattr(args, "operator", "") is None:
        args.operator = actor_from(os.environ)
    engine = make_engine(project_dir)
    if args.verb == "deploy":
        return _deploy(args, project_dir, engine)
    if args.verb == "rollback":
        return _rollback(args, project_dir, engine)
    if args.verb == "abort":
        return _abort(args, project_dir, engine)
    if args.verb == "history":
        return _history(args, project_dir, engine)
    if args.verb == "promote":
        return _promote(args, project_dir, engine)
    if args.verb == "reject":
        return _reject(args, project_dir, engine)
    if args.verb == "review":
        return _review(args, project_dir, engine)
    if args.verb == "audit":
        return _audit(args, project_dir, engine)
    if args.verb == "status":
        return _status(args, project_dir, engine)
    if args.verb == "drift":
        return _drift(args, engine)
    return ExitCode.BAD_INPUT


def _progress(message: str) -> None:
    print(f"release: {printable(message)}", file=sys.stderr, flush=True)


def _emit(args: argparse.Namespace, document: Any, text: str) -> None:
    """The result on stdout: JSON under --json (control characters escaped by json), else text."""
    if args.json:
        print(json.dumps(document, indent=2, default=str))
    else:
        sys.stdout.write(printable(text))


def _emit_report(args: argparse.Namespace, report: ReleaseReport) -> int:
    _emit(args, report.to_json(), report.render())
    markdown = report.to_markdown()
    if args.report is not None:
        _write_report(args.report, markdown, "w")
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        _write_report(Path(summary), markdown, "a")
    return report.exit_code


def _write_report(path: Path, markdown: str, mode: str) -> None:
    """Write (or append) the markdown report; a path that cannot be written is reported, not fatal:
    the release has happened, and its exit code must say how it went."""
    try:
        with open(path, mode) as report_file:
            report_file.write(markdown)
    except OSError as error:
        _error_line(f"the report was not written to {path}: {error.strerror or error}")


def _plan(args: argparse.Namespace, project_dir: Path) -> int:
    stacks = stack_names(project_dir) if args.all else [args.stack]
    if args.all and len(stacks) < 2:
        _error_line(f"--all needs at least two Pulumi.<stack>.yaml in {project_dir}")
        return ExitCode.BAD_INPUT

    def progress(message: str) -> None:
        if args.verbose:
            plan_command.stderr_progress(message)

    report = plan_command.plan(project_dir, stacks, compare=args.all, progress=progress)
    _emit(args, plan_command.to_json(report), plan_command.render_text(report))
    if args.out is not None:
        secret_names = plan_command.secret_names_of(project_dir)
        for stack_plan in report.stacks:
            if stack_plan.run is not None:
                try:
                    files = write_manifests(stack_plan.run, args.out, secret_names)
                except OSError as error:
                    raise UsageError(f"--out {args.out}: cannot write: {error.strerror or error}") from error
                _progress(f"wrote {len(files)} files to {args.out / stack_plan.stack}")
    if report.exit_code == ExitCode.BAD_INPUT:
        for stack_plan in report.stacks:
            if stack_plan.error is not None:
                _error_line(str(stack_plan.error))
    return report.exit_code


def _deploy(args: argparse.Namespace, project_dir: Path, engine: Engine) -> int:
    gate = project_settings(project_dir).stack_policies.get(args.stack)
    if gate is not None and gate.promotion.promote_from is not None:
        source = gate.promotion.promote_from
        raise UsageError(
            f"'{args.stack}' receives digests by promotion only, from '{source}' (stackPolicies.{args.stack}"
            f".promotion in Pulumi.yaml): `release promote {source} {args.stack} --service {args.service}`"
        )
    request = DeployRequest(
        args.stack,
        args.service,
        args.image,
        args.operator,
        reason=args.reason,
        preview_urls=list(args.preview_url),
        stable_urls=list(args.stable_url),
        run=run_url(os.environ),
        signer=Signer.from_environment(os.environ),
    )
    notifier = Notifier.from_environment(os.environ)
    with release_lock(project_dir, args.stack, f"{args.operator}: release deploy {args.service}"):
        report = deploy(engine, request, project_dir, progress=_progress, notifier=notifier)
    return _emit_report(args, report)


def _promote(args: argparse.Namespace, project_dir: Path, engine: Engine) -> int:
    if args.break_glass and not args.reason:
        raise UsageError(
            '--break-glass needs --reason "<what broke, and why now>": it is recorded and reviewed'
        )
    request = PromoteRequest(
        args.source,
        args.target,
        args.service,
        args.operator,
        digest=args.digest,
        approval_ref=args.approval,
        approver=args.approver,
        break_glass_reason=args.reason if args.break_glass else None,
        reason="" if args.break_glass else args.reason,
        preview_urls=list(args.preview_url),
        stable_urls=list(args.stable_url),
        signer=Signer.from_environment(os.environ),
    )
    holder = f"{args.operator}: release promote {args.source} -> {args.target} {args.service}"
    with release_lock(project_dir, args.target, holder):
        report = promote(
            engine,
            request,
            project_dir,
            os.environ,
            progress=_progress,
            notifier=Notifier.from_environment(os.environ),
        )
    return _emit_report(args, report)


def _key_name(text: str) -> str:
    """An argparse `type=`: a trusted key's name as Pulumi.yaml accepts it."""
    if not KEY_NAME.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"'{one_line(text)}' is not a key name: use lower-case like ci-2026-11"
        )
    return text


def _require_reason_with_force(args: argparse.Namespace) -> None:
    if args.force and not args.reason:
        raise UsageError("--force needs --reason: it is recorded in stack history with who forced it")


def _reject(args: argparse.Namespace, project_dir: Path, engine: Engine) -> int:
    _require_reason_with_force(args)
    record = reject(
        engine,
        args.stack,
        args.service,
        args.digest,
        args.reason,
        args.operator,
        os.environ,
        project_dir,
        signer=Signer.from_environment(os.environ),
        force=args.force,
    )
    _emit(args, record.to_json(), f"rejected {', '.join(record.revokes)} in {args.stack}\n")
    return ExitCode.OK


def _review(args: argparse.Namespace, project_dir: Path, engine: Engine) -> int:
    signer = Signer.from_environment(os.environ)
    record = review(
        engine, args.stack, args.number, args.note, args.operator, os.environ, project_dir, signer
    )
    _emit(
        args,
        record.to_json(),
        one_line(f"entry {args.number} of {args.stack} reviewed by {record.actor}") + "\n",
    )
    return ExitCode.OK


def _audit(args: argparse.Namespace, project_dir: Path, engine: Engine) -> int:
    stacks = [args.stack] if args.stack else stack_names(project_dir)
    since = None
    if args.since:
        try:
            since = datetime.strptime(args.since, "%Y-%m-%d").replace(tzinfo=UTC)
        except ValueError as error:
            raise UsageError(f"--since {args.since!r}: use YYYY-MM-DD") from error
    project = project_settings(project_dir)
    rows, unreviewed, failures = [], [], []
    for stack in stacks:
        try:
            entries = read_history(engine, stack, project)
        except ReleaseError as error:
            failures.append(_stack_failed(stack, error))
            continue
        rows += audit_rows(stack, entries, since)
        unreviewed += unreviewed_break_glass(stack, entries)
    rows.sort(key=lambda row: row.time, reverse=True)
    document = {
        "rows": [row.to_json() for row in rows],
        "breakGlassAwaitingReview": [row.to_json() for row in unreviewed],
    }
    _emit(args, document, render_audit(rows, unreviewed, markdown=args.markdown))
    return failures[0] if failures else 0


def _stack_failed(stack: str, error: ReleaseError) -> int:
    """Report one stack that could not be read (one line on stderr); return the error's exit code."""
    print(f"release: stack '{stack}' not shown: {one_line(error)}", file=sys.stderr, flush=True)
    return error.exit_code


def _status(args: argparse.Namespace, project_dir: Path, engine: Engine) -> int:
    project = project_settings(project_dir)
    histories, releases, failures = {}, {}, []
    for stack in stack_names(project_dir):
        try:
            history = read_history(engine, stack, project)
            value = engine.get_config(stack).get(RELEASES_KEY)
        except ReleaseError as error:
            failures.append(_stack_failed(stack, error))
            continue
        histories[stack] = history
        releases[stack] = value.value if value is not None and isinstance(value.value, dict) else {}
    rows = stack_status(project, histories, releases)
    _emit(args, [row.to_json() for row in rows], render_status(rows, markdown=args.markdown))
    return failures[0] if failures else 0


def _drift(args: argparse.Namespace, engine: Engine) -> int:
    """Exit 2 on any error (not the usual codes), so a scheduled job tells drift (1) from a failed check."""
    try:
        report = parse_drift(args.stack, engine.refresh_preview(args.stack))
    except ReleaseError as error:
        _error_line(f"drift check of '{args.stack}' failed: {error}")
        return ExitCode.BAD_INPUT
    if report.drifted:
        names = ", ".join(resource.name for resource in report.drifted)
        text = f"*drift* on {args.stack}: {len(report.drifted)} resource(s) changed outside Pulumi: {names}"
        run = run_url(os.environ)
        result = Notifier.from_environment(os.environ).send("drift", text + (f"\nrun: {run}" if run else ""))
        if not result.sent:
            _error_line(f"drift notification not sent: {result.error}")
    _emit(args, report.to_json(), report.render())
    return report.exit_code


def _diff(args: argparse.Namespace, project_dir: Path) -> int:
    report = plan_command.plan(
        project_dir, [args.stack_a, args.stack_b], compare=True, progress=lambda _: None
    )
    _emit(args, plan_command.to_json(report), plan_command.render_differences(report))
    return report.exit_code


def _rollback(args: argparse.Namespace, project_dir: Path, engine: Engine) -> int:
    _require_reason_with_force(args)
    request = RollbackRequest(
        args.stack,
        args.operator,
        to_number=args.to_version,
        dry_run=args.dry_run,
        force=args.force,
        reason=args.reason,
        health_check=not args.no_health_check,
        stable_urls=list(args.stable_url),
        signer=Signer.from_environment(os.environ),
        run=run_url(os.environ),
    )
    if args.dry_run:
        return _emit_report(args, rollback(engine, request, project_dir, progress=_progress))
    with release_lock(project_dir, args.stack, f"{args.operator}: release rollback"):
        report = rollback(engine, request, project_dir, progress=_progress)
    return _emit_report(args, report)


def _abort(args: argparse.Namespace, project_dir: Path, engine: Engine) -> int:
    _require_reason_with_force(args)
    request = AbortRequest(
        args.stack,
        args.service,
        args.operator,
        reason=args.reason,
        force=args.force,
        dry_run=args.dry_run,
        health_check=not args.no_health_check,
        stable_urls=list(args.stable_url),
        signer=Signer.from_environment(os.environ),
        run=run_url(os.environ),
    )
    if args.dry_run:
        return _emit_report(args, abort(engine, request, project_dir, progress=_progress))
    with release_lock(project_dir, args.stack, f"{args.operator}: release abort {args.service}"):
        report = abort(engine, request, project_dir, progress=_progress)
    return _emit_report(args, report)


def _keygen(args: argparse.Namespace) -> int:
    """Print a new signing key pair: the private key once, for the CI secret; the public key for
    Pulumi.yaml. Nothing is written anywhere."""
    pair = generate_key_pair()
    document = {"privateKey": pair.private_key, "publicKey": pair.public_key, "keyId": pair.key_id}
    text = (
        f"# A new Ed25519 signing key for release records (key id {pair.key_id}); see docs/signing.md.\n"
        f"# 1. Store the private key as the CI secret {SIGNING_KEY_ENV} (it is shown only now), e.g.\n"
        f"#    gh secret set {SIGNING_KEY_ENV} --env production   and paste:\n"
        f"{pair.private_key}\n"
        "# 2. Trust the public key: add it to Pulumi.yaml under releaseSigning.value.trustedKeys:\n"
        f"#      - name: {args.name}\n"
        f"#        publicKey: {pair.public_key}\n"
    )
    _emit(args, document, text)
    return ExitCode.OK


def _history(args: argparse.Namespace, project_dir: Path, engine: Engine) -> int:
    entries = read_history(engine, args.stack, project_settings(project_dir))
    shown = entries[: args.limit] if args.limit else entries
    _emit(args, [entry.to_json() for entry in shown], render_history(args.stack, shown))
    return ExitCode.OK


def _health_check(args: argparse.Namespace, project_dir: Path) -> int:
    settings = _health_settings(args, project_dir)
    try:
        expected = parse_expect_json(args.expect_json)
    except ValueError as error:
        raise UsageError(str(error)) from error

    def show(probe: Probe) -> None:
        if args.verbose:
            _progress(_probe_line(probe))

    verdict = check_sync(args.url, settings, expected, on_probe=show)
    lines = [f"{verdict.phase}: {verdict.reason}"]
    lines += [f"  {probe.at_seconds:6.2f}s {_probe_line(probe)}" for probe in verdict.probes]
    _emit(args, verdict.to_json(), "\n".join(lines) + "\n")
    return ExitCode.OK if verdict.healthy else ExitCode.FINDING


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


def actor_from(env: Mapping[str, str]) -> str:
    """Who is acting: $RELEASE_OPERATOR, else $GITHUB_ACTOR in CI, else git's user.name, else the login."""
    named = env.get("RELEASE_OPERATOR") or env.get("GITHUB_ACTOR")
    if named:
        return named
    try:
        configured = subprocess.run(
            ["git", "config", "user.name"], capture_output=True, text=True, timeout=5, check=False
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        configured = ""
    if configured:
        return configured
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


if __name__ == "__main__":
    raise SystemExit(main())
