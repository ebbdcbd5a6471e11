"""What the release tool needs from Pulumi, and nothing more: the `Engine` every command talks to.

Read a stack's config, `up` with config (optionally targeted), history, current outputs, and a
refresh preview (drift); and for the data program (core.data_plan: snapshots, a drill's scratch
instance, in its own project `platform-data`), `data_up` and `data_outputs`.
`release.engine.automation.AutomationEngine` implements it over `pulumi.automation`;
`release.testing.fake_engine.FakeEngine` is its test double, whose history has exactly the CLI's
JSON shape (`release.engine.shapes`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from core.config.sources import ConfigEntry, StackConfigValues
from core.data_plan import DataPlan
from core.gateway import PREVIEW_TOKEN_SECRET

OutputSink = Callable[[str], None]
"""Where an `up` streams the engine's output lines."""


@dataclass(frozen=True)
class UpdateOutcome:
    """What one `up` (or refresh) did: whether it succeeded, what it changed, how long it took."""

    succeeded: bool
    seconds: float
    resource_changes: dict[str, int] = field(default_factory=dict)
    error: str = ""
    """The tail of the engine's error output when it failed (secrets are masked by the engine)."""

    @property
    def changed(self) -> int:
        return sum(count for operation, count in self.resource_changes.items() if operation != "same")


@dataclass(frozen=True)
class DataTimeouts:
    """Hard limits for the data program's resources: a snapshot, a scratch instance's restore."""

    snapshot_minutes: int
    restore_minutes: int


class SecretValue:
    """A secret output (the scratch instance's password): its value only through `reveal()`; never
    in repr, str, logs or JSON."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "SecretValue([secret])"

    __str__ = __repr__


class Engine(ABC):
    """What the release tool needs from Pulumi, and nothing more."""

    @abstractmethod
    def get_config(self, stack: str) -> StackConfigValues:
        """The stack's config, full keys (`platform:releases`); secret values are SECRET_MARKER."""

    @abstractmethod
    def app_secret(self, stack: str, name: str) -> SecretValue | None:
        """The stack secret `platform:appSecrets.<name>`, decrypted, or None when the stack holds none
        (the preview token, a secret a smoke check sends)."""

    def preview_token(self, stack: str) -> SecretValue | None:
        """The stack's preview token (`platform:appSecrets.PREVIEW_TOKEN`, core.gateway), decrypted,
        or None when the stack holds none."""
        return self.app_secret(stack, PREVIEW_TOKEN_SECRET)

    @abstractmethod
    def up(
        self,
        stack: str,
        config: Mapping[str, ConfigEntry],
        message: str,
        targets: Sequence[str] = (),
        on_output: OutputSink | None = None,
    ) -> UpdateOutcome:
        """Set `config` (those keys only) and run `up`, limited to `targets` (URNs) when given.

        A failed update is an outcome, not an exception. A stack locked by another update raises
        ConcurrentReleaseError, and the config is put back as it was: nothing is half-applied.
        """

    @abstractmethod
    def history(self, stack: str) -> list[dict[str, Any]]:
        """Every history entry, newest first, shaped exactly like `pulumi stack history --json`
        (secrets without values)."""

    @abstractmethod
    def outputs(self, stack: str) -> dict[str, Any]:
        """The stack's current outputs (secret outputs as SECRET_MARKER)."""

    @abstractmethod
    def refresh_preview(self, stack: str) -> list[dict[str, Any]]:
        """`pulumi refresh --preview-only`: the engine's events, each shaped as in the engine's JSON
        event stream (`{"resourcePreEvent": {"metadata": {"op", "urn", "type", "diffs",
        "detailedDiff"}}}`, ...). Changes nothing."""

    @abstractmethod
    def data_up(
        self,
        stack: str,
        plan: DataPlan,
        timeouts: DataTimeouts,
        message: str,
        on_output: OutputSink | None = None,
    ) -> UpdateOutcome:
        """Run the data program (components.data_program) with `plan` in `stack`'s data stack
        (`plan.data_stack` in project `platform-data`, created on first use; `stack`'s region).
        What the plan leaves out is deleted. A failed or timed-out update is an outcome; a lock held
        by another update raises ConcurrentReleaseError."""

    @abstractmethod
    def data_outputs(self, stack: str, drill: bool = False) -> dict[str, Any]:
        """The outputs of `stack`'s data stack (`drill`: its drill stack; core.data_plan), a secret
        output as a SecretValue; `{}` when that data stack does not exist yet."""
