"""Benchmark: what one release analysis (four instant queries, release.analysis) costs against a real
Prometheus holding the series of 1, 10 and 100 services (two colors each, 30 minutes at 15 s).

Run: `.venv/bin/python bench/analysis_bench.py` (needs Debian's `prometheus` package). Figures go in
docs/development.md (Benchmark).
"""

from __future__ import annotations

import shutil
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.config.stack import AnalysisSettings  # noqa: E402
from release.analysis import analyse, prometheus_query  # noqa: E402
from tests.prometheus_server import Traffic, prometheus_with  # noqa: E402

RUNS = 20


def main() -> int:
    if not (shutil.which("prometheus") and shutil.which("promtool")):
        print("prometheus/promtool are not installed (Debian's `prometheus` package)")
        return 2
    for services in (1, 10, 100):
        traffic = [
            Traffic(f"svc{index}", color, 100) for index in range(services) for color in ("blue", "green")
        ]
        started = time.monotonic()
        with prometheus_with(traffic) as loaded:
            ready = time.monotonic() - started
            settings = AnalysisSettings.model_validate({"prometheusUrl": loaded.url})
            query = prometheus_query(settings)
            timings = []
            for _ in range(RUNS):
                begun = time.perf_counter()
                analysis = analyse(settings, "svc0", "green", "blue", query, at=loaded.end)
                timings.append(time.perf_counter() - begun)
            assert analysis.passed, analysis.summary()
        series = services * 2 * 8  # per color: 2 request codes, 4 buckets, count and sum
        median, worst = statistics.median(timings) * 1000, max(timings) * 1000
        print(
            f"{services:4d} service(s) ({series} series): analysis median {median:6.1f} ms, "
            f"max {worst:6.1f} ms over {RUNS} runs (load + start {ready:.1f} s)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
