"""The `release` command line: builds the parser from `release.commands`, runs one command, and
catches `ReleaseError` once.

    release plan <stack> | --all          offline: what each stack declares, and parity
    release deploy <stack> --service S --image REPO@sha256:...   a blue-green release
    release rollback <stack> [--to-version N] [--dry-run]        restore from history
    release abort <stack> --service S                            finish an unfinished release
    release promote <from> <to> --service S [--digest sha256:...] gated promotion
    release reject <stack> --service S --digest D --reason ...   never promote D again
    release review <stack> <#> --note ...                        acknowledge a break-glass
    release history <stack> | audit [<stack>] | status           who released what, when; where
    release diff <a> <b> | drift <stack> | health-check --url U  parity; drift; one health check
    release smoke <stack> --service S [--colour C]               a service's smoke suite, now
    release keygen                                               a key pair for signing records

Progress goes to stderr (`release.log`), results to stdout (JSON under `--json`). Exit codes are
`core.errors.ExitCode` (docs/operations.md): a ReleaseError exits with its own; anything else is a
bug, reported in one line (`--verbose` adds the traceback), exit 70; Ctrl-C exits 130. SIGTERM
interrupts like Ctrl-C: a release in progress cancels the running `pulumi up` (release.engine.cancel)
and rolls back first (docs/operations.md#interruptions).
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence

from core.errors import ExitCode, ReleaseError
from core.text import one_line, printable
from release import log
from release.clock import Clock, system_clock
from release.commands import COMMANDS
from release.commands.options import Options, Parser
from release.context import EngineFactory, ReleaseContext
from release.engine.automation import AutomationEngine
from release.interrupts import describe, sigterm_interrupts


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="release", description="The platform's release tool.")
    verbs = parser.add_subparsers(dest="verb", required=True)
    options = Options()
    for command in COMMANDS:
        command.add_parser(verbs, options)
    return parser


def main(
    argv: Sequence[str] | None = None,
    engine_factory: EngineFactory | None = None,
    clock: Clock = system_clock,
) -> int:
    """Run one command; return its exit code. Never raises (argparse exits 2 on bad arguments).
    `engine_factory` and `clock` are the adapter over the Pulumi CLI and the system clock, except in
    tests (the engine double and its clock).

    A ReleaseError is printed as `release: <message>` and exits with its code; anything else is a
    bug: one line naming the command and the error (the traceback too under --verbose), exit 70.
    """
    args = build_parser().parse_args(argv)
    log.configure(verbose=args.verbose, quiet=args.quiet)
    ctx = ReleaseContext(
        env=os.environ,
        engine_factory=engine_factory or AutomationEngine,
        given_project_dir=args.project_dir,
        given_actor=getattr(args, "actor", None),
        clock=clock,
    )
    try:
        with sigterm_interrupts():
            return int(args.run(args, ctx))
    except ReleaseError as error:
        log.error(str(error))
        return int(error.exit_code)
    except KeyboardInterrupt as interrupt:
        print(f"release {args.verb}: {describe(interrupt)}; the command did not finish", file=sys.stderr)
        return int(ExitCode.INTERRUPTED)
    except Exception as error:  # noqa: BLE001 - the one place an unexpected error is caught
        if args.verbose:
            sys.stderr.write(printable(traceback.format_exc()))
        print(_internal_error_line(args.verb, error), file=sys.stderr)
        return int(ExitCode.INTERNAL)


def _internal_error_line(verb: str, error: BaseException) -> str:
    return one_line(
        f"release {verb}: internal error: {type(error).__name__}: {error} "
        "(this is a bug; rerun with --verbose for the traceback)"
    )


if __name__ == "__main__":
    raise SystemExit(main())
