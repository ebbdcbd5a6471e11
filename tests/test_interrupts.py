"""An interrupted release stops the running `pulumi up`, waits (bounded) until it has stopped, and only
then rolls back (issue 23, item 7).

Real processes: a driver process runs the real adapter (AutomationEngine, over pulumi.automation)
with a stand-in `pulumi` first on PATH (tests/pulumi_standin.py: its `up` takes 6 s, holds the
stack's lock while it runs, and cancels on SIGINT the way the CLI does). The test sends the driver
SIGTERM or SIGINT 1.5 s into the `up` and reads, from the stand-in's log and the driver's output,
when the engine was asked to cancel, when it stopped, and when the tool went on: every time is
`time.monotonic()`, one clock for every process on the machine, read only to measure.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT
from tests.pulumi_standin import events, install

UP_SECONDS = 6.0
SIGNAL_AT = 1.5
"""Seconds into the `up` when the test interrupts the tool."""
PROMPTLY = 0.5
"""Tolerance for "at once" on a loaded two-core machine (measured: under 0.01 s)."""

DRIVER = """
import sys, time
from pathlib import Path
from release.engine import cancel
from release.engine.automation import AutomationEngine
from release.interrupts import sigterm_interrupts
if sys.argv[2]:  # a short grace (cancel, then terminate), to keep the tests that wait it out quick
    cancel.ON_INTERRUPT = cancel.ON_TERMINATE = cancel.CancelGrace(float(sys.argv[2]), 0.5)
engine = AutomationEngine(Path(sys.argv[1]))
try:
    with sigterm_interrupts():
        engine.up("dev", {}, "release deploy api [preview]")
    print("up finished", flush=True)
except KeyboardInterrupt as interrupt:
    print(f"interrupted at {time.monotonic()}: {getattr(interrupt, 'detail', '')}", flush=True)
    try:  # at once, as the release's rollback does
        outcome = engine.up("dev", {}, "release deploy api [rollback]")
        print(f"rollback up succeeded: {outcome.succeeded}", flush=True)
    except Exception as error:
        print(f"rollback up failed: {type(error).__name__}: {error}", flush=True)
    sys.exit(130)
"""


@dataclass
class Interrupted:
    """One interrupted `up`: what the driver printed and when things happened, in seconds after the signal."""

    output: str
    code: int
    log: list[dict[str, Any]]
    signalled: float
    exited: float

    def after_signal(self, event: str, number: int = 1) -> float:
        matching = [entry for entry in self.log if entry["event"] == event]
        return float(matching[number - 1]["t"]) - self.signalled

    def count(self, event: str) -> int:
        return sum(1 for entry in self.log if entry["event"] == event)

    @property
    def tool_went_on(self) -> float:
        """When the tool raised its interrupt, after the signal."""
        found = re.search(r"interrupted at ([0-9.]+)", self.output)
        assert found, self.output
        return float(found.group(1)) - self.signalled


def interrupt_an_up(
    tmp_path: Path,
    sent: signal.Signals = signal.SIGTERM,
    to_group: bool = False,
    grace: float | None = None,
    **standin: Any,
) -> Interrupted:
    """Run the driver, send `sent` SIGNAL_AT seconds into its `up` (to its whole process group when
    `to_group`, as a terminal's Ctrl-C does), and wait for it to exit. `grace`: the seconds before the
    tool tells the engine to terminate at once (then 0.5 s before SIGKILL); default: the tool's own."""
    project = tmp_path / "project"
    project.mkdir()
    command = [sys.executable, "-c", DRIVER, str(project), "" if grace is None else str(grace)]
    return signal_during_up(command, tmp_path, sent, to_group, **standin)


def signal_during_up(
    command: list[str], tmp_path: Path, sent: signal.Signals, to_group: bool = False, **standin: Any
) -> Interrupted:
    """Run `command` with the stand-in `pulumi` first on PATH, send it `sent` SIGNAL_AT seconds into
    the first `up`, and wait for it to exit."""
    log = tmp_path / "pulumi.jsonl"
    bin_dir = install(tmp_path / "bin", log, up_seconds=standin.pop("up_seconds", UP_SECONDS), **standin)
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env={**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,  # its own process group, as a terminal gives a command
    )
    try:
        deadline = time.monotonic() + 60
        while not any(entry["event"] == "up" for entry in events(log)):
            assert time.monotonic() < deadline and process.poll() is None, "the up never started"
            time.sleep(0.02)
        started = next(entry["t"] for entry in events(log) if entry["event"] == "up")
        time.sleep(max(0.0, started + SIGNAL_AT - time.monotonic()))
        signalled = time.monotonic()
        if to_group:
            os.killpg(process.pid, sent)
        else:
            process.send_signal(sent)
        output = process.communicate(timeout=60)[0]
        return Interrupted(output, process.returncode, events(log), signalled, time.monotonic() - signalled)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.parametrize("sent", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT from a CI runner"])
def test_an_interrupt_asks_the_running_up_to_cancel_at_once(tmp_path: Path, sent: signal.Signals) -> None:
    run = interrupt_an_up(tmp_path, sent)
    assert run.count("sigint") == 1, run.log  # one cancel request: a second would mean "terminate now"
    assert run.after_signal("sigint") == pytest.approx(0, abs=PROMPTLY)
    assert run.log[2]["event"] == "exit" and run.log[2]["cancelled"], run.log  # the up did not run to its end
    assert run.after_signal("exit") < UP_SECONDS - SIGNAL_AT - 2  # well before the 4.5 s it had left


def test_the_tool_goes_on_only_once_the_engine_has_stopped(tmp_path: Path) -> None:
    run = interrupt_an_up(tmp_path, cancel_seconds=1.0)  # the operations in flight take 1 s to finish
    assert run.tool_went_on >= run.after_signal("exit")
    assert run.tool_went_on == pytest.approx(1.0, abs=PROMPTLY)
    assert "the engine cancelled its update" in run.output


def test_the_rollback_up_right_after_an_interrupt_finds_the_stack_unlocked(tmp_path: Path) -> None:
    run = interrupt_an_up(tmp_path, cancel_seconds=3.0)  # a Deployment's rollout in flight, say
    assert "rollback up succeeded: True" in run.output, run.output
    assert run.count("locked") == 0 and run.count("up") == 2
    assert run.code == 130


def test_an_interrupted_up_prints_no_traceback(tmp_path: Path) -> None:
    run = interrupt_an_up(tmp_path)
    assert "Traceback" not in run.output, run.output


def test_an_engine_still_cancelling_after_the_grace_is_told_to_terminate_at_once(tmp_path: Path) -> None:
    run = interrupt_an_up(tmp_path, grace=1.0, cancel_seconds=30)  # an operation in flight that takes minutes
    assert run.count("sigint") == 2
    assert run.after_signal("sigint", 2) == pytest.approx(1.0, abs=PROMPTLY)  # the grace (1 s here)
    assert run.tool_went_on == pytest.approx(1.0, abs=PROMPTLY)
    assert "told to terminate at once" in run.output and "pending" in run.output


def test_an_engine_that_does_not_stop_is_killed_within_the_grace_and_the_tool_says_so(tmp_path: Path) -> None:
    run = interrupt_an_up(tmp_path, grace=1.0, up_seconds=60, deaf=True)
    assert run.count("sigint") == 2 and run.count("exit") == 0  # it never stopped by itself
    assert run.tool_went_on == pytest.approx(1.5, abs=PROMPTLY)  # 1 s + 0.5 s, then SIGKILL
    assert "was killed: the stack may stay locked" in run.output
    assert "rollback up failed: ConcurrentReleaseError" in run.output  # its lock, as a real CLI's would


def test_a_ctrl_c_at_the_terminal_reaches_the_engine_once(tmp_path: Path) -> None:
    run = interrupt_an_up(tmp_path, signal.SIGINT, to_group=True)  # the terminal signals the whole group
    assert run.count("sigint") == 1, run.log  # forwarded once: the CLI cancels instead of terminating
    assert "the engine cancelled its update" in run.output


def test_sigterm_during_a_release_cancels_its_up_and_the_release_rolls_back(tmp_path: Path) -> None:
    run = signal_during_up([sys.executable, "-m", "tests.interrupted_deploy"], tmp_path, signal.SIGTERM)
    assert run.code == 1 and "RolledBack" in run.output, run.output  # a failed release, rolled back
    assert "preview failed: interrupted (Ctrl-C or SIGTERM); the engine cancelled its update" in run.output
    assert run.after_signal("sigint") == pytest.approx(0, abs=PROMPTLY)  # the engine was asked at once
    assert run.after_signal("exit") < UP_SECONDS - SIGNAL_AT - 2  # and stopped long before its 6 s
    assert run.count("up") == 2 and run.count("locked") == 0  # the rollback's up found the stack free
