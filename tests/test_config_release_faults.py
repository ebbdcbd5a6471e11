"""Config releases under faults: a failed or aborted config-only release keeps its digest good, old
history entries restore the flags they ran with, and what rides a release is validated."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from core.config.base import full_key
from core.config.rules import load_stack_config
from core.config.sources import ConfigEntry, ProjectFile, read_stack_file
from core.config.stack import ColorConfig, pod_config
from core.errors import ConfigError
from release.context import ReleaseContext
from release.engine.shapes import UpdateResult
from release.flows.abort import AbortRequest, abort
from release.flows.deploy import deploy
from release.flows.deploy_request import DeployRequest
from release.flows.restore import plan_rollback
from release.gates import evidence_for
from release.history.entries import RELEASES_KEY, HistoryEntry
from release.offline.explain import explain
from release.offline.parity import knob_leaves
from release.offline.plan import redacted_config
from release.testing.fake_engine import FakeEngine
from tests.conftest import PROJECT, TEST_SECRETS, edit_yaml
from tests.release_doubles import TEST_SIGNER, cluster, dies_on_check, fake_engine, history_of
from tests.test_config import only, problems_of

FLAG = {"FEATURE_SEARCH_V2": "true"}


def config_release(engine: FakeEngine, urls: Any, flags: dict[str, str], checker: Any = None) -> Any:
    request = DeployRequest(
        "staging",
        "api",
        "",
        "alice",
        flags=flags,
        preview_urls=[urls.preview_url],
        stable_urls=[urls.stable_url],
        signer=TEST_SIGNER,
    )
    context = ReleaseContext.for_tests(
        engine, engine.project_dir, **({"checker": checker} if checker else {})
    )
    return deploy(context, request)


def live_image_evidence(engine: FakeEngine) -> Any:
    live = engine.serving("staging", "api")
    return evidence_for("staging", history_of(engine, "staging"), "api", live, live=True)


@pytest.mark.parametrize("failing_up", [1, 2], ids=["stage up", "switch up"])
def test_a_config_release_whose_up_fails_does_not_revoke_the_live_digest(failing_up: int) -> None:
    engine = fake_engine()
    with cluster(engine) as urls:
        engine.fail_up(failing_up, "error: engine hiccup")
        report = config_release(engine, urls, FLAG)
    assert report.phase == "RolledBack"
    assert live_image_evidence(engine).revoked is None


def test_aborting_a_killed_config_release_revokes_no_digest() -> None:
    engine = fake_engine()
    with cluster(engine) as urls:
        live = engine.serving("staging", "api")
        with pytest.raises(SystemExit):
            config_release(engine, urls, FLAG, checker=dies_on_check(2))
        request = AbortRequest("staging", "api", "bob", reason="runner lost", stable_urls=[urls.stable_url])
        request.signer = TEST_SIGNER
        assert abort(ReleaseContext.for_tests(engine, engine.project_dir), request).phase == "Healthy"
    aborted = next(
        entry.record
        for entry in history_of(engine, "staging")
        if entry.record and entry.record.event == "abort"
    )
    assert aborted is not None and aborted.revokes == ()
    assert engine.serving("staging", "api") == live and live_image_evidence(engine).revoked is None


def test_a_flag_set_to_its_default_where_it_already_runs_releases_nothing() -> None:
    engine = fake_engine()
    with cluster(engine) as urls:
        report = config_release(engine, urls, {"FEATURE_SEARCH_V2": "false"})  # the default, live on green
    assert report.steps == [] and "already serves" in report.notes[0]
    assert engine.ups == []


def test_a_rollback_to_an_entry_from_before_flags_rode_the_release_keeps_its_flags() -> None:
    engine = fake_engine()
    current = engine.get_config("staging")
    legacy_releases = {
        name: {key: value for key, value in release.items() if key in ("replicas", "activeColor", "images")}
        for name, release in current[RELEASES_KEY].value.items()
    }
    legacy_releases["api"]["activeColor"] = "blue"
    legacy = HistoryEntry(
        number=3,
        version=3,
        position=3,
        kind="update",
        result=UpdateResult.SUCCEEDED,
        start_time="2026-10-01T09:00:00.000Z",
        end_time="2026-10-01T09:01:00.000Z",
        message="Merge pull request #9",
        environment={},
        config={
            RELEASES_KEY: ConfigEntry(legacy_releases),
            full_key("featureFlags"): ConfigEntry(
                {"FEATURE_NEW_CHECKOUT": "true", "FEATURE_SEARCH_V2": "false"}
            ),
        },
    )
    project = ProjectFile.read(engine.project_dir).settings
    plan = plan_rollback("staging", current, legacy, project)
    restored = plan.restore[RELEASES_KEY].value["api"]
    assert restored["config"]["blue"] == {"flags": {"FEATURE_NEW_CHECKOUT": "true"}}  # not reset to "false"
    assert restored["maxReplicas"] == 4  # a knob the old entry never had keeps its value
    assert plan.mode == "targeted"  # only traffic moves: the colors run what they ran


def test_a_stack_based_value_that_happens_to_equal_a_flag_is_not_explained_by_it() -> None:
    shown = {
        stack: redacted_config(read_stack_file(PROJECT, stack, sorted(TEST_SECRETS)))
        for stack in ("dev", "staging", "production")
    }
    knobs = knob_leaves(shown)
    looks_like_a_flag = {"dev": "true", "staging": "true", "production": "false"}
    assert explain(looks_like_a_flag, knobs, "api") == ()
    assert explain(looks_like_a_flag, knobs, "api-config-blue") != ()


def test_the_database_port_is_in_the_fingerprint_of_the_services_that_read_it() -> None:
    def fingerprints(port: int) -> dict[str, str]:
        project = ProjectFile.read(PROJECT).settings
        postgres = project.postgres.model_copy(update={"port": port})
        return {
            spec.name: pod_config(spec, project.feature_flags, postgres, ColorConfig()).fingerprint
            for spec in project.services
        }

    before, after = fingerprints(5432), fingerprints(6543)
    assert before["api"] != after["api"]  # reads the database: its pods must restart
    assert before["web"] == after["web"]


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"AWS_REGION": "eu-west-1"}, "sets APP_/AWS_/DATABASE_* itself"),
        ({"SESSION_SIGNING_KEY": "x"}, "secrets the service reads from files"),
        ({"SESSION_SIGNING_KEY_FILE": "/tmp/x"}, "secrets the service reads from files"),
        ({"lower": "x"}, "UPPER_SNAKE_CASE"),
        ({"FEATURE_NEW_CHECKOUT": "x"}, "both feature flags and env vars"),
        ({"LOG_LEVEL": "a\nb"}, "one printable line"),
    ],
    ids=["reserved", "a secret", "a secret file", "lower case", "a flag", "two lines"],
)
def test_an_env_var_the_project_cannot_declare_is_refused(
    project: Path, env: dict[str, str], says: str
) -> None:

    def declare(document: dict[str, Any]) -> None:
        document["config"]["services"]["value"][0]["env"].update(env)

    edit_yaml(project / "Pulumi.yaml", declare)
    with pytest.raises(ConfigError) as refused:
        load_stack_config(read_stack_file(project, "staging", sorted(TEST_SECRETS)).raw)
    assert says in str(refused.value)


def test_a_color_value_of_two_lines_in_a_stack_file_is_refused(project: Path) -> None:
    def two_lines(config: dict[str, Any]) -> None:
        config["platform:releases"]["api"]["config"] = {"blue": {"flags": {"FEATURE_SEARCH_V2": "a\nb"}}}

    problem = only(problems_of(project, "staging", two_lines), "platform:releases.api.config.blue.flags")
    assert "one printable line" in problem.problem
