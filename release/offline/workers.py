"""Evaluate several stacks at once, one forked process per stack, where the cores allow.

Each stack is still evaluated by the real mock runtime (`evaluate_stack_file`), exactly as in one
process; a worker only runs that evaluation and the policy pack on its result, and sends both
back through a pipe. Nothing is modelled twice.

When it pays, measured (docs/development.md, "Benchmark"): every process loads the SDK modules the
program touches for itself (about a second for this program), so three stacks of a few services
take longer in workers than one after the other. From about ten services the evaluation outweighs
that, and three stacks of 100 services take two thirds of the time on two cores. `worth_forking`
is that rule.

What a worker must not inherit, and does not:
- a gRPC runtime: the SDK starts one (its callback server) on the first evaluation in a process,
  and gRPC does not survive a fork. Workers are forked only from a process that has evaluated
  nothing (`mock_runtime.evaluated_in_this_process`; `evaluate_in_workers` refuses otherwise), else
  the stacks run one after the other.
- unwritten output: stdout and stderr are flushed before the first fork, so nothing is printed twice.
- the command's signal handlers: a worker ignores Ctrl-C (the command, which receives it too, stops
  every worker and reports the interrupt) and simply ends on SIGTERM (its stack's error names the
  signal); interrupts are held while a worker is forked, so none arrives before it has its own.
- the other workers' pipes, and a life of its own: it closes every pipe's reading end it inherited,
  and Linux kills it when the command ends, even killed with -9 (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any

from core.config.sources import StackFile
from core.errors import ProgramError, ReleaseError
from policy.platform_policies import Violation
from release.log import Progress
from release.offline.mock_runtime import ProgramRun, evaluated_in_this_process

Evaluate = Callable[[StackFile], tuple[ProgramRun, list[Violation]]]
"""What a worker runs for its stack: the program under the mock runtime, then the policy pack."""

SERVICES_WORTH_A_WORKER = 10
"""From this many services in a stack, its evaluation outweighs a worker's own module loading."""


@dataclass
class Evaluation:
    """One stack's evaluation: what the program registered and what the policy pack says of it, or
    the error that stopped it."""

    run: ProgramRun | None = None
    policy_violations: list[Violation] = field(default_factory=list)
    error: ReleaseError | None = None


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity, not the machine's count); 1 where that
    cannot be read (not Linux), which keeps the evaluation in this process: only on Linux is forking
    a process that has loaded these libraries known to be safe."""
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity is not None else 1


def worth_forking(stack_count: int, services: int, services_worth_a_worker: int, cores: int) -> int:
    """How many workers evaluating `stack_count` stacks of up to `services` services should use: 0
    (evaluate them here, one after the other) unless workers are faster (see the module's
    docstring) and safe in this process."""
    if stack_count < 2 or cores < 2 or services < services_worth_a_worker or evaluated_in_this_process():
        return 0
    return min(stack_count, cores)


def evaluate_in_workers(
    evaluate: Evaluate, stack_files: Sequence[StackFile], workers: int, progress: Progress
) -> dict[str, Evaluation]:
    """`evaluate` every stack in its own forked process, `workers` at a time; results by stack.

    A worker that dies without an answer (killed, out of memory) gives that stack a ProgramError
    naming its exit code; a bug in a worker is raised here, with the worker's traceback. If no
    process can be started (a limit on processes or memory), the stacks not started yet are
    evaluated here, once the workers have finished."""
    if evaluated_in_this_process():
        raise RuntimeError("workers are forked only from a process that has evaluated no program (gRPC)")
    context = multiprocessing.get_context("fork")
    waiting = list(stack_files)
    not_started: list[StackFile] = []
    running: dict[Connection, tuple[str, multiprocessing.process.BaseProcess]] = {}
    results: dict[str, Evaluation] = {}
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        while waiting or running:
            while waiting and len(running) < max(1, workers):
                stack_file = waiting.pop(0)
                try:
                    _start(context, evaluate, stack_file, running)
                except OSError as error:  # a limit on processes or memory
                    progress(f"cannot start a worker process ({error}): the other stacks are evaluated here")
                    not_started += [stack_file, *waiting]
                    waiting.clear()
            for ready in wait(list(running)) if running else ():  # none: no worker could be started
                assert isinstance(ready, Connection)
                stack, finished = running[ready]
                results[stack] = _received(stack, ready, finished)
                del running[ready]
                progress(f"stack '{stack}' evaluated")
    finally:
        for connection, (_, unfinished) in running.items():  # interrupted: stop every worker
            unfinished.kill()
            unfinished.join()
            connection.close()
    for stack_file in not_started:
        results[stack_file.stack] = evaluate_here(evaluate, stack_file)
    return results


def evaluate_here(evaluate: Evaluate, stack_file: StackFile) -> Evaluation:
    """`evaluate` one stack in this process; a refusal is its Evaluation's error."""
    try:
        run, violations = evaluate(stack_file)
    except ReleaseError as error:
        return Evaluation(error=error)
    return Evaluation(run=run, policy_violations=violations)


def _start(
    context: Any,
    evaluate: Evaluate,
    stack_file: StackFile,
    running: dict[Connection, tuple[str, multiprocessing.process.BaseProcess]],
) -> None:
    """Fork a worker for `stack_file` and add it to `running` (OSError: no process could be
    started). Interrupts are held meanwhile, so the worker is in `running` (stopped on an interrupt)
    before the command takes one, and sets its own handlers before it takes any."""
    receiver, sender = context.Pipe(duplex=False)
    worker = context.Process(
        target=_worker,
        args=(evaluate, stack_file, sender, [receiver, *running], os.getpid()),
        name=f"release plan: stack {stack_file.stack}",
        daemon=True,
    )
    with _interrupts_held():
        try:
            worker.start()
        except OSError:
            receiver.close()
            raise
        finally:
            sender.close()  # the worker holds the only writing end: its exit ends the pipe
        running[receiver] = (stack_file.stack, worker)


def _received(stack: str, connection: Connection, worker: multiprocessing.process.BaseProcess) -> Evaluation:
    try:
        outcome, payload = connection.recv()
    except EOFError:
        outcome, payload = "died", None
    finally:
        connection.close()
    worker.join()
    if outcome == "evaluated":
        assert isinstance(payload, Evaluation)
        return payload
    if outcome == "died":
        return Evaluation(
            error=ProgramError(
                stack,
                f"the process evaluating it ended without an answer (exit code {worker.exitcode}); "
                "run `release plan` on this stack alone to see why",
            )
        )
    last = payload.strip().splitlines()[-1] if payload.strip() else "no traceback"
    raise RuntimeError(f"evaluating stack '{stack}' in a worker process failed: {last}") from _WorkerError(
        payload
    )


class _WorkerError(Exception):
    """A worker's traceback, chained to the error the command raises (shown under --verbose)."""

    def __str__(self) -> str:
        return f"in the worker process:\n{self.args[0]}"


def _worker(
    evaluate: Evaluate, stack_file: StackFile, answer: Connection, inherited: list[Connection], parent: int
) -> None:
    """A worker's whole life: evaluate one stack, send the outcome, exit. It keeps no copy of any
    pipe's reading end (the command's alone: a worker's answer must fail once the command is
    gone) and ends with the command, `parent` (`_ends_with_the_command`)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the command, which stops every worker
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the command's handler: a worker just ends
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _INTERRUPTS)
    outcome: tuple[str, Any]
    try:
        for connection in inherited:
            connection.close()
        _ends_with_the_command(parent)
        outcome = ("evaluated", evaluate_here(evaluate, stack_file))  # a refusal is its error
    except BaseException:  # noqa: BLE001 - a bug: its traceback goes to the parent, which raises it
        outcome = ("failed", traceback.format_exc())
    try:
        answer.send(outcome)
    except OSError:  # the command is gone (killed): nobody is left to tell
        pass
    except Exception:  # noqa: BLE001 - an answer that cannot be pickled is a bug, reported the same way
        with suppress(OSError):
            answer.send(("failed", traceback.format_exc()))
    finally:
        answer.close()


_INTERRUPTS = {signal.SIGINT, signal.SIGTERM}


@contextmanager
def _interrupts_held() -> Iterator[None]:
    """SIGINT and SIGTERM held back (the command takes a held one when they are released)."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, _INTERRUPTS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


_PR_SET_PDEATHSIG = 1
"""prctl(2): the signal this process gets when its parent ends."""


def _ends_with_the_command(parent: int) -> None:
    """Ask Linux to kill this worker when the command that forked it ends (killed with -9, say), so
    no worker outlives it; if the command has already gone, end now."""
    with suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)
