"""The health checker against real HTTP servers on 127.0.0.1 (no mock transport)."""

from __future__ import annotations

import pytest

from release.health import HealthCheckSettings, ProbeKind, check_sync, parse_expect_json
from tests.http_servers import failing, flapping, healthy, refused_url, sequence, serve, slow

FAST = HealthCheckSettings(
    interval_seconds=0.05, timeout_seconds=0.5, window_seconds=3, successes=3, failures=3, max_latency_ms=400
)


def test_a_healthy_service_is_healthy_after_the_required_consecutive_successes() -> None:
    with serve(healthy()) as url:
        verdict = check_sync([url + "/healthz"], FAST)
    assert verdict.healthy and verdict.phase == "Healthy"
    assert [probe.kind for probe in verdict.probes] == [ProbeKind.OK] * 3
    assert verdict.first_failure_seconds is None


def test_a_500_is_unhealthy_after_the_failure_threshold_and_reports_the_status() -> None:
    with serve(failing(500)) as url:
        verdict = check_sync([url], FAST)
    assert not verdict.healthy and verdict.phase == "Degraded"
    assert len(verdict.probes) == FAST.failures
    assert {(probe.kind, probe.status) for probe in verdict.probes} == {(ProbeKind.STATUS, 500)}
    assert "3 consecutive failed probes" in verdict.reason


def test_a_slow_answer_times_out_and_is_reported_as_a_timeout() -> None:
    settings = FAST.model_copy(update={"timeout_seconds": 0.2, "failures": 2})
    with serve(slow(0.6)) as url:
        verdict = check_sync([url], settings)
    assert not verdict.healthy
    assert {probe.kind for probe in verdict.probes} == {ProbeKind.TIMEOUT}


def test_an_answer_over_the_latency_budget_is_a_latency_failure() -> None:
    settings = FAST.model_copy(update={"max_latency_ms": 50, "failures": 2})
    with serve(slow(0.12)) as url:
        verdict = check_sync([url], settings)
    assert not verdict.healthy
    assert {probe.kind for probe in verdict.probes} == {ProbeKind.LATENCY}
    assert all(probe.latency_ms >= 100 for probe in verdict.probes)


def test_a_flapping_service_never_reaches_a_verdict_by_streak_and_fails_when_the_window_ends() -> None:
    settings = FAST.model_copy(update={"window_seconds": 0.6})
    with serve(flapping()) as url:
        verdict = check_sync([url], settings)
    assert not verdict.healthy
    assert "window ended" in verdict.reason
    kinds = [probe.kind for probe in verdict.probes]
    assert ProbeKind.OK in kinds and ProbeKind.STATUS in kinds


def test_a_refused_connection_is_a_connection_failure() -> None:
    verdict = check_sync([refused_url()], FAST)
    assert not verdict.healthy
    assert {probe.kind for probe in verdict.probes} == {ProbeKind.CONNECTION}
    assert all(probe.status is None for probe in verdict.probes)


def test_the_wrong_version_in_the_body_is_a_body_failure_naming_both_versions() -> None:
    with serve(healthy(version="1.4.1")) as url:
        verdict = check_sync([url], FAST, expect_json={"version": "1.4.2"})
    assert not verdict.healthy
    assert {probe.kind for probe in verdict.probes} == {ProbeKind.BODY}
    assert "'1.4.1'" in verdict.probes[0].detail and "'1.4.2'" in verdict.probes[0].detail


def test_recovering_service_becomes_healthy_once_the_successes_are_consecutive() -> None:
    with serve(sequence(503, 503, 200)) as url:
        verdict = check_sync([url], FAST)
    assert verdict.healthy
    assert [probe.status for probe in verdict.probes] == [503, 503, 200, 200, 200]
    assert verdict.first_failure_seconds is not None
    assert verdict.first_failure_seconds < FAST.interval_seconds


def test_one_unhealthy_url_decides_for_all_urls_probed_together() -> None:
    with serve(healthy()) as good, serve(failing(502)) as bad:
        verdict = check_sync([good, bad], FAST.model_copy(update={"successes": 50}))
    assert not verdict.healthy
    assert bad in verdict.reason
    assert {probe.url for probe in verdict.probes} == {good, bad}


def test_redirects_are_failures_unless_following_them_is_asked_for() -> None:
    with serve(sequence(302)) as url:
        verdict = check_sync([url], FAST)
    assert {(probe.kind, probe.status) for probe in verdict.probes} == {(ProbeKind.STATUS, 302)}


def test_the_decision_comes_within_failures_times_interval_plus_one_timeout() -> None:
    with serve(failing(500)) as url:
        verdict = check_sync([url], FAST)
    assert verdict.first_failure_seconds is not None
    assert verdict.decided_seconds - verdict.first_failure_seconds <= FAST.decision_budget_seconds


def test_the_json_verdict_lists_every_probe_with_status_latency_and_error() -> None:
    with serve(failing(500)) as url:
        document = check_sync([url], FAST).to_json()
    assert document["phase"] == "Degraded" and document["failureKinds"] == ["status"]
    assert len(document["probes"]) == 3
    assert set(document["probes"][0]) >= {"url", "status", "latencyMs", "error", "kind"}


def test_expect_json_pairs_must_be_key_equals_value() -> None:
    assert parse_expect_json(["status=ok", "build.version=1=2"]) == {"status": "ok", "build.version": "1=2"}
    with pytest.raises(ValueError, match="use key=value"):
        parse_expect_json(["status"])
