"""`release metrics`: DORA's figures from the records that count, checked by hand against the fixture
history (tests/release_fixture_history.py: real releases run through the engine double).

Times below are the backend's `endTime` of each update, read from the fixture's history:

    staging     A  stage 09:03  switch 09:04  verify 09:05                      Verified
                B  stage 10:06  switch 10:07  rollback 10:08                    RolledBack
                C  stage 11:09  switch 11:10  verify 11:11                      Verified
                D  stage 12:12  canary 12:13  rollback 12:14:30                 RolledBack (canary abort)
    production  E  stage 14:16:30  switch 14:17:30  verify 14:18:30  (break-glass, A's digest)
                F  stage 15:19:30  switch 15:20:30  verify 15:21:30  (break-glass, C's digest)
"""

from __future__ import annotations

import copy
import json
from datetime import timedelta
from typing import Any

import pytest

from core.config.sources import project_settings
from release.cli import main
from release.history.entries import HistoryEntry, parse_history, record_rules
from release.history.records import Event, ReleaseRecord
from release.report.metrics import (
    FAILURE_RATE,
    FREQUENCY,
    LEAD_TIME,
    RECOVERY,
    REWORK,
    Metrics,
    compute_metrics,
    parse_since,
)
from tests.release_doubles import history_of
from tests.release_fixture_history import START, fixture_history

STACKS = ("staging", "production")


def histories() -> dict[str, list[HistoryEntry]]:
    engine = fixture_history().engine
    return {stack: history_of(engine, stack) for stack in STACKS}


def metrics(**changes: Any) -> Metrics:
    now = fixture_history().engine.clock()
    return compute_metrics(changes.get("histories") or histories(), START, now, changes.get("service"))


def figure(result: Metrics, stack: str, metric: str, service: str = "*") -> Any:
    group = next(g for g in result.groups if g.stack == stack and g.service == service)
    return group.figure(metric)


def released(figure_: Any) -> list[str]:
    return [ref["release"] for ref in figure_.releases]


def ids(stack: str) -> list[str]:
    """The fixture's release ids in one stack, oldest first (A, B, C, D or E, F)."""
    entries = histories()[stack]
    seen: list[str] = []
    for entry in reversed(entries):
        record = entry.record
        if record is not None and record.release and record.release not in seen:
            seen.append(record.release)
    return seen


def test_the_fixture_ran_a_good_a_rolled_back_a_fixed_a_canary_abort_and_two_break_glass_releases() -> None:
    assert [str(phase) for phase in fixture_history().phases.values()] == [
        "Healthy",
        "RolledBack",
        "Healthy",
        "RolledBack",
        "Healthy",
        "Healthy",
    ]
    d = ids("staging")[3]
    events = [
        (e.record.event, e.number) for e in histories()["staging"][::-1] if e.record and e.record.release == d
    ]
    assert events == [("stage", 11), ("canary", 12), ("rollback", 13)]  # it never switched


def test_deployment_frequency_counts_every_counted_release_in_the_window() -> None:
    result = metrics()
    days = (fixture_history().engine.clock() - START) / timedelta(days=1)
    staging = figure(result, "staging", FREQUENCY)
    assert released(staging) == ids("staging")
    assert staging.value == pytest.approx(4 / days)
    assert figure(result, "production", FREQUENCY).value == pytest.approx(2 / days)


def test_deployment_frequency_over_30_days_is_in_the_medium_band() -> None:
    now = fixture_history().engine.clock()
    result = compute_metrics(histories(), parse_since("30d", now), now)
    staging = figure(result, "staging", FREQUENCY)
    assert staging.value == pytest.approx(4 / 30) and staging.band.name == "medium"
    assert staging.shown == "0.93/week"


def test_lead_time_runs_from_the_digests_first_stage_in_any_stack_to_its_verify_here() -> None:
    result = metrics()
    # staging: A 09:03 -> 09:05, C 11:09 -> 11:11: 2 min each (D never verified)
    assert figure(result, "staging", LEAD_TIME).value == 120
    assert released(figure(result, "staging", LEAD_TIME)) == [ids("staging")[0], ids("staging")[2]]
    production = figure(result, "production", LEAD_TIME)
    # E: staging's stage of A's digest 09:03 -> 14:18:30 (5 h 15.5 min);
    # F: C's 11:09 -> 15:21:30 (4 h 12.5 min)
    e, f = 5 * 3600 + 15 * 60 + 30, 4 * 3600 + 12 * 60 + 30
    assert [ref["seconds"] for ref in production.releases] == [e, f]
    assert [ref["from"] for ref in production.releases] == ["staging entry 2", "staging entry 8"]
    assert production.value == (e + f) / 2
    assert production.band.name == "elite" and production.shown == "4.7 h"


def test_a_rolled_back_release_and_a_canary_abort_fail_and_recover_at_their_rollbacks() -> None:
    result = metrics()
    _, b, _, d = ids("staging")
    rate = figure(result, "staging", FAILURE_RATE)
    assert rate.value == 0.5 and rate.band.name == "low" and rate.note == "2 failed of 4 finished"
    assert [(ref["release"], ref["why"]) for ref in rate.releases if ref["failed"]] == [
        (b, "rolled back"),
        (d, "rolled back"),
    ]
    recovery = figure(result, "staging", RECOVERY)
    # B: switch 10:07 -> rollback 10:08 (60 s); D took stable traffic at its canary step, 12:13 ->
    # rollback 12:14:30 (90 s)
    assert [(ref["release"], ref["seconds"]) for ref in recovery.releases] == [(b, 60), (d, 90)]
    assert recovery.value == 75 and recovery.band.name == "elite" and recovery.shown == "1.2 min"


def test_a_release_followed_by_a_break_glass_release_fails_and_recovers_at_the_fixs_verify() -> None:
    result = metrics()
    e, f = ids("production")
    rate = figure(result, "production", FAILURE_RATE)
    assert rate.value == 0.5
    assert [(ref["release"], ref["why"]) for ref in rate.releases if ref["failed"]] == [
        (e, f"followed by break-glass {f}")
    ]
    recovery = figure(result, "production", RECOVERY)
    # E: switch 14:17:30 -> F's verify 15:21:30
    assert recovery.value == 64 * 60 and recovery.band.name == "high"


def test_rework_rate_is_break_glass_releases_over_all_releases_and_has_no_dora_band() -> None:
    result = metrics()
    assert figure(result, "staging", REWORK).value == 0
    production = figure(result, "production", REWORK)
    assert production.value == 1 and production.shown == "100%" and production.band.name == ""


def test_each_service_has_its_own_figures_and_service_limits_them_to_one() -> None:
    result = metrics(service="api")
    assert [(g.stack, g.service) for g in result.groups] == [("staging", "api"), ("production", "api")]
    assert figure(result, "staging", FREQUENCY, "api").value == figure(metrics(), "staging", FREQUENCY).value
    assert all(not figure(metrics(service="web"), stack, FREQUENCY, "web").releases for stack in STACKS)


def test_a_window_that_starts_after_a_release_leaves_it_out() -> None:
    now = fixture_history().engine.clock()
    result = compute_metrics(histories(), START + timedelta(hours=1), now)
    assert released(figure(result, "staging", FREQUENCY)) == ids("staging")[1:]


def _with_forgeries(stack: str) -> list[HistoryEntry]:
    """The stack's raw history with two more updates on top: an exact copy of release A's stage
    message (replayed) and an unsigned break-glass record of a release that never ran."""
    engine = fixture_history().engine
    raw = copy.deepcopy(engine.stacks[stack].history)
    stage_of_a = raw[-2]
    forged = ReleaseRecord(
        event=Event.STAGE,
        stack=stack,
        actor="mallory",
        service="api",
        image="registry.example.test/platform/api@sha256:" + "66" * 32,
        release="r-" + "0" * 12,
        break_glass={"reason": "trust me", "skipped": []},
    )
    unsigned = {**raw[0], "message": forged.message("release deploy api", None, engine.clock())}
    replayed = {**raw[0], "message": stage_of_a["message"]}
    return parse_history(
        [unsigned, replayed, *raw], record_rules(project_settings(engine.project_dir), stack)
    )


def test_untrusted_and_replayed_records_are_listed_and_never_counted() -> None:
    clean = metrics()
    forged = metrics(histories={**histories(), "staging": _with_forgeries("staging")})
    for metric in (FREQUENCY, LEAD_TIME, FAILURE_RATE, RECOVERY, REWORK):
        assert figure(forged, "staging", metric).to_json() == figure(clean, "staging", metric).to_json()
    assert [(item["entry"], item["standing"]) for item in forged.not_counted] == [
        (15, "unsigned"),
        (14, "replayed"),
    ]


def test_release_metrics_json_lists_the_releases_behind_each_figure(
    capsys: pytest.CaptureFixture[str],
) -> None:
    engine = fixture_history().engine
    argv = ["metrics", *STACKS, "--since", "2026-11-23", "--json", "--project-dir", str(engine.project_dir)]
    assert main(argv, lambda _: engine, engine.clock) == 0
    document = json.loads(capsys.readouterr().out)
    production = next(g for g in document["groups"] if g["stack"] == "production" and g["service"] is None)
    assert production["changeFailureRate"]["shown"] == "50%"
    assert [ref["release"] for ref in production["changeFailureRate"]["releases"]] == ids("production")
    assert production["failedDeploymentRecoveryTime"]["band"] == "high"


def test_release_metrics_prints_each_figure_with_its_band_and_releases(
    capsys: pytest.CaptureFixture[str],
) -> None:
    engine = fixture_history().engine
    assert (
        main(["metrics", "staging", "--project-dir", str(engine.project_dir)], lambda _: engine, engine.clock)
        == 0
    )
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if "change failure rate" in line)
    assert "50%" in line and "low" in line and ids("staging")[1] in line and ids("staging")[3] in line


@pytest.mark.parametrize("since", ["yesterday", "0d", "2030-01-01"])
def test_a_window_that_cannot_be_read_exits_2(since: str, capsys: pytest.CaptureFixture[str]) -> None:
    engine = fixture_history().engine
    argv = ["metrics", "staging", "--since", since, "--project-dir", str(engine.project_dir)]
    assert main(argv, lambda _: engine, engine.clock) == 2
    assert "--since" in capsys.readouterr().err
