"""`AutomationEngine`: the one implementation of `release.engine.protocol.Engine` over `pulumi.automation`
(a LocalWorkspace on this project directory). Nothing else in the repository shells out to `pulumi`;
tests and the benchmark use the test double (`release.testing.fake_engine`), which keeps state in
memory and evaluates the real program under Pulumi's mock runtime.

Engine facts this module relies on (see docs/engine-facts.md):
- `LocalWorkspace(...)` runs `pulumi version` when constructed, so it is built lazily, on the first
  engine call: importing and testing everything else needs no CLI.
- `Stack.history()` without a page size returns only the 10 newest entries: always page.
- History hands object-valued config back as JSON text (the object is dropped): the history parser
  turns it back into objects, and `up` writes objects with `set_all_config_json`.
- A stack locked by another update raises `ConcurrentUpdateError` ("the stack is currently locked").
- The data program (snapshots, a drill's scratch instance) is an inline program in its own project
  (`create_or_select_stack(stack, project_name=DATA_PROJECT, program=...)`), on the same backend
  (the same `env`), so the main program's resources and parity stay as they are.
- The SDK runs each CLI command as a child process and keeps no handle on it: every workspace here
  runs its commands through `CancellablePulumiCommand` (release.engine.pulumi_command), so Ctrl-C or
  SIGTERM cancels a running `up` within a bounded grace, and the tool goes on (to its rollback) once
  the CLI has stopped and released the stack's lock (release.engine.cancel).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.config.base import PROJECT_NAME, SECRET_MARKER, SECRETS_KEY
from core.config.sources import ConfigEntry, StackConfigValues, parse_engine_value
from core.data_plan import DATA_PROJECT, DataPlan, data_stack_name
from core.errors import ConcurrentReleaseError, EngineError, EngineUnavailableError
from release.engine.protocol import DataTimeouts, Engine, OutputSink, SecretValue, UpdateOutcome
from release.engine.shapes import changes_of, event_to_json, summary_to_history_json

if TYPE_CHECKING:
    from pulumi import automation

HISTORY_PAGE_SIZE = 100
DATA_WORK_DIR = ".pulumi-data"
"""The data program's workspace, inside the project directory (git-ignored)."""
AWS_REGION_KEY = f"{PROJECT_NAME}:awsRegion"
SKIP_VERSION_CHECK = "PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK"
"""The SDK's opt-out of its CLI version check (pulumi.automation._env), honoured as LocalWorkspace does."""


class AutomationEngine(Engine):
    """`Engine` over `pulumi.automation`, on the Pulumi project in `project_dir`.

    `env` is passed to every CLI call (e.g. PULUMI_BACKEND_URL, PULUMI_CONFIG_PASSPHRASE_FILE).
    """

    def __init__(self, project_dir: Path, env: Mapping[str, str] | None = None) -> None:
        self.project_dir = project_dir
        self.env = dict(env or {})
        self._workspace: automation.LocalWorkspace | None = None
        self._pulumi_command: automation.PulumiCommand | None = None

    # -- Engine ---------------------------------------------------------------------------------

    def get_config(self, stack: str) -> StackConfigValues:
        values = self._call(stack, lambda selected: selected.get_all_config())
        return {
            key: ConfigEntry(SECRET_MARKER, secret=True)
            if item.secret
            else ConfigEntry(parse_engine_value(item.value))
            for key, item in values.items()
        }

    def app_secret(self, stack: str, name: str) -> SecretValue | None:
        key = f"{PROJECT_NAME}:{SECRETS_KEY}.{name}"
        try:
            value = self._call(stack, lambda selected: selected.get_config(key, path=True))
        except EngineError as error:
            if "not found" in str(error):
                return None  # not set (the config rules refuse such a stack before this is asked)
            raise  # a passphrase or backend problem is the engine's error, not a missing secret
        return SecretValue(str(value.value)) if value.value else None

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
        changes = changes_of(result.summary.resource_changes)
        return UpdateOutcome(True, time.monotonic() - started, resource_changes=changes)

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

    def data_up(
        self,
        stack: str,
        plan: DataPlan,
        timeouts: DataTimeouts,
        message: str,
        on_output: OutputSink | None = None,
    ) -> UpdateOutcome:
        from pulumi.automation import errors as automation_errors

        from components.data_program import data_program

        region = self.get_config(stack).get(AWS_REGION_KEY)
        if region is None or not isinstance(region.value, str):
            raise EngineError(f"stack '{stack}': {AWS_REGION_KEY} is not set; the data program needs it")
        program = data_program(plan, timeouts.snapshot_minutes, timeouts.restore_minutes, region.value)
        selected = self._data_stack(plan.data_stack, program)
        started = time.monotonic()
        try:
            result = selected.up(
                message=message,
                on_output=on_output,
                color="never",
                show_secrets=False,
                # A snapshot or restore takes minutes: keep the engine's "creating (60s)" lines.
                suppress_progress=False,
            )
        except automation_errors.ConcurrentUpdateError as error:
            raise ConcurrentReleaseError(f"{DATA_PROJECT}/{plan.data_stack}", _tail(str(error))) from error
        except automation_errors.CommandError as error:
            return UpdateOutcome(False, time.monotonic() - started, error=_tail(str(error)))
        changes = changes_of(result.summary.resource_changes)
        return UpdateOutcome(True, time.monotonic() - started, resource_changes=changes)

    def data_outputs(self, stack: str, drill: bool = False) -> dict[str, Any]:
        from pulumi import automation
        from pulumi.automation import errors as automation_errors

        try:
            selected = automation.select_stack(
                data_stack_name(stack, drill),
                project_name=DATA_PROJECT,
                program=_no_program,
                opts=self._data_options(),
            )
        except automation_errors.StackNotFoundError:
            return {}
        except FileNotFoundError as error:
            raise EngineUnavailableError("the Pulumi CLI is not on PATH") from error
        try:
            values = selected.outputs()
        except automation_errors.CommandError as error:
            raise EngineError(
                f"{DATA_PROJECT}/{data_stack_name(stack, drill)}: {_tail(str(error))}"
            ) from error
        return {
            key: SecretValue(str(item.value)) if item.secret else item.value for key, item in values.items()
        }

    def _data_stack(self, stack: str, program: Callable[[], None]) -> automation.Stack:
        from pulumi import automation

        try:
            return automation.create_or_select_stack(
                stack, project_name=DATA_PROJECT, program=program, opts=self._data_options()
            )
        except FileNotFoundError as error:
            raise EngineUnavailableError("the Pulumi CLI is not on PATH") from error

    def _data_options(self) -> automation.LocalWorkspaceOptions:
        """One working directory for the data stacks, kept beside the project: its
        `Pulumi.<stack>.yaml` holds each data stack's secrets salt, so later runs decrypt them."""
        from pulumi import automation

        work_dir = self.project_dir / DATA_WORK_DIR
        work_dir.mkdir(exist_ok=True)
        return automation.LocalWorkspaceOptions(
            work_dir=str(work_dir), env_vars=self.env, pulumi_command=self._command()
        )

    # -- plumbing -------------------------------------------------------------------------------

    def _workspace_or_error(self) -> automation.LocalWorkspace:
        if self._workspace is None:
            from pulumi import automation

            self._workspace = automation.LocalWorkspace(
                work_dir=str(self.project_dir), env_vars=self.env, pulumi_command=self._command()
            )
        return self._workspace

    def _command(self) -> automation.PulumiCommand:
        """The CLI every workspace here runs, cancellable by an interrupt; built (`pulumi version`)
        on first use, its version check skipped as LocalWorkspace's own would be."""
        if self._pulumi_command is None:
            from release.engine.pulumi_command import CancellablePulumiCommand

            skip = SKIP_VERSION_CHECK in os.environ or SKIP_VERSION_CHECK in self.env
            try:
                self._pulumi_command = CancellablePulumiCommand(skip_version_check=skip)
            except FileNotFoundError as error:
                raise EngineUnavailableError(
                    "the Pulumi CLI is not on PATH; install it (>= 3.238.0, see docs/configuration.md "
                    "'Prerequisites'), or use `release plan`, which needs no CLI"
                ) from error
        return self._pulumi_command

    def _select(self, stack: str) -> automation.Stack:
        from pulumi import automation
        from pulumi.automation import errors as automation_errors

        workspace = self._workspace_or_error()
        try:
            return automation.Stack.select(stack, workspace)
        except automation_errors.StackNotFoundError as error:
            raise EngineError(
                f"stack '{stack}' does not exist in this backend; create it with "
                f"`pulumi stack init {stack}` (see docs/configuration.md)"
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


def _tail(text: str, lines: int = 12) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _no_program() -> None:
    """Reading a data stack's outputs runs no program."""
