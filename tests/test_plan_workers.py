"""`release plan --all` evaluates stacks in forked worker processes where the cores allow.

The report is the same as one stack after the other; what goes wrong in a worker reaches the command
as it would have in one process: a refusal with its data, a dead worker as a named ProgramError, a
bug as an error with the worker's traceback. An interrupted plan leaves no worker behind.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import pickle
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from core.config.sources import StackFile, read_stack_file, stack_secret_names_of
from core.errors import ConfigError, ConfigProblem, ProgramError, ReleaseError, StackNameError
from policy.platform_policies import Violation
from release.offline import workers
from release.offline.mock_runtime import ProgramRun
from release.offline.workers import evaluate_in_workers, worth_forking
from tests.conftest import PROJECT, ROOT, STACKS, stdout_of_a_fresh_python


@pytest.fixture(autouse=True)
def a_process_without_grpc(monkeypatch: pytest.MonkeyPatch) -> None:
    """This test process has evaluated programs (gRPC runs); the fake evaluations forked here use none."""
    monkeypatch.setattr(workers, "evaluated_in_this_process", lambda: False)


def stack_files() -> list[StackFile]:
    secret_names = stack_secret_names_of(PROJECT)
    return [read_stack_file(PROJECT, stack, secret_names) for stack in STACKS]


def empty_run(stack_file: StackFile) -> tuple[ProgramRun, list[Violation]]:
    return ProgramRun(stack_file.stack, []), []


def in_workers(
    evaluate: Callable[[StackFile], tuple[ProgramRun, list[Violation]]],
) -> dict[str, workers.Evaluation]:
    return evaluate_in_workers(evaluate, stack_files(), workers=2, progress=lambda _: None)


# ------------------------------------------------------------------------------------------ same report


def _plan_json_of_a_fresh_process(services_worth_a_worker: int) -> dict[str, object]:
    script = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from release.offline.plan import plan, to_json\n"
        "said = []\n"
        f"report = plan(Path({str(PROJECT)!r}), {list(STACKS)!r}, True, said.append, "
        f"services_worth_a_worker={services_worth_a_worker})\n"
        "print(json.dumps({'report': to_json(report), 'progress': said}, sort_keys=True))\n"
    )
    return dict(json.loads(stdout_of_a_fresh_python(script)))


def test_stacks_evaluated_in_workers_give_the_report_of_one_stack_after_the_other() -> None:
    if workers.usable_cores() < 2:
        pytest.skip("this process may use one core only: stacks are never evaluated in workers there")
    in_parallel = _plan_json_of_a_fresh_process(services_worth_a_worker=1)
    one_after_the_other = _plan_json_of_a_fresh_process(services_worth_a_worker=1_000_000)
    assert any("2 at a time" in line for line in in_parallel["progress"])  # type: ignore[attr-defined]
    assert not any("at a time" in line for line in one_after_the_other["progress"])  # type: ignore[attr-defined]
    assert in_parallel["report"] == one_after_the_other["report"]


# ------------------------------------------------------------------------------------------ when


def test_workers_are_used_for_several_stacks_of_many_services_on_several_cores() -> None:
    assert worth_forking(stack_count=3, services=100, services_worth_a_worker=10, cores=2) == 2
    assert worth_forking(stack_count=2, services=10, services_worth_a_worker=10, cores=8) == 2


@pytest.mark.parametrize(
    ("stack_count", "services", "cores"),
    [(1, 100, 2), (3, 100, 1), (3, 9, 2)],
    ids=["one stack", "one core", "few services"],
)
def test_workers_are_not_used_where_they_would_not_be_faster(
    stack_count: int, services: int, cores: int
) -> None:
    assert worth_forking(stack_count, services, services_worth_a_worker=10, cores=cores) == 0


def test_workers_are_not_forked_from_a_process_that_has_evaluated_a_program(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(workers, "evaluated_in_this_process", lambda: True)
    assert worth_forking(stack_count=3, services=100, services_worth_a_worker=10, cores=2) == 0
    with pytest.raises(RuntimeError, match="forked only from a process that has evaluated no program"):
        in_workers(empty_run)


# ------------------------------------------------------------------------------------------ what comes back


def test_each_stack_gets_its_own_workers_answer() -> None:
    evaluations = in_workers(empty_run)
    assert sorted(evaluations) == sorted(STACKS)
    assert all(evaluations[stack].run.stack == stack for stack in STACKS)  # type: ignore[union-attr]


def test_a_refusal_in_a_worker_comes_back_with_its_class_and_data() -> None:
    def refuse(stack_file: StackFile) -> tuple[ProgramRun, list[Violation]]:
        raise ProgramError(stack_file.stack, "MissingSecretsError: 1 secret(s) not set")

    evaluations = in_workers(refuse)
    error = evaluations["staging"].error
    assert isinstance(error, ProgramError)
    assert (error.stack, error.reason) == ("staging", "MissingSecretsError: 1 secret(s) not set")
    assert str(error).startswith("stack 'staging': the program failed under the mock runtime")


def test_a_worker_that_dies_without_an_answer_is_a_program_error_naming_the_stack_and_exit_code() -> None:
    def killed(stack_file: StackFile) -> tuple[ProgramRun, list[Violation]]:
        if stack_file.stack == "production":
            os.kill(os.getpid(), signal.SIGKILL)
        return empty_run(stack_file)

    evaluations = in_workers(killed)
    error = evaluations["production"].error
    assert isinstance(error, ProgramError) and error.stack == "production"
    assert "exit code -9" in error.reason and "on this stack alone" in error.reason
    assert evaluations["dev"].run is not None


def test_a_worker_ended_by_sigterm_is_a_program_error_naming_the_signal() -> None:
    def terminated(stack_file: StackFile) -> tuple[ProgramRun, list[Violation]]:
        if stack_file.stack == "staging":
            os.kill(os.getpid(), signal.SIGTERM)
        return empty_run(stack_file)

    error = in_workers(terminated)["staging"].error
    assert isinstance(error, ProgramError) and "exit code -15" in error.reason


def test_a_bug_in_a_worker_is_one_line_with_the_workers_traceback_as_its_cause() -> None:
    def bug(stack_file: StackFile) -> tuple[ProgramRun, list[Violation]]:
        raise ZeroDivisionError("a bug in the plan")

    with pytest.raises(RuntimeError) as raised:
        in_workers(bug)
    one_line = r"evaluating stack '\w+' in a worker process failed: ZeroDivisionError: a bug in the plan"
    assert re.fullmatch(one_line, str(raised.value))
    assert "Traceback (most recent call last)" in str(raised.value.__cause__)


def test_when_no_process_can_be_started_the_stacks_are_evaluated_here(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refused(_: object) -> None:
        raise OSError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(multiprocessing.context.ForkProcess, "start", refused)
    said: list[str] = []
    evaluations = evaluate_in_workers(empty_run, stack_files(), workers=2, progress=said.append)
    assert {stack: evaluation.run.stack for stack, evaluation in evaluations.items()} == {  # type: ignore[union-attr]
        stack: stack for stack in STACKS
    }
    assert any("cannot start a worker process" in line and "evaluated here" in line for line in said)


def test_an_interrupted_plan_leaves_no_worker_running(monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(*_: object) -> list[object]:
        raise KeyboardInterrupt

    monkeypatch.setattr(workers, "wait", interrupted)
    with pytest.raises(KeyboardInterrupt):
        in_workers(empty_run)
    assert multiprocessing.active_children() == []


def _gone(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status")
    try:
        return "\nState:\tZ" in status.read_text()  # a zombie nobody reaps here has ended all the same
    except FileNotFoundError:
        return True


def _within(seconds: float, condition: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_workers_end_with_a_command_killed_with_sigkill(tmp_path: Path) -> None:
    script = (
        "import os, time\n"
        "from pathlib import Path\n"
        "from release.offline.workers import evaluate_in_workers\n"
        "from tests.test_plan_workers import stack_files\n"
        "def evaluate(stack_file):\n"
        f"    Path({str(tmp_path)!r}, stack_file.stack).write_text(str(os.getpid()))\n"
        "    time.sleep(60)\n"
        "evaluate_in_workers(evaluate, stack_files(), workers=2, progress=lambda _: None)\n"
    )
    command = subprocess.Popen(
        [sys.executable, "-c", script], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}
    )
    try:
        assert _within(20, lambda: len(list(tmp_path.iterdir())) == 2), "two workers started"
        pids = [int(path.read_text()) for path in tmp_path.iterdir()]
    finally:
        command.kill()
        command.wait()
    assert _within(5, lambda: all(_gone(pid) for pid in pids))


# ------------------------------------------------------------------------------------------ errors travel


@pytest.mark.parametrize(
    "error",
    [
        ConfigError(
            "dev", [ConfigProblem("dev", "platform:gateway", "x", "not a knob", "remove it", parity=True)]
        ),
        ProgramError("dev", "ValueError: boom"),
        StackNameError("../prod", ["it leaves the project"]),
    ],
    ids=lambda error: type(error).__name__,
)
def test_a_release_error_survives_pickling_with_its_message_and_data(error: ReleaseError) -> None:
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert str(copy) == str(error) and vars(copy) == vars(error)
