"""A refusal or an error as a JSON object on stdout (`--json`): `error` (the message the log
prints), `exitCode`, and `problems`, one object per problem the error names (each config problem,
gate violation, missing secret...), or the message alone."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from typing import Any

from core.errors import (
    ApprovalEvidenceError,
    ExitCode,
    MissingSecretsError,
    PromotionRefusedError,
    ReleaseError,
)

Problem = dict[str, Any]


def error_document(error: ReleaseError) -> tuple[str, list[Problem]]:
    """The error's message and its problems as objects."""
    return str(error), problems_of(error)


def problems_of(error: ReleaseError) -> list[Problem]:
    if isinstance(error, PromotionRefusedError):
        return [_fields(violation) for violation in error.violations]
    if isinstance(error, MissingSecretsError):
        return [{"problem": "secret not set", "key": f"appSecrets.{name}"} for name in error.missing]
    if isinstance(error, ApprovalEvidenceError):
        return [{"kind": error.kind, "problem": error.problem, "fix": error.fix}]
    problems = getattr(error, "problems", None)  # ConfigError, PreflightError, StackNameError
    return [_fields(problem) for problem in problems] if isinstance(problems, list) else []


def print_error_document(message: str, exit_code: int, problems: list[Problem], result: Any = None) -> None:
    """The error object; `result` (when given) is what the command could still show, e.g. the stacks
    it could read when another could not."""
    document: dict[str, Any] = {
        "error": message,
        "exitCode": int(exit_code),
        "problems": problems or [{"problem": message}],
    }
    if result is not None:
        document["result"] = result
    print(json.dumps(document, indent=2, default=str))


def _fields(problem: Any) -> Problem:
    if dataclasses.is_dataclass(problem) and not isinstance(problem, type):
        return dataclasses.asdict(problem)
    return {"problem": str(problem)}


def json_refusal(as_json: bool, document: tuple[str, list[Problem]], exit_code: ExitCode) -> int:
    """Under `--json`, the refusal as a JSON object on stdout; the exit code either way."""
    if as_json:
        message, problems = document
        try:
            print_error_document(message, exit_code, problems)
            sys.stdout.flush()
        except BrokenPipeError:
            return pipe_closed()
    return int(exit_code)


def pipe_closed() -> int:
    """The reader of stdout went away: point stdout at /dev/null so the interpreter's last flush
    cannot fail again, and exit as a program ended by SIGPIPE does, without a word."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # a stdout without a file descriptor (captured in tests)
        pass
    return int(ExitCode.PIPE_CLOSED)
