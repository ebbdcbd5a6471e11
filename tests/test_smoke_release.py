"""Smoke suites in releases, on the engine double with real HTTP servers standing in for the colors:
the suite runs on the preview route before any traffic moves and on the stable host after the
switch; the signed verify record holds the counts; one failing check of four fails the release
before the switch (nothing switched, the digest revoked) or rolls it back after it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.errors import ConfigError
from core.gateway import PREVIEW_HEADER
from release.cli import main
from release.context import ReleaseContext
from release.flows.deploy import deploy
from release.gates import evidence_for
from release.history.records import Event
from release.report.audit import audit_rows
from release.report.release_report import ReleaseReport
from release.testing.fake_engine import FakeEngine
from tests.conftest import TEST_SECRETS, edit_yaml
from tests.release_doubles import (
    FAST_BLUE_GREEN,
    NEW_API,
    RELEASE_STEPS,
    SMOKE_TOKEN,
    Cluster,
    cluster,
    fake_engine,
    history_of,
    signed_project_copy,
)
from tests.test_deploy import OLD_ACTIVE

ALL_PASSED = {"passed": 4, "total": 4, "failed": []}
SEARCH_FAILED = {"passed": 3, "total": 4, "failed": ["search"]}


def released(engine: FakeEngine, api: Cluster) -> ReleaseReport:
    return deploy(ReleaseContext.for_tests(engine, engine.project_dir), api.request(NEW_API))


def newest(engine: FakeEngine, event: Event) -> dict[str, object]:
    """The window of the newest signed record of `event` in staging's history."""
    for entry in history_of(engine, "staging"):
        record = entry.signed_record
        if record is not None and record.event is event:
            return record.window
    raise AssertionError(f"no signed {event} record")


def test_a_release_runs_the_suite_on_the_preview_route_then_on_the_stable_host_and_signs_the_counts() -> None:
    engine = fake_engine()
    with cluster(engine) as api:
        report = released(engine, api)
    assert report.phase == "Healthy", report.failure
    smoke = {step.name: step for step in report.steps if step.smoke is not None}
    assert [step.name for step in report.steps] == RELEASE_STEPS
    assert smoke["smoke preview"].detail == smoke["smoke stable"].detail == "4/4 smoke checks passed"
    assert newest(engine, Event.VERIFY)["smoke"] == {"preview": ALL_PASSED, "stable": ALL_PASSED}
    # The preview suite went to the idle color with the preview header, the stable one without it,
    # and the account check sent the stack's smoke secret.
    preview_port, stable_port = api.preview_url.rsplit(":", 1)[1], api.stable_url.rsplit(":", 1)[1]
    accounts = [request for request in api.received if request.path == "/v1/account"]
    assert len(accounts) == 4  # account and account-needs-a-token, on each host
    assert {request.header("Authorization") for request in accounts} == {f"Bearer {SMOKE_TOKEN}", ""}
    to_preview = [request for request in api.received if request.header("Host").endswith(preview_port)]
    to_stable = [request for request in api.received if request.header("Host").endswith(stable_port)]
    assert {request.header(PREVIEW_HEADER) for request in to_preview} == {TEST_SECRETS["PREVIEW_TOKEN"]}
    assert {request.header(PREVIEW_HEADER) for request in to_stable} == {""}
    assert "4/4 smoke checks passed" in report.render()
    assert "- smoke stable (http://127.0.0.1:" in report.to_markdown()


def test_one_failing_check_before_traffic_moves_fails_the_release_with_nothing_switched() -> None:
    engine = fake_engine()
    with cluster(engine) as api:
        api.broken[NEW_API] = {"/v1/search"}
        report = released(engine, api)
    assert report.phase == "RolledBack" and report.exit_code == 1
    assert [step.name for step in report.steps][:3] == ["preview", "analyse", "smoke preview"]
    assert "switch" not in [step.name for step in report.steps]
    assert report.failure.startswith(
        "smoke preview: 3/4 smoke checks passed; search: status: expected 200, got 500; "
        "/results: expected an array, missing (body: "
    )
    assert engine.serving("staging", "api") == OLD_ACTIVE  # the old color kept serving throughout
    assert all("release switch" not in up.message for up in engine.ups)
    rolled_back = newest(engine, Event.ROLLBACK)
    assert rolled_back["smoke"] == {"preview": SEARCH_FAILED}
    evidence = evidence_for("staging", history_of(engine, "staging"), "api", NEW_API, live=False)
    assert evidence.revoked is not None and evidence.verified is None
    markdown = report.to_markdown()
    assert "- smoke preview (http://127.0.0.1:" in markdown and "3/4 smoke checks passed" in markdown
    assert "  - `search` FAILED: status: expected 200, got 500" in markdown


def test_one_failing_check_after_the_switch_rolls_back_as_a_failed_health_check_does() -> None:
    engine = fake_engine()
    with cluster(engine) as api:
        api.broken_when_stable[NEW_API] = {"/v1/search"}
        report = released(engine, api)
    assert report.phase == "RolledBack"
    assert report.failure.startswith("smoke stable: 3/4 smoke checks passed; search: status: expected 200")
    names = [step.name for step in report.steps]
    assert names[:6] == ["preview", "analyse", "smoke preview", "switch", "smoke stable", "rollback"]
    assert engine.serving("staging", "api") == OLD_ACTIVE  # switched back
    assert report.rollback is not None and report.rollback.mode == "targeted"
    assert newest(engine, Event.ROLLBACK)["smoke"] == {"preview": ALL_PASSED, "stable": SEARCH_FAILED}
    evidence = evidence_for("staging", history_of(engine, "staging"), "api", NEW_API, live=False)
    assert evidence.revoked is not None
    rows = audit_rows("staging", history_of(engine, "staging"))
    assert "smoke preview 4/4, stable 3/4 (failed: search)" in rows[0].approval_or_reason


def test_a_stack_whose_smoke_secret_the_engine_cannot_read_is_refused_before_any_change() -> None:
    engine = fake_engine()
    del engine.secrets["SMOKE_ACCOUNT_TOKEN"]
    with cluster(engine) as api, pytest.raises(ConfigError) as raised:
        released(engine, api)
    (problem,) = raised.value.problems
    assert problem.key == "platform:appSecrets.SMOKE_ACCOUNT_TOKEN"
    assert "a smoke check sends" in problem.problem
    assert "pulumi config set --secret --path 'appSecrets.SMOKE_ACCOUNT_TOKEN'" in problem.fix
    assert [call for call in engine.calls if call[0] == "up"] == []


def test_no_secret_reaches_the_report_the_records_or_the_log(capsys: pytest.CaptureFixture[str]) -> None:
    engine = fake_engine()
    with cluster(engine) as api:
        api.broken[NEW_API] = {"/v1/account"}
        report = released(engine, api)
    shown = json.dumps(report.to_json()) + report.render() + report.to_markdown() + capsys.readouterr().err
    shown += "".join(entry.message for entry in history_of(engine, "staging"))
    assert "[secret]" in report.failure  # the error page echoed the request's headers back
    assert SMOKE_TOKEN not in shown and TEST_SECRETS["PREVIEW_TOKEN"] not in shown


def smoke_command(argv: list[str], engine: FakeEngine) -> int:
    return main(["smoke", *argv, "--project-dir", str(engine.project_dir)], lambda _: engine, engine.clock)


def test_release_smoke_runs_the_live_colors_suite_on_the_stable_host(
    capsys: pytest.CaptureFixture[str],
) -> None:
    engine = fake_engine()
    with cluster(engine) as api:
        code = smoke_command(["staging", "--service", "api", "--url", api.stable_url], engine)
    out = capsys.readouterr().out
    assert code == 0
    assert out.splitlines()[0] == "api green (stable) on staging: 4/4 smoke checks passed"
    assert all(request.header(PREVIEW_HEADER) == "" for request in api.received)


def test_release_smoke_of_the_idle_color_goes_through_the_preview_route_and_says_what_failed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    engine = fake_engine()
    with cluster(engine) as api:
        api.broken[engine.serving("staging", "api", preview=True)] = {"/v1/search"}
        argv = ["staging", "--service", "api", "--color", "blue", "--url", api.preview_url, "--json"]
        code = smoke_command(argv, engine)
    document = json.loads(capsys.readouterr().out)
    assert code == 1
    assert (document["target"], document["summary"], document["failed"]) == (
        "preview",
        "3/4 smoke checks passed",
        ["search"],
    )
    search = next(check for check in document["checks"] if check["name"] == "search")
    assert search["failures"] == ["status: expected 200, got 500", "/results: expected an array, missing"]
    assert {request.header(PREVIEW_HEADER) for request in api.received} == {TEST_SECRETS["PREVIEW_TOKEN"]}
    assert TEST_SECRETS["PREVIEW_TOKEN"] not in json.dumps(document)


def test_release_smoke_of_a_service_without_a_suite_exits_2_naming_where_to_declare_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = signed_project_copy(tmp_path)
    suites = lambda document: document["config"]["smoke"]["value"]["suites"]  # noqa: E731
    edit_yaml(project / "Pulumi.yaml", lambda document: suites(document).pop("web"))
    engine = fake_engine(project_dir=project)
    assert smoke_command(["staging", "--service", "web"], engine) == 2
    assert "declare one under smoke.suites.web in Pulumi.yaml" in capsys.readouterr().err
    assert [call for call in engine.calls if call[0] == "up"] == []


def test_a_service_without_a_suite_runs_no_smoke_step_and_verify_still_judges_it(tmp_path: Path) -> None:
    project = signed_project_copy(tmp_path)
    suites = lambda document: document["config"]["smoke"]["value"]["suites"]  # noqa: E731
    edit_yaml(project / "Pulumi.yaml", lambda document: suites(document).pop("api"))
    engine = FakeEngine(project_dir=project)
    del engine.secrets["SMOKE_ACCOUNT_TOKEN"]  # no check sends it now: the stack may not set it
    engine.add_stack("staging", edit=FAST_BLUE_GREEN)
    with cluster(engine) as api:
        api.bad_when_stable.add(NEW_API)
        report = released(engine, api)
    assert [step.name for step in report.steps][:4] == ["preview", "analyse", "switch", "verify"]
    assert report.failure.startswith("verify:") and report.phase == "RolledBack"
    assert "smoke" not in newest(engine, Event.ROLLBACK)
