"""A stack name, checked once at the boundary against Pulumi's rules.

The name goes into file names (`Pulumi.<stack>.yaml`, `.release/<stack>.lock`) and engine calls, so
`../poetry` or `a;b` must never get past the command line. Pulumi allows a stack name of at most
100 characters: letters, digits, `-`, `_` and `.` (and not `.` or `..`, which name directories).

A fully qualified `org/project/stack` (or `org/stack`) is refused with its own message: this tool
works on the project in the current directory (`platform`) and on the default organization, so the
user gives the short name and selects the organization with `pulumi org set-default`.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass

from core.config.base import PROJECT_NAME
from core.errors import StackNameError

MAX_LENGTH = 100
STACK_NAME = re.compile(r"[A-Za-z0-9_.-]+")
RULE = (
    f"a stack name is 1 to {MAX_LENGTH} letters, digits, '-', '_' or '.' (and not '.' or '..'), e.g. staging"
)


@dataclass(frozen=True)
class StackName:
    """A valid short stack name (`dev`, `staging`); build it with `StackName.parse`."""

    value: str

    @classmethod
    def parse(cls, text: str) -> StackName:
        """`text` as a StackName, or StackNameError naming the value and every rule it breaks."""
        problems = stack_name_problems(text)
        if problems:
            raise StackNameError(text, problems)
        return cls(text)

    def __str__(self) -> str:
        return self.value


def stack_name_problems(text: str) -> list[str]:
    """Every reason `text` is not a usable short stack name (empty: it is one)."""
    if "/" in text:
        return _qualified_problems(text)
    return _short_name_problems(text)


def _short_name_problems(text: str) -> list[str]:
    problems = []
    if len(text) > MAX_LENGTH:
        problems.append(f"{len(text)} characters, more than {MAX_LENGTH}")
    if not STACK_NAME.fullmatch(text) or text in (".", ".."):
        problems.append(RULE)
    return problems


def _qualified_problems(text: str) -> list[str]:
    """`org/stack` or `org/project/stack` (each part a valid name): refused with what to type instead.
    Anything else with a `/` (`../dev`, `a//b`) is simply not a stack name."""
    parts = text.split("/")
    if len(parts) > 3 or any(_short_name_problems(part) for part in parts):
        return [f"{RULE}; '/' only separates the parts of org/project/stack"]
    org, stack = parts[0], parts[-1]
    problems = []
    if len(parts) == 3 and parts[1] != PROJECT_NAME:
        problems.append(
            f"project '{parts[1]}' is not this project: the stacks here belong to '{PROJECT_NAME}'"
        )
    problems.append(
        f"an organization prefix ('{org}/') is not accepted: give the short name '{stack}' and "
        "select the organization with `pulumi org set-default <org>`"
    )
    return problems


def parse_stack_name(text: str) -> str:
    """An argparse `type=`: `text` if it is a valid stack name; otherwise argparse exits 2 with why."""
    try:
        return StackName.parse(text).value
    except StackNameError as error:
        raise argparse.ArgumentTypeError(str(error)) from error
