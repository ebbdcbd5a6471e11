"""The release lifecycle: rollback targets are settled states, unfinished releases block, abort finishes.

Against the engine double (history shaped exactly like the CLI's) and real HTTP servers on 127.0.0.1.
A release "killed with kill -9" is one whose process died between its updates: a checker that
raises SystemExit (which no `except Exception` catches) ends the release where the kill would.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from core.config.stack import HealthCheckSettings
from core.errors import UnfinishedReleaseError
from core.health import Verdict, check_sync
from release.context import ReleaseContext
from release.flows.abort import AbortRequest, abort
from release.flows.deploy import deploy
from release.flows.rollback import RollbackRequest, rollback
from release.history.lifecycle import read_lifecycle
from release.testing.fake_engine import FakeEngine
from tests.conftest import edit_yaml
from tests.release_doubles import (
    NEW_API,
    NEWER_API,
    TEST_SIGNER,
    Cluster,
    cluster,
    dies_on_check,
    fake_engine,
    history_of,
    signed_project_copy,
)

STAGING_API_BEFORE = "registry.example.test/platform/api@sha256:" + (
    "5cb9004f96e5140e3acbd1eaffd8522a77e2cf40805ae4d8090bfe40bf81786d"
)
THIRD_API = "registry.example.test/platform/api@sha256:" + "ef" * 32


def released(engine: FakeEngine, api: Cluster, image: str) -> str:
    report = deploy(ReleaseContext.for_tests(engine, engine.project_dir), api.request(image))
    return report.phase


def killed_during_verify(engine: FakeEngine, api: Cluster, image: str) -> None:
    """Start a release of `image` and let the process die after its switch, while it verifies."""
    with pytest.raises(SystemExit):
        deploy(
            ReleaseContext.for_tests(engine, engine.project_dir, checker=dies_on_check(2)),
            api.request(image),
        )


def rollback_request(api: Cluster, **options: object) -> RollbackRequest:
    return RollbackRequest("staging", "bob", stable_urls=[api.stable_url], signer=TEST_SIGNER, **options)  # type: ignore[arg-type]


def test_a_manual_rollback_after_an_automatic_one_never_restores_the_failed_releases_switch() -> None:
    engine = fake_engine()
    with cluster(engine) as api:
        assert released(engine, api, NEW_API) == "Healthy"
        api.bad_when_stable.add(NEWER_API)
        assert released(engine, api, NEWER_API) == "RolledBack"
        report = rollback(ReleaseContext.for_tests(engine, engine.project_dir), rollback_request(api))
        assert engine.serving("staging", "api") not in (NEWER_API, NEW_API)
    assert report.phase == "Healthy" and engine.serving("staging", "api") == STAGING_API_BEFORE


def test_a_rollback_dry_run_names_its_target_why_and_the_entries_it_passed_over() -> None:
    engine = fake_engine()
    with cluster(engine) as api:
        released(engine, api, NEW_API)
        api.bad_when_stable.add(NEWER_API)
        released(engine, api, NEWER_API)
        report = rollback(
            ReleaseContext.for_tests(engine, engine.project_dir), rollback_request(api, dry_run=True)
        )
    plan = report.rollback
    assert plan is not None and plan.target.number == 1
    assert "no release touched" in plan.why
    assert any("a rollback" in note for note in plan.skipped)
    assert any("intermediate state of release" in note for note in plan.skipped)


def test_a_release_killed_after_its_switch_makes_the_next_deploy_refuse_naming_it() -> None:
    engine = fake_engine()
    with cluster(engine) as api:
        killed_during_verify(engine, api, NEW_API)
        ups = len(engine.ups)
        with pytest.raises(UnfinishedReleaseError) as refused:
            deploy(
                ReleaseContext.for_tests(engine, engine.project_dir), api.request(NEWER_API, actor="carol")
            )
    message = str(refused.value)
    assert refused.value.exit_code == 4 and len(engine.ups) == ups
    assert NEW_API in message and "by alice" in message and "switch in entry" in message
    assert "release abort staging --service api" in message and "release rollback staging" in message


def test_abort_restores_the_state_before_the_unfinished_release_and_finishes_it() -> None:
    engine = fake_engine()
    with cluster(engine) as api:
        killed_during_verify(engine, api, NEW_API)
        assert engine.serving("staging", "api") == NEW_API  # live and never verified
        request = AbortRequest("staging", "api", "bob", reason="runner lost", stable_urls=[api.stable_url])
        request.signer = TEST_SIGNER
        report = abort(ReleaseContext.for_tests(engine, engine.project_dir), request)
        assert report.phase == "Healthy" and engine.serving("staging", "api") == STAGING_API_BEFORE
        assert released(engine, api, NEWER_API) == "Healthy"  # finished: releases go on
    entries = history_of(engine, "staging")
    aborted = next(entry.record for entry in entries if entry.record and entry.record.event == "abort")
    assert aborted is not None and aborted.revokes == (NEW_API,) and len(aborted.finishes) == 1


def test_abort_refuses_when_the_newest_release_is_finished() -> None:
    engine = fake_engine()
    with cluster(engine) as api:
        released(engine, api, NEW_API)
        request = AbortRequest("staging", "api", "bob", signer=TEST_SIGNER)
        with pytest.raises(Exception, match="no unfinished release"):
            abort(ReleaseContext.for_tests(engine, engine.project_dir), request)


def test_an_automatic_rollback_baseline_is_the_last_verified_state_never_an_unfinished_entry() -> None:
    engine = fake_engine()
    with cluster(engine) as api:
        assert released(engine, api, NEW_API) == "Healthy"
        killed_during_verify(engine, api, NEWER_API)
    lifecycle = read_lifecycle(history_of(engine, "staging"))
    baseline = lifecycle.baseline
    assert baseline is not None and baseline.record is not None and baseline.record.event == "verify"
    assert baseline.services["api"].active_image == NEW_API
    assert [release.image for release in lifecycle.unfinished] == [NEWER_API]


def test_a_second_checkout_releasing_the_same_stack_refuses_once_the_first_has_staged() -> None:
    """Two machines: each has its own lock file; what they share is the stack's history."""
    engine = fake_engine()
    second: list[BaseException] = []
    with cluster(engine) as api:

        def first_release_checks_while_the_second_starts(
            urls: Sequence[str], settings: HealthCheckSettings, expect: Mapping[str, str]
        ) -> Verdict:
            if not second:
                try:
                    deploy(
                        ReleaseContext.for_tests(engine, engine.project_dir),
                        api.request(THIRD_API, actor="carol"),
                    )
                except UnfinishedReleaseError as error:
                    second.append(error)
            return check_sync(urls, settings, expect)

        report = deploy(
            ReleaseContext.for_tests(
                engine, engine.project_dir, checker=first_release_checks_while_the_second_starts
            ),
            api.request(NEW_API),
        )
    assert report.phase == "Healthy"
    assert len(second) == 1 and NEW_API in str(second[0])
    assert THIRD_API not in {engine.serving("staging", "api"), engine.serving("staging", "api", preview=True)}


def contract_only_engine(tmp_path: Path) -> FakeEngine:
    """staging, on a project whose api migrations are declared not backward compatible."""

    def contract_only(document: dict[str, Any]) -> None:
        for service in document["config"]["services"]["value"]:
            if service.get("migration"):
                service["migration"]["expandContract"] = False

    project = signed_project_copy(tmp_path)
    edit_yaml(project / "Pulumi.yaml", contract_only)
    return fake_engine(project_dir=project)


def killed_before_analyse(engine: FakeEngine, api: Cluster, image: str) -> None:
    """Start a release of `image` and let the process die after its stage, while it analyses."""

    def dies(urls: Sequence[str], settings: HealthCheckSettings, expect: Mapping[str, str]) -> Verdict:
        raise SystemExit(137)

    with pytest.raises(SystemExit):
        deploy(ReleaseContext.for_tests(engine, engine.project_dir, checker=dies), api.request(image))


def test_a_failed_preview_of_a_contract_only_service_rolls_back_without_force(tmp_path: Path) -> None:
    """Stable traffic never left the old image, so no migration is walked back: nothing to refuse."""
    engine = contract_only_engine(tmp_path)
    with cluster(engine) as api:
        api.bad.add(NEW_API)
        assert released(engine, api, NEW_API) == "RolledBack"
        api.bad.discard(NEW_API)
        assert released(engine, api, NEWER_API) == "Healthy"


def test_an_abort_after_a_contract_only_services_stage_needs_no_force(tmp_path: Path) -> None:
    engine = contract_only_engine(tmp_path)
    with cluster(engine) as api:
        killed_before_analyse(engine, api, NEW_API)
        request = AbortRequest("staging", "api", "bob", reason="runner lost", stable_urls=[api.stable_url])
        request.signer = TEST_SIGNER
        report = abort(ReleaseContext.for_tests(engine, engine.project_dir), request)
        assert report.phase == "Healthy", report.render()
        assert engine.serving("staging", "api") == STAGING_API_BEFORE


def test_an_abort_after_a_failed_rollback_moves_traffic_back_though_config_already_says_so() -> None:
    engine = fake_engine()
    with cluster(engine) as api:
        api.bad_when_stable.add(NEW_API)
        engine.fail_up(3, "kube API unreachable")  # ups: 1 preview, 2 switch, 3 the rollback
        report = deploy(ReleaseContext.for_tests(engine, engine.project_dir), api.request(NEW_API))
        assert report.phase == "RollbackFailed"
        assert engine.serving("staging", "api") == NEW_API  # config is back, the Services are not
        request = AbortRequest("staging", "api", "bob", reason="runner lost", stable_urls=[api.stable_url])
        request.signer = TEST_SIGNER
        abort(ReleaseContext.for_tests(engine, engine.project_dir), request)
    assert engine.serving("staging", "api") == STAGING_API_BEFORE
    assert engine.serving("staging", "api", preview=True) == NEW_API  # the preview Service too
