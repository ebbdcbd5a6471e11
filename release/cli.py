"""The `release` command line: argument parsing only; each verb lives in its own module.

Shared options are defined once (`--json`, `--verbose`, `--project-dir`). Progress goes to stderr,
results to stdout (JSON under `--json`). Every command catches `ReleaseError` once and exits with the
error's fixed code: 0 ok, 1 a finding (parity violation), 2 bad input (config, usage).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from release import plan as plan_command
from release.errors import ReleaseError
from release.stack_files import project_dir_of, stack_names

EXIT_USAGE = 2


def _shared_options() -> argparse.ArgumentParser:
    shared = argparse.ArgumentParser(add_help=False)
    shared.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    shared.add_argument("--verbose", action="store_true", help="print progress on stderr")
    shared.add_argument(
        "--project-dir",
        type=Path,
        default=None,
        help="the Pulumi project (default: the nearest directory with Pulumi.yaml)",
    )
    return shared


def build_parser() -> argparse.ArgumentParser:
    shared = _shared_options()
    parser = argparse.ArgumentParser(
        prog="release", description="The platform's release tool (offline plan for now)."
    )
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        project_dir = project_dir_of((args.project_dir or Path.cwd()).resolve())
        if args.verb == "plan":
            return _plan(args, project_dir)
    except ReleaseError as error:
        print(f"release: {error}", file=sys.stderr)
        return error.exit_code
    return EXIT_USAGE


def _plan(args: argparse.Namespace, project_dir: Path) -> int:
    stacks = stack_names(project_dir) if args.all else [args.stack]
    if args.all and len(stacks) < 2:
        print(f"release: --all needs at least two Pulumi.<stack>.yaml in {project_dir}", file=sys.stderr)
        return EXIT_USAGE

    def progress(message: str) -> None:
        if args.verbose:
            plan_command.stderr_progress(message)

    report = plan_command.plan(project_dir, stacks, compare=args.all, progress=progress)
    if args.json:
        print(json.dumps(plan_command.to_json(report), indent=2, default=str))
    else:
        sys.stdout.write(plan_command.render_text(report))
    if report.exit_code == 2:
        for stack_plan in report.stacks:
            if stack_plan.error is not None:
                print(f"release: {stack_plan.error}", file=sys.stderr)
    return report.exit_code


if __name__ == "__main__":
    raise SystemExit(main())
