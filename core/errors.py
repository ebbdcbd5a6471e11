"""Every error the release tool and the Pulumi program raise on purpose.

    ReleaseError                 base: catch this once per command, exit with its exit_code
    ├── ConfigError              one or more ConfigProblems in a stack's config (exit 2);
    │                            also a pulumi.RunError, so `pulumi up` prints it without a traceback
    ├── StackFileError           a Pulumi.yaml / Pulumi.<stack>.yaml that cannot be read (exit 2)
    ├── ProgramError             the program failed under the mock runtime for another reason (exit 2)
    ├── UsageError               a command-line request that cannot be carried out as asked (exit 2)
    │   └── StackNameError       a stack name Pulumi would refuse (core.stack_name; exit 2)
    ├── MissingSecretsError      a secret a service reads has no value (the program; exit 2)
    ├── EngineError              the Pulumi engine refused or failed a call (exit 3)
    │   ├── EngineUnavailableError   no Pulumi CLI on PATH (exit 3)
    │   └── ConcurrentReleaseError   another release or update holds the stack (exit 4)
    ├── UnfinishedReleaseError   a release of the stack was never verified, rolled back or aborted (exit 4)
    ├── HistoryError             stack history lacks what a rollback needs (exit 5)
    ├── PromotionRefusedError    a promotion that breaks a gate rule (exit 2); names every rule
    ├── ApprovalEvidenceError    GitHub's record does not prove an environment approval (exit 2)
    ├── RollbackRefusedError     a rollback that would run code against a schema it may not
    │                            understand, refused without --force (exit 5)
    └── UnhealthyError           a health check reached a Degraded verdict (exit 1); keeps the verdict

Each error carries data (the stack, the problems), not only a message, so callers and tests can
inspect what went wrong without parsing text. `ExitCode` below is the one exit-code table.

Two parse errors stay ValueErrors on purpose: `core.images.ImageRefError` and
`core.config.pulumi_yaml.PulumiYamlError` are raised inside parsing (pydantic validators need a
ValueError) and become a ConfigProblem or a StackFileError where they cross into the tool.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import pulumi

from core.text import one_line


class ExitCode(IntEnum):
    """The one exit-code table of every `release` command (docs/operations.md)."""

    OK = 0
    """done: healthy, planned (dry run), or nothing to do"""
    FINDING = 1
    """a finding: parity or policy violation, unhealthy check, drift, a failed release rolled back"""
    BAD_INPUT = 2
    """config, usage, a refused request or promotion (nothing was changed)"""
    ENGINE = 3
    """no Pulumi CLI, a stack that does not exist, a failed engine call"""
    BUSY = 4
    """another release or update holds the stack, or a release of it is unfinished"""
    NEEDS_A_HUMAN = 5
    """a rollback that failed, was refused (migration risk), or has nothing to restore"""
    INTERNAL = 70
    """a bug: one line naming the command and the error"""
    INTERRUPTED = 130
    """Ctrl-C"""
    PIPE_CLOSED = 141
    """the reader of stdout closed it early (`release history dev | head`): quiet, as after SIGPIPE"""


class ReleaseError(Exception):
    """Base of every deliberate error; `exit_code` is what the CLI exits with."""

    exit_code: ExitCode = ExitCode.FINDING

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as its class, message and data, whatever its `__init__` takes: a stack evaluated in
        a worker process (release.offline.workers) sends its error back to the command."""
        return (_rebuilt, (type(self), self.args, self.__dict__))


def _rebuilt(cls: type[ReleaseError], args: tuple[Any, ...], data: dict[str, Any]) -> ReleaseError:
    error = cls.__new__(cls)
    error.args = args
    error.__dict__.update(data)
    return error


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

    @classmethod
    def unknown_service(cls, stack: str, service: str, known: Sequence[str], where: str) -> ConfigProblem:
        """`--service` names no service of `known` (what `where` says: "this stack releases", ...)."""
        return cls(
            stack,
            f"platform:releases.{service}",
            service,
            f"unknown service; {where} {sorted(known)}",
            f"use --service with one of {sorted(known)}",
        )

    def render(self) -> str:
        shown = "(not set)" if self.value is None else repr(self.value)
        return f"{self.key} = {shown}: {self.problem}\n      fix: {self.fix}"


class ConfigError(ReleaseError, pulumi.RunError):
    """A stack's config breaks one or more rules; every problem is reported at once.

    Also a `pulumi.RunError`, so under `pulumi up` the engine prints the message without a traceback.
    """

    exit_code = ExitCode.BAD_INPUT

    def __init__(self, stack: str, problems: list[ConfigProblem]) -> None:
        self.stack = stack
        self.problems = list(problems)
        count = len(self.problems)
        lines = [f"stack '{stack}': {count} configuration problem{'s' if count != 1 else ''}:"]
        lines += [f"  - {problem.render()}" for problem in self.problems]
        super().__init__("\n".join(lines))


class StackFileError(ReleaseError):
    """A project or stack file is missing or is not the YAML Pulumi expects."""

    exit_code = ExitCode.BAD_INPUT

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}")


class ProgramError(ReleaseError):
    """The Pulumi program raised something other than a ConfigError while being evaluated."""

    exit_code = ExitCode.BAD_INPUT

    def __init__(self, stack: str, reason: str) -> None:
        self.stack = stack
        self.reason = reason
        super().__init__(f"stack '{stack}': the program failed under the mock runtime: {reason}")


class UsageError(ReleaseError):
    """The request cannot be carried out as asked (a missing option, an entry that does not exist)."""

    exit_code = ExitCode.BAD_INPUT


class StackNameError(UsageError):
    """A stack name Pulumi would refuse, or that would leave the project's files (exit 2)."""

    def __init__(self, text: str, problems: list[str]) -> None:
        self.text = text
        self.problems = list(problems)
        super().__init__(f"invalid stack name '{one_line(text)}': {'; '.join(self.problems)}")


class MissingSecretsError(ReleaseError, ValueError):
    """A secret a service reads has no value (raised by the program); names every missing secret at once."""

    exit_code = ExitCode.BAD_INPUT

    def __init__(self, missing: list[str]) -> None:
        self.missing = missing
        super().__init__(
            f"{len(missing)} secret(s) not set: {', '.join(missing)}; set each with "
            "`pulumi config set --secret --path 'appSecrets.<NAME>' <value>`"
        )


class EngineError(ReleaseError):
    """The Pulumi engine refused or failed a call that is not an update (which has an outcome)."""

    exit_code = ExitCode.ENGINE


class EngineUnavailableError(EngineError):
    """No Pulumi CLI: the commands that need the engine cannot run (`release plan` still can)."""


@dataclass(frozen=True)
class Precondition:
    """One thing a release needs from outside that is not there: what, what is wrong, the fix."""

    what: str
    problem: str
    fix: str


class PreflightError(ReleaseError):
    """A release that could not finish, refused before any change (release.flows.preflight)."""

    exit_code = ExitCode.ENGINE

    def __init__(self, stack: str, problems: list[Precondition]) -> None:
        self.stack = stack
        self.problems = list(problems)
        lines = [f"stack '{stack}': {len(self.problems)} precondition(s) unmet; nothing was changed:"]
        lines += [f"  - {p.what}: {p.problem}\n      fix: {p.fix}" for p in self.problems]
        super().__init__("\n".join(lines))


class ConcurrentReleaseError(EngineError):
    """Another release or `pulumi up` holds this stack; this one changed nothing and stopped."""

    exit_code = ExitCode.BUSY

    def __init__(self, stack: str, holder: str) -> None:
        self.stack = stack
        self.holder = holder
        super().__init__(
            f"stack '{stack}' is being updated by another release; nothing was changed. "
            f"Wait for it to finish (`release history {stack}`), then run this again.\n  {holder}"
        )


class UnfinishedReleaseError(ReleaseError):
    """A release of this stack has a stage or switch but no verify, rollback or abort: it was killed
    midway or is still running elsewhere. Nothing was changed (exit 4)."""

    exit_code = ExitCode.BUSY

    def __init__(self, stack: str, releases: list[str], fixes: list[str]) -> None:
        self.stack = stack
        self.releases = list(releases)
        lines = [f"stack '{stack}' has an unfinished release; nothing was changed:"]
        lines += [f"  - {release}" for release in self.releases]
        lines += ["  finish it first, then run this again:"]
        lines += [f"    {fix}" for fix in fixes]
        super().__init__("\n".join(lines))


class HistoryError(ReleaseError):
    """Stack history does not hold what a rollback needs (no succeeded update, an unknown entry)."""

    exit_code = ExitCode.NEEDS_A_HUMAN


@dataclass(frozen=True)
class MigrationRisk:
    """A digest a rollback would move away from, whose migration is not declared backward compatible."""

    service: str
    digest: str
    restored: str

    def render(self) -> str:
        return (
            f"{self.service}: rolling back from {self.digest} to {self.restored}, but {self.service}'s "
            "migrations are not declared backward compatible (migration.expandContract: false in "
            f"Pulumi.yaml); {self.digest}'s migration has run, and {self.restored} may not work "
            "against the schema it left"
        )


class RollbackRefusedError(ReleaseError):
    """A rollback past a migration that is not backward compatible, without --force."""

    exit_code = ExitCode.NEEDS_A_HUMAN

    def __init__(self, stack: str, risks: list[MigrationRisk]) -> None:
        self.stack = stack
        self.risks = list(risks)
        lines = [f"stack '{stack}': rollback refused; nothing was changed:"]
        lines += [f"  - {risk.render()}" for risk in self.risks]
        lines.append(
            "  fix: roll forward with a fixed image (`release deploy`), or check the schema and "
            "rerun with --force (the reason is recorded in the update message)"
        )
        super().__init__("\n".join(lines))


class UnhealthyError(ReleaseError):
    """A health check reached a Degraded verdict; `verdict` holds every probe."""

    exit_code = ExitCode.FINDING

    def __init__(self, what: str, verdict: Any) -> None:
        self.what = what
        self.verdict = verdict
        super().__init__(f"{what}: unhealthy: {verdict.reason}")


class PromotionRefusedError(ReleaseError):
    """A promotion (or a deploy) that breaks a gate rule; `violations` names each rule and its fix.

    Raised before any engine call that changes something: a refused promotion changes nothing.
    """

    exit_code = ExitCode.BAD_INPUT

    def __init__(self, source: str, target: str, what: str, violations: list[Any]) -> None:
        self.source = source
        self.target = target
        self.violations = list(violations)
        lines = [f"promotion of {what} from '{source}' to '{target}' refused; nothing was changed:"]
        lines += [f"  - {violation.render()}" for violation in self.violations]
        super().__init__("\n".join(lines))


class SupplyChainRefusedError(ReleaseError):
    """An image the stack's supplyChain policy refuses (release/supply): every unmet requirement is
    named with its fix. Raised before any change: a refused release changes nothing."""

    exit_code = ExitCode.BAD_INPUT

    def __init__(self, stack: str, service: str, image: str, unmet: list[str]) -> None:
        self.stack = stack
        self.unmet = list(unmet)
        lines = [
            f"release of {service} {image} into '{stack}' refused by its supplyChain policy (enforce); "
            f"nothing was changed; {len(self.unmet)} requirement{'s' if len(self.unmet) != 1 else ''} unmet:"
        ]
        lines += [f"  - {item}" for item in self.unmet]
        super().__init__("\n".join(lines))


class ApprovalEvidenceError(ReleaseError):
    """GitHub's review history does not prove that an environment was approved, or cannot be read.

    `kind` names the failure for callers and tests: missing-env, invalid-env, not-reviewed, rejected,
    pending, unauthorized, forbidden, rate-limited, not-found, status, malformed, too-large, timeout,
    transport. `problem` says what is wrong and `fix` how to fix it; neither ever holds the token.
    """

    exit_code = ExitCode.BAD_INPUT

    def __init__(self, environment: str, kind: str, problem: str, fix: str) -> None:
        self.environment = environment
        self.kind = kind
        self.problem = problem
        self.fix = fix
        super().__init__(
            f"approval of GitHub environment '{environment}' not proven: {problem}\n  fix: {fix}"
        )
