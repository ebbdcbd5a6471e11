"""Drift: parsed from events shaped exactly like the engine's JSON event stream of a refresh preview."""

from __future__ import annotations

import json
from typing import Any

import pytest

from core.errors import EngineError
from release.cli import main
from release.flows.drift import parse_drift
from release.testing.fake_engine import FakeEngine
from tests.conftest import PROJECT
from tests.http_servers import healthy, serve
from tests.release_doubles import fake_engine

PREFIX = "urn:pulumi:production::platform::"
DEPLOYMENT = PREFIX + "platform:components:BlueGreenService$kubernetes:apps/v1:Deployment::api-blue"
SERVICE = PREFIX + "platform:components:BlueGreenService$kubernetes:core/v1:Service::api"
DATABASE = PREFIX + "platform:components:Database$aws:rds/instance:Instance::database"


def pre(op: str, urn: str, type_token: str, **metadata: Any) -> dict[str, Any]:
    return {
        "sequence": 3,
        "timestamp": 1795000000,
        "resourcePreEvent": {"metadata": {"op": op, "urn": urn, "type": type_token, **metadata}},
    }


SCALED_BY_HAND = pre(
    "update",
    DEPLOYMENT,
    "kubernetes:apps/v1:Deployment",
    diffs=["spec"],
    detailedDiff={"spec.replicas": {"kind": "update", "inputDiff": False}},
)
UNCHANGED = [
    {"sequence": 1, "timestamp": 1795000000, "preludeEvent": {"config": {}}},
    pre("same", PREFIX + "pulumi:pulumi:Stack::platform-production", "pulumi:pulumi:Stack"),
    pre("same", SERVICE, "kubernetes:core/v1:Service"),
    pre(
        "refresh",
        DATABASE,
        "aws:rds/instance:Instance",
        old={"outputs": {"allocatedStorage": 200}},
        new={"outputs": {"allocatedStorage": 200}},
    ),
    {"sequence": 9, "timestamp": 1795000001, "summaryEvent": {"resourceChanges": {"same": 3}}},
]


def test_no_drift_when_every_step_is_same_or_an_unchanged_refresh() -> None:
    report = parse_drift("production", UNCHANGED)
    assert report.exit_code == 0 and report.checked == 2 and report.drifted == []


def test_a_property_changed_by_hand_is_drift_naming_the_property() -> None:
    report = parse_drift("production", [*UNCHANGED, SCALED_BY_HAND])
    assert report.exit_code == 1
    (drifted,) = report.drifted
    assert (drifted.name, drifted.op, drifted.properties) == ("api-blue", "update", ("spec", "spec.replicas"))


def test_a_resource_deleted_by_hand_is_drift() -> None:
    report = parse_drift("production", [pre("delete", SERVICE, "kubernetes:core/v1:Service")])
    assert [(resource.name, resource.op) for resource in report.drifted] == [("api", "delete")]


def test_a_refresh_step_whose_outputs_differ_is_drift_naming_the_outputs() -> None:
    resized = pre(
        "refresh",
        DATABASE,
        "aws:rds/instance:Instance",
        old={"outputs": {"allocatedStorage": 200, "port": 5432}},
        new={"outputs": {"allocatedStorage": 400, "port": 5432}},
    )
    (drifted,) = parse_drift("production", [resized]).drifted
    assert drifted.properties == ("allocatedStorage",)


def test_the_drift_report_lists_each_resource_and_how_to_proceed() -> None:
    text = parse_drift("production", [SCALED_BY_HAND]).render()
    assert "DRIFT in 'production': 1 of 1 resources" in text and "spec.replicas" in text
    assert "pulumi up -s production" in text


def test_release_drift_exits_1_lists_the_drift_as_json_and_notifies(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = fake_engine()
    engine.drift_events["staging"] = [SCALED_BY_HAND]
    posted: list[Any] = []
    with serve(healthy(), posted) as webhook:
        monkeypatch.setenv("RELEASE_WEBHOOK_URL", webhook)
        code = drift(engine, "--json")
    assert code == 1
    assert json.loads(capsys.readouterr().out)["drifted"][0]["properties"] == ["spec", "spec.replicas"]
    assert posted and "*drift* on staging" in posted[0]["text"]


def drift(engine: FakeEngine, *options: str) -> int:
    """`release drift staging` against the engine double, on its clock."""
    argv = ["drift", "staging", *options, "--project-dir", str(PROJECT)]
    return main(argv, engine_factory=lambda _: engine, clock=engine.clock)


def test_release_drift_exits_0_without_drift() -> None:
    engine = fake_engine()
    engine.drift_events["staging"] = UNCHANGED
    assert drift(engine) == 0


def test_release_drift_exits_2_when_the_check_itself_fails(capsys: pytest.CaptureFixture[str]) -> None:
    engine = fake_engine()

    def broken(stack: str) -> list[dict[str, Any]]:
        raise EngineError("stack 'staging': error: could not reach the cluster")

    engine.refresh_preview = broken  # type: ignore[method-assign]
    assert drift(engine) == 2
    assert "drift check of 'staging' failed" in capsys.readouterr().err


def test_a_failed_drift_check_under_json_is_an_error_object_on_stdout(
    capsys: pytest.CaptureFixture[str],
) -> None:
    engine = fake_engine()

    def broken(stack: str) -> list[dict[str, Any]]:
        raise EngineError("stack 'staging': error: could not reach the cluster")

    engine.refresh_preview = broken  # type: ignore[method-assign]
    assert drift(engine, "--json") == 2
    document = json.loads(capsys.readouterr().out)
    assert document["exitCode"] == 2 and "could not reach the cluster" in document["error"]
