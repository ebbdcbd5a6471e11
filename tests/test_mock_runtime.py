"""The mock runtime's shortcuts change nothing the SDK's own mock monitor would answer.

`RecordingMonitor` answers registrations inline and without serializing echoed inputs again
(release/offline/mock_runtime.py); here every registration of every stack (and of the data program,
whose mocks compute outputs) is answered again by the SDK's `MockMonitor`, and the answers must be
equal: same URN, same ID, and the same outputs as the SDK reads them from the answer. (The bytes may
differ: a value holding a secret, the preview route's spec, comes back from the SDK's round trip as
a secret as a whole, which is also how the SDK reads it from the declared object.)
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import typing
import weakref
from typing import Any

import pytest
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc

from core.data_plan import DataPlan
from release.offline import mock_runtime
from release.offline.mock_runtime import RecordingMonitor
from release.offline.mocks import DataMocks, PlatformMocks
from tests.conftest import STACKS, run_program
from tests.test_data_program import run, scratch, snapshot


class KeepingMonitor(RecordingMonitor):
    """Keeps each request (a copy) with the answer given to it."""

    answered: list[tuple[Any, Any]]

    def __init__(self, mocks: Any) -> None:
        super().__init__(mocks)
        self.answered = []
        KEPT.append(self)

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 - gRPC method name
        response = super().RegisterResource(request)
        kept = type(request)()
        kept.CopyFrom(request)
        self.answered.append((kept, response))
        return response


KEPT: list[KeepingMonitor] = []


def sdk_answers(monitor: KeepingMonitor, mocks: Any) -> list[tuple[Any, Any]]:
    """What the SDK's MockMonitor answers to the same requests (outside any running loop)."""
    sdk = pulumi_mocks.MockMonitor(mocks)
    return [(ours, sdk.RegisterResource(request)) for request, ours in monitor.answered]


def outputs(response: Any) -> dict[str, Any]:
    """The outputs as the SDK reads them from an answer (`rpc.resolve_outputs` deserializes them)."""
    return dict(rpc.deserialize_properties(response.object))


@pytest.fixture
def keeping(monkeypatch: pytest.MonkeyPatch) -> list[KeepingMonitor]:
    KEPT.clear()
    monkeypatch.setattr(mock_runtime, "RecordingMonitor", KeepingMonitor)
    return KEPT


@pytest.mark.parametrize("stack", STACKS)
def test_every_registration_is_answered_as_the_sdks_mock_monitor_answers_it(
    stack: str, keeping: list[KeepingMonitor]
) -> None:
    run = run_program(stack)
    (monitor,) = keeping
    assert len(monitor.answered) == len(run.resources) + 1  # and the root Stack
    for ours, sdk in sdk_answers(monitor, PlatformMocks()):
        assert (ours.urn, ours.id) == (sdk.urn, sdk.id)
        assert outputs(ours) == outputs(sdk), ours.urn


def test_outputs_the_mocks_compute_are_answered_as_the_sdk_answers_them(
    keeping: list[KeepingMonitor],
) -> None:
    run(DataPlan("staging", snapshots=(snapshot("staging"),), scratch=scratch("staging")))
    monitor = keeping[-1]  # the main stack's evaluations (the sources of the spec) come first
    answers = sdk_answers(monitor, DataMocks())
    computed = [sdk for _, sdk in answers if {"snapshotCreateTime", "endpoint"} & set(outputs(sdk))]
    assert len(computed) == 2, "a snapshot and a scratch instance, whose outputs the mocks compute"
    for ours, sdk in answers:
        assert (ours.urn, ours.id) == (sdk.urn, sdk.id)
        assert outputs(ours) == outputs(sdk), ours.urn


class ReadOnceSpy(dict[int, tuple[Any, dict[str, Any]]]):
    """The monitor's readings of the answers it echoes, each kept as it is handed to the SDK."""

    handed: list[tuple[Any, dict[str, Any]]] = []

    def pop(self, key: int, default: Any = None) -> Any:
        kept = super().pop(key, default)
        if kept is not None:
            ReadOnceSpy.handed.append(kept)
        return kept


def test_the_sdk_reads_an_echoed_answer_as_the_monitor_read_it_which_is_its_own_reading(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class SpyingMonitor(RecordingMonitor):
        def __init__(self, mocks: Any) -> None:
            super().__init__(mocks)
            self.read_answers = ReadOnceSpy()

    ReadOnceSpy.handed = []
    monkeypatch.setattr(mock_runtime, "RecordingMonitor", SpyingMonitor)
    deserialize = rpc.deserialize_properties
    run = run_program("dev")
    assert len(ReadOnceSpy.handed) > len(run.resources) / 2  # all but the answers the mocks compute
    for echoed, reading in ReadOnceSpy.handed:
        assert reading == rpc.deserialize_properties(echoed, True)  # what resolve_outputs would read
    assert rpc.deserialize_properties is deserialize  # restored after the run


def test_a_type_hint_is_unwrapped_once_per_object_and_the_sdks_functions_are_restored() -> None:
    from pulumi import _types as sdk_types

    first_member = mock_runtime._by_identity(lambda hint: typing.get_args(hint)[0])
    ints_first, strs_first = typing.Union[int, str], typing.Union[str, int]  # noqa: UP007 - the typing form
    assert ints_first == strs_first  # equal, members in another order: each keeps its own answer
    assert (first_member(ints_first), first_member(strs_first), first_member(ints_first)) == (int, str, int)
    originals = sdk_types.unwrap_type, sdk_types.unwrap_optional_type
    run_program("dev")
    assert (sdk_types.unwrap_type, sdk_types.unwrap_optional_type) == originals


def test_a_run_leaves_the_threads_loop_and_the_collector_as_it_found_them() -> None:
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        run_program("dev")
        assert asyncio.get_event_loop_policy().get_event_loop() is loop
        assert gc.isenabled()
    finally:
        loop.close()


def test_what_a_run_leaves_is_frozen_and_the_next_run_collects_it() -> None:
    """A run's garbage is not scanned when it ends (a command that exits never pays for it), but a
    process that evaluates again still frees it."""

    class Cycle:
        me: Any = None

    kept: list[weakref.ref[Cycle]] = []

    def program() -> None:
        cycle = Cycle()
        cycle.me = cycle  # garbage only the cyclic collector frees
        kept.append(weakref.ref(cycle))

    mock_runtime.evaluate_inline(program, "project", "dev")
    assert gc.get_freeze_count() > 0
    assert kept[0]() is not None  # frozen: not collected yet
    mock_runtime.evaluate_inline(program, "project", "dev")
    assert kept[0]() is None  # the second run collected the first one's garbage before it started


def test_the_sdk_captures_each_resources_stack_through_the_function_a_run_replaces() -> None:
    """A run swaps `_get_stack_trace` for an empty trace; were it renamed, this fails, not the speed."""
    from pulumi.runtime import resource as sdk_resource
    from pulumi.runtime.proto import source_pb2

    capture = sdk_resource._get_stack_trace
    assert isinstance(capture(), source_pb2.StackTrace)
    assert "_get_stack_trace()" in inspect.getsource(sdk_resource.register_resource)
    run_program("dev")
    assert sdk_resource._get_stack_trace is capture  # restored after the run
