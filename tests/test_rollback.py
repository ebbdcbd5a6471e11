"""`release rollback` and stack history: restored from history only, on either backend's numbering."""

from __future__ import annotations

import json
from typing import Any

import pytest

from core.config.base import PROJECT_NAME, SECRET_MARKER
from core.config.sources import ConfigEntry, ProjectFile, validated_stack_config
from core.errors import ConcurrentReleaseError, HistoryError, RollbackRefusedError
from release.context import ReleaseContext
from release.flows.deploy import deploy
from release.flows.restore import plan_rollback, restore
from release.flows.rollback import RollbackRequest, rollback
from release.history.entries import RELEASES_KEY, parse_history, render_history
from release.history.records import Event, ReleaseRecord, parse_record
from release.report.release_report import ReleaseReport
from release.testing.fake_engine import FakeEngine
from tests.history_data import STAGING_RULES, update
from tests.release_doubles import NEW_API, NEWER_API, TEST_SIGNER, Cluster, cluster, fake_engine, history_of

# Exactly the shape `pulumi stack history --json` prints on the file backend (versions all 0; object
# config as JSON text, sometimes with objectValue; secrets without values). Newest first.
CLI_HISTORY = [
    {
        "version": 0,
        "kind": "update",
        "startTime": "2026-11-20T10:05:00.000Z",
        "message": "release promote api: active green -> blue [by alice]",
        "environment": {"exec.kind": "auto.local", "git.head": "a1b2c3"},
        "config": {
            "platform:releases": {
                "value": '{"api": {"replicas": 2, "activeColor": "blue", '
                '"images": {"blue": "r/api@sha256:new", "green": "r/api@sha256:old"}}}',
                "objectValue": {
                    "api": {
                        "replicas": 2,
                        "activeColor": "blue",
                        "images": {"blue": "r/api@sha256:new", "green": "r/api@sha256:old"},
                    }
                },
                "secret": False,
            },
            "platform:appSecrets": {"secret": True},
            "platform:namespace": {"value": "platform-staging", "secret": False},
        },
        "result": "succeeded",
        "endTime": "2026-11-20T10:06:00.000Z",
        "resourceChanges": {"update": 2, "same": 24},
    },
    {
        "version": 0,
        "kind": "update",
        "startTime": "2026-11-20T09:00:00.000Z",
        "message": "Merge pull request #12",
        "environment": {"git.author": "Bob Builder"},
        "config": {
            "platform:releases": {
                "value": '{"api": {"replicas": 2, "activeColor": "green", '
                '"images": {"blue": "r/api@sha256:older", "green": "r/api@sha256:old"}}}',
                "secret": False,
            },
        },
        "result": "succeeded",
        "endTime": "2026-11-20T09:01:00.000Z",
    },
    {
        "version": 0,
        "kind": "refresh",
        "startTime": "2026-11-19T09:00:00.000Z",
        "message": "",
        "environment": {},
        "config": {},
        "result": "failed",
    },
]


def test_file_backend_entries_are_numbered_from_the_oldest_because_versions_are_all_zero() -> None:
    entries = parse_history(CLI_HISTORY, STAGING_RULES)
    assert [(entry.number, entry.version, entry.position) for entry in entries] == [
        (3, 0, 0),
        (2, 0, 1),
        (1, 0, 2),
    ]


def test_backend_versions_are_used_when_the_backend_numbers_updates() -> None:
    numbered = [
        {**entry, "version": version} for entry, version in zip(CLI_HISTORY, (41, 40, 39), strict=True)
    ]
    assert [entry.number for entry in parse_history(numbered, STAGING_RULES)] == [41, 40, 39]


def test_object_config_is_restored_as_an_object_with_or_without_object_value() -> None:
    newest, older, _ = parse_history(CLI_HISTORY, STAGING_RULES)
    assert newest.config[RELEASES_KEY].value["api"]["activeColor"] == "blue"
    assert older.config[RELEASES_KEY].value["api"]["images"]["blue"] == "r/api@sha256:older"


def test_a_secret_in_history_has_no_value_and_is_marked_secret() -> None:
    newest = parse_history(CLI_HISTORY, STAGING_RULES)[0]
    assert newest.config[f"{PROJECT_NAME}:appSecrets"] == ConfigEntry(SECRET_MARKER, secret=True)


def test_history_names_the_operator_from_a_counted_record_or_the_git_author_never_from_message_text() -> None:
    entries = parse_history(CLI_HISTORY, STAGING_RULES)
    # entry 3's message says "[by alice]", but anyone can type that: it carries no record
    assert [entry.actor for entry in entries] == ["-", "Bob Builder", "-"]


def test_the_history_table_shows_number_time_operator_color_digests_result_and_message() -> None:
    table = render_history("staging", parse_history(CLI_HISTORY, STAGING_RULES))
    assert "   3  2026-11-20T10:05:00  update   succeeded   -" in table
    assert "api blue* blue=sha256:new green=sha256:old" in table
    assert "release promote api: active green -> blue [by alice]" in table


def released(engine: FakeEngine, api: Cluster, *images: str) -> None:
    for image in images:
        assert (
            deploy(ReleaseContext.for_tests(engine, engine.project_dir), api.request(image)).phase
            == "Healthy"
        )


def request(**options: Any) -> RollbackRequest:
    return RollbackRequest("staging", "bob", signer=TEST_SIGNER, **options)


def api_active(engine: FakeEngine) -> str:
    return engine.serving("staging", "api")


def test_rollback_restores_the_previous_release_by_flipping_two_services() -> None:
    engine = fake_engine()
    with cluster(engine) as api:
        released(engine, api, NEW_API)
        report = rollback(
            ReleaseContext.for_tests(engine, engine.project_dir), request(stable_urls=[api.stable_url])
        )
    assert report.phase == "Healthy" and report.exit_code == 0
    assert report.rollback is not None and report.rollback.mode == "targeted"
    assert len(engine.ups[-1].changed_urns) == 2
    assert api_active(engine) != NEW_API
    assert [step.name for step in report.steps] == ["rollback", "recheck api"]


def test_rollback_to_an_entry_number_works_on_the_file_backend() -> None:
    engine = fake_engine()
    with cluster(engine) as api:
        released(engine, api, NEW_API, NEWER_API)
        first_release = next(
            entry for entry in history_of(engine, "staging") if "active green -> blue" in entry.message
        )
        assert first_release.version == 0
        rollback(
            ReleaseContext.for_tests(engine, engine.project_dir),
            request(to_number=first_release.number, stable_urls=[api.stable_url]),
        )
    assert api_active(engine) == NEW_API


def test_rollback_to_an_entry_number_works_with_backend_versions() -> None:
    engine = fake_engine(numbered_versions=True)
    with cluster(engine) as api:
        released(engine, api, NEW_API)
        rollback(
            ReleaseContext.for_tests(engine, engine.project_dir),
            request(to_number=1, stable_urls=[api.stable_url]),
        )
    assert api_active(engine) != NEW_API
    assert engine.get_config("staging")[RELEASES_KEY].value["api"]["activeColor"] == "green"


def test_a_dry_run_prints_what_would_change_and_changes_nothing() -> None:
    engine = fake_engine()
    with cluster(engine) as api:
        released(engine, api, NEW_API)
        ups_before, config_before = len(engine.ups), engine.get_config("staging")
        report = rollback(ReleaseContext.for_tests(engine, engine.project_dir), request(dry_run=True))
    assert report.phase == "Planned" and report.exit_code == 0
    assert len(engine.ups) == ups_before and engine.get_config("staging") == config_before
    assert report.rollback is not None
    assert f"{RELEASES_KEY}.api.activeColor" in [change.key for change in report.rollback.changes]


def test_a_rollback_plan_names_the_digest_each_service_goes_back_to() -> None:
    engine = fake_engine()
    with cluster(engine) as api:
        before = api_active(engine)
        released(engine, api, NEW_API)
        report = rollback(ReleaseContext.for_tests(engine, engine.project_dir), request(dry_run=True))
    assert report.rollback is not None
    assert report.rollback.live_images == {"api": (NEW_API, before)}
    now, back = (image.split("@sha256:")[1][:12] for image in (NEW_API, before))
    assert f"  api: live sha256:{now} -> sha256:{back}" in report.rollback.render()
    assert report.rollback.to_json()["liveImages"] == {"api": {"now": NEW_API, "restored": before}}


def test_a_rollback_plan_says_once_that_project_level_keys_come_from_the_code() -> None:
    engine = fake_engine()
    with cluster(engine) as api:
        released(engine, api, NEW_API)
        report = rollback(ReleaseContext.for_tests(engine, engine.project_dir), request(dry_run=True))
    assert report.rollback is not None
    from_code = [note for note in report.rollback.not_restored if "come from the code" in note]
    assert len(from_code) <= 1


def test_restoring_more_than_a_flip_is_a_full_up_and_says_why() -> None:
    engine = fake_engine()
    with cluster(engine) as api:
        released(engine, api, NEW_API)
        scaled = engine.get_config("staging")[RELEASES_KEY].value
        scaled["web"].update(replicas=5, maxReplicas=10)
        engine.up("staging", {RELEASES_KEY: ConfigEntry(scaled)}, "scale web [by carol]")
        report = rollback(ReleaseContext.for_tests(engine, engine.project_dir), request(dry_run=True))
    assert report.rollback is not None and report.rollback.mode == "full"
    assert "web" in report.rollback.full_up_reason


def test_secrets_and_project_level_keys_are_never_restored_from_history() -> None:
    engine = fake_engine()
    current = engine.get_config("staging")
    project = validated_stack_config("staging", current, ProjectFile.read(engine.project_dir)).project
    target = parse_history(CLI_HISTORY, STAGING_RULES)[0]
    plan = plan_rollback("staging", current, target, project)
    assert f"{PROJECT_NAME}:appSecrets" not in plan.restore
    assert any("appSecrets: a secret" in note for note in plan.not_restored)


def test_a_rollback_past_a_non_backward_compatible_migration_needs_force_and_records_why() -> None:
    engine = fake_engine()
    with cluster(engine) as api:
        released(engine, api, NEW_API)
        # The same project, but api's migrations declared not backward compatible.
        project = validated_stack_config(
            "staging", engine.get_config("staging"), ProjectFile.read(engine.project_dir)
        ).project
        contract_only = project.model_copy(
            update={
                "services": [
                    spec.model_copy(
                        update={"migration": spec.migration.model_copy(update={"expand_contract": False})}
                    )
                    if spec.migration
                    else spec
                    for spec in project.services
                ]
            }
        )
        current = engine.get_config("staging")
        ctx = ReleaseContext.for_tests(engine, engine.project_dir)
        target = history_of(engine, "staging")[-1]  # the initial deploy
        plan = plan_rollback("staging", current, target, contract_only)
        assert [risk.digest for risk in plan.risks] == [NEW_API]
        rolling_back = ReleaseRecord(Event.ROLLBACK, "staging", "bob", reason="schema checked by bob, INC-42")
        with pytest.raises(RollbackRefusedError, match="expandContract: false"):
            restore(
                ctx, ReleaseReport("rollback", "staging"), plan, rolling_back, TEST_SIGNER, step="rollback"
            )
        assert engine.get_config("staging") == current
        restore(
            ctx,
            ReleaseReport("rollback", "staging"),
            plan,
            rolling_back,
            TEST_SIGNER,
            step="rollback",
            force=True,
        )
    written = parse_record(engine.ups[-1].message)
    assert written is not None and written.record is not None and written.record.actor == "bob"
    assert written.record.reason == "forced past migration risks: schema checked by bob, INC-42"


def test_a_rollback_while_another_update_runs_fails_fast() -> None:
    engine = fake_engine()
    engine.stacks["staging"].history[0]["result"] = "in-progress"
    with pytest.raises(ConcurrentReleaseError):
        rollback(ReleaseContext.for_tests(engine, engine.project_dir), request())


def test_rolling_back_to_an_entry_that_does_not_exist_names_the_entries_there_are() -> None:
    engine = fake_engine()
    with pytest.raises(HistoryError, match="no history entry 99; the newest are: 1"):
        rollback(ReleaseContext.for_tests(engine, engine.project_dir), request(to_number=99))


def test_the_history_json_lists_active_color_and_digests_per_service() -> None:
    engine = fake_engine()
    entry = history_of(engine, "staging")[0].to_json()
    assert entry["services"]["api"]["activeColor"] == "green"
    assert set(entry["services"]["api"]["images"]) == {"blue", "green"}
    json.dumps(entry)


BROKEN_RELEASE = {
    "api": {"replicas": "two", "activeColor": "blue", "images": {"blue": NEW_API, "green": NEW_API}}
}


def test_a_release_that_is_not_valid_today_is_shown_as_recorded_but_never_restored() -> None:
    """An update whose `releases` the model no longer accepts (written by hand, or before a schema
    change) still shows in history as it was; rolling back to it is refused with the reason."""
    engine = fake_engine()
    engine.stacks["staging"].history.insert(0, update("2026-11-24T09:00", config=BROKEN_RELEASE, signer=None))
    broken = history_of(engine, "staging")[0]
    assert "api" not in broken.services  # not a release the tool can act on
    assert broken.to_json()["services"]["api"] == {
        "activeColor": "blue",
        "images": {"blue": NEW_API, "green": NEW_API},
    }
    assert "api blue*" in render_history("staging", [broken])
    with pytest.raises(HistoryError, match="releases of api that are not valid releases"):
        rollback(ReleaseContext.for_tests(engine, engine.project_dir), request(to_number=broken.number))


def test_an_automatic_rollback_with_known_stable_urls_asks_the_engine_for_nothing_more() -> None:
    engine = fake_engine()
    with cluster(engine) as api:
        api.bad_when_stable.add(NEW_API)
        report = deploy(ReleaseContext.for_tests(engine, engine.project_dir), api.request(NEW_API))
    assert report.phase == "RolledBack"
    assert [call for call in engine.calls if call[0] == "outputs"] == [("outputs", "staging")]  # planning
