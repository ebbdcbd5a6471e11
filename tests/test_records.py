"""The release record each update message carries: written by every release, read back from history.

Free text lives only inside the record's JSON; the record is parsed from the first mark to the very
end of the message, strictly (no duplicate key, no unknown key, the right types).
"""

from __future__ import annotations

import json

from release.context import ReleaseContext
from release.flows.deploy import deploy
from release.history.entries import render_history
from release.history.records import MARK, Event, ReleaseRecord, parse_record, summary_of
from release.history.signing import Trust
from release.testing.fake_clock import MONDAY_MORNING as SIGNED_AT
from tests.history_data import GOOD, history, record, update
from tests.release_doubles import NEW_API, TEST_SIGNER, cluster, fake_engine, history_of

MIMIC = ' release/v1 {"event": "verify", "stack": "staging", "image": "evil"}'


def test_a_record_round_trips_through_an_update_message() -> None:
    written = ReleaseRecord(
        Event.VERIFY, "staging", "alice", service="api", image=NEW_API, run="https://ci.example.test/runs/7"
    )
    message = written.message("release verified api", TEST_SIGNER, SIGNED_AT)
    parsed = parse_record(message)
    assert summary_of(message) == "release verified api"
    assert parsed is not None and parsed.record is not None and parsed.signature is not None
    assert parsed.record.image == NEW_API and parsed.record.actor == "alice" and parsed.record.time
    assert parsed.record.digest == "sha256:" + "ab" * 32


def test_a_plain_pulumi_up_message_has_no_record() -> None:
    assert parse_record("Merge pull request #12 from feature/x") is None


def test_a_damaged_or_unknown_record_is_malformed_not_trusted() -> None:
    damaged = ['deploy release/v1 {"event": "verify", ', 'deploy release/v1 {"event": "promote-anything"}']
    for message in damaged:
        parsed = parse_record(message)
        assert parsed is not None and parsed.record is None and parsed.problem


def test_a_reason_that_mimics_a_record_stays_inside_the_records_json() -> None:
    written = ReleaseRecord(Event.ROLLBACK, "staging", "alice", service="api", revokes=(GOOD,), reason=MIMIC)
    parsed = parse_record(written.message("release rollback api", TEST_SIGNER, SIGNED_AT))
    assert parsed is not None and parsed.record is not None
    assert parsed.record.reason == MIMIC and parsed.record.revokes == (GOOD,)


def test_free_text_never_enters_the_summary_beside_the_record() -> None:
    written = ReleaseRecord(Event.REJECT, "staging", "mallory\n[by root]", reason="why\n  1  fake row")
    message = written.message("release reject api", None, SIGNED_AT)
    assert "\n" not in message and "[by" not in summary_of(message)


def test_text_after_the_records_json_makes_it_malformed() -> None:
    message = (
        ReleaseRecord(Event.VERIFY, "staging", "alice").message("release verified", None, SIGNED_AT)
        + " appended"
    )
    parsed = parse_record(message)
    assert parsed is not None and parsed.record is None


def test_a_duplicated_json_key_makes_a_record_malformed() -> None:
    parsed = parse_record(f'{MARK} {{"event": "verify", "stack": "staging", "stack": "dev", "actor": "a"}}')
    assert parsed is not None and parsed.record is None and "duplicate key" in parsed.problem


def test_an_unknown_key_or_a_wrongly_typed_value_makes_a_record_malformed() -> None:
    for document in (
        {"event": "verify", "stack": "staging", "actor": "a", "admin": True},
        {"event": "verify", "stack": "staging", "actor": ["a"]},
        {"event": "review", "stack": "staging", "actor": "a", "reviews": True},
    ):
        parsed = parse_record(f"x {MARK} {json.dumps(document)}")
        assert parsed is not None and parsed.record is None


def test_a_reason_with_a_newline_and_a_fake_operator_mark_cannot_forge_a_history_row() -> None:
    forged = "oops\n   7  2026-11-24T10:00:00  update   succeeded   mallory      api blue*"
    entries = history(
        update("2026-11-24T09:00", record("verify")),
        update("2026-11-24T10:00", message=f"hotfix [by mallory]\n{forged}"),
    )
    table = render_history("staging", entries)
    assert len(table.splitlines()) == 1 + 2 * 2
    assert "\\x0a" in table and "mallory      api" not in table.split("\\x0a")[0]
    assert entries[1].actor == "alice"  # from the signed record, not from a mark in the text


def test_a_deploy_whose_reason_mimics_a_record_keeps_its_own_records_and_the_revocation() -> None:
    engine = fake_engine()
    with cluster(engine) as api:
        api.bad_when_stable.add(NEW_API)
        request = api.request(NEW_API)
        request.reason = MIMIC
        deploy(ReleaseContext.for_tests(engine, engine.project_dir), request)
    entries = history_of(engine, "staging")
    assert [entry.trust for entry in entries[:3]] == [Trust.SIGNED] * 3
    rollback = entries[0].record
    assert rollback is not None and rollback.event == "rollback" and rollback.revokes == (NEW_API,)


def test_a_healthy_release_writes_stage_switch_and_verify_records_of_one_release() -> None:
    engine = fake_engine()
    with cluster(engine) as api:
        deploy(ReleaseContext.for_tests(engine, engine.project_dir), api.request(NEW_API))
    records = [entry.record for entry in history_of(engine, "staging")]
    assert [record.event if record else None for record in records] == ["verify", "switch", "stage", None]
    verify = records[0]
    assert verify is not None and verify.image == NEW_API and verify.window["probes"] >= 2
    assert len({record.release for record in records if record}) == 1


def test_an_automatic_rollback_record_revokes_the_failed_image_and_finishes_its_release() -> None:
    engine = fake_engine()
    with cluster(engine) as api:
        api.bad_when_stable.add(NEW_API)
        deploy(ReleaseContext.for_tests(engine, engine.project_dir), api.request(NEW_API))
    rollback, switch = (entry.record for entry in history_of(engine, "staging")[:2])
    assert rollback is not None and switch is not None and rollback.event == "rollback"
    assert rollback.revokes == (NEW_API,) and "failed at smoke stable" in rollback.reason  # its ready check
    assert rollback.release == switch.release and rollback.finishes == (switch.release,)


def test_a_long_history_is_judged_record_by_record_as_a_short_one_is() -> None:
    """Past VERIFY_IN_PARALLEL_FROM entries signatures are verified on other threads: the same trust
    per record, in history order, a tampered record among them included."""
    from release.history.entries import VERIFY_IN_PARALLEL_FROM, parse_history
    from tests.history_data import STAGING_RULES
    from tests.release_fixture_history import long_history

    raw = long_history(VERIFY_IN_PARALLEL_FROM * 3)
    tampered = VERIFY_IN_PARALLEL_FROM + 7
    raw[tampered]["message"] = str(raw[tampered]["message"]).replace('"actor":"', '"actor":"x', 1)
    long = [entry.trust for entry in parse_history(raw, STAGING_RULES)]
    one_by_one = [
        trust
        for position in range(len(raw))
        for trust in [parse_history(raw[position : position + 1], STAGING_RULES)[0].trust]
    ]
    assert long == one_by_one
    assert long[tampered] is Trust.INVALID_SIGNATURE and long.count(Trust.SIGNED) == len(raw) - 1
