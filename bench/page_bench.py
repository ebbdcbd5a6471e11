"""Benchmark: `release page` and `release metrics` on long histories.

Prints, on this machine, for 100 / 1,000 / 5,000 staging entries (releases of three signed, chained
records each, tests/release_fixture_history.long_history), the best of 3:
- metrics: parse the history (signatures, chain) and compute the five DORA figures (target <= 1 s
  at 5,000 entries);
- page: parse the history, build the page (status, lifecycle, chain, metrics) and render every file
  (target <= 2 s at 5,000 entries).

Run: `make bench-page` (or `.venv/bin/python bench/page_bench.py`). Figures go in docs/development.md.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SIZES = (100, 1000, 5000)
REPEATS = 3
TARGETS = {"metrics": 1.0, "page": 2.0}
"""Seconds at 5,000 entries (issue 28)."""


def timings(size: int) -> tuple[float, float, float]:
    """(parse, metrics, page) seconds for `size` entries, metrics and page each from the raw history
    (parse included), best of REPEATS."""
    from datetime import timedelta

    from core.config.sources import project_settings
    from release.history.entries import parse_history
    from release.report.metrics import compute_metrics
    from release.report.page import build_page, render_site
    from release.testing.fake_clock import FakeClock
    from tests.conftest import PROJECT
    from tests.history_data import STAGING_RULES, releases
    from tests.release_fixture_history import long_history

    now = FakeClock()()
    raw = long_history(size, now - timedelta(minutes=size))
    project = project_settings(PROJECT)
    parse = metrics = page = float("inf")
    for _ in range(REPEATS):
        began = time.perf_counter()
        entries = parse_history(raw, STAGING_RULES)
        parse = min(parse, time.perf_counter() - began)
        compute_metrics({"staging": entries}, now - timedelta(days=30), now)
        metrics = min(metrics, time.perf_counter() - began)
        began = time.perf_counter()
        entries = parse_history(raw, STAGING_RULES)
        built = build_page(project, ["staging"], {"staging": entries}, {"staging": releases()}, {}, now)
        render_site(built)
        page = min(page, time.perf_counter() - began)
    return parse, metrics, page


def main() -> None:
    print(f"release metrics and release page from chained history (parse included; best of {REPEATS}):")
    for size in SIZES:
        parse, metrics, page = timings(size)
        print(
            f"  {size:>5} entries: metrics {1000 * metrics:7.1f} ms, page {1000 * page:7.1f} ms; "
            f"of which reading history (signatures, chain) {1000 * parse:7.1f} ms"
        )
    for name, seconds in (("metrics", metrics), ("page", page)):
        target = TARGETS[name]
        verdict = "met" if seconds <= target else "MISSED"
        print(f"  {name} at {SIZES[-1]:,} entries: {seconds:.2f} s, target <= {target:.0f} s: {verdict}")


if __name__ == "__main__":
    main()
