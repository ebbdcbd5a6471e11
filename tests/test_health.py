"""The health checker against real HTTP servers on 127.0.0.1 (no mock transport)."""

from __future__ import annotations

import time
import tracemalloc

import pytest

from core.config.stack import HealthCheckSettings
from core.health import ProbeKind, check_sync, parse_expect_json
from tests.http_servers import (
    deep_json,
    failing,
    flapping,
    healthy,
    huge_body,
    raw_answer,
    redirect_loop,
    refused_url,
    sequence,
    serve,
    serve_raw,
    slow,
    trickle,
)

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


def test_a_body_nested_100000_levels_is_a_failed_body_probe_not_a_crash() -> None:
    with serve_raw(deep_json(100_000)) as url:
        verdict = check_sync([url], FAST, expect_json={"version": "1.4.2"})
    assert not verdict.healthy
    assert {probe.kind for probe in verdict.probes} == {ProbeKind.BODY}
    assert "deeper than 64 levels" in verdict.probes[0].detail


def test_brackets_inside_json_strings_do_not_count_towards_the_depth_limit() -> None:
    body = b'{"status": "ok", "version": "1.4.2", "note": "' + b"[{" * 50_000 + b'\\"]"}'
    with serve_raw(raw_answer("200 OK", body)) as url:
        verdict = check_sync([url], FAST, expect_json={"version": "1.4.2"})
    assert verdict.healthy, verdict.reason


def test_a_redirect_loop_is_a_failed_redirect_probe_not_a_crash() -> None:
    with serve_raw(redirect_loop()) as url:
        verdict = check_sync([url], FAST.model_copy(update={"follow_redirects": True}))
    assert not verdict.healthy
    assert {probe.kind for probe in verdict.probes} == {ProbeKind.REDIRECT}


@pytest.mark.parametrize("url", ["http://exa mple/\n", "not a url", "http://[::1"])
def test_a_malformed_url_is_a_failed_url_probe_not_a_crash(url: str) -> None:
    verdict = check_sync([url], FAST)
    assert not verdict.healthy
    assert {probe.kind for probe in verdict.probes} == {ProbeKind.URL}


def test_a_body_that_cannot_be_decoded_is_a_failed_body_probe_not_a_crash() -> None:
    answer = raw_answer("200 OK", b"this is not gzip", {"Content-Encoding": "gzip"})
    with serve_raw(answer) as url:
        verdict = check_sync([url], FAST)
    assert not verdict.healthy
    assert {probe.kind for probe in verdict.probes} == {ProbeKind.BODY}


def test_a_100_mb_body_is_read_only_up_to_1_mib_and_is_a_failed_body_probe() -> None:
    settings = FAST.model_copy(update={"timeout_seconds": 2.0, "failures": 2})
    with serve_raw(huge_body(100 * 1024 * 1024)) as url:
        tracemalloc.start()
        try:
            verdict = check_sync([url], settings)
            _, peak_bytes = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert not verdict.healthy
    assert {(probe.kind, probe.status) for probe in verdict.probes} == {(ProbeKind.BODY, 200)}
    assert "larger than 1 MiB" in verdict.probes[0].detail
    assert peak_bytes < 16 * 1024 * 1024


def test_a_server_trickling_header_lines_times_out_within_the_probe_timeout() -> None:
    settings = FAST.model_copy(update={"timeout_seconds": 0.5, "failures": 1})
    with serve_raw(trickle(every_seconds=0.05, for_seconds=8)) as url:
        verdict = check_sync([url], settings)
    [probe] = verdict.probes
    assert probe.kind is ProbeKind.TIMEOUT
    assert probe.latency_ms < (settings.timeout_seconds + 0.5) * 1000


def test_a_server_trickling_forever_is_degraded_within_the_window_plus_one_timeout() -> None:
    settings = FAST.model_copy(
        update={"timeout_seconds": 0.7, "interval_seconds": 0.2, "window_seconds": 1.0, "failures": 100}
    )
    with serve_raw(trickle(every_seconds=0.05, for_seconds=8)) as url:
        started = time.monotonic()
        verdict = check_sync([url], settings)
        elapsed = time.monotonic() - started
    assert not verdict.healthy and "window ended" in verdict.reason
    assert elapsed < settings.window_seconds + settings.timeout_seconds + 1.5
    assert verdict.decided_seconds <= settings.window_seconds + settings.timeout_seconds + 0.5


def test_a_finite_trickle_longer_than_the_window_is_degraded_within_the_window_plus_one_timeout() -> None:
    settings = FAST.model_copy(
        update={"timeout_seconds": 0.5, "interval_seconds": 0.1, "window_seconds": 1.0, "failures": 100}
    )
    with serve_raw(trickle(every_seconds=0.05, for_seconds=3)) as url:
        started = time.monotonic()
        verdict = check_sync([url], settings)
        elapsed = time.monotonic() - started
    assert not verdict.healthy
    assert {probe.kind for probe in verdict.probes} == {ProbeKind.TIMEOUT}
    assert elapsed < settings.window_seconds + settings.timeout_seconds + 1.5
