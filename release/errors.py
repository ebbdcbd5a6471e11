"""Every error the release tool and the Pulumi program raise on purpose.

    ReleaseError                 base: catch this once per command, exit with its exit_code
    ├── ConfigError              one or more ConfigProblems in a stack's config (exit 2);
    │                            also a pulumi.RunError, so `pulumi up` prints it without a traceback
    ├── StackFileError           a Pulumi.yaml / Pulumi.<stack>.yaml that cannot be read (exit 2)
    └── ProgramError             the program failed under the mock runtime for another reason (exit 2)

Each error carries data (the stack, the problems), not only a message, so callers and tests can
inspect what went wrong without parsing text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi

EXIT_CONFIG_ERROR = 2


class ReleaseError(Exception):
    """Base of every deliberate error; `exit_code` is what the CLI exits with."""

    exit_code: int = 1


@dataclass(frozen=True)
class ConfigProblem:
    """One bad config value: where it is, what is wrong, and how to fix it."""

    stack: str
    key: str
    value: Any
    problem: str
    fix: str
    parity: bool = False
    """True when the problem is a difference from the other stacks that is not a declared knob
    (a project-level value overridden, a key the program does not declare)."""

    def render(self) -> str:
        shown = "(not set)" if self.value is None else repr(self.value)
        return f"{self.key} = {shown}: {self.problem}\n      fix: {self.fix}"


class ConfigError(ReleaseError, pulumi.RunError):
    """A stack's config breaks one or more rules; every problem is reported at once.

    Also a `pulumi.RunError`, so under `pulumi up` the engine prints the message without a traceback.
    """

    exit_code = EXIT_CONFIG_ERROR

    def __init__(self, stack: str, problems: list[ConfigProblem]) -> None:
        self.stack = stack
        self.problems = list(problems)
        count = len(self.problems)
        lines = [f"stack '{stack}': {count} configuration problem{'s' if count != 1 else ''}:"]
        lines += [f"  - {problem.render()}" for problem in self.problems]
        super().__init__("\n".join(lines))


class StackFileError(ReleaseError):
    """A project or stack file is missing or is not the YAML Pulumi expects."""

    exit_code = EXIT_CONFIG_ERROR

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}")


class ProgramError(ReleaseError):
    """The Pulumi program raised something other than a ConfigError while being evaluated."""

    exit_code = EXIT_CONFIG_ERROR

    def __init__(self, stack: str, reason: str) -> None:
        self.stack = stack
        self.reason = reason
        super().__init__(f"stack '{stack}': the program failed under the mock runtime: {reason}")
