"""The one narrow adapter between the release tool and the Pulumi engine.

Everything the release tool asks of Pulumi goes through `Engine`: read a stack's config, `up` with
config, preview, history, current outputs, refresh. Nothing else in the repository shells out to
`pulumi`. `AutomationEngine` implements it over `pulumi.automation` (a LocalWorkspace on this
project directory); tests and the benchmark use a test double (`tests/fake_engine.py`) that keeps
state in memory and evaluates the real program under Pulumi's mock runtime.

Engine facts this module relies on (see ../shared/pulumi-engine-notes.md):
- `LocalWorkspace(...)` runs `pulumi version` when constructed, so it is built lazily, on the first
  engine call: importing and testing everything else needs no CLI.
- `Stack.history()` without a page size returns only the 10 newest entries: always page.
- History hands object-valued config back as JSON text (the object is dropped): the history parser
  turns it back into objects, and `up` writes objects with `set_all_config_json`.
- A stack locked by another update raises `ConcurrentUpdateError` ("the stack is currently locked").
"""

from __future__ import annotations

import json
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.config.model import SECRET_MARKER
from core.config.sources import ConfigEntry, StackConfigValues, parse_engine_value
from core.errors import ConcurrentReleaseError, EngineError, EngineUnavailableError

if TYPE_CHECKING:
    from pulumi import automation

HISTORY_PAGE_SIZE = 100
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"

OutputSink = Callable[[str], None]


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


class Engine(ABC):
    """What the release tool needs from Pulumi, and nothing more."""

    @abstractmethod
    def get_config(self, stack: str) -> StackConfigValues:
        """The stack's config, full keys (`platform:releases`); secret values are SECRET_MARKER."""

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
    def preview(self, stack: str) -> dict[str, int]:
        """`pulumi preview`: the change summary (operation -> count)."""

    @abstractmethod
    def history(self, stack: str) -> list[dict[str, Any]]:
        """Every history entry, newest first, shaped exactly like `pulumi stack history --json`
        (secrets without values)."""

    @abstractmethod
    def outputs(self, stack: str) -> dict[str, Any]:
        """The stack's current outputs (secret outputs as SECRET_MARKER)."""

    @abstractmethod
    def refresh(self, stack: str) -> UpdateOutcome:
        """`pulumi refresh`: bring the state in line with the cloud."""

    @abstractmethod
    def refresh_preview(self, stack: str) -> list[dict[str, Any]]:
        """`pulumi refresh --preview-only`: the engine's events, each shaped as in the engine's JSON
        event stream (`{"resourcePreEvent": {"metadata": {"op", "urn", "type", "diffs",
        "detailedDiff"}}}`, ...). Changes nothing."""


class AutomationEngine(Engine):
    """`Engine` over `pulumi.automation`, on the Pulumi project in `project_dir`.

    `env` is passed to every CLI call (e.g. PULUMI_BACKEND_URL, PULUMI_CONFIG_PASSPHRASE_FILE).
    """

    def __init__(self, project_dir: Path, env: Mapping[str, str] | None = None) -> None:
        self.project_dir = project_dir
        self.env = dict(env or {})
        self._workspace: automation.LocalWorkspace | None = None

    # -- Engine ---------------------------------------------------------------------------------

    def get_config(self, stack: str) -> StackConfigValues:
        values = self._call(stack, lambda selected: selected.get_all_config())
        return {
            key: ConfigEntry(SECRET_MARKER, secret=True)
            if item.secret
            else ConfigEntry(parse_engine_value(item.value))
            for key, item in values.items()
        }

    def up(
        self,
        stack: str,
        config: Mapping[str, ConfigEntry],
        message: str,
        targets: Sequence[str] = (),
        on_output: OutputSink | None = None,
    ) -> UpdateOutcome:
        from pulumi.automation import errors as automation_errors

        selected = self._select(stack)
        before = self.get_config(stack)
        self._set_config(selected, config)
        started = time.monotonic()
        try:
            result = selected.up(
                message=message,
                target=list(targets) or None,
                on_output=on_output,
                color="never",
                show_secrets=False,
                suppress_progress=True,
            )
        except automation_errors.ConcurrentUpdateError as error:
            self._restore_config(selected, before, config)
            raise ConcurrentReleaseError(stack, _tail(str(error))) from error
        except automation_errors.CommandError as error:
            return UpdateOutcome(False, time.monotonic() - started, error=_tail(str(error)))
        changes = _changes(result.summary.resource_changes)
        return UpdateOutcome(True, time.monotonic() - started, resource_changes=changes)

    def preview(self, stack: str) -> dict[str, int]:
        result = self._call(stack, lambda selected: selected.preview(color="never", suppress_progress=True))
        return _changes(result.change_summary)

    def history(self, stack: str) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = []
        page = 1
        while True:
            summaries = self._call(
                stack,
                lambda selected, page=page: selected.history(  # type: ignore[misc]
                    page_size=HISTORY_PAGE_SIZE, page=page, show_secrets=False
                ),
            )
            entries += [summary_to_history_json(summary) for summary in summaries]
            if len(summaries) < HISTORY_PAGE_SIZE:
                return entries
            page += 1

    def outputs(self, stack: str) -> dict[str, Any]:
        values = self._call(stack, lambda selected: selected.outputs())
        return {key: SECRET_MARKER if item.secret else item.value for key, item in values.items()}

    def refresh(self, stack: str) -> UpdateOutcome:
        started = time.monotonic()
        result = self._call(
            stack,
            lambda selected: selected.refresh(color="never", show_secrets=False, suppress_progress=True),
        )
        changes = _changes(result.summary.resource_changes)
        return UpdateOutcome(result.summary.result == "succeeded", time.monotonic() - started, changes)

    def refresh_preview(self, stack: str) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        self._call(
            stack,
            lambda selected: selected.preview_refresh(
                color="never",
                suppress_progress=True,
                on_event=lambda event: events.append(event_to_json(event)),
            ),
        )
        return [event for event in events if event]

    # -- plumbing -------------------------------------------------------------------------------

    def _workspace_or_error(self) -> automation.LocalWorkspace:
        if self._workspace is None:
            from pulumi import automation

            try:
                self._workspace = automation.LocalWorkspace(work_dir=str(self.project_dir), env_vars=self.env)
            except FileNotFoundError as error:
                raise EngineUnavailableError(
                    "the Pulumi CLI is not on PATH; install it (>= 3.238.0, see README "
                    "'Prerequisites'), or use `release plan`, which needs no CLI"
                ) from error
        return self._workspace

    def _select(self, stack: str) -> automation.Stack:
        from pulumi import automation
        from pulumi.automation import errors as automation_errors

        workspace = self._workspace_or_error()
        try:
            return automation.Stack.select(stack, workspace)
        except automation_errors.StackNotFoundError as error:
            raise EngineError(
                f"stack '{stack}' does not exist in this backend; create it with "
                f"`pulumi stack init {stack}` (see README)"
            ) from error

    def _call(self, stack: str, operation: Callable[[automation.Stack], Any]) -> Any:
        from pulumi.automation import errors as automation_errors

        selected = self._select(stack)
        try:
            return operation(selected)
        except automation_errors.ConcurrentUpdateError as error:
            raise ConcurrentReleaseError(stack, _tail(str(error))) from error
        except automation_errors.CommandError as error:
            raise EngineError(f"stack '{stack}': {_tail(str(error))}") from error

    @staticmethod
    def _set_config(selected: automation.Stack, config: Mapping[str, ConfigEntry]) -> None:
        if config:
            payload = {key: entry.to_engine_json() for key, entry in config.items() if not entry.secret}
            selected.set_all_config_json(json.dumps(payload))

    def _restore_config(
        self, selected: automation.Stack, before: StackConfigValues, written: Mapping[str, ConfigEntry]
    ) -> None:
        self._set_config(selected, {key: before[key] for key in written if key in before})
        added = [key for key in written if key not in before]
        if added:
            selected.remove_all_config(added)


def summary_to_history_json(summary: Any) -> dict[str, Any]:
    """An SDK `UpdateSummary` back in the shape of `pulumi stack history --json` (one parser for both)."""
    entry: dict[str, Any] = {
        "version": summary.version or 0,
        "kind": summary.kind,
        "startTime": _time_text(summary.start_time),
        "message": summary.message,
        "environment": dict(summary.environment or {}),
        "config": {
            key: {"secret": True} if value.secret else {"value": value.value, "secret": False}
            for key, value in (summary.config or {}).items()
        },
        "result": summary.result,
    }
    if summary.end_time is not None:
        entry["endTime"] = _time_text(summary.end_time)
    if summary.resource_changes is not None:
        entry["resourceChanges"] = dict(summary.resource_changes)
    return entry


def event_to_json(event: Any) -> dict[str, Any]:
    """An SDK `EngineEvent` back in the engine's JSON event shape (only what drift detection reads)."""
    pre = getattr(event, "resource_pre_event", None)
    if pre is None:
        summary = getattr(event, "summary_event", None)
        if summary is None:
            return {}
        return {"summaryEvent": {"resourceChanges": _changes(summary.resource_changes)}}
    metadata = pre.metadata
    return {
        "resourcePreEvent": {
            "metadata": {
                "op": str(getattr(metadata.op, "value", metadata.op)),
                "urn": metadata.urn,
                "type": metadata.type,
                "diffs": list(metadata.diffs or []),
                "detailedDiff": {
                    path: {
                        "kind": str(getattr(diff.diff_kind, "value", diff.diff_kind)),
                        "inputDiff": diff.input_diff,
                    }
                    for path, diff in (metadata.detailed_diff or {}).items()
                },
            }
        }
    }


def _changes(summary: Mapping[Any, int] | None) -> dict[str, int]:
    return {str(operation): int(count) for operation, count in (summary or {}).items()}


def _time_text(moment: datetime) -> str:
    return moment.strftime(TIME_FORMAT)


def _tail(text: str, lines: int = 12) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])
