"""Benchmark: what a SIGTERM (or a CI runner's SIGINT) 1.5 s into a 6 s `pulumi up` costs.

The real adapter (AutomationEngine, over pulumi.automation) runs a stand-in `pulumi` whose `up` takes
6 s and, like the CLI, cancels on SIGINT (tests/pulumi_standin.py; it takes 0.3 s to finish its
operations in flight). Measured from the signal, on one monotonic clock shared by every process:
when the engine got its cancel request, when it exited, and when the tool went on (its interrupt
raised, the rollback next). A real CLI's cancel takes what its operations in flight take, at most
the grace (release.engine.cancel) before the tool tells it to terminate at once.
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

from release.engine.cancel import ON_INTERRUPT, ON_TERMINATE  # noqa: E402
from tests.test_interrupts import SIGNAL_AT, UP_SECONDS, interrupt_an_up  # noqa: E402

RUNS = 5


def main() -> None:
    print(f"a signal {SIGNAL_AT:g} s into a {UP_SECONDS:g} s up; seconds after it, median (max) of {RUNS}:")
    for sent in (signal.SIGTERM, signal.SIGINT):
        asked, stopped, went_on = [], [], []
        for _ in range(RUNS):
            with tempfile.TemporaryDirectory() as scratch:
                run = interrupt_an_up(Path(scratch), sent)
                assert "the engine cancelled its update" in run.output, run.output
                asked.append(run.after_signal("sigint"))
                stopped.append(run.after_signal("exit"))
                went_on.append(run.tool_went_on)
        print(
            f"{sent.name}: engine asked to cancel {_figure(asked)}, engine exited {_figure(stopped)}, "
            f"tool went on to its rollback {_figure(went_on)}"
        )
    for name, grace in (("SIGINT", ON_INTERRUPT), ("SIGTERM", ON_TERMINATE)):
        print(
            f"grace after {name}: {grace.cancel_seconds:g} s to cancel, then {grace.terminate_seconds:g} s "
            "to terminate at once, then SIGKILL"
        )


def _figure(seconds: list[float]) -> str:
    return f"{statistics.median(seconds):.2f} ({max(seconds):.2f})"


if __name__ == "__main__":
    main()
