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
    release smoke <stack> --service S [--color C]               a service's smoke suite, now
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
from release.commands.errors import error_document, json_refusal, pipe_closed, print_error_document
from release.commands.known_stacks import require_known_stacks
from release.commands.options import STACK_ARGUMENTS, ArgumentsRefused, Options, Parser
from release.context import EngineFactory, ReleaseContext
from release.engine.automation import AutomationEngine
from release.interrupts import describe, sigterm_interrupts
from release.terminal import Ask
from release.terminal import ask as terminal_ask
from release.version import installed_version


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="release", description="The platform's release tool.")
    parser.add_argument("--version", action="version", version=f"release {installed_version()}")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="<verb>")
    options = Options()
    for command in COMMANDS:
        command.add_parser(verbs, options)
    return parser


def main(
    argv: Sequence[str] | None = None,
    engine_factory: EngineFactory | None = None,
    clock: Clock = system_clock,
    ask: Ask = terminal_ask,
) -> int:
    """Run one command; return its exit code. Never raises (argparse exits 2 on bad arguments).
    `engine_factory` and `clock` are the adapter over the Pulumi CLI and the system clock, and `ask`
    the terminal, except in tests (the engine double, its clock and scripted answers).

    A ReleaseError is printed as `release: <message>` and exits with its code; anything else is a
    bug: one line naming the command and the error (the traceback too under --verbose), exit 70.
    Under `--json` every refusal and error is also a JSON object on stdout (`error`, `exitCode`,
    `problems`). A reader that closes the pipe early (`release history dev | head`) ends the command
    quietly, exit 141 as for any program a closed pipe ends.
    """
    arguments = list(sys.argv[1:] if argv is None else argv)
    options = arguments[: arguments.index("--")] if "--" in arguments else arguments
    as_json = any(argument == "--json" or argument.startswith("--json=") for argument in options)
    try:
        args = build_parser().parse_args(arguments)
    except ArgumentsRefused as refused:
        if as_json:
            try:
                print_error_document(refused.message, ExitCode.BAD_INPUT, [{"problem": refused.message}])
                sys.stdout.flush()
            except BrokenPipeError:
                raise SystemExit(pipe_closed()) from None
        raise
    log.configure(verbose=args.verbose, quiet=args.quiet)
    ctx = ReleaseContext(
        env=os.environ,
        engine_factory=engine_factory or AutomationEngine,
        given_project_dir=args.project_dir,
        given_actor=getattr(args, "actor", None),
        clock=clock,
        ask=ask,
    )
    try:
        with sigterm_interrupts():
            require_known_stacks(ctx, [getattr(args, dest) for dest in getattr(args, STACK_ARGUMENTS, ())])
            code = int(args.run(args, ctx))
            sys.stdout.flush()  # here, not at exit: a reader gone before a short answer is a closed pipe too
            return code
    except BrokenPipeError:
        return pipe_closed()
    except ReleaseError as error:
        log.error(str(error))
        return json_refusal(args.json, error_document(error), error.exit_code)
    except KeyboardInterrupt as interrupt:
        line = f"release {args.verb}: {describe(interrupt)}; the command did not finish"
        print(line, file=sys.stderr)
        return json_refusal(args.json, (line, []), ExitCode.INTERRUPTED)
    except Exception as error:  # noqa: BLE001 - the one place an unexpected error is caught
        if args.verbose:
            sys.stderr.write(printable(traceback.format_exc()))
        line = _internal_error_line(args.verb, error)
        print(line, file=sys.stderr)
        return json_refusal(args.json, (line, []), ExitCode.INTERNAL)


def _internal_error_line(verb: str, error: BaseException) -> str:
    return one_line(
        f"release {verb}: internal error: {type(error).__name__}: {error} "
        "(this is a bug; rerun with --verbose for the traceback)"
    )


if __name__ == "__main__":
    raise SystemExit(main())
