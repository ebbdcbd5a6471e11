"""Evaluate the Pulumi program under Pulumi's mock runtime and record every resource it registers.

This is Pulumi's own unit-testing method (`pulumi.runtime.set_mocks`): no CLI, no provider plugin,
no cluster, no cloud account. What it records is what the program *declares*, not what a cloud holds.

`RecordingMonitor` extends the SDK's `MockMonitor` to keep what `MockResourceArgs` leaves out: the
parent, the provider, the dependency edges, `protect`, and which inputs are secret. Secret values
are replaced by `SECRET_MARKER` as they are recorded, so nothing downstream can print them.

How a run is driven, for speed (the SDK's own code evaluates the program all the same):

- Each run has its own event loop whose default executor answers on the loop's thread
  (`_InlineExecutor`). The SDK hands every registration to the monitor through that executor, as a
  real monitor is a gRPC server in another process; the mock monitor answers in Python at once, and
  on a worker thread it only contended with the loop for the GIL. Answered inline, registrations
  also happen in an order that depends on the program alone.
- `RecordingMonitor.RegisterResource` reads a request's inputs once and answers with the declared
  object itself where the mocks echo the inputs (they do for all but the few resources whose
  outputs they compute), instead of serializing the same values again.
  Where it echoes, the SDK reads the answer with the monitor's reading of the request instead of
  deserializing the same object again (`_answers_read_once`).
  It looks a request's transforms up only when it names some (the SDK's lookup builds its table of
  callbacks for every request, to find none: 70 ms of a run of 100 services).
- The cyclic garbage collector is paused during a run: the SDK allocates millions of short-lived
  objects per thousand resources, and each full collection rescans every object alive, so a run's
  cost grew with the square of its size (100 services: a third of the time).
  What the run leaves is frozen, not collected, when it ends (`_collector_paused`).
- The SDK unwraps a property's type hint each time it serializes a value; during a run it unwraps
  each hint once (`_type_hints_unwrapped_once`).
- The SDK captures the Python stack of every resource it registers, for the engine to show where
  in the program a resource was declared; the mock monitor has no use for it, and capturing it (a
  file URI per frame) was a quarter of a small resource's cost. During a run the SDK's capture
  (`pulumi.runtime.resource._get_stack_trace`) returns an empty trace; it is restored after.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import runpy
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast

import pulumi
from pulumi import _types as sdk_types
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import resource as sdk_resource
from pulumi.runtime import rpc, settings
from pulumi.runtime.proto import resource_pb2, source_pb2

from core.config.base import SECRET_MARKER
from core.errors import ProgramError, ReleaseError
from release.offline.mocks import DataMocks, PlatformMocks


@dataclass(frozen=True)
class RegisteredResource:
    """One resource as the program registered it (inputs as declared; secrets redacted)."""

    urn: str
    type: str
    name: str
    parent: str
    custom: bool
    provider: str
    dependencies: tuple[str, ...]
    protect: bool
    inputs: dict[str, Any]
    secret_paths: frozenset[str]
    hooks: tuple[tuple[str, str], ...] = ()
    """(hook type, hook name) pairs bound to the resource, e.g. ("after_update", "api-post-deploy-health")."""
    timeouts: tuple[tuple[str, str], ...] = ()
    """(operation, duration) pairs of its custom timeouts, e.g. ("create", "60m"); unset ones left out."""

    @property
    def key(self) -> str:
        """Type and Pulumi name: what must match across stacks."""
        return f"{self.type}::{self.name}"


@dataclass
class ProgramRun:
    stack: str
    resources: list[RegisteredResource]
    outputs: dict[str, Any] = field(default_factory=dict)

    def by_key(self) -> dict[str, RegisteredResource]:
        return {resource.key: resource for resource in self.resources}

    def by_urn(self) -> dict[str, RegisteredResource]:
        return {resource.urn: resource for resource in self.resources}

    def of_type(self, type_token: str) -> list[RegisteredResource]:
        return [resource for resource in self.resources if resource.type == type_token]

    def named(self, type_token: str, name: str) -> RegisteredResource:
        for resource in self.of_type(type_token):
            if resource.name == name:
                return resource
        raise KeyError(f"no {type_token} named {name!r} was registered")


class RecordingMonitor(pulumi_mocks.MockMonitor):
    """A MockMonitor that also records parents, providers, dependencies and secret inputs."""

    def __init__(self, mocks: pulumi.runtime.Mocks) -> None:
        super().__init__(mocks)
        self.registered: list[RegisteredResource] = []
        self.read_answers: dict[int, tuple[Any, dict[str, Any]]] = {}
        """id(answer's object) -> (that object, its properties as deserialized): see `_answers_read_once`."""

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 - gRPC method name
        """What `MockMonitor.RegisterResource` answers (tests/test_mock_runtime.py compares them), with
        the inputs read once and recorded."""
        if request.type == "pulumi:pulumi:Stack":
            return super().RegisterResource(request)
        urn = self.make_urn(request.parent, request.type, request.name)
        inputs = rpc.deserialize_properties(request.object)
        as_read = dict(
            inputs
        )  # what the declared object deserializes to, whatever the mocks do with `inputs`
        secret_paths: set[str] = set()
        self.registered.append(
            RegisteredResource(
                urn=urn,
                type=request.type,
                name=request.name,
                parent=request.parent,
                custom=bool(request.custom),
                provider=request.provider.split("::")[-2] if request.provider else "",
                dependencies=tuple(sorted(set(request.dependencies))),
                protect=bool(request.protect),
                inputs=_redact(inputs, "", secret_paths),
                secret_paths=frozenset(secret_paths),
                hooks=_hook_names(request),
                timeouts=_timeouts(request),
            )
        )
        resource_id, state = self.mocks.new_resource(
            pulumi.runtime.MockResourceArgs(
                typ=request.type,
                name=request.name,
                inputs=inputs,
                provider=request.provider,
                resource_id=request.importId,
                custom=request.custom or False,
                transforms=pulumi_mocks._resolve_callbacks(request.transforms) if request.transforms else [],
            )
        )
        resource_id = resource_id or ""  # what the response carries for None, too
        self.resources[urn] = pulumi_mocks.MockMonitor.ResourceRegistration(urn, resource_id, state)
        answer = _state_object(request.object, inputs, state)
        response = resource_pb2.RegisterResourceResponse(urn=urn, id=resource_id, object=answer)
        if answer is request.object and _UNKNOWN_BYTES not in request.object.SerializeToString():
            echoed = response.object  # the object the SDK reads back (kept alive, so the very same one)
            self.read_answers[id(echoed)] = (echoed, as_read)
        return response


_ABSENT = object()
_UNKNOWN_BYTES = rpc.UNKNOWN.encode()


def _state_object(declared: Any, inputs: dict[str, Any], state: dict[str, Any]) -> Any:
    """The resource's outputs as the engine returns them: the declared object itself where the mocks
    echoed the inputs, else a copy with the outputs they computed (or dropped) applied."""
    computed = {key: value for key, value in state.items() if inputs.get(key, _ABSENT) is not value}
    dropped = inputs.keys() - state.keys()
    if not computed and not dropped:
        return declared
    outputs = type(declared)()  # a protobuf Struct
    outputs.CopyFrom(declared)
    for key in dropped:
        del outputs.fields[key]
    for key, value in _serialized(computed).fields.items():
        outputs.fields[key].CopyFrom(value)
    return outputs


def _serialized(values: dict[str, Any]) -> Any:
    """`rpc.serialize_properties(values)` run to its end at once, on the loop's thread: plain values
    (what mocks compute) never make it wait. Pumping the running loop instead, as `MockMonitor` does
    on its worker thread, would nest one loop iteration inside another per registration."""
    coroutine = rpc.serialize_properties(values, {})
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value
    coroutine.close()
    raise TypeError(f"the mocks computed outputs that are not plain values: {sorted(values)}")


class _InlineExecutor(concurrent.futures.ThreadPoolExecutor):
    """A default executor that runs each call at once on the calling thread (it starts no thread)."""

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[Any]:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as error:  # noqa: BLE001 - handed to the awaiting task, as a thread would
            future.set_exception(error)
        return future


def _hook_names(request: Any) -> tuple[tuple[str, str], ...]:
    hook_types = ("before_create", "after_create", "before_update", "after_update")
    return tuple(
        (hook_type, name)
        for hook_type in hook_types
        for name in getattr(request.hooks, hook_type, ())
        if request.HasField("hooks")
    )


def _timeouts(request: Any) -> tuple[tuple[str, str], ...]:
    if not request.HasField("customTimeouts"):
        return ()
    operations = ("create", "update", "delete")
    return tuple(
        (operation, getattr(request.customTimeouts, operation))
        for operation in operations
        if getattr(request.customTimeouts, operation)
    )


def _redact(value: Any, path: str, secret_paths: set[str]) -> Any:
    if isinstance(value, Mapping):
        if value.get(rpc._special_sig_key) == rpc._special_secret_sig:
            secret_paths.add(path)
            return SECRET_MARKER
        return {
            key: _redact(item, f"{path}.{key}" if path else key, secret_paths) for key, item in value.items()
        }
    if isinstance(value, list):
        return [_redact(item, f"{path}[{index}]", secret_paths) for index, item in enumerate(value)]
    if isinstance(value, float) and value.is_integer():
        return int(value)  # protobuf Structs carry every number as a float; the program wrote an int
    return value


def evaluate_program(
    program: Path,
    project: str,
    stack: str,
    config: Mapping[str, str],
    secret_keys: list[str],
) -> ProgramRun:
    """Run the program file once under the mock runtime with `config`, and return what it registered.

    `config` is what the engine would pass: full keys (`platform:releases`) to strings (objects as
    JSON text). Errors the program raises on purpose (`ReleaseError`) propagate unchanged; anything
    else becomes a ProgramError naming the stack.
    """
    return _evaluate(
        lambda: runpy.run_path(str(program), run_name="__main__"),
        project,
        stack,
        PlatformMocks(),
        config,
        secret_keys,
    )


def evaluate_inline(
    program: Callable[[], None],
    project: str,
    stack: str,
    mocks: pulumi.runtime.Mocks | None = None,
) -> ProgramRun:
    """Run an inline program (what the automation API runs, e.g. the data program) once under the mock
    runtime, and return what it registered and exported (secret outputs as SECRET_MARKER).

    `mocks` default to DataMocks(); pass DataMocks(scratch_address=..., ...) to point a scratch
    instance elsewhere. Errors are those of evaluate_program.
    """
    return _evaluate(program, project, stack, mocks or DataMocks(), {}, [])


_runs_started = 0
"""How many evaluations this process has started (see `evaluated_in_this_process`)."""


def evaluated_in_this_process() -> bool:
    """Whether this process has evaluated a program: the SDK then runs gRPC (its callback server for
    resource hooks), which a forked process must not inherit (release.offline.workers)."""
    return _runs_started > 0


def _evaluate(
    program: Callable[[], Any],
    project: str,
    stack: str,
    mocks: pulumi.runtime.Mocks,
    config: Mapping[str, str],
    secret_keys: list[str],
) -> ProgramRun:
    global _runs_started
    _runs_started += 1
    with _own_event_loop(), _collector_paused(), _no_stack_traces(), _type_hints_unwrapped_once():
        monitor = RecordingMonitor(mocks)
        settings.reset_options(project=project, stack=stack)  # forget the previous run's root Stack
        pulumi.runtime.set_mocks(mocks, project=project, stack=stack, preview=False, monitor=monitor)
        pulumi.runtime.set_all_config(dict(config), list(secret_keys))
        outputs: dict[str, Any] = {}

        def run() -> None:
            program()
            root = settings.get_root_resource()
            exported = getattr(root, "outputs", {}) if root is not None else {}
            outputs.update(exported)

        try:
            with _answers_read_once(monitor):
                _run_to_completion(run)
                resolved = _resolve_outputs(outputs)
        except ReleaseError:
            raise
        except Exception as error:
            raise ProgramError(stack, f"{type(error).__name__}: {error}") from error
        finally:
            pulumi.runtime.set_all_config({}, [])
        return ProgramRun(stack=stack, resources=list(monitor.registered), outputs=resolved)


@contextmanager
def _own_event_loop() -> Iterator[None]:
    """A new event loop for one run, with the inline executor; the thread's loop is restored after.
    Inside a running loop (an async caller) the SDK keeps using that one, as it always has."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        yield
        return
    policy = asyncio.get_event_loop_policy()
    try:
        previous: asyncio.AbstractEventLoop | None = policy.get_event_loop()
    except RuntimeError:  # a thread other than the main one, with no loop yet
        previous = None
    loop = asyncio.new_event_loop()
    loop.set_default_executor(_InlineExecutor())
    asyncio.set_event_loop(loop)  # before set_mocks: the SDK binds its state to the current loop
    try:
        yield
    finally:
        asyncio.set_event_loop(previous)
        loop.close()


@contextmanager
def _collector_paused() -> Iterator[None]:
    """No cyclic garbage collection during a run (see the module's docstring). What a run leaves (a
    hundred services: a million objects, most of them cyclic garbage) is frozen (`gc.freeze`) rather
    than scanned at once: a command that evaluates one stack and exits never scans it (the collector
    skips frozen objects, at exit too), where re-enabling the collector cost a scan of every object
    the run allocated, a second. The next run unfreezes and collects it first, so a process that
    evaluates many times (the tests, `release plan --all`) still frees each run's garbage."""
    enabled = gc.isenabled()
    if gc.get_freeze_count():
        gc.unfreeze()
        gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


@contextmanager
def _no_stack_traces() -> Iterator[None]:
    """The SDK's per-resource stack capture answers an empty trace during a run (see the module's
    docstring); tests/test_mock_runtime.py checks the SDK still captures through this function."""
    capture = sdk_resource._get_stack_trace
    sdk_resource._get_stack_trace = source_pb2.StackTrace
    try:
        yield
    finally:
        sdk_resource._get_stack_trace = capture


_Unwrap = TypeVar("_Unwrap", bound=Callable[[type], type])


@contextmanager
def _type_hints_unwrapped_once() -> Iterator[None]:
    """The SDK unwraps a property's type hint (`Input[Optional[T]]` to `T`) each time it serializes or
    reads back a value of it (100 services: 77,000 times, for a few hundred distinct hints). During a
    run `_types.unwrap_type` and `_types.unwrap_optional_type`, functions of the hint alone, answer
    a hint they have seen (the very object: equal unions may list their members in another order)
    with what they answered for it."""
    unwrap, unwrap_optional = sdk_types.unwrap_type, sdk_types.unwrap_optional_type
    sdk_types.unwrap_type = _by_identity(unwrap)
    sdk_types.unwrap_optional_type = _by_identity(unwrap_optional)
    try:
        yield
    finally:
        sdk_types.unwrap_type, sdk_types.unwrap_optional_type = unwrap, unwrap_optional


def _by_identity(function: _Unwrap) -> _Unwrap:
    answers: dict[int, tuple[type, type]] = {}  # id(argument) -> (the argument, kept alive; the answer)

    def answer(argument: type) -> type:
        seen = answers.get(id(argument))
        if seen is not None and seen[0] is argument:
            return seen[1]
        result = function(argument)
        answers[id(argument)] = (argument, result)
        return result

    return cast(_Unwrap, answer)


@contextmanager
def _answers_read_once(monitor: RecordingMonitor) -> Iterator[None]:
    """The SDK deserializes an answer's object (`rpc.resolve_outputs`) that the monitor has just
    deserialized itself, as the request's: where the answer echoes the request (see the module's
    docstring), the SDK gets the monitor's reading (a value equal to its own: the object holds no
    unknown, the only thing the SDK reads differently), and every other object is deserialized as
    usual. The SDK copies what it gets (`translate_output_properties`) before any program sees it."""
    deserialize = rpc.deserialize_properties

    def read_once(
        props_struct: Any, keep_unknowns: bool | None = None, keep_internal: bool | None = True
    ) -> Any:
        kept = monitor.read_answers.pop(id(props_struct), None)
        if kept is not None and kept[0] is props_struct and keep_internal:
            return kept[1]
        return deserialize(props_struct, keep_unknowns, keep_internal)

    rpc.deserialize_properties = read_once
    try:
        yield
    finally:
        rpc.deserialize_properties = deserialize
        monitor.read_answers.clear()


def _run_to_completion(function: Any) -> None:
    """Run `function` as a Pulumi program and wait for every registration it started."""
    pulumi.runtime.mocks.test(function)()


def _secretness(value: Any) -> Any:
    """An awaitable of whether `value` is a secret Output (typed loosely: the SDK's stubs are narrow)."""
    return asyncio.ensure_future(pulumi.Output.from_input(value).is_secret())


def _resolve_outputs(outputs: dict[str, Any]) -> dict[str, Any]:
    """Stack outputs as plain values; a secret output is replaced by the placeholder."""
    resolved: dict[str, Any] = {}
    if not outputs:  # Output.all() of nothing is a list, not a mapping
        return resolved

    def resolve() -> Any:
        pairs = {
            name: pulumi.Output.all(
                pulumi.Output.from_input(value),
                pulumi.Output.from_input(_secretness(value)),
            )
            for name, value in outputs.items()
        }

        def collect(values: dict[str, Any]) -> None:
            for name, (value, secret) in values.items():
                resolved[name] = SECRET_MARKER if secret else value

        return pulumi.Output.all(**pairs).apply(collect)

    pulumi.runtime.mocks.test(resolve)()
    return resolved
