"""Config rides the release: a flag or env change is staged on the idle color, checked on preview,
switched, verified, and undone by switching back, exactly like an image (against the engine double)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

import pytest

from core.config.base import full_key
from core.errors import ConfigError
from release.cli import main
from release.context import ReleaseContext
from release.flows.deploy import deploy
from release.flows.deploy_request import DeployRequest
from release.history.entries import RELEASES_KEY
from release.testing.fake_engine import FakeEngine
from tests.http_servers import Reply, serve_app
from tests.release_doubles import RELEASE_STEPS, TEST_SIGNER, app_double, fake_engine, history_of

FLAG = "FEATURE_SEARCH_V2"


@dataclass
class FlaggedCluster:
    """Answers like an app whose pods fail when they read `broken_flag`=`broken_value`, once they
    take stable traffic (the preview check passes: the failure needs real users)."""

    engine: FakeEngine
    stack: str
    broken_value: str = ""
    preview_url: str = ""
    stable_url: str = ""

    def answer(self, preview: bool) -> Reply:
        image = self.engine.serving(self.stack, "api", preview=preview)
        config = self.engine.serving_config(self.stack, "api", preview=preview)
        if not preview and self.broken_value and config.get(FLAG) == self.broken_value:
            return 500, {"status": "error", "image": image}
        return 200, {"status": "ok", "image": image}

    def request(
        self, image: str = "", flags: dict[str, str] | None = None, env: dict[str, str] | None = None
    ) -> DeployRequest:
        return DeployRequest(
            self.stack,
            "api",
            image,
            "alice",
            flags=flags or {},
            env=env or {},
            preview_urls=[self.preview_url],
            stable_urls=[self.stable_url],
            signer=TEST_SIGNER,
        )


@contextmanager
def flagged_cluster(
    engine: FakeEngine, stack: str = "staging", broken_value: str = ""
) -> Iterator[FlaggedCluster]:
    double = FlaggedCluster(engine, stack, broken_value)
    with ExitStack() as servers:
        double.preview_url = servers.enter_context(serve_app(app_double("api", lambda: double.answer(True))))
        double.stable_url = servers.enter_context(serve_app(app_double("api", lambda: double.answer(False))))
        yield double


def api_release(engine: FakeEngine, stack: str = "staging") -> dict[str, Any]:
    release: dict[str, Any] = engine.get_config(stack)[RELEASES_KEY].value["api"]
    return release


def changed_names(call: Any) -> list[str]:
    return sorted(urn.rsplit("::", 1)[1] for urn in call.changed_urns)


def test_a_flag_change_is_a_blue_green_release_of_the_live_image() -> None:
    engine = fake_engine()  # staging: green live, both colors with FEATURE_NEW_CHECKOUT=true
    live_image = engine.serving("staging", "api")
    with flagged_cluster(engine) as api:
        report = deploy(
            ReleaseContext.for_tests(engine, engine.project_dir), api.request(flags={FLAG: "true"})
        )
    assert report.phase == "Healthy", report.failure
    assert [step.name for step in report.steps] == RELEASE_STEPS
    assert api_release(engine)["activeColor"] == "blue"
    assert api_release(engine)["config"]["blue"] == {"flags": {"FEATURE_NEW_CHECKOUT": "true", FLAG: "true"}}
    assert engine.serving("staging", "api") == live_image  # the same digest, now with the flag
    assert engine.serving_config("staging", "api")[FLAG] == "true"
    assert engine.serving_config("staging", "api", preview=True)[FLAG] == "false"  # green, untouched
    assert report.config_changes == {FLAG: "true"} and report.config_fingerprint


def test_a_flag_release_names_the_value_it_sets_and_not_the_ones_the_color_already_carries() -> None:
    engine = fake_engine()  # both colors already carry FEATURE_NEW_CHECKOUT=true
    with flagged_cluster(engine) as api:
        report = deploy(
            ReleaseContext.for_tests(engine, engine.project_dir), api.request(flags={FLAG: "true"})
        )
    stage = next(entry for entry in history_of(engine, "staging") if "release deploy api:" in entry.message)
    assert f"setting {FLAG}=true" in stage.message and "FEATURE_NEW_CHECKOUT" not in stage.message
    assert f"sets {FLAG}=true" in report.render() and "FEATURE_NEW_CHECKOUT" not in report.render()


def test_staging_a_flag_changes_only_the_idle_color_and_switching_only_the_services() -> None:
    engine = fake_engine()
    with flagged_cluster(engine) as api:
        deploy(ReleaseContext.for_tests(engine, engine.project_dir), api.request(flags={FLAG: "true"}))
    staged, switched, _recorded = engine.ups
    assert changed_names(staged) == ["api-blue", "api-config-blue", "api-migrate-blue"]
    assert changed_names(switched) == ["api", "api-preview"]


def test_a_flag_that_breaks_stable_traffic_is_undone_by_switching_back() -> None:
    engine = fake_engine()
    with flagged_cluster(engine, broken_value="true") as api:
        report = deploy(
            ReleaseContext.for_tests(engine, engine.project_dir), api.request(flags={FLAG: "true"})
        )
    assert report.phase == "RolledBack"
    # the smoke suite's readiness check is the first request stable traffic sends the flag's pods
    assert report.failure.startswith("smoke stable: 3/4 smoke checks passed; ready: status: expected 200")
    assert api_release(engine)["activeColor"] == "green"
    assert engine.serving_config("staging", "api")[FLAG] == "false"
    rollback_up = engine.ups[-2] if engine.ups[-1].changed_urns == [] else engine.ups[-1]
    assert changed_names(rollback_up) == ["api", "api-preview"]  # no pod restarts: the colors stay


def test_a_failed_config_release_revokes_no_image() -> None:
    engine = fake_engine()
    with flagged_cluster(engine, broken_value="true") as api:
        deploy(ReleaseContext.for_tests(engine, engine.project_dir), api.request(flags={FLAG: "true"}))
    rollback = next(
        entry for entry in history_of(engine, "staging") if entry.record and entry.record.event == "rollback"
    )
    assert rollback.record is not None and rollback.record.revokes == ()


def test_an_env_value_and_an_image_ride_one_release_together() -> None:
    engine = fake_engine()
    new_image = "registry.example.test/platform/api@sha256:" + "ab" * 32
    with flagged_cluster(engine) as api:
        report = deploy(
            ReleaseContext.for_tests(engine, engine.project_dir),
            api.request(new_image, env={"LOG_FORMAT": "text"}),
        )
    assert report.phase == "Healthy", report.failure
    assert engine.serving("staging", "api") == new_image
    assert engine.serving_config("staging", "api")["LOG_FORMAT"] == "text"


def test_config_that_already_runs_on_the_live_color_is_not_released_again() -> None:
    engine = fake_engine()
    with flagged_cluster(engine) as api:
        report = deploy(
            ReleaseContext.for_tests(engine, engine.project_dir),
            api.request(flags={"FEATURE_NEW_CHECKOUT": "true"}),
        )
    assert report.steps == [] and "already serves" in report.notes[0]
    assert engine.ups == []


@pytest.mark.parametrize(
    ("config", "key", "value"),
    [
        (
            {"flags": {"FEATURE_UNDECLARED": "true"}},
            "releases.api.config.blue.flags.FEATURE_UNDECLARED",
            "true",
        ),
        ({"env": {"DEBUG": "1"}}, "releases.api.config.blue.env.DEBUG", "1"),
    ],
    ids=["undeclared flag", "undeclared env var"],
)
def test_a_value_for_an_undeclared_key_is_refused_before_anything_changes(
    config: dict[str, Any], key: str, value: str
) -> None:
    engine = fake_engine()
    with flagged_cluster(engine) as api, pytest.raises(ConfigError) as refused:
        deploy(ReleaseContext.for_tests(engine, engine.project_dir), api.request(**config))
    problem = refused.value.problems[0]
    assert (problem.stack, problem.key, problem.value) == ("staging", full_key(key), value)
    assert "Pulumi.yaml" in problem.fix
    assert engine.ups == []


def test_a_release_of_nothing_is_refused() -> None:
    engine = fake_engine()
    with flagged_cluster(engine) as api, pytest.raises(ConfigError, match="nothing to release"):
        deploy(ReleaseContext.for_tests(engine, engine.project_dir), api.request())
    assert engine.ups == []


def test_the_documented_flag_release_runs_from_the_command_line() -> None:
    engine = fake_engine("dev")
    with flagged_cluster(engine, "dev") as api:
        argv = ["deploy", "dev", "--service", "api", "--set-flag", "FEATURE_NEW_CHECKOUT=false"]
        argv += ["--preview-url", api.preview_url, "--stable-url", api.stable_url, "--actor", "alice"]
        argv += ["--project-dir", str(engine.project_dir)]
        assert main(argv, engine_factory=lambda _: engine, clock=engine.clock) == 0
    assert engine.serving_config("dev", "api")["FEATURE_NEW_CHECKOUT"] == "false"
    assert engine.serving_config("dev", "api", preview=True)["FEATURE_NEW_CHECKOUT"] == "true"


def test_release_audit_names_the_config_a_release_set(capsys: Any) -> None:
    engine = fake_engine("dev")
    with flagged_cluster(engine, "dev") as api:
        deploy(
            ReleaseContext.for_tests(engine, engine.project_dir),
            api.request(flags={"FEATURE_NEW_CHECKOUT": "false"}),
        )
    assert (
        main(
            ["audit", "dev", "--json", "--project-dir", str(engine.project_dir)],
            engine_factory=lambda _: engine,
            clock=engine.clock,
        )
        == 0
    )
    rows = json.loads(capsys.readouterr().out)["rows"]
    release = next(row for row in rows if row["event"] == "release")
    assert "config FEATURE_NEW_CHECKOUT=false" in release["approvalOrReason"]
