"""A cancelled or timed-out GitHub Actions job reaches the `release` tool (docs/operations.md#interruptions).

GitHub cancels a step by signalling the step's entry process only: SIGINT, SIGTERM 7.5 s later, then
the process tree is killed 2.5 s after that (docs.github.com, "Workflow cancellation reference"). For
a `run:` step that process is bash, which does not pass a signal on to the command it is waiting for.
So every step that runs `release` on a stack makes the tool the step's own process (`exec`), one command per
step, with a timeout of its own below the job's. The second test shows, with real processes and bash
started as the runner starts it, what would happen otherwise.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT

RUNNER_BASH = ["bash", "--noprofile", "--norc", "-e", "-o", "pipefail"]
"""How the runner starts a `run:` script on Linux (`shell: bash`, the default)."""


def release_steps() -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(workflow, job, step) for every step whose script runs the release tool on a stack (not
    `release plan`, which runs offline and changes nothing)."""
    found = []
    for path in sorted((ROOT / ".github" / "workflows").glob("*.yml")):
        workflow = yaml.safe_load(path.read_text())
        for job in workflow["jobs"].values():
            for step in job.get("steps", []):
                script = step.get("run", "")
                if ".venv/bin/release" in script and ".venv/bin/release plan" not in script:
                    found.append((path.name, job, step))
    return found


def test_every_release_step_runs_the_tool_as_the_step_s_own_process() -> None:
    steps = release_steps()
    assert len(steps) >= 8
    for workflow, _job, step in steps:
        lines = [line.strip() for line in step["run"].strip().splitlines()]
        assert lines and lines[0].startswith("exec .venv/bin/release "), (workflow, step["run"])
        assert len(lines) == 1, (workflow, step["run"])  # nothing after an exec would ever run


def test_every_release_step_has_a_timeout_below_its_job_s() -> None:
    for workflow, job, step in release_steps():
        assert 0 < step["timeout-minutes"] < job["timeout-minutes"], (workflow, step.get("name"))


CHILD = """
import signal, sys, time
def got(number, frame):
    print("got", signal.Signals(number).name, flush=True)
    sys.exit(130)
signal.signal(signal.SIGINT, got)
print("ready", flush=True)
time.sleep(3)
print("finished", flush=True)
"""


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
@pytest.mark.parametrize(("script", "reached"), [("", False), ("exec ", True)], ids=["under bash", "exec"])
def test_a_cancel_reaches_a_step_s_command_only_when_it_is_the_step_s_process(
    tmp_path: Path, script: str, reached: bool
) -> None:
    (tmp_path / "child.py").write_text(CHILD)
    (tmp_path / "step.sh").write_text(f"{script}{sys.executable} {tmp_path / 'child.py'}\n")
    step = subprocess.Popen(
        [*RUNNER_BASH, str(tmp_path / "step.sh")], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    assert step.stdout is not None and step.stdout.readline().strip() == "ready"
    signalled = time.monotonic()
    step.send_signal(signal.SIGINT)  # as the runner does: to the step's entry process only
    output = step.communicate(timeout=10)[0]
    assert ("got SIGINT" in output) is reached, output
    if not reached:  # the command ran its whole 3 s, as a `pulumi up` would until the tree is killed
        assert "finished" in output and time.monotonic() - signalled > 2


def test_every_promotion_job_may_read_the_runs_approvals_and_its_commit() -> None:
    """`release promote` reads the review history (actions: read) and the run's commit (contents:
    read) with the job's token; without either GitHub answers 403 and the promotion is refused."""
    promotions = [
        (workflow, job, step) for workflow, job, step in release_steps() if "release promote" in step["run"]
    ]
    assert promotions
    for workflow, job, step in promotions:
        document = yaml.safe_load((ROOT / ".github" / "workflows" / workflow).read_text())
        permissions = job.get("permissions") or document.get("permissions", {})
        env = {**document.get("env", {}), **job.get("env", {}), **step.get("env", {})}
        assert permissions.get("actions") in ("read", "write"), workflow
        assert permissions.get("contents") in ("read", "write"), workflow
        assert env.get("GITHUB_TOKEN") == "${{ github.token }}", workflow
