"""An interrupted release stops the running `pulumi up` instead of waiting for it (issue 23, item 7).

Real processes: the real adapter (AutomationEngine, over pulumi.automation) runs a stand-in `pulumi`
executable put first on PATH. The stand-in answers the few subcommands the adapter calls around an
`up`, and its `up` takes UP_SECONDS unless it gets SIGINT, which it logs (with its monotonic time,
comparable across processes) before it exits the way the CLI does after a graceful cancel. What
this proves: the tool forwards the interruption to the CLI and returns within about a second; what
it cannot prove here: how long the real CLI takes to cancel (that depends on the resource
operations in flight; docs/operations.md#interruptions).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from release.engine import cli_process
from tests.conftest import ROOT

UP_SECONDS = 6
STAND_IN = """#!{python}
import json, os, signal, sys, time, pathlib
log = pathlib.Path(__file__).with_name("calls.log")
args = [a for a in sys.argv[1:] if a != "--non-interactive"]
def note(text):
    with log.open("a") as f:
        f.write(text + "\\n")
note(" ".join(args[:2]))
if args[:1] == ["version"]:
    print("v3.238.0"); sys.exit(0)
if args[:1] == ["up"]:
    ignore_first = os.environ.get("STAND_IN_SLOW_CANCEL") == "1"
    def cancel(number, frame):
        global ignore_first
        note(f"SIGINT {{time.monotonic()}}")
        if ignore_first:
            ignore_first = False  # still finishing resource operations in flight
            return
        print("error: update cancelled", flush=True)
        sys.exit(255)
    signal.signal(signal.SIGINT, cancel)
    print("Updating (staging):", flush=True)
    end = time.monotonic() + {up_seconds}
    while time.monotonic() < end:
        time.sleep(0.05)
    note("up finished")
    sys.exit(0)
if args[:2] == ["stack", "history"]:
    print(json.dumps([{{"version": 1, "kind": "update", "startTime": "2026-11-23T09:00:00.000Z",
        "message": "", "environment": {{}}, "config": {{}}, "result": "succeeded",
        "endTime": "2026-11-23T09:00:30.000Z", "resourceChanges": {{"same": 1}}}}]))
    sys.exit(0)
if "--json" in args:
    print("{{}}" if args[0] in ("config", "stack") else "[]")
"""
DRIVER = """
import sys, time
from pathlib import Path
from release.engine import cli_process
from release.engine.automation import AutomationEngine
from release.interrupts import sigterm_interrupts
cli_process.CANCEL_GRACE_SECONDS = 1.0
engine = AutomationEngine(Path(sys.argv[1]))
try:
    with sigterm_interrupts():
        print("up started", flush=True)
        engine.up("staging", {}, "release deploy api")
    print("up finished", flush=True)
except KeyboardInterrupt:
    print(f"interrupted {time.monotonic()}", flush=True)
    sys.exit(130)
"""


def stand_in(directory: Path) -> Path:
    bin_dir = directory / "bin"
    bin_dir.mkdir()
    cli = bin_dir / "pulumi"
    cli.write_text(STAND_IN.format(python=sys.executable, up_seconds=UP_SECONDS))
    cli.chmod(0o755)
    return bin_dir


def interrupted_release(tmp_path: Path, sent: signal.Signals, **env: str) -> tuple[str, float, list[str]]:
    """The driver's output, the seconds from the signal to its exit, and the stand-in's call log."""
    bin_dir = stand_in(tmp_path)
    environment = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", **env}
    driver = subprocess.Popen(
        [sys.executable, "-c", DRIVER, str(ROOT)],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,  # no terminal: like a CI runner's job
    )
    try:
        assert driver.stdout is not None
        assert driver.stdout.readline().strip() == "up started"
        deadline = time.monotonic() + 10
        while not any(call.startswith("up ") for call in _calls(bin_dir)) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.5)  # 1.5 s into the up
        signalled = time.monotonic()
        driver.send_signal(sent)
        output = driver.communicate(timeout=30)[0]
        return output, time.monotonic() - signalled, _calls(bin_dir)
    finally:
        if driver.poll() is None:
            driver.kill()


def _calls(bin_dir: Path) -> list[str]:
    log = bin_dir / "calls.log"
    return log.read_text().splitlines() if log.exists() else []


@pytest.mark.parametrize("sent", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT from a CI runner"])
def test_an_interruption_cancels_the_running_up_instead_of_waiting_for_it(
    tmp_path: Path, sent: signal.Signals
) -> None:
    output, seconds, calls = interrupted_release(tmp_path, sent)
    assert "interrupted" in output, output
    assert any(call.startswith("SIGINT") for call in calls), calls  # the CLI was asked to cancel
    assert "up finished" not in calls  # it did not run to its end
    assert seconds == pytest.approx(0, abs=1.5)  # not the 4.5 s left of the up


def test_a_cli_still_cancelling_after_the_grace_is_told_to_stop_at_once(tmp_path: Path) -> None:
    output, seconds, calls = interrupted_release(tmp_path, signal.SIGTERM, STAND_IN_SLOW_CANCEL="1")
    assert "interrupted" in output, output
    assert sum(call.startswith("SIGINT") for call in calls) == 2, calls
    assert seconds == pytest.approx(1.0, abs=1.5)  # the grace (1 s here), then the second SIGINT


def test_only_direct_pulumi_children_are_found(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    for pid, stat in {
        "101": "101 (pulumi) S 42 0 0",
        "102": "102 (pulumi) S 7 0 0",  # someone else's
        "103": "103 (python) S 42 0 0",
        "104": "104 (odd) name)) S 42 0 0",  # a name with spaces and parentheses
        "self": "1 (pulumi) S 42",
    }.items():
        (proc / pid).mkdir(parents=True)
        (proc / pid / "stat").write_text(stat)
    assert cli_process.cli_children(42, proc) == [101]
