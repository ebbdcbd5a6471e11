"""The release record each update message carries: written by every release, read back from history."""

from __future__ import annotations

from release.deploy import deploy
from release.history import parse_history
from release.records import ReleaseRecord, parse_record, summary_of
from tests.conftest import ROOT
from tests.release_doubles import NEW_API, cluster, fake_engine


def test_a_record_round_trips_through_an_update_message() -> None:
    record = ReleaseRecord(
        "verify", "staging", "alice", service="api", image=NEW_API, run="https://ci.example.test/runs/7"
    )
    message = record.message("release verified api")
    assert summary_of(message) == "release verified api [by alice]"
    assert parse_record(message) == record
    assert record.digest == "sha256:" + "ab" * 32


def test_a_plain_pulumi_up_message_has_no_record() -> None:
    assert parse_record("Merge pull request #12 from feature/x") is None


def test_a_damaged_or_unknown_record_is_ignored_not_trusted() -> None:
    assert parse_record('deploy release/v1 {"event": "verify", ') is None
    assert parse_record('deploy release/v1 {"event": "promote-anything"}') is None


def test_a_healthy_release_writes_stage_switch_and_verify_records() -> None:
    engine = fake_engine()
    with cluster(engine) as api:
        deploy(engine, api.request(NEW_API), ROOT)
    records = [entry.record for entry in parse_history(engine.history("staging"))]
    assert [record.event if record else None for record in records] == ["verify", "switch", "stage", None]
    verify = records[0]
    assert verify is not None and verify.image == NEW_API and verify.window["probes"] >= 2


def test_an_automatic_rollback_record_revokes_the_failed_image() -> None:
    engine = fake_engine()
    with cluster(engine) as api:
        api.bad_when_stable.add(NEW_API)
        deploy(engine, api.request(NEW_API), ROOT)
    rollback = parse_history(engine.history("staging"))[0].record
    assert rollback is not None and rollback.event == "rollback"
    assert rollback.revokes == (NEW_API,) and "failed at verify" in rollback.reason
