"""The chain of records (issue 23, items 8, 2 and 3): each record names the one before it on its stack
and its place; a replayed or forked record never counts, order comes from the chain and never from
a signer's clock, and a signed time inconsistent with the chain proves no age.

Histories shaped exactly like the CLI's (tests/history_data.py), records written by the flows and the
CLI against the engine double; approvals from a real server that answers like GitHub's API.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from core.config.sources import ConfigEntry, project_settings
from core.errors import ConcurrentReleaseError
from release.cli import main
from release.context import ReleaseContext
from release.flows.deploy import deploy
from release.gates import decide_promotion, evidence_for
from release.history.chain import Standing, genesis
from release.history.entries import HistoryEntry, render_history
from release.history.records import parse_record
from release.history.signing import Signer, generate_key_pair
from release.history.writer import RecordChains
from release.testing.fake_clock import MONDAY_MORNING, FakeClock
from release.testing.fake_engine import FakeEngine
from tests.github_api import approvals, review, serve_api
from tests.history_data import GOOD, Chain, history, record, update
from tests.release_doubles import (
    FAST_BLUE_GREEN,
    NEW_API,
    TEST_KEYS,
    TEST_SIGNER,
    Cluster,
    chained_message,
    cluster,
    history_of,
    record_drill,
    signed_project,
)

# --------------------------------------------------------------------------------------------------
# The chain itself
# --------------------------------------------------------------------------------------------------


def test_each_record_the_tool_writes_names_the_record_before_it_and_its_place() -> None:
    engine = FakeEngine(project_dir=signed_project())
    engine.add_stack("staging", edit=FAST_BLUE_GREEN)
    with cluster(engine) as api:
        deploy(ReleaseContext.for_tests(engine, engine.project_dir), api.request(NEW_API))
    stage, switch, verify = (entry.record for entry in reversed(history_of(engine, "staging")[:3]))
    assert stage is not None and switch is not None and verify is not None
    assert (stage.seq, switch.seq, verify.seq) == (1, 2, 3)
    assert stage.prev == genesis("staging")
    assert switch.prev == stage.hash() and verify.prev == switch.hash()
    assert all(
        entry.link and entry.link.standing is Standing.CHAINED for entry in history_of(engine, "staging")[:3]
    )


def test_a_release_reads_history_once_and_chains_each_up_onto_the_record_just_written() -> None:
    engine = FakeEngine(project_dir=signed_project())
    engine.add_stack("staging", edit=FAST_BLUE_GREEN)
    engine.calls.clear()
    with cluster(engine) as api:
        api.bad_when_stable.add(NEW_API)  # stage, switch, then the automatic rollback
        deploy(ReleaseContext.for_tests(engine, engine.project_dir), api.request(NEW_API))
    assert engine.calls.count(("history", "staging")) == 1
    links = [entry.link for entry in reversed(history_of(engine, "staging")) if entry.link]
    assert [(link.standing, link.seq) for link in links] == [(Standing.CHAINED, seq) for seq in (1, 2, 3)]


def test_a_record_whose_up_raised_is_not_the_head_the_next_record_names() -> None:
    engine = FakeEngine(project_dir=signed_project())
    engine.add_stack("staging", edit=FAST_BLUE_GREEN)
    chains = RecordChains(lambda stack: history_of(engine, stack))
    engine.hold_lock("bob: pulumi up")  # the update never reaches history
    with (
        pytest.raises(ConcurrentReleaseError),
        chains.writing("staging", record("stage"), "release deploy", TEST_SIGNER, engine.clock()) as message,
    ):
        engine.up("staging", {}, message)
    engine.hold_lock("")
    with chains.writing(
        "staging", record("rollback"), "release rollback", TEST_SIGNER, engine.clock()
    ) as message:
        engine.up("staging", {}, message)
    (written, *_) = history_of(engine, "staging")
    assert written.link is not None and written.link.standing is Standing.CHAINED and written.link.seq == 1


def test_a_copy_of_a_counted_record_is_replayed_and_never_counts() -> None:
    chain = Chain()
    verify = update("2026-11-24T09:00", record("verify"), chain=chain)
    entries = history(
        verify,
        update("2026-11-24T10:00", record("rollback", image="", revokes=(GOOD,)), chain=chain),
        {**verify, "startTime": "2026-11-24T11:00:00.000Z", "endTime": "2026-11-24T11:00:00.000Z"},
    )
    assert entries[0].link is not None and entries[0].link.standing is Standing.REPLAYED
    assert entries[0].record is None and "a copy of entry 1's record" in entries[0].link.detail
    assert evidence_for("staging", entries, "api", GOOD, live=True).revoked is entries[1]


def test_two_records_naming_the_same_predecessor_fork_and_the_first_in_history_counts() -> None:
    first, second = Chain(), Chain()  # two writers that read the same head
    entries = history(
        update("2026-11-24T09:00", record("verify", actor="alice"), chain=first),
        update("2026-11-24T09:05", record("reject", image="", revokes=(GOOD,), actor="bob"), chain=second),
        update("2026-11-24T09:10", record("verify", actor="bob"), chain=second),
    )
    standings = [entry.link.standing if entry.link else None for entry in reversed(entries)]
    assert standings == [Standing.CHAINED, Standing.FORKED, Standing.FORKED]
    assert "which entry 1's record already follows" in (entries[1].link.detail if entries[1].link else "")
    assert "extends the fork at entry 2" in (entries[0].link.detail if entries[0].link else "")


def test_a_record_without_a_predecessor_after_the_chain_began_is_replayed() -> None:
    chain = Chain()
    entries = history(
        update("2026-11-24T09:00", record("rollback", image="", revokes=(GOOD,)), chain=chain),
        update("2026-11-24T10:00", record("verify")),  # signed, but with no prev/seq
    )
    assert entries[0].link is not None and entries[0].link.standing is Standing.REPLAYED
    assert entries[0].record is None


def test_a_record_naming_a_predecessor_the_chain_does_not_hold_is_replayed() -> None:
    elsewhere = Chain()
    elsewhere.link(record("stage"))  # a record that never reached this history
    entries = history(update("2026-11-24T09:00", record("verify"), chain=elsewhere))
    assert entries[0].link is not None and entries[0].link.standing is Standing.REPLAYED
    assert "names a predecessor the chain does not hold" in entries[0].link.detail


def test_records_from_before_the_chain_count_and_the_first_new_record_chains_onto_the_newest() -> None:
    engine = FakeEngine(project_dir=signed_project())
    engine.add_stack("staging", edit=FAST_BLUE_GREEN)
    old = update("2026-11-22T09:00", record("reject", image="", revokes=(GOOD,)))  # no prev/seq
    engine.up("staging", {}, str(old["message"]))
    with cluster(engine) as api:
        deploy(ReleaseContext.for_tests(engine, engine.project_dir), api.request(NEW_API))
    entries = history_of(engine, "staging")
    before, stage = entries[3], entries[2]
    assert before.link is not None and before.link.standing is Standing.BEFORE_CHAIN and before.counted
    assert stage.claimed is not None and stage.claimed.record is not None
    assert stage.claimed.record.prev == before.link.hash and stage.claimed.record.seq == 1
    assert stage.counted


def test_a_record_signed_by_a_key_no_longer_trusted_ends_the_chain_there() -> None:
    """What removing a leaked key from trustedKeys does: its records stop counting, and so does every
    record chained after the first of them (each names a predecessor that no longer counts)."""
    chain, removed = Chain(), Signer.from_text(generate_key_pair().private_key)
    entries = history(
        update("2026-11-24T09:00", record("verify"), chain=chain),
        update("2026-11-24T09:10", record("reject", image="", revokes=(GOOD,)), chain=chain, signer=removed),
        update("2026-11-24T09:20", record("verify"), chain=chain),
    )
    assert [entry.standing for entry in reversed(entries)] == ["chained", "untrusted key", "replayed"]


# --------------------------------------------------------------------------------------------------
# Item 2: replaying an old signed message
# --------------------------------------------------------------------------------------------------

GITHUB_RUN = {
    "GITHUB_ACTIONS": "true",
    "GITHUB_REPOSITORY": "team/platform",
    "GITHUB_RUN_ID": "77",
    "GITHUB_ACTOR": "alice",
    "GITHUB_SHA": "3f786850e387550fdab836ed7e6dc881de23001b",
    "GITHUB_TOKEN": "test-only-token-value",
}
UNSET = ("GITHUB_TRIGGERING_ACTOR", "GITHUB_RUN_ATTEMPT", "GITHUB_STEP_SUMMARY", "RELEASE_WEBHOOK_URL")


@contextmanager
def staging_and_production() -> Iterator[tuple[FakeEngine, Cluster, Cluster]]:
    engine = FakeEngine(project_dir=signed_project())
    for name in ("staging", "production"):
        engine.add_stack(name, edit=dict(FAST_BLUE_GREEN))
    with ExitStack() as stack:
        yield (
            engine,
            stack.enter_context(cluster(engine, "staging")),
            stack.enter_context(cluster(engine, "production")),
        )


def promote_with_the_cli(
    engine: FakeEngine, production: Cluster, monkeypatch: pytest.MonkeyPatch, now: datetime
) -> int:
    """`release promote staging production --service api` as the release workflow runs it at `now`:
    in GitHub Actions, bob approved the production environment, the signing key is the test's."""
    engine.clock.set(now)
    with serve_api(approvals(review("approved", "bob"))) as api_url:
        for name, value in {**GITHUB_RUN, "GITHUB_API_URL": api_url}.items():
            monkeypatch.setenv(name, value)
        for name in UNSET:
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("RELEASE_SIGNING_KEY", TEST_KEYS.private_key)
        argv = ["promote", "staging", "production", "--service", "api"]
        argv += ["--preview-url", production.preview_url, "--stable-url", production.stable_url]
        return main([*argv, "--project-dir", str(engine.project_dir)], lambda _: engine, engine.clock)


def verified_in_staging(engine: FakeEngine, staging: Cluster) -> datetime:
    report = deploy(ReleaseContext.for_tests(engine, engine.project_dir), staging.request(NEW_API))
    assert report.phase == "Healthy", report.render()
    return engine.clock()


def test_a_replayed_passing_drill_after_a_failed_one_does_not_pass_the_drill_gate(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with staging_and_production() as (engine, staging, production):
        engine.clock.set(MONDAY_MORNING - timedelta(days=10))
        record_drill(engine, "production", "Passed", at=engine.clock())
        passed = history_of(engine, "production")[0].message
        engine.clock.set(MONDAY_MORNING - timedelta(days=1))
        record_drill(engine, "production", "Failed", at=engine.clock())
        engine.clock.set(MONDAY_MORNING)
        verified = verified_in_staging(engine, staging)
        engine.up("production", {}, passed)  # `pulumi up -m '<the old message>'`
        engine.ups.clear()
        code = promote_with_the_cli(engine, production, monkeypatch, verified + timedelta(minutes=31))
    error = capsys.readouterr().err
    assert code == 2, error
    assert "[recent-drill] production's newest restore drill Failed" in error
    assert engine.ups == []


def staging_with_a_replayed_verify(summary: str) -> FakeEngine:
    """Staging after a release, then a plain `up` that writes the release's verify record again
    behind `summary`."""
    engine = FakeEngine(project_dir=signed_project())
    engine.add_stack("staging", edit=FAST_BLUE_GREEN)
    with cluster(engine) as api:
        deploy(ReleaseContext.for_tests(engine, engine.project_dir), api.request(NEW_API))
    verify = history_of(engine, "staging")[0]
    record_text = verify.message[verify.message.index("release/v1") :]
    engine.up("staging", {}, f"{summary} {record_text}")
    return engine


def test_release_history_renders_a_record_from_its_signed_fields_and_marks_a_replay(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    other = "registry.example.test/platform/api@sha256:" + "ef" * 32
    engine = staging_with_a_replayed_verify(f"release verified api: {other} healthy on staging")
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    code = main(
        ["history", "staging", "--wide", "--project-dir", str(engine.project_dir)],
        lambda _: engine,
        engine.clock,
    )
    table = capsys.readouterr().out
    assert code == 0
    replay_line, verify_line = (line for line in table.splitlines() if "release verif" in line)
    assert replay_line.lstrip().startswith("[replayed: not counted] release verified api: " + other)
    assert verify_line.lstrip().startswith(f"[#3] release verify api {NEW_API}")
    assert "healthy on staging" not in verify_line  # not the free text in front of the record


def test_release_history_shows_one_short_line_per_entry_with_its_trust_mark(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    engine = staging_with_a_replayed_verify("release verified api: healthy on staging")
    engine.up("staging", {}, "hand-run pulumi up " + "x" * 500)
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    argv = ["history", "staging", "--project-dir", str(engine.project_dir)]
    assert main(argv, lambda _: engine, engine.clock) == 0
    lines = capsys.readouterr().out.splitlines()[1:]
    assert len(lines) == len(history_of(engine, "staging")) and max(map(len, lines)) <= 160
    foreign, replay, verified = lines[:3]
    assert foreign.endswith("[no record] hand-run pulumi up " + "x" * 21 + "…")
    assert replay.endswith("[replayed, not counted] verify api")
    assert verified.endswith(f"[signed #3] verify api sha256:{NEW_API.split(':')[-1][:12]}")


# --------------------------------------------------------------------------------------------------
# Item 3: a signer whose clock runs ahead
# --------------------------------------------------------------------------------------------------

NOW = datetime.fromisoformat("2026-11-24T09:00+00:00")


def fast_clock_then_revocation() -> list[HistoryEntry]:
    """A verify of GOOD signed by a clock three hours ahead, then a rollback revoking it ten minutes
    later (a right clock), on the chain."""
    chain = Chain()
    ahead = record("verify", time="2026-11-24T12:00:00.000Z")
    return history(
        update("2026-11-24T09:00", ahead, chain=chain),
        update("2026-11-24T09:10", record("rollback", image="", revokes=(GOOD,)), chain=chain),
    )


def test_a_revocation_after_a_verify_signed_by_a_fast_clock_revokes_it() -> None:
    entries = fast_clock_then_revocation()
    evidence = evidence_for("staging", entries, "api", GOOD, live=True, signed_only=True)
    assert evidence.verified is entries[1] and evidence.revoked is entries[0]


def test_signed_times_that_run_backwards_along_the_chain_are_marked_on_both_records() -> None:
    verify, rollback = reversed(fast_clock_then_revocation())
    assert "after entry 2's record" in verify.time_problem(NOW)
    assert "before entry 1's record" in rollback.time_problem(NOW)


def test_a_verification_signed_in_the_future_proves_no_age_and_is_no_evidence() -> None:
    entries = history(
        update("2026-11-24T09:00", record("verify", time="2026-11-24T12:00:00.000Z"), chain=Chain())
    )
    evidence = evidence_for("staging", entries, "api", GOOD, live=True, signed_only=True)
    assert "in the future: a signer's clock is wrong" in entries[0].time_problem(NOW)
    assert not evidence.holds(NOW)
    gate = project_settings(signed_project()).stack_policies["production"].promotion
    decision = decide_promotion(
        "production", gate, "staging", evidence, NOW + timedelta(minutes=10), "alice", None, None
    )
    assert decision.allowed is False
    rules = [violation.rule for violation in decision.violations]
    assert "verified" in rules and "soak" not in rules


def test_a_digest_revoked_after_a_fast_clock_verify_is_refused_when_live_again(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with staging_and_production() as (engine, staging, production):
        record_drill(engine, "production")
        ahead = FakeClock(MONDAY_MORNING + timedelta(hours=3))  # the signer's clock runs 3 h ahead
        released = deploy(
            ReleaseContext.for_tests(engine, engine.project_dir, clock=ahead), staging.request(NEW_API)
        )
        assert released.phase == "Healthy", released.render()
        verified_entry = history_of(engine, "staging")[0].number
        engine.clock.set(MONDAY_MORNING + timedelta(minutes=10))
        monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
        monkeypatch.setenv("RELEASE_SIGNING_KEY", TEST_KEYS.private_key)
        project = ["--project-dir", str(engine.project_dir), "--stable-url", staging.stable_url]
        back = ["rollback", "staging", "--reason", "checkout errors", "--actor", "carol", *project]
        assert main(back, lambda _: engine, engine.clock) == 0, capsys.readouterr()
        again = [*back[:2], "--to-version", str(verified_entry), *back[2:]]
        assert main(again, lambda _: engine, engine.clock) == 0, capsys.readouterr()
        assert engine.serving("staging", "api") == NEW_API
        capsys.readouterr()
        engine.ups.clear()
        code = promote_with_the_cli(engine, production, monkeypatch, MONDAY_MORNING + timedelta(hours=4))
    error = capsys.readouterr().err
    assert code == 2, error
    assert "[verified]" in error and "revoked by entry" in error
    assert engine.ups == []


# --------------------------------------------------------------------------------------------------
# release audit --verify, release status
# --------------------------------------------------------------------------------------------------


def audit_verify(engine: FakeEngine, capsys: pytest.CaptureFixture[str], *options: str) -> tuple[int, str]:
    argv = ["audit", "staging", "--verify", *options, "--project-dir", str(engine.project_dir)]
    code = main(argv, lambda _: engine, engine.clock)
    return code, capsys.readouterr().out


def released_staging() -> FakeEngine:
    engine = FakeEngine(project_dir=signed_project())
    engine.add_stack("staging", edit=FAST_BLUE_GREEN)
    with cluster(engine) as api:
        deploy(ReleaseContext.for_tests(engine, engine.project_dir), api.request(NEW_API))
    return engine


def test_audit_verify_prints_the_head_and_length_of_an_intact_chain_and_exits_0(
    capsys: pytest.CaptureFixture[str],
) -> None:
    engine = released_staging()
    head = history_of(engine, "staging")[0].link
    assert head is not None
    code, out = audit_verify(engine, capsys)
    assert code == 0, out
    assert f"chain of staging: head {head.hash[:12]} (#3): 3 records chained, 0 from before the chain" in out
    assert "intact" in out


def test_audit_verify_names_the_first_break_and_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    engine = released_staging()
    stage = history_of(engine, "staging")[2]
    engine.up("staging", {}, stage.message)  # replayed
    number = history_of(engine, "staging")[0].number
    code, out = audit_verify(engine, capsys)
    assert code == 1, out
    assert f"first break: entry {number}: replayed: a copy of entry {stage.number}'s record" in out
    code, out = audit_verify(engine, capsys, "--json")
    chains = json.loads(out)["chains"]
    assert code == 1 and chains[0]["breaks"][0]["entry"] == number


def test_status_shows_the_head_of_each_stacks_chain(capsys: pytest.CaptureFixture[str]) -> None:
    engine = released_staging()
    head = history_of(engine, "staging")[0].link
    assert head is not None
    main(["status", "--project-dir", str(engine.project_dir)], lambda _: engine, engine.clock)
    out = capsys.readouterr().out
    assert "chain of records per stack" in out
    assert any(line.split()[:3] == ["staging", head.hash[:12], "3"] for line in out.splitlines())


def test_a_chained_unsigned_record_counts_in_a_stack_that_does_not_require_signatures() -> None:
    engine = FakeEngine(project_dir=signed_project())
    engine.add_stack("dev", edit=FAST_BLUE_GREEN)
    releases = engine.get_config("dev")["platform:releases"].value
    message = chained_message(engine, "dev", replace(record("verify"), stack="dev"), "release verify", None)
    engine.up("dev", {"platform:releases": ConfigEntry(releases)}, message)
    (entry, *_) = history_of(engine, "dev")
    parsed = parse_record(entry.message)
    assert parsed is not None and parsed.signature is None
    assert entry.link is not None and entry.link.standing is Standing.CHAINED and entry.counted


def test_render_history_marks_a_counted_records_inconsistent_time() -> None:
    table = render_history("staging", fast_clock_then_revocation(), NOW)
    assert "[#1, time inconsistent: signed 2026-11-24T12:00:00+00:00" in table


def test_a_gate_says_a_verify_record_is_replayed_and_why_rather_than_missing() -> None:
    elsewhere = Chain()
    elsewhere.link(record("stage"))  # a record that never reached this history
    entries = history(update("2026-11-24T09:00", record("verify"), chain=elsewhere))
    described = evidence_for("staging", entries, "api", GOOD, live=True).describe()
    assert "is replayed (names a predecessor the chain does not hold)" in described
    assert "verify the digest again" in described


def test_a_gate_says_a_verify_record_is_on_a_fork_of_the_chain() -> None:
    first, second = Chain(), Chain()  # two writers that read the same head
    entries = history(
        update("2026-11-24T09:00", record("stage", actor="alice"), chain=first),
        update("2026-11-24T09:10", record("verify", actor="bob"), chain=second),
    )
    described = evidence_for("staging", entries, "api", GOOD, live=True).describe()
    assert "is on a fork of the stack's chain (names" in described and "release audit --verify" in described
