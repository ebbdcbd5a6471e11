"""Results on stdout (JSON under `--json`), reports to files; progress and errors go to the log."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import ExitCode, ReleaseError
from core.text import one_line, printable
from release import log
from release.commands.errors import print_error_document

if TYPE_CHECKING:
    from release.report.release_report import ReleaseReport


def emit(args: argparse.Namespace, document: Any, text: str) -> None:
    """The result on stdout: JSON under --json (control characters escaped by json), else text."""
    if args.json:
        print(json.dumps(document, indent=2, default=str))
    else:
        sys.stdout.write(printable(text))


def emit_report(args: argparse.Namespace, report: ReleaseReport, env: Mapping[str, str]) -> ExitCode:
    """A release report on stdout, as markdown to `--report` and to $GITHUB_STEP_SUMMARY; its exit code."""
    emit(args, report.to_json(), report.render())
    markdown = report.to_markdown()
    if args.report is not None:
        _write_report(args.report, markdown, "w")
    summary = env.get("GITHUB_STEP_SUMMARY")
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
        log.error(f"the report was not written to {path}: {error.strerror or error}")


def emit_unless_failed(
    args: argparse.Namespace, document: Any, text: str, failures: Sequence[tuple[str, ReleaseError]]
) -> int:
    """The result of a command over several stacks, some of which could not be read: each failure is a
    line on stderr; under --json one error object (`error`, `exitCode`, `problems`: one per stack) that
    holds the result of the others in `result`. Returns the first failure's exit code, else 0."""
    codes = [stack_not_shown(stack, error) for stack, error in failures]
    if not codes:
        emit(args, document, text)
        return ExitCode.OK
    if not args.json:
        emit(args, document, text)
        return codes[0]
    names = ", ".join(f"'{stack}'" for stack, _ in failures)
    problems = [
        {"stack": stack, "problem": one_line(error), "exitCode": int(error.exit_code)}
        for stack, error in failures
    ]
    print_error_document(f"not shown: {names} could not be read", codes[0], problems, result=document)
    return codes[0]


def stack_not_shown(stack: str, error: ReleaseError) -> int:
    """Report one stack that could not be read (one line on stderr); return the error's exit code."""
    log.error(f"stack '{stack}' not shown: {one_line(error)}")
    return error.exit_code
