"""Benchmark: how long a bad canary keeps its traffic, with the default analysis settings (window
120 s, interval 30 s, maxErrorRatio 0.01, minRequests 50) and a 15 s scrape interval.

A real Prometheus (Debian's binary) holds the series: the live color at 45 req/s with 0.1% errors,
and a canary that takes 10% (5 req/s) from a known moment and answers 2% of them with 5xx. On that
timeline the bench finds the first second at which Prometheus' error ratio for the canary is over
the threshold (the crossing), the first interval check that fails it (release.flows.deploy's
judged_step checks every intervalSeconds while a step waits), and measures what the tool adds: one
analysis (its four queries) and the rollback's targeted `up` on the engine double (3 resources: the
two Services and the service's live HTTPRoute; a real engine adds its own time, not measurable here).

Run: `.venv/bin/python bench/canary_abort_bench.py` (or `make bench-canary`).
"""

from __future__ import annotations

import shutil
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.config.stack import AnalysisSettings  # noqa: E402
from release.analysis import Outcome, analyse, prometheus_query  # noqa: E402
from tests.prometheus_server import STEP_SECONDS, Traffic, judged_release, prometheus_with  # noqa: E402

CANARY_FOR = 600
"""The canary takes traffic in the last 600 s of the loaded history; its step starts then."""


def main() -> int:
    if not (shutil.which("prometheus") and shutil.which("promtool")):
        print("prometheus/promtool are not installed (Debian's `prometheus` package)")
        return 2
    traffic = [
        Traffic("api", "green", 45),
        Traffic("api", "blue", 5, error_share=0.02, for_last_seconds=CANARY_FOR),
    ]
    with prometheus_with(traffic) as loaded:
        settings = AnalysisSettings.model_validate({"prometheusUrl": loaded.url})
        query = prometheus_query(settings)
        step_start = loaded.end - timedelta(seconds=CANARY_FOR)

        def verdict(after: int) -> Outcome:
            at = step_start + timedelta(seconds=after)
            return analyse(settings, "api", "blue", "green", query, at=at).outcome

        crossing = next(second for second in range(0, 300) if verdict(second) is Outcome.FAILED)
        checks = range(settings.interval_seconds, 300, settings.interval_seconds)
        caught = next(second for second in checks if verdict(second) is Outcome.FAILED)
        timings = []
        for _ in range(10):
            started = time.perf_counter()
            verdict(caught)
            timings.append(time.perf_counter() - started)
        analysis_seconds = statistics.median(timings)

    started = time.perf_counter()
    report, _engine = judged_release(0.02, lambda _: None, strategy={"type": "canary", "steps": [10]})
    release_seconds = time.perf_counter() - started
    rollback = next(step for step in report.steps if step.name == "rollback")

    print(
        f"scrape interval {STEP_SECONDS} s; analysis window {settings.window_seconds} s, checked every "
        f"{settings.interval_seconds} s; threshold error ratio {settings.max_error_ratio}"
    )
    print("canary at 2% errors from its first request (10% of the traffic, 5 req/s):")
    print(f"  the error ratio Prometheus reports crosses the threshold {crossing} s into the step")
    print(
        f"  first failing interval check: {caught} s into the step ({caught - crossing} s after the crossing)"
    )
    print(f"  one analysis (4 queries, real Prometheus): {analysis_seconds * 1000:.0f} ms")
    print(
        f"  rollback, targeted up of the 2 Services and the live HTTPRoute (engine double): "
        f"{rollback.seconds:.2f} s"
    )
    total = caught - crossing + analysis_seconds + rollback.seconds
    print(
        f"  crossing -> weight 0: {total:.1f} s here; worst case {settings.interval_seconds} s (a crossing "
        f"just after a check) + {STEP_SECONDS} s (one scrape) + the two figures above + the engine's up"
    )
    print(f"  (the whole release on the double, judged and rolled back: {release_seconds:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
