"""A test double of the engine adapter (`release.engine.protocol.Engine`), for release logic and
benchmarks.

It is not the engine and never claims to be: it keeps each stack's config, history and "deployed"
resource inputs in memory. Its `up` evaluates the real program (`__main__.py`) under Pulumi's mock
runtime with the new config and counts the resources whose declared inputs change, so a targeted
rollback and a full redeploy can be compared on the real program. History entries are written in
exactly the shape `pulumi stack history --json` prints, with object config as JSON text only (what
the SDK hands back) and, by default, every version 0 (the file backend).

Failures are scripted: `fail_up(n, error)` makes the n-th `up` from now fail; `hold_lock(text)`
makes every `up` raise ConcurrentReleaseError as a stack lock would, after putting config back.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from components.data_program import data_program
from core.config.base import PROJECT_NAME, SECRET_MARKER, SECRETS_KEY, full_key
from core.config.sources import ConfigEntry, StackConfigValues, engine_text, read_stack_file
from core.data_plan import DATA_PROJECT, DataPlan, data_stack_name
from core.errors import ConcurrentReleaseError, EngineError, ReleaseError
from core.gateway import PREVIEW_TOKEN_SECRET
from core.naming import DEPLOYMENT_TYPE, KUBERNETES_SERVICE_TYPE, preview_service_name
from release.engine.protocol import DataTimeouts, Engine, SecretValue, UpdateOutcome
from release.engine.shapes import UpdateResult
from release.offline.mock_runtime import ProgramRun, evaluate_inline, evaluate_program
from release.offline.mocks import DataMocks
from release.testing.fake_clock import FakeClock
from tests.conftest import PROJECT, TEST_SECRETS

CONFIG_MAP_TYPE = "kubernetes:core/v1:ConfigMap"
COLOR_LABEL = "platform.example.test/color"


@dataclass
class FakeStack:
    config: dict[str, ConfigEntry]
    history: list[dict[str, Any]] = field(default_factory=list)
    deployed: dict[str, dict[str, Any]] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)


@dataclass
class DataUpCall:
    data_stack: str
    plan: DataPlan
    message: str
    outcome: UpdateOutcome | None = None


@dataclass
class UpCall:
    stack: str
    config: dict[str, ConfigEntry]
    message: str
    targets: list[str]
    outcome: UpdateOutcome | None = None
    changed_urns: list[str] = field(default_factory=list)


TICK_SECONDS = 30
"""How far an update moves the clock when it starts, and again when it ends."""
UPDATE_SECONDS = 2 * TICK_SECONDS
"""How long every `up` takes on the engine double's clock."""


class FakeEngine(Engine):
    def __init__(
        self, project_dir: Path = PROJECT, numbered_versions: bool = False, clock: FakeClock | None = None
    ) -> None:
        self.project_dir = project_dir
        self.numbered_versions = numbered_versions
        self.stacks: dict[str, FakeStack] = {}
        self.ups: list[UpCall] = []
        self.calls: list[tuple[str, str]] = []
        """Every Engine method called, as (method, stack), in order: refused requests must make none."""
        self._failures: dict[int, str] = {}
        self.drift_events: dict[str, list[dict[str, Any]]] = {}
        self._lock_holder = ""
        self.clock = clock or FakeClock()
        """The test's clock: history times come from it and every update moves it 30 s (a context made
        with `ReleaseContext.for_tests` around this engine reads the same clock)."""
        self.data_mocks = DataMocks()
        """What the data program's resources answer (point the scratch instance at a local PostgreSQL)."""
        self.data_stacks: dict[str, ProgramRun] = {}
        """Each data stack's last successful evaluation (core.data_plan: `<stack>`, `<stack>-drill`)."""
        self.data_ups: list[DataUpCall] = []
        self._data_failures: dict[int, str] = {}
        self.secrets = dict(TEST_SECRETS)
        """The stack secrets: what `app_secret` reads and every `up` evaluates the program with."""

    # -- set-up ---------------------------------------------------------------------------------

    def add_stack(self, stack: str, edit: Mapping[str, Any] | None = None, deploy: bool = True) -> FakeStack:
        """A stack holding its Pulumi.<stack>.yaml config (plus test secrets and `edit`: a key set
        to None is removed); when `deploy`, one succeeded update of that config is in its history
        and its state."""
        stack_file = read_stack_file(self.project_dir, stack)
        project_keys = {full_key(key) for key in stack_file.raw.project_values}
        config = {
            key: ConfigEntry(copy.deepcopy(value))
            for key, value in stack_file.raw.values.items()
            if key not in project_keys and key != full_key(SECRETS_KEY)
        }
        config[full_key(SECRETS_KEY)] = ConfigEntry(SECRET_MARKER, secret=True)
        for key, value in (edit or {}).items():
            if value is None:
                config.pop(key, None)
            else:
                config[key] = ConfigEntry(value)
        self.stacks[stack] = FakeStack(config=config)
        if deploy:
            self.up(stack, {}, "initial deploy [by test-setup]")
            self.ups.clear()
            self.calls.clear()
        return self._stack(stack)

    def fail_data_up(self, nth: int, error: str) -> None:
        """Make the `nth` data `up` from now fail with `error` (e.g. a snapshot that timed out)."""
        self._data_failures[len(self.data_ups) + nth] = error

    def fail_up(self, nth: int, error: str) -> None:
        """Make the `nth` `up` from now (1 = the next one) fail with `error`."""
        self._failures[len(self.ups) + nth] = error

    def hold_lock(self, holder: str) -> None:
        self._lock_holder = holder

    # -- what the cluster would serve -----------------------------------------------------------

    def serving(self, stack: str, service: str, preview: bool = False) -> str:
        """The image the stable (or preview) Service routes to, from the deployed inputs."""
        return str(self._serving_container(stack, service, preview)["image"])

    def serving_config(self, stack: str, service: str, preview: bool = False) -> dict[str, str]:
        """The env the pods behind the stable (or preview) Service read from their color's config
        object: the deployed ConfigMap their first `envFrom` names."""
        name = self._serving_container(stack, service, preview)["envFrom"][0]["configMapRef"]["name"]
        for urn, inputs in self._stack(stack).deployed.items():
            if urn.split("::")[-2].endswith(CONFIG_MAP_TYPE) and inputs["metadata"]["name"] == name:
                return dict(inputs["data"])
        raise KeyError(f"no ConfigMap {name} is deployed: the pods could not start")

    def _serving_container(self, stack: str, service: str, preview: bool) -> dict[str, Any]:
        state = self._stack(stack)
        service_name = preview_service_name(service) if preview else service
        selector = self._deployed(state, KUBERNETES_SERVICE_TYPE, service_name)["spec"]["selector"]
        deployment = self._deployed(state, DEPLOYMENT_TYPE, f"{service}-{selector[COLOR_LABEL]}")
        container: dict[str, Any] = deployment["spec"]["template"]["spec"]["containers"][0]
        return container

    def _stack(self, stack: str) -> FakeStack:
        """The stack, or the adapter's error for a stack the backend does not hold."""
        if stack not in self.stacks:
            raise EngineError(
                f"stack '{stack}' does not exist in this backend; create it with `pulumi stack init {stack}`"
            )
        return self.stacks[stack]

    # -- Engine ---------------------------------------------------------------------------------

    def get_config(self, stack: str) -> StackConfigValues:
        self.calls.append(("get_config", stack))
        return copy.deepcopy(self._stack(stack).config)

    def preview_token(self, stack: str) -> SecretValue | None:
        self._stack(stack)
        self.calls.append(("preview_token", stack))
        return SecretValue(self.secrets[PREVIEW_TOKEN_SECRET])

    def app_secret(self, stack: str, name: str) -> SecretValue | None:
        """`secrets[name]` (the test secrets, unless a test removed or changed one)."""
        self._stack(stack)
        self.calls.append(("app_secret", stack))
        value = self.secrets.get(name)
        return SecretValue(value) if value is not None else None

    def up(
        self,
        stack: str,
        config: Mapping[str, ConfigEntry],
        message: str,
        targets: Sequence[str] = (),
        on_output: Any = None,
    ) -> UpdateOutcome:
        self.calls.append(("up", stack))
        state = self._stack(stack)
        call = UpCall(stack, copy.deepcopy(dict(config)), message, list(targets))
        before = copy.deepcopy(state.config)
        state.config.update(copy.deepcopy(dict(config)))
        if self._lock_holder:
            state.config = before
            raise ConcurrentReleaseError(stack, f"the stack is currently locked by {self._lock_holder}")
        self.ups.append(call)
        started = self._tick()
        failure = self._failures.pop(len(self.ups), "")
        run: ProgramRun | None = None
        if not failure:
            try:
                run = self._evaluate(stack, state.config)
            except ReleaseError as error:
                failure = str(error)
        if run is None:
            outcome = UpdateOutcome(False, 0.0, error=failure)
            self._record(state, started, message, UpdateResult.FAILED, {})
        else:
            desired = {resource.urn: resource.inputs for resource in run.resources}
            chosen = [urn for urn in desired if not targets or urn in targets]
            changed = [urn for urn in chosen if state.deployed.get(urn) != desired[urn]]
            created = [urn for urn in changed if urn not in state.deployed]
            for urn in chosen:
                state.deployed[urn] = desired[urn]
            state.outputs = run.outputs
            changes = {"create": len(created), "update": len(changed) - len(created)}
            changes["same"] = len(desired) - len(changed)
            call.changed_urns = changed
            outcome = UpdateOutcome(True, 0.0, resource_changes={k: v for k, v in changes.items() if v})
            self._record(state, started, message, UpdateResult.SUCCEEDED, outcome.resource_changes)
        call.outcome = outcome
        return outcome

    def history(self, stack: str) -> list[dict[str, Any]]:
        self.calls.append(("history", stack))
        return copy.deepcopy(self._stack(stack).history)

    def outputs(self, stack: str) -> dict[str, Any]:
        self.calls.append(("outputs", stack))
        return copy.deepcopy(self._stack(stack).outputs)

    def refresh_preview(self, stack: str) -> list[dict[str, Any]]:
        """The events `drift_events[stack]` holds (a test sets them, shaped like the engine's)."""
        self.calls.append(("refresh_preview", stack))
        return copy.deepcopy(self.drift_events.get(stack, []))

    # -- plumbing -------------------------------------------------------------------------------

    def _evaluate(self, stack: str, config: Mapping[str, ConfigEntry]) -> ProgramRun:
        values = {key: entry.value for key, entry in config.items()}
        values[full_key(SECRETS_KEY)] = dict(self.secrets)
        project_values = read_stack_file(self.project_dir, stack).raw.project_values
        engine_config = {full_key(key): engine_text(value) for key, value in project_values.items()}
        engine_config.update({key: engine_text(value) for key, value in values.items()})
        secret_keys = [key for key, entry in config.items() if entry.secret]
        return evaluate_program(
            self.project_dir / "__main__.py", PROJECT_NAME, stack, engine_config, secret_keys
        )

    def _record(
        self, state: FakeStack, started: datetime, message: str, result: str, changes: dict[str, int]
    ) -> None:
        """Append a history entry shaped exactly like `pulumi stack history --json` prints one."""
        entry: dict[str, Any] = {
            "version": len(state.history) + 1 if self.numbered_versions else 0,
            "kind": "update",
            "startTime": started.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            "message": message,
            "environment": {"exec.kind": "auto.local", "git.author": "Test Author"},
            "config": {
                key: {"secret": True}
                if entry.secret
                else {
                    "value": json.dumps(entry.value)
                    if isinstance(entry.value, dict | list)
                    else str(entry.value),
                    "secret": False,
                }
                for key, entry in state.config.items()
            },
            "result": result,
            "endTime": self._tick().strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        }
        if changes:
            entry["resourceChanges"] = changes
        state.history.insert(0, entry)

    def _tick(self) -> datetime:
        self.clock.advance(TICK_SECONDS)
        return self.clock()

    @staticmethod
    def _deployed(state: FakeStack, type_token: str, name: str) -> dict[str, Any]:
        suffix = f"{type_token}::{name}"
        for urn, inputs in state.deployed.items():
            if urn.endswith(suffix):
                return inputs
        raise KeyError(f"nothing deployed as {suffix}")

    def data_up(
        self,
        stack: str,
        plan: DataPlan,
        timeouts: DataTimeouts,
        message: str,
        on_output: Any = None,
    ) -> UpdateOutcome:
        self.calls.append(("data_up", plan.data_stack))
        region = self._stack(stack).config[f"{PROJECT_NAME}:awsRegion"].value
        call = DataUpCall(plan.data_stack, plan, message)
        self.data_ups.append(call)
        failure = self._data_failures.pop(len(self.data_ups), "")
        if failure:
            call.outcome = UpdateOutcome(False, 0.0, error=failure)
            return call.outcome
        program = data_program(plan, timeouts.snapshot_minutes, timeouts.restore_minutes, str(region))
        run = evaluate_inline(program, DATA_PROJECT, plan.data_stack, mocks=self.data_mocks)
        before = self.data_stacks.get(plan.data_stack)
        old = {resource.urn for resource in before.resources} if before else set()
        new = {resource.urn for resource in run.resources}
        self.data_stacks[plan.data_stack] = run
        changes = {"create": len(new - old), "delete": len(old - new), "same": len(new & old)}
        call.outcome = UpdateOutcome(True, 0.0, resource_changes={k: v for k, v in changes.items() if v})
        return call.outcome

    def data_outputs(self, stack: str, drill: bool = False) -> dict[str, Any]:
        name = data_stack_name(stack, drill)
        self.calls.append(("data_outputs", name))
        run = self.data_stacks.get(name)
        if run is None:
            return {}
        return {
            key: SecretValue(self.data_mocks.scratch_password) if value == SECRET_MARKER else value
            for key, value in run.outputs.items()
        }
