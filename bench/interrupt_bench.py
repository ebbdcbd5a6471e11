"""Benchmark: from SIGTERM (or a CI runner's SIGINT) to the tool's return, during a `pulumi up`.

The real adapter (AutomationEngine) runs a stand-in `pulumi` whose `up` takes 6 s unless it is
interrupted (tests/test_interrupts.py); the signal arrives 1.5 s into the up. The figure is what the
tool adds to the CLI's own cancel time (a real CLI also waits for the resource operations in flight,
at most CANCEL_GRACE_SECONDS before the tool tells it to stop at once).
Run: `.venv/bin/python bench/interrupt_bench.py` (or `make bench-interrupt`).
"""

from __future__ import annotations

import signal
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from release.engine.cli_process import CANCEL_GRACE_SECONDS  # noqa: E402
from tests.test_interrupts import UP_SECONDS, interrupted_release  # noqa: E402

RUNS = 5


def main() -> None:
    for sent in (signal.SIGTERM, signal.SIGINT):
        seconds = []
        for _ in range(RUNS):
            with tempfile.TemporaryDirectory() as scratch:
                output, elapsed, _calls = interrupted_release(Path(scratch), sent)
                assert "interrupted" in output, output
                seconds.append(elapsed)
        print(
            f"{sent.name} 1.5 s into a {UP_SECONDS} s up -> tool returned after: median "
            f"{statistics.median(seconds):.2f} s, max {max(seconds):.2f} s ({RUNS} runs)"
        )
    print(f"grace before a second SIGINT (the CLI stops at once): {CANCEL_GRACE_SECONDS:g} s")


if __name__ == "__main__":
    main()
