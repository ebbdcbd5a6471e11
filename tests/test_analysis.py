"""Metric analysis against a real Prometheus loaded with known series: it decides right both ways,
and everything that is not a clean answer is Inconclusive with its reason, never a silent pass."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest

from core.config.stack import AnalysisSettings
from release.analysis import Analysis, Outcome, Sample, analyse, prometheus_query
from release.cli import main
from release.flows.deploy import judged_step
from release.testing.fake_clock import MONDAY_MORNING, FakeClock
from release.testing.fake_engine import UPDATE_SECONDS, FakeEngine
from tests.http_servers import serve
from tests.prometheus_server import LoadedPrometheus, Traffic, judged_release, prometheus_with
from tests.release_doubles import NEW_API, RELEASE_STEPS, history_of, signed_project

TRAFFIC = [
    Traffic("steady", "blue", 100),
    Traffic("steady", "green", 100),
    Traffic("erroring", "blue", 100),
    Traffic("erroring", "green", 100, error_share=0.02),
    Traffic("slow", "blue", 100),
    Traffic("slow", "green", 100, within=(0.5, 0.6, 1.0)),
    Traffic("sparse", "blue", 100),
    Traffic("sparse", "green", 0.1),
    Traffic("quiet", "blue", 100),
]


SERIES_ENDED = MONDAY_MORNING - timedelta(minutes=10)
"""The module's series end ten minutes before the engine double's clock starts: judged at their end
they fill every window; judged at the clock's now (`release analyse`), they are ten minutes stale."""


@pytest.fixture(scope="module")
def prometheus() -> Iterator[LoadedPrometheus]:
    with prometheus_with(TRAFFIC, end=SERIES_ENDED) as loaded:
        yield loaded


def settings(url: str, **changes: Any) -> AnalysisSettings:
    return AnalysisSettings.model_validate({"prometheusUrl": url, **changes})


def judged(prometheus: LoadedPrometheus, service: str, **changes: Any) -> Analysis:
    chosen = settings(prometheus.url, **changes)
    return analyse(chosen, service, "green", "blue", prometheus_query(chosen), at=prometheus.end)


def outcomes(analysis: Analysis) -> dict[str, Outcome]:
    return {measurement.name: measurement.outcome for measurement in analysis.measurements}


def test_a_healthy_color_passes_with_its_numbers_kept(prometheus: LoadedPrometheus) -> None:
    analysis = judged(prometheus, "steady")
    assert analysis.outcome is Outcome.SUCCESSFUL, analysis.summary()
    values = {measurement.name: measurement.value for measurement in analysis.measurements}
    assert values["requests"] == pytest.approx(12000, rel=0.05)  # 100/s over 120 s
    assert values["error-ratio"] == pytest.approx(0.001, rel=0.01)
    assert values["error-increase"] == pytest.approx(0, abs=1e-9)
    assert values["p95-latency"] is not None and values["p95-latency"] <= 0.5
    assert all(measurement.query for measurement in analysis.measurements)


def test_two_percent_errors_against_a_live_color_at_a_tenth_of_a_percent_fail(
    prometheus: LoadedPrometheus,
) -> None:
    analysis = judged(prometheus, "erroring")
    assert analysis.outcome is Outcome.FAILED
    assert outcomes(analysis)["error-ratio"] is Outcome.FAILED
    assert outcomes(analysis)["error-increase"] is Outcome.FAILED


def test_the_comparison_alone_fails_a_color_worse_than_the_one_it_replaces(
    prometheus: LoadedPrometheus,
) -> None:
    analysis = judged(prometheus, "erroring", maxErrorRatio=0.05)  # 2% is under the absolute limit
    assert outcomes(analysis)["error-ratio"] is Outcome.SUCCESSFUL
    assert outcomes(analysis)["error-increase"] is Outcome.FAILED
    assert analysis.outcome is Outcome.FAILED


def test_a_slow_color_fails_on_its_p95(prometheus: LoadedPrometheus) -> None:
    analysis = judged(prometheus, "slow")
    assert outcomes(analysis)["p95-latency"] is Outcome.FAILED and analysis.outcome is Outcome.FAILED


def test_a_color_with_no_traffic_is_inconclusive_never_a_pass(prometheus: LoadedPrometheus) -> None:
    analysis = judged(prometheus, "quiet")
    assert analysis.outcome is Outcome.INCONCLUSIVE
    assert set(outcomes(analysis).values()) == {Outcome.INCONCLUSIVE}
    assert "no data" in analysis.measurements[0].reason


def test_too_few_requests_are_inconclusive(prometheus: LoadedPrometheus) -> None:
    analysis = judged(prometheus, "sparse")
    assert outcomes(analysis)["requests"] is Outcome.INCONCLUSIVE
    assert "too few requests" in analysis.measurements[0].reason
    assert analysis.outcome is Outcome.INCONCLUSIVE


def test_an_inconclusive_limit_lets_a_known_gap_through(prometheus: LoadedPrometheus) -> None:
    analysis = judged(prometheus, "sparse", inconclusiveLimit=4)
    assert analysis.outcome is Outcome.SUCCESSFUL


def fake(samples: list[Sample]) -> Any:
    def query(promql: str, at: datetime | None) -> list[Sample]:
        return samples

    return query


@pytest.mark.parametrize(
    ("samples", "reason"),
    [
        ([Sample(float("nan"), {"color": "green"})], "NaN"),
        ([Sample(1.0, {"color": "blue"})], "color 'blue', not 'green'"),
        (
            [Sample(1.0, {"color": "green"}), Sample(2.0, {"color": "green"})],
            "2 series where one is expected",
        ),
    ],
    ids=["nan", "wrong color", "two series"],
)
def test_an_answer_that_is_not_one_clean_value_is_inconclusive(samples: list[Sample], reason: str) -> None:
    chosen = settings("http://127.0.0.1:9")
    analysis = analyse(chosen, "api", "green", "blue", fake(samples), MONDAY_MORNING)
    assert analysis.outcome is Outcome.INCONCLUSIVE
    assert reason in analysis.measurements[0].reason


def test_an_unreachable_prometheus_is_inconclusive_with_the_reason() -> None:
    chosen = settings("http://127.0.0.1:9", timeoutSeconds=1)
    analysis = analyse(chosen, "api", "green", "blue", prometheus_query(chosen), MONDAY_MORNING)
    assert analysis.outcome is Outcome.INCONCLUSIVE
    assert "unreachable" in analysis.measurements[0].reason


def test_a_long_wait_says_how_far_it_is_every_10_s_with_the_analysis_so_far() -> None:
    lines: list[str] = []
    empty: tuple[int, dict[str, object]] = (
        200,
        {"status": "success", "data": {"resultType": "vector", "result": []}},
    )
    with serve(lambda _: empty) as url:
        step = judged_step(
            "canary 10%", settings(url), "api", "green", "blue", 60, lines.append, lambda _: None, FakeClock()
        )
    waits = [line for line in lines if " of 60 s" in line]
    assert [line.split(": ")[1].split(" of ")[0] for line in waits] == ["10", "20", "30", "40", "50"]
    assert "so far" not in waits[1] and "so far metrics Inconclusive" in waits[3]  # after the check at 30 s
    assert not step.succeeded  # no data at the end either


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        ((500, {"status": "error", "error": "query timed out"}), "answered an error: query timed out"),
        (
            (200, {"status": "success", "data": {"resultType": "matrix", "result": []}}),
            "not an instant vector",
        ),
        ((200, "x" * (2 * 1024 * 1024)), "larger than"),
        (
            (500, {"status": "error", "error": "oops\nrelease: forged line"}),
            "answered an error: oops\\x0arelease: forged line",
        ),
    ],
    ids=["error", "matrix", "huge body", "newline from the server"],
)
def test_a_bad_answer_is_inconclusive_with_the_reason(reply: Any, reason: str) -> None:
    with serve(lambda _: reply) as url:
        chosen = settings(url.rstrip("/"))
        analysis = analyse(chosen, "api", "green", "blue", prometheus_query(chosen), MONDAY_MORNING)
    assert analysis.outcome is Outcome.INCONCLUSIVE
    assert reason in analysis.measurements[0].reason


@pytest.mark.parametrize("value", [-0.1, 1.5])
def test_a_ratio_threshold_outside_zero_to_one_is_refused(value: float) -> None:
    with pytest.raises(ValueError, match=r"max_error_ratio|maxErrorRatio"):
        settings("http://127.0.0.1:9", maxErrorRatio=value)


WAITED: list[float] = []


def release_with_metrics(new_color_errors: float) -> tuple[Any, FakeEngine]:
    """A staging release judged on its metrics (tests.prometheus_server.judged_release); the metrics
    step's wait for its window is recorded in WAITED."""
    return judged_release(new_color_errors, WAITED.append)


def test_a_release_is_verified_on_its_metrics_and_the_numbers_go_into_its_record() -> None:
    report, engine = release_with_metrics(0.001)
    assert [step.name for step in report.steps] == [*RELEASE_STEPS[:-1], "metrics", "record"]
    assert report.phase == "Healthy", report.failure
    verify = history_of(engine, "staging")[0].record
    assert verify is not None and verify.event == "verify"
    judged_on = verify.window["analysis"]
    assert judged_on["outcome"] == "Successful" and judged_on["color"] == "blue"
    assert {m["name"] for m in judged_on["measurements"]} == {
        "requests",
        "error-ratio",
        "error-increase",
        "p95-latency",
    }


def test_a_release_whose_new_color_errs_more_than_the_old_is_rolled_back_on_its_metrics() -> None:
    report, engine = release_with_metrics(0.02)
    assert report.phase == "RolledBack"
    waited = re.fullmatch(r"metrics: after (\d+) of (\d+) s: metrics Failed.*", report.failure)
    assert waited is not None, report.failure
    assert float(waited[1]) == pytest.approx(30, abs=1)  # the first check, one interval in
    # of the window and two scrapes since the switch began, less the switch's own update
    assert float(waited[2]) == pytest.approx(120 + 30 - UPDATE_SECONDS, abs=1)
    assert engine.serving("staging", "api") != NEW_API
    failed = next(step for step in report.steps if step.name == "metrics")
    assert failed.analysis is not None and failed.analysis["outcome"] == "Failed"


def test_release_analyse_without_an_analysis_knob_exits_2_saying_how_to_set_one(
    capsys: pytest.CaptureFixture[str],
) -> None:
    engine = FakeEngine(project_dir=signed_project())
    engine.add_stack("dev")  # dev declares no analysis
    argv = ["analyse", "dev", "--service", "api", "--project-dir", str(engine.project_dir)]
    assert main(argv, engine_factory=lambda _: engine, clock=engine.clock) == 2
    assert "analysis.prometheusUrl" in capsys.readouterr().err


def test_release_analyse_reports_every_measurement_as_json(
    prometheus: LoadedPrometheus, capsys: pytest.CaptureFixture[str]
) -> None:
    engine = FakeEngine(project_dir=signed_project())
    engine.add_stack("staging", edit={"platform:analysis": {"prometheusUrl": prometheus.url}})
    argv = ["analyse", "staging", "--service", "api", "--json", "--project-dir", str(engine.project_dir)]
    assert (
        main(argv, engine_factory=lambda _: engine, clock=engine.clock) == 1
    )  # now: the loaded series are 10 minutes stale
    answer = json.loads(capsys.readouterr().out)
    assert answer["color"] == "green" and answer["outcome"] == "Inconclusive"
    # the live color: its limits only (the idle one takes no traffic to compare with)
    assert [m["name"] for m in answer["measurements"]] == [
        "requests",
        "error-ratio",
        "p95-latency",
    ]


def test_release_audit_shows_what_a_release_was_judged_on(capsys: pytest.CaptureFixture[str]) -> None:
    _report, engine = release_with_metrics(0.001)
    argv = ["audit", "staging", "--json", "--project-dir", str(engine.project_dir)]
    assert main(argv, engine_factory=lambda _: engine, clock=engine.clock) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    verification = next(row for row in rows if row["event"] == "verification")
    assert "metrics Successful: requests" in verification["approvalOrReason"]
    assert "error-ratio 0.001" in verification["approvalOrReason"]


def test_the_metrics_step_waits_for_a_whole_window_of_stable_traffic_after_the_switch() -> None:
    WAITED.clear()
    release_with_metrics(0.001)
    # window + two scrapes from the start of the switch, which itself took UPDATE_SECONDS
    assert sum(WAITED) == pytest.approx(120 + 30 - UPDATE_SECONDS, abs=1)
    assert WAITED[:6] == [10] * 6 and max(WAITED) <= 10  # checked at 30 and 60 s, saying how far every 10 s


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        ((200, {"status": "success", "warnings": ["partial response"], "data": {}}), "Prometheus warned"),
        ((503, {"status": "success", "data": {"resultType": "vector", "result": []}}), "HTTP 503"),
    ],
    ids=["warnings", "status 503"],
)
def test_an_answer_with_warnings_or_a_bad_status_is_inconclusive(reply: Any, reason: str) -> None:
    with serve(lambda _: reply) as url:
        chosen = settings(url)
        analysis = analyse(chosen, "api", "green", "blue", prometheus_query(chosen), MONDAY_MORNING)
    assert reason in analysis.measurements[0].reason and analysis.outcome is Outcome.INCONCLUSIVE


def test_a_url_that_cannot_be_requested_is_inconclusive_not_a_crash() -> None:
    chosen = settings("http://a..b:9090")
    analysis = analyse(chosen, "api", "green", "blue", prometheus_query(chosen), MONDAY_MORNING)
    assert analysis.outcome is Outcome.INCONCLUSIVE


def test_a_server_trickling_its_headers_is_cut_off_at_the_deadline() -> None:
    import socket
    import threading
    import time as clock

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    stop = threading.Event()

    def trickle() -> None:
        connection, _ = listener.accept()
        with connection:
            for byte in b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n":
                if stop.wait(0.2):
                    return
                try:
                    connection.sendall(bytes([byte]))
                except OSError:
                    return

    threading.Thread(target=trickle, daemon=True).start()
    chosen = settings(f"http://127.0.0.1:{listener.getsockname()[1]}", timeoutSeconds=1)
    started = clock.monotonic()
    analysis = analyse(
        chosen, "api", "green", "blue", prometheus_query(chosen), MONDAY_MORNING, compare=False
    )
    stop.set()
    listener.close()
    assert clock.monotonic() - started < 8  # about one deadline per query, never the trickle's pace
    assert "no complete answer within 1 s" in analysis.measurements[0].reason


def test_release_analyse_of_the_live_color_judges_its_limits_only() -> None:
    chosen = settings("http://127.0.0.1:9")
    analysis = analyse(
        chosen, "api", "green", "blue", prometheus_query(chosen), MONDAY_MORNING, compare=False
    )
    assert [m.name for m in analysis.measurements] == ["requests", "error-ratio", "p95-latency"]
