"""Autoscaling and idle capacity: an autoscaler per color, the idle color shrunk to its declared size
after a verified release, and a rollback that scales that color up before traffic moves to it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from core.config.base import PROJECT_NAME
from core.naming import color_urns, service_urns
from release.context import ReleaseContext
from release.flows.deploy import deploy
from release.flows.rollback import RollbackRequest, rollback
from release.history.entries import RELEASES_KEY
from release.testing.fake_engine import FakeEngine
from tests.conftest import baseline
from tests.release_doubles import NEW_API, RELEASE_STEPS, TEST_SIGNER, cluster, fake_engine, history_of
from tests.test_config import only, problems_of

AUTOSCALER = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"


def deployed(engine: FakeEngine, stack: str, kind: str, name: str) -> dict[str, Any]:
    for urn, inputs in engine.stacks[stack].deployed.items():
        if urn.endswith(f"{kind}::{name}"):
            return inputs
    raise KeyError(name)


def size(engine: FakeEngine, color: str, stack: str = "dev") -> int:
    return int(deployed(engine, stack, DEPLOYMENT, f"api-{color}")["spec"]["replicas"])


def api_release(engine: FakeEngine, stack: str = "dev") -> dict[str, Any]:
    release: dict[str, Any] = engine.get_config(stack)[RELEASES_KEY].value["api"]
    return release


# ----------------------------------------------------------------------------- the program


def test_each_color_has_an_autoscaler_from_replicas_to_max_on_cpu() -> None:
    run = baseline("production")
    for color in ("blue", "green"):
        spec = run.named(AUTOSCALER, f"api-{color}").inputs["spec"]
        assert spec["scaleTargetRef"] == {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": f"api-{color}",
        }
        assert (spec["minReplicas"], spec["maxReplicas"]) == (4, 12)
        assert spec["metrics"][0]["resource"] == {
            "name": "cpu",
            "target": {"type": "Utilization", "averageUtilization": 70},
        }


def test_the_scaled_down_idle_color_runs_its_idle_size_with_its_autoscaler_pinned() -> None:
    run = baseline("dev")  # api: green idle, scaled down to idleReplicas 0
    assert run.named(DEPLOYMENT, "api-green").inputs["spec"]["replicas"] == 0
    pinned = run.named(AUTOSCALER, "api-green").inputs["spec"]
    assert (pinned["minReplicas"], pinned["maxReplicas"]) == (1, 1)  # inactive on a Deployment of 0
    assert run.named(DEPLOYMENT, "api-blue").inputs["spec"]["replicas"] == 1


# ---------------------------------------------------------------------------------- config


def test_an_autoscaler_ceiling_below_its_floor_is_refused(project: Path) -> None:
    def below(config: dict[str, Any]) -> None:
        config["platform:releases"]["api"]["maxReplicas"] = 3

    problem = only(problems_of(project, "production", below), "platform:releases.api.maxReplicas")
    assert problem.value == 3 and "below its floor (replicas: 4)" in problem.problem


def test_an_idle_size_the_stack_policy_forbids_is_refused(project: Path) -> None:
    def scaled_to_zero(config: dict[str, Any]) -> None:
        config["platform:releases"]["api"]["idleReplicas"] = 0

    problem = only(problems_of(project, "production", scaled_to_zero), "platform:releases.api.idleReplicas")
    assert "minIdleReplicas" in problem.problem and "idleReplicas' 2" in problem.fix


def test_an_idle_color_larger_than_a_live_one_is_refused(project: Path) -> None:
    def larger(config: dict[str, Any]) -> None:
        config["platform:releases"]["api"]["idleReplicas"] = 3

    problem = only(problems_of(project, "dev", larger), "platform:releases.api.idleReplicas")
    assert "larger than a live one" in problem.problem


# ----------------------------------------------------------------------------------- flows


def released_in_dev() -> tuple[FakeEngine, Any]:
    engine = fake_engine("dev")
    with cluster(engine, "dev") as api:
        report = deploy(ReleaseContext.for_tests(engine, engine.project_dir), api.request(NEW_API))
    return engine, report


def test_a_verified_release_stages_on_a_full_size_color_then_shrinks_the_one_traffic_left() -> None:
    engine = fake_engine("dev")
    assert size(engine, "green") == 0  # scaled down after dev's last release
    with cluster(engine, "dev") as api:
        report = deploy(ReleaseContext.for_tests(engine, engine.project_dir), api.request(NEW_API))
    assert [step.name for step in report.steps] == [*RELEASE_STEPS, "scale down"]
    staged, *_rest, scaled = engine.ups
    assert sorted(urn.rsplit("::", 1)[1] for urn in staged.changed_urns) == [
        "api-green",
        "api-green",
        "api-migrate-green",
    ]
    assert scaled.targets == list(color_urns("dev", PROJECT_NAME, "api", "blue"))
    assert (size(engine, "green"), size(engine, "blue")) == (1, 0)
    assert api_release(engine)["idleScaledDown"] is True
    assert history_of(engine, "dev")[0].record is not None
    assert history_of(engine, "dev")[0].record.event == "scale"  # type: ignore[union-attr]


def test_a_rollback_to_a_scaled_down_color_scales_it_up_before_switching_and_says_so() -> None:
    engine, _report = released_in_dev()
    with cluster(engine, "dev") as api:
        report = rollback(
            ReleaseContext.for_tests(engine, engine.project_dir),
            RollbackRequest("dev", "bob", signer=TEST_SIGNER, stable_urls=[api.stable_url]),
        )
    plan = report.rollback
    assert plan is not None and plan.mode == "targeted"
    assert set(color_urns("dev", PROJECT_NAME, "api", "blue")) <= set(plan.targets)
    assert set(service_urns("dev", PROJECT_NAME, "api")) <= set(plan.targets)
    assert "blue runs 0 replica(s)" in plan.scaled_up[0] and "before switching" in plan.scaled_up[0]
    assert (size(engine, "blue"), size(engine, "green")) == (1, 1)  # traffic left green at full size
    assert engine.serving("dev", "api") != NEW_API
    assert "idleScaledDown" not in api_release(engine)  # False: left out


@pytest.mark.parametrize("failed_step", ["smoke stable"])  # its readiness check sees it first
def test_a_failed_release_switches_back_to_a_color_still_at_full_size(failed_step: str) -> None:
    engine = fake_engine("dev")
    with cluster(engine, "dev") as api:
        api.bad_when_stable.add(NEW_API)
        report = deploy(ReleaseContext.for_tests(engine, engine.project_dir), api.request(NEW_API))
    assert report.phase == "RolledBack" and report.failure.startswith(f"{failed_step}:")
    assert report.rollback is not None and report.rollback.scaled_up == []
    assert (size(engine, "blue"), size(engine, "green")) == (1, 1)
    assert "scale down" not in [step.name for step in report.steps]


def test_a_rollback_that_moves_no_traffic_never_claims_the_idle_color_grew() -> None:
    engine, _report = released_in_dev()  # green live; blue idle at 0 after the scale record
    verify_entry = history_of(engine, "dev")[1]
    assert verify_entry.record is not None and verify_entry.record.event == "verify"
    with cluster(engine, "dev") as api:
        rollback(
            ReleaseContext.for_tests(engine, engine.project_dir),
            RollbackRequest(
                "dev", "bob", to_number=verify_entry.number, signer=TEST_SIGNER, stable_urls=[api.stable_url]
            ),
        )
    assert (
        api_release(engine)["idleScaledDown"] is True and size(engine, "blue") == 0
    )  # config says what runs
    with cluster(engine, "dev") as api:
        report = rollback(
            ReleaseContext.for_tests(engine, engine.project_dir),
            RollbackRequest("dev", "bob", signer=TEST_SIGNER, stable_urls=[api.stable_url]),
        )
    assert report.rollback is not None and report.rollback.scaled_up  # so the switch to blue scales it up
    assert size(engine, "blue") == 1 and engine.serving("dev", "api") != NEW_API


def test_a_release_that_fails_before_its_switch_leaves_config_saying_the_idle_color_is_full_size() -> None:
    engine = fake_engine("dev")
    with cluster(engine, "dev") as api:
        api.bad.add(NEW_API)  # fails analyse, after the stage up grew green to full size
        report = deploy(ReleaseContext.for_tests(engine, engine.project_dir), api.request(NEW_API))
    assert report.phase == "RolledBack"
    assert size(engine, "green") == 1 and "idleScaledDown" not in api_release(engine)
