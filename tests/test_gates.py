"""Promotion gates as plain functions over parsed history: one behaviour per test."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from core.config.project import FreezeWindow, PromotionGate
from release.gates import (
    ASSERTED,
    GITHUB_ENVIRONMENT,
    Approval,
    break_glass_problem,
    decide_promotion,
    evidence_for,
    open_freeze_window,
)
from tests.history_data import BAD, GOOD, history, record, update

PRODUCTION = PromotionGate(
    promote_from="staging",
    min_soak_minutes=30,
    max_verification_age_hours=72,
    require_approval=True,
    four_eyes=True,
    approval_environment="production",
    freeze_windows=[FreezeWindow(starts="Fri 16:00", ends="Mon 08:00", time_zone="Europe/Berlin")],
)
TUESDAY_NOON = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
APPROVED = Approval(ASSERTED, "CHG-1234", ("bob",))
VERIFIED_AT_9 = [update("2026-11-24T09:00", record("stage")), update("2026-11-24T09:10", record("verify"))]


def decide(
    entries: list[dict[str, Any]], image: str = GOOD, live: bool = True, **options: object
) -> list[str]:
    evidence = evidence_for("staging", history(*entries), "api", image, live)
    arguments: dict[str, Any] = {
        "target": "production",
        "gate": PRODUCTION,
        "source": "staging",
        "evidence": evidence,
        "now": TUESDAY_NOON,
        "actor": "alice",
        "approval": APPROVED,
        "break_glass_reason": None,
        **options,
    }
    return [violation.rule for violation in decide_promotion(**arguments).violations]


def test_a_verified_soaked_approved_digest_may_be_promoted() -> None:
    assert decide(VERIFIED_AT_9) == []


def test_a_digest_never_deployed_in_the_source_is_refused() -> None:
    assert decide([], image=BAD) == ["verified"]


def test_a_deployed_but_unverified_digest_is_refused() -> None:
    assert decide([update("2026-11-24T09:00", record("stage"))]) == ["verified"]


def test_a_later_automatic_rollback_revokes_the_verification() -> None:
    entries = [*VERIFIED_AT_9, update("2026-11-24T10:00", record("rollback", image="", revokes=(GOOD,)))]
    assert decide(entries) == ["verified"]


def test_a_later_failed_release_of_the_same_digest_revokes_the_verification() -> None:
    entries = [*VERIFIED_AT_9, update("2026-11-24T10:00", record("switch"), result="failed")]
    assert decide(entries) == ["verified"]


def test_a_new_verification_after_a_revocation_counts_again() -> None:
    entries = [
        update("2026-11-24T08:00", record("verify")),
        update("2026-11-24T08:30", record("rollback", image="", revokes=(GOOD,))),
        *VERIFIED_AT_9,
    ]
    assert decide(entries) == []


def test_a_rejected_digest_is_refused_even_with_break_glass() -> None:
    entries = [*VERIFIED_AT_9, update("2026-11-24T10:00", record("reject", image="", revokes=(GOOD,)))]
    rules = decide(entries, break_glass_reason="the payment outage needs this fix")
    assert "rejected" in rules


def test_a_digest_younger_than_the_soak_time_is_refused() -> None:
    entries = [update("2026-11-24T11:45", record("verify"))]
    assert decide(entries) == ["soak"]


def test_a_digest_no_longer_live_in_the_source_is_refused() -> None:
    assert decide(VERIFIED_AT_9, live=False) == ["soak"]


def test_a_verification_older_than_the_maximum_age_is_refused() -> None:
    entries = [update("2026-11-20T09:00", record("verify"))]
    assert decide(entries) == ["fresh"]


def test_promotion_that_skips_a_stage_is_refused() -> None:
    assert decide(VERIFIED_AT_9, source="dev") == ["stage"]


def test_nothing_is_promoted_into_an_entry_stage() -> None:
    assert "stage" in decide(VERIFIED_AT_9, gate=PromotionGate(), target="dev")


def test_production_without_approval_is_refused() -> None:
    assert decide(VERIFIED_AT_9, approval=None) == ["approval"]


def test_an_approver_who_is_also_the_releaser_is_refused_where_four_eyes_are_required() -> None:
    assert decide(VERIFIED_AT_9, approval=Approval(ASSERTED, "CHG-1", ("Alice",))) == ["four-eyes"]


def proven(
    *approvers: str, run_actor: str = "alice", triggering_actor: str = "", commit_author: str = "alice"
) -> Approval:
    """An approval read from GitHub's review history of a run `run_actor` started, of a commit by
    `commit_author` ('' when GitHub links the commit to no account)."""
    return Approval(
        GITHUB_ENVIRONMENT,
        "https://github.com/acme/platform/actions/runs/4242",
        approvers,
        environment="production",
        run_actor=run_actor,
        read_at="2026-11-24T12:00:00Z",
        triggering_actor=triggering_actor or run_actor,
        commit_author=commit_author,
        commit_author_name="Erin Example",
    )


def test_an_approval_by_whoever_re_ran_someone_elses_run_is_not_four_eyes() -> None:
    # alice pushed, bob re-ran the run and approved it himself: bob is the person releasing
    re_run = proven("bob", run_actor="alice", triggering_actor="bob")
    assert decide(VERIFIED_AT_9, approval=re_run, actor="bob") == ["four-eyes"]
    assert decide(VERIFIED_AT_9, approval=re_run, actor="alice") == ["four-eyes"]


def test_an_approval_by_someone_other_than_the_runs_actors_counts() -> None:
    assert decide(VERIFIED_AT_9, approval=proven("carol", triggering_actor="bob"), actor="bob") == []


def test_an_approval_by_the_author_of_the_runs_commit_is_not_four_eyes() -> None:
    # erin wrote the commit, alice runs the release, erin approves her own change: no second pair of eyes
    own_change = proven("Erin", commit_author="erin")
    assert decide(VERIFIED_AT_9, approval=own_change) == ["four-eyes"]
    assert decide(VERIFIED_AT_9, approval=proven("erin", "carol", commit_author="erin")) == []


def test_a_commit_github_links_to_no_account_cannot_prove_four_eyes() -> None:
    decision = decide_promotion(
        "production",
        PRODUCTION,
        "staging",
        evidence_for("staging", history(*VERIFIED_AT_9), "api", GOOD, True),
        TUESDAY_NOON,
        "alice",
        proven("carol", commit_author=""),
        None,
    )
    [violation] = decision.violations
    assert violation.rule == "four-eyes" and "(Erin Example) to no account" in violation.found


def test_min_approvals_counts_distinct_approvers_other_than_the_person_releasing() -> None:
    two = PRODUCTION.model_copy(update={"min_approvals": 2})
    assert decide(VERIFIED_AT_9, gate=two, approval=proven("carol", "Carol", "alice")) == ["min-approvals"]
    assert decide(VERIFIED_AT_9, gate=two, approval=proven("carol", "dave")) == []
    assert decide(VERIFIED_AT_9, gate=two, approval=proven("carol", "dave", commit_author="dave")) == [
        "min-approvals"
    ]


def test_a_promotion_inside_a_freeze_window_is_refused() -> None:
    friday_evening = datetime(2026, 11, 27, 17, 0, tzinfo=UTC)  # 18:00 in Berlin
    assert decide([update("2026-11-27T09:00", record("verify"))], now=friday_evening) == ["freeze"]


FRIDAY_EVENING = datetime(2026, 11, 27, 17, 0, tzinfo=UTC)


def break_glass(entries: list[dict[str, Any]], image: str) -> Any:
    evidence = evidence_for("staging", history(*entries), "api", image, live=True)
    reason = "payments are down since 17:00"
    return decide_promotion(
        "production", PRODUCTION, "staging", evidence, FRIDAY_EVENING, "alice", APPROVED, reason
    )


def test_break_glass_skips_the_verified_gate_and_the_freeze_and_names_both() -> None:
    decision = break_glass([], BAD)
    assert decision.allowed and decision.skipped == ["freeze", "verified"]


def test_break_glass_skips_the_soak_time_and_names_it() -> None:
    decision = break_glass([update("2026-11-27T16:55", record("verify"))], GOOD)
    assert decision.allowed and decision.skipped == ["freeze", "soak"]


def test_break_glass_never_skips_the_approval() -> None:
    assert decide([], image=BAD, approval=None, break_glass_reason="payments are down since 17:00") == [
        "approval"
    ]


def test_a_break_glass_reason_of_one_word_is_refused() -> None:
    assert break_glass_problem("urgent")
    assert decide(VERIFIED_AT_9, break_glass_reason="urgent") == ["reason"]
    assert break_glass_problem("payments are down") == ""


BERLIN_WEEKEND = [FreezeWindow(starts="Fri 16:00", ends="Mon 08:00", time_zone="Europe/Berlin")]


def frozen(year: int, month: int, day: int, hour: int, minute: int = 0) -> bool:
    return (
        open_freeze_window(BERLIN_WEEKEND, datetime(year, month, day, hour, minute, tzinfo=UTC)) is not None
    )


def test_the_freeze_starts_at_16_00_local_time_in_winter_which_is_15_00_utc() -> None:
    assert not frozen(2026, 11, 27, 14, 59)  # Friday 15:59 CET
    assert frozen(2026, 11, 27, 15, 0)  # Friday 16:00 CET


def test_the_freeze_starts_at_16_00_local_time_in_summer_which_is_14_00_utc() -> None:
    assert not frozen(2026, 7, 3, 13, 59)  # Friday 15:59 CEST
    assert frozen(2026, 7, 3, 14, 0)  # Friday 16:00 CEST


def test_the_freeze_wraps_the_week_and_ends_at_monday_08_00_local_time() -> None:
    assert frozen(2026, 11, 29, 12)  # Sunday
    assert frozen(2026, 11, 30, 6, 59)  # Monday 07:59 CET
    assert not frozen(2026, 11, 30, 7, 0)  # Monday 08:00 CET


def test_the_freeze_follows_the_daylight_saving_change_inside_the_window() -> None:
    # Europe/Berlin leaves summer time on Sunday 2026-10-25: Monday 08:00 CET is 07:00 UTC.
    assert frozen(2026, 10, 26, 6, 59)
    assert not frozen(2026, 10, 26, 7, 0)
