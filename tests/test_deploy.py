"""`release deploy` against a test double of the engine adapter and real HTTP servers on 127.0.0.1.

The double evaluates the real program under the mock runtime on every `up` (release/testing/fake_engine.py);
the servers answer with the image the deployed Services route to (tests/release_doubles.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from core.config.base import PROJECT_NAME
from core.config.sources import ConfigEntry
from core.config.stack import HealthCheckSettings
from core.errors import ConcurrentReleaseError, ConfigError
from core.health import Verdict
from release.context import ReleaseContext
from release.flows.deploy import deploy
from release.flows.deploy_request import DeployRequest
from release.history.entries import RELEASES_KEY
from release.testing.fake_engine import FakeEngine
from tests.conftest import edit_yaml
from tests.release_doubles import (
    FAST_BLUE_GREEN,
    NEW_API,
    RELEASE_STEPS,
    TEST_SIGNER,
    cluster,
    fake_engine,
    history_of,
    signed_project_copy,
)

API = "registry.example.test/platform/api@sha256:"
OLD_ACTIVE = API + "5cb9004f96e5140e3acbd1eaffd8522a77e2cf40805ae4d8090bfe40bf81786d"
OLD_IDLE = API + "1d8aff1add76b5af6dbeea9df7c4d9a7843261578c6450c032a98f162fb32354"
STAGING_API_CONFIG = {color: {"flags": {"FEATURE_NEW_CHECKOUT": "true"}} for color in ("blue", "green")}
"""What both colors of api run in Pulumi.staging.yaml besides their image: a release keeps it."""


def api_release(engine: FakeEngine, stack: str = "staging") -> dict[str, Any]:
    release: dict[str, Any] = engine.get_config(stack)[RELEASES_KEY].value["api"]
    return release


def test_a_healthy_release_moves_stable_traffic_to_the_new_image_on_the_idle_color() -> None:
    engine = fake_engine()
    with cluster(engine) as api:
        report = deploy(ReleaseContext.for_tests(engine, engine.project_dir), api.request(NEW_API))
    assert report.phase == "Healthy" and report.exit_code == 0
    assert [step.name for step in report.steps] == RELEASE_STEPS
    assert api_release(engine) == {
        "replicas": 2,
        "activeColor": "blue",
        "images": {"blue": NEW_API, "green": OLD_ACTIVE},
        "config": STAGING_API_CONFIG,
        "maxReplicas": 4,
    }
    assert engine.serving("staging", "api") == NEW_API
    assert engine.serving("staging", "api", preview=True) == OLD_ACTIVE


def test_the_first_up_runs_only_the_idle_colors_migration_and_rollout() -> None:
    engine = fake_engine()
    with cluster(engine) as api:
        deploy(ReleaseContext.for_tests(engine, engine.project_dir), api.request(NEW_API))
    staged, promoted, recorded = engine.ups
    assert sorted(urn.rsplit("::", 1)[1] for urn in staged.changed_urns) == ["api-blue", "api-migrate-blue"]
    assert sorted(urn.rsplit("::", 1)[1] for urn in promoted.changed_urns) == ["api", "api-preview"]
    assert recorded.changed_urns == [] and len(recorded.targets) == 1  # the verification record only


def test_every_update_message_records_the_operator_and_what_moved() -> None:
    engine = fake_engine()
    with cluster(engine) as api:
        deploy(ReleaseContext.for_tests(engine, engine.project_dir), api.request(NEW_API, actor="alice"))
    newest = history_of(engine, "staging")[:3]
    assert [entry.actor for entry in newest] == ["alice", "alice", "alice"]
    assert "release switch api: active green -> blue" in newest[1].message


def assert_rolled_back(engine: FakeEngine, report: Any, failed_step: str, idle: str = NEW_API) -> None:
    assert report.phase == "RolledBack" and report.exit_code == 1
    assert report.failure.startswith(f"{failed_step}:")
    assert api_release(engine) == {  # the idle color keeps the failed image: config says what runs
        "replicas": 2,
        "activeColor": "green",
        "images": {"blue": idle, "green": OLD_ACTIVE},
        "config": STAGING_API_CONFIG,
        "maxReplicas": 4,
    }
    assert engine.serving("staging", "api") == OLD_ACTIVE
    assert engine.serving("staging", "api", preview=True) == idle
    assert report.steps[-1].name == "recheck api" and report.steps[-1].succeeded


def test_a_failed_first_up_is_rolled_back_to_the_last_succeeded_config() -> None:
    engine = fake_engine()
    engine.fail_up(1, "error: Job api-migrate-blue-abababababab failed: BackoffLimitExceeded")
    with cluster(engine) as api:
        report = deploy(ReleaseContext.for_tests(engine, engine.project_dir), api.request(NEW_API))
    assert_rolled_back(engine, report, "preview", idle=OLD_IDLE)  # the failed up deployed nothing
    assert "BackoffLimitExceeded" in report.failure


def test_an_unhealthy_preview_is_rolled_back_before_any_traffic_moves() -> None:
    engine = fake_engine()
    with cluster(engine) as api:
        api.bad.add(NEW_API)
        report = deploy(ReleaseContext.for_tests(engine, engine.project_dir), api.request(NEW_API))
    assert_rolled_back(engine, report, "analyse")
    assert [step.name for step in report.steps][:2] == ["preview", "analyse"]
    assert "switch" not in [step.name for step in report.steps]


def test_a_failed_promote_is_rolled_back() -> None:
    engine = fake_engine()
    engine.fail_up(2, "error: post-deploy health check of api: unhealthy")
    with cluster(engine) as api:
        report = deploy(ReleaseContext.for_tests(engine, engine.project_dir), api.request(NEW_API))
    assert_rolled_back(engine, report, "switch")


def test_an_unhealthy_stable_service_is_rolled_back_by_flipping_only_the_two_services() -> None:
    engine = fake_engine()
    with cluster(engine) as api:
        api.bad_when_stable.add(NEW_API)
        report = deploy(ReleaseContext.for_tests(engine, engine.project_dir), api.request(NEW_API))
    assert_rolled_back(engine, report, "smoke stable")  # its readiness check is the first to see it
    rollback_up = engine.ups[-1]
    # the two Services, and the live HTTPRoute `api` (at canary weight 0 already: targeted, unchanged)
    assert sorted(urn.rsplit("$", 1)[1] for urn in rollback_up.targets) == [
        "kubernetes:core/v1:Service::api",
        "kubernetes:core/v1:Service::api-preview",
        "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute::api",
    ]
    assert len(rollback_up.changed_urns) == 2
    assert report.rollback is not None and report.rollback.mode == "targeted"
    assert report.rollback.switched == ["api"]
    # The idle color keeps the failed image for inspection, and the report says so.
    assert engine.serving("staging", "api", preview=True) == NEW_API
    assert any("keeps running" in note for note in report.rollback.left_in_cluster)


def test_the_report_says_what_failed_what_was_restored_and_how_long_each_step_took() -> None:
    engine = fake_engine()
    with cluster(engine) as api:
        api.bad.add(NEW_API)
        document = deploy(
            ReleaseContext.for_tests(engine, engine.project_dir), api.request(NEW_API)
        ).to_json()
    assert document["phase"] == "RolledBack" and document["exitCode"] == 1
    assert document["failure"].startswith("analyse:")
    assert document["rollback"]["restoredFrom"]["message"].startswith("initial deploy")
    assert all(isinstance(step["seconds"], float) for step in document["steps"])
    assert document["steps"][1]["verdict"]["failureKinds"] == ["status"]


def test_a_refused_deploy_changes_nothing_and_names_every_problem() -> None:
    engine = fake_engine()
    before = engine.get_config("staging")
    with pytest.raises(ConfigError) as refused:
        deploy(
            ReleaseContext.for_tests(engine, engine.project_dir),
            cluster_request("search", "registry.example.test/platform/api:latest"),
        )
    assert [problem.key for problem in refused.value.problems] == [
        f"{PROJECT_NAME}:releases.search",
        f"{PROJECT_NAME}:releases.search.images",
    ]
    assert engine.ups == [] and engine.get_config("staging") == before


def test_an_image_of_another_repository_is_refused() -> None:
    engine = fake_engine()
    web_image = "registry.example.test/platform/web@sha256:" + "ef" * 32
    with pytest.raises(ConfigError, match="another service's image"):
        deploy(ReleaseContext.for_tests(engine, engine.project_dir), cluster_request("api", web_image))
    assert engine.ups == []


def test_a_release_while_another_update_runs_fails_fast_and_changes_nothing() -> None:
    engine = fake_engine()
    engine.stacks["staging"].history[0]["result"] = "in-progress"
    before = engine.get_config("staging")
    with pytest.raises(ConcurrentReleaseError, match="nothing was changed"):
        deploy(ReleaseContext.for_tests(engine, engine.project_dir), cluster_request("api", NEW_API))
    assert engine.ups == [] and engine.get_config("staging") == before


def test_a_stack_lock_taken_between_the_check_and_the_up_is_surfaced_and_config_put_back() -> None:
    engine = fake_engine()
    engine.hold_lock("alice@ci-runner-7 (pid 4242)")
    before = engine.get_config("staging")
    with pytest.raises(ConcurrentReleaseError, match="ci-runner-7"):
        deploy(ReleaseContext.for_tests(engine, engine.project_dir), cluster_request("api", NEW_API))
    assert engine.get_config("staging") == before


def test_a_rollback_past_a_migration_that_is_not_backward_compatible_is_refused(tmp_path: Any) -> None:
    project = signed_project_copy(tmp_path)

    def contract(document: dict[str, Any]) -> None:
        document["config"]["services"]["value"][0]["migration"]["expandContract"] = False

    edit_yaml(project / "Pulumi.yaml", contract)
    engine = FakeEngine(project_dir=project)
    engine.add_stack("staging", edit=FAST_BLUE_GREEN)
    with cluster(engine) as api:
        api.bad_when_stable.add(NEW_API)
        report = deploy(ReleaseContext.for_tests(engine, project), api.request(NEW_API))
    assert report.phase == "RollbackFailed" and report.exit_code == 5
    assert "expandContract: false" in report.steps[-1].detail
    assert api_release(engine)["activeColor"] == "blue"  # left for a human, as the report says


def test_deploying_the_image_already_active_changes_nothing() -> None:
    engine = fake_engine()
    report = deploy(ReleaseContext.for_tests(engine, engine.project_dir), cluster_request("api", OLD_ACTIVE))
    assert report.phase == "Healthy" and engine.ups == []
    assert "already serves" in report.notes[0]


def test_the_restored_config_comes_from_history_not_from_memory() -> None:
    engine = fake_engine()
    # Someone edited the stack config without an `up`: history, not the edit, is what ran.
    engine.stacks["staging"].config[RELEASES_KEY] = ConfigEntry(
        {**engine.get_config("staging")[RELEASES_KEY].value, "web": {**api_web(engine), "replicas": 3}}
    )
    with cluster(engine) as api:
        api.bad.add(NEW_API)
        deploy(ReleaseContext.for_tests(engine, engine.project_dir), api.request(NEW_API))
    assert engine.get_config("staging")[RELEASES_KEY].value["web"]["replicas"] == 2


def api_web(engine: FakeEngine) -> dict[str, Any]:
    web: dict[str, Any] = engine.get_config("staging")[RELEASES_KEY].value["web"]
    return web


def cluster_request(service: str, image: str) -> DeployRequest:
    """A request whose health checks would fail (nothing listens): for deploys refused before them."""
    nowhere = ["http://127.0.0.1:9/healthz"]
    return DeployRequest(
        "staging", service, image, "alice", preview_urls=nowhere, stable_urls=nowhere, signer=TEST_SIGNER
    )


def test_health_urls_are_the_hostnames_the_stack_exposes_with_the_readiness_path() -> None:
    engine = fake_engine()
    engine.stacks["staging"].outputs["services"]["api"]["stableHostname"] = "api.edge.example.test"
    checked: list[list[str]] = []

    def record(urls: Sequence[str], settings: HealthCheckSettings, expect: Mapping[str, str]) -> Verdict:
        checked.append(list(urls))
        return Verdict(healthy=True, reason="recorded only: this test is about which URLs")

    request = DeployRequest("staging", "api", NEW_API, "alice", signer=TEST_SIGNER)
    deploy(ReleaseContext.for_tests(engine, engine.project_dir, checker=record), request)
    assert checked == [
        ["https://api.staging.platform.example.test/healthz/ready"],  # the preview: same host, header-matched
        ["https://api.edge.example.test/healthz/ready"],
    ]
