"""The canary strategy: the stable host sends each step's share of its traffic to the new color
through the weights of the service's HTTPRoute, every step judged by the metric analysis against the
live color; a failed step sends the weight back to 0 with the rollback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from core.errors import UnfinishedReleaseError
from release.context import ReleaseContext
from release.flows.abort import AbortRequest, abort
from release.flows.deploy import deploy
from release.history.entries import RELEASES_KEY
from release.testing.fake_engine import FakeEngine
from tests.conftest import baseline
from tests.prometheus_server import Traffic, judged_release, prometheus_with
from tests.release_doubles import (
    FAST_HEALTH_CHECK,
    NEW_API,
    NEWER_API,
    TEST_SIGNER,
    cluster,
    history_of,
    signed_project,
)
from tests.test_config import only, problems_of

ROUTE = "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute"


def canary_release(new_color_errors: float) -> tuple[Any, FakeEngine]:
    """A staging release of NEW_API onto blue in steps of 10% and 50% (judged_release)."""
    canary = {"type": "canary", "steps": [10, 50], "pauseSeconds": 60}
    return judged_release(new_color_errors, lambda _: None, strategy=canary)


def weight_deployed(engine: FakeEngine) -> str:
    """The idle color's weight in the deployed live route `api` (the live color's is 100 minus it)."""
    for urn, inputs in engine.stacks["staging"].deployed.items():
        if urn.endswith(f"{ROUTE}::api"):
            live, idle = (ref["weight"] for ref in inputs["spec"]["rules"][0]["backendRefs"])
            assert live + idle == 100
            return str(idle)
    raise KeyError("HTTPRoute api")


def changed(call: Any) -> list[str]:
    """`<kind> <name>` of each resource the `up` changed."""
    return sorted(
        f"{urn.split('::')[-2].rsplit(':', 1)[1]} {urn.rsplit('::', 1)[1]}" for urn in call.changed_urns
    )


def test_every_service_route_splits_its_stable_host_live_100_idle_0_outside_a_canary() -> None:
    route = baseline("production").named(ROUTE, "api").inputs["spec"]
    assert route["hostnames"] == ["api.platform.example.test"]
    assert route["rules"][0]["backendRefs"] == [
        {"name": "api", "port": 80, "weight": 100},
        {"name": "api-preview", "port": 80, "weight": 0},
    ]


def test_a_release_on_the_staging_stack_file_takes_its_declared_canary_steps() -> None:
    pauses: list[float] = []
    traffic = [Traffic("api", "blue", 50), Traffic("api", "green", 50)]
    with prometheus_with(traffic) as loaded:
        engine = FakeEngine(project_dir=signed_project())
        edit = {"platform:healthCheck": FAST_HEALTH_CHECK, "platform:analysis": {"prometheusUrl": loaded.url}}
        engine.add_stack("staging", edit=edit)  # the file's own strategy: canary [10, 25, 50], 120 s
        with cluster(engine) as api:
            report = deploy(
                ReleaseContext.for_tests(engine, engine.project_dir, sleep=pauses.append),
                api.request(NEW_API),
            )
    assert report.phase == "Healthy", report.failure
    assert [step.name for step in report.steps][3:7] == ["canary 10%", "canary 25%", "canary 50%", "switch"]
    assert max(pauses) <= 10  # progress at least every 10 s
    assert sum(pauses[:36]) == 3 * 120  # each step held for the file's pauseSeconds, checked every 30 s


def test_a_healthy_canary_steps_through_its_weights_then_switches() -> None:
    report, engine = canary_release(0.001)
    assert report.phase == "Healthy", report.failure
    names = [step.name for step in report.steps]
    assert names == [
        "preview",
        "analyse",
        "smoke preview",
        "canary 10%",
        "canary 50%",
        "switch",
        "smoke stable",
        "verify",
        "metrics",
        "record",
    ]
    _staged, ten, fifty, switched, _record = engine.ups
    # each step: exactly the live route's weights (HTTPRoute api: live 90 / idle 10, then 50 / 50)
    assert changed(ten) == changed(fifty) == ["HTTPRoute api"]
    # the switch: both Services' selectors move together, and the route's idle weight returns to 0
    assert changed(switched) == ["HTTPRoute api", "Service api", "Service api-preview"]
    assert weight_deployed(engine) == "0"
    assert engine.get_config("staging")[RELEASES_KEY].value["api"].get("canaryWeight", 0) == 0
    events = [entry.record.event for entry in history_of(engine, "staging")[::-1] if entry.record]
    assert events == ["stage", "canary", "canary", "switch", "verify"]  # signed, one release id


def test_a_canary_that_errs_more_than_the_live_color_is_aborted_at_its_first_step() -> None:
    report, engine = canary_release(0.02)
    assert report.phase == "RolledBack"
    assert report.failure.startswith("canary 10%:")
    assert weight_deployed(engine) == "0"
    assert engine.serving("staging", "api") != NEW_API
    rollback = next(
        e.record for e in history_of(engine, "staging") if e.record and e.record.event == "rollback"
    )
    assert rollback is not None and rollback.window["analysis"]["outcome"] == "Failed"


@pytest.mark.parametrize(
    ("strategy", "says"),
    [
        ({"type": "canary", "steps": [25, 10]}, "increase strictly"),
        ({"type": "canary", "steps": [10, 100]}, "from 1 to 99"),
        ({"type": "canary"}, "a canary needs steps"),
    ],
    ids=["decreasing", "over 99", "no steps"],
)
def test_bad_canary_steps_are_refused(project: Path, strategy: dict[str, Any], says: str) -> None:
    def canary(config: dict[str, Any]) -> None:
        config["platform:strategy"] = strategy
        config["platform:analysis"] = {"prometheusUrl": "http://prometheus.monitoring.example.test:9090"}

    problems = problems_of(project, "staging", canary)
    assert any(says in problem.problem for problem in problems), problems


def test_a_canary_without_metric_analysis_is_refused(project: Path) -> None:
    def canary(config: dict[str, Any]) -> None:
        config["platform:strategy"] = {"type": "canary", "steps": [10]}
        del config["platform:analysis"]

    problem = only(problems_of(project, "staging", canary), "platform:strategy.type")
    assert "metric analysis" in problem.problem and "analysis.prometheusUrl" in problem.fix


def test_a_canary_killed_midway_blocks_the_next_release_and_abort_returns_its_weight_to_0() -> None:
    def killed(_: float) -> None:
        raise SystemExit(137)  # the process dies while the first step holds its weight

    traffic = [Traffic("api", "blue", 50), Traffic("api", "green", 50)]
    with prometheus_with(traffic) as loaded:
        engine = FakeEngine(project_dir=signed_project())
        canary = {"type": "canary", "steps": [10, 50]}
        edit = {"platform:analysis": {"prometheusUrl": loaded.url}, "platform:strategy": canary}
        engine.add_stack("staging", edit={"platform:healthCheck": FAST_HEALTH_CHECK, **edit})
        with cluster(engine) as api:
            with pytest.raises(SystemExit):
                deploy(
                    ReleaseContext.for_tests(engine, engine.project_dir, sleep=killed), api.request(NEW_API)
                )
            assert weight_deployed(engine) == "10"
            with pytest.raises(UnfinishedReleaseError, match="release abort staging --service api"):
                deploy(ReleaseContext.for_tests(engine, engine.project_dir), api.request(NEWER_API))
            request = AbortRequest(
                "staging", "api", "bob", reason="runner lost", stable_urls=[api.stable_url]
            )
            request.signer = TEST_SIGNER
            assert abort(ReleaseContext.for_tests(engine, engine.project_dir), request).phase == "Healthy"
    assert weight_deployed(engine) == "0"
    assert engine.serving("staging", "api") != NEW_API


def test_ctrl_c_while_a_step_holds_its_weight_rolls_back_and_returns_the_weight_to_0() -> None:
    def interrupted(_: float) -> None:
        raise KeyboardInterrupt

    report, engine = judged_release(0.001, interrupted, strategy={"type": "canary", "steps": [10, 50]})
    assert report.phase == "RolledBack"
    assert report.failure == "canary 10%: interrupted (Ctrl-C or SIGTERM)"
    assert weight_deployed(engine) == "0"
    assert engine.serving("staging", "api") != NEW_API


def test_a_canary_that_fails_while_its_step_waits_is_aborted_at_the_first_check_not_the_end() -> None:
    pauses: list[float] = []
    canary = {"type": "canary", "steps": [10, 50], "pauseSeconds": 120}
    report, engine = judged_release(0.02, pauses.append, strategy=canary)
    assert report.phase == "RolledBack"
    assert "canary 10%: 1 resource(s) changed; after 30 of 120 s: metrics Failed" in report.failure
    assert pauses == [10, 10, 10]  # one interval, saying how far every 10 s; then the weight went back to 0
    assert weight_deployed(engine) == "0"
