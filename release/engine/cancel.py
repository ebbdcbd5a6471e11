"""Running a `pulumi` command so that Ctrl-C and SIGTERM stop it instead of waiting for it.

The Automation API runs every CLI command as a child process and keeps no handle to it
(`pulumi.automation._cmd.PulumiCommand.run`, pulumi 3.272: `subprocess.Popen`, one thread reading
each of stdout and stderr, `join`, `wait`). An interrupt in the tool therefore did not reach the
engine: SIGTERM (which only the tool receives) was acted on when `pulumi up` had finished. Raising
out of the SDK's `Popen` block instead closes the CLI's output pipes while it still runs (a Go CLI
then dies of SIGPIPE at its next line, leaving the stack's lock for the rollback's `up` to run into).

`LocalWorkspace(pulumi_command=...)` is the SDK's own way to run commands differently:
`release.engine.pulumi_command.CancellablePulumiCommand` runs them with the same arguments,
environment, output callbacks and errors as `PulumiCommand.run`, through `run_cancellable`, which:

- starts `pulumi` in its own process group, so a terminal's Ctrl-C reaches only the tool, which then
  sends the engine exactly one SIGINT. The Pulumi CLI takes its first SIGINT as "cancel": it starts
  no new resource operation, lets those in flight finish, saves the state, releases the stack's lock
  and exits non-zero; it takes a second as "terminate now" (operations in flight are abandoned and
  may be left pending in the state). Source: pulumi/pulumi, the CLI's cancellation scope
  (`cancellationScopeSource.NewScope`: "^C received; cancelling. If you would like to terminate
  immediately, press ^C again.").
- on an interrupt sends that SIGINT and waits at most `CancelGrace.cancel_seconds`; then sends the
  second SIGINT and waits at most `terminate_seconds`; then kills the engine's process group
  (SIGKILL: the stack may stay locked). Another interrupt during a wait skips to the next stage.
- keeps reading the CLI's output (it streams on) until it has exited, then raises
  `EngineInterrupted` (a KeyboardInterrupt, release.interrupts) saying how the engine stopped, so
  the flow rolls back, as for any interrupt, on a stack whose lock the CLI has released.

The process is waited for through an Event a watcher thread sets, not `Popen.wait`, whose own
handling of KeyboardInterrupt first waits 0.25 s for the child. `time.monotonic` here only measures
what is reported; the waits' deadlines are `Event.wait`'s.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Any

from release.interrupts import EngineInterrupted, Terminated

OnLine = Callable[[str], Any]


@dataclass(frozen=True)
class CancelGrace:
    """How long an interrupted engine command may take to stop."""

    cancel_seconds: float
    """From the cancel request (SIGINT) to "terminate now" (a second SIGINT)."""
    terminate_seconds: float
    """From "terminate now" to SIGKILL of the engine's process group."""


ON_INTERRUPT = CancelGrace(cancel_seconds=5.0, terminate_seconds=2.0)
"""Ctrl-C, or SIGINT: the first signal of a cancelled GitHub Actions step, which sends SIGTERM 7.5 s
later and kills the process tree 2.5 s after that (docs.github.com, "Workflow cancellation
reference"). 5 + 2 = 7 s < 7.5 s: the engine has stopped by itself, releasing the stack's lock,
before anything kills it."""
ON_TERMINATE = CancelGrace(cancel_seconds=1.5, terminate_seconds=0.5)
"""SIGTERM: its sender usually kills soon after (GitHub Actions: 2.5 s). 1.5 + 0.5 = 2 s < 2.5 s."""
KILL_WAIT_SECONDS = 5.0
"""After SIGKILL, how long to wait for the process to be reaped (it cannot refuse)."""
READER_WAIT_SECONDS = 2.0
"""After the engine exited, how long its output may still drain."""


def run_cancellable(
    command: Sequence[str],
    cwd: str,
    env: Mapping[str, str],
    on_output: OnLine | None = None,
    on_error: OnLine | None = None,
    grace: CancelGrace | None = None,
) -> tuple[int, str, str]:
    """Run `command` to its end and return (exit code, stdout, stderr), each output line also passed
    to `on_output` / `on_error` as it comes. An interrupt (KeyboardInterrupt: Ctrl-C, or SIGTERM through
    release.interrupts) cancels it within `grace` (default: ON_INTERRUPT, or ON_TERMINATE for SIGTERM)
    and raises EngineInterrupted."""
    stdout: list[str] = []
    stderr: list[str] = []
    with subprocess.Popen(
        list(command),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=cwd,
        env=dict(env),
        encoding="utf-8",
        process_group=0,  # a terminal's Ctrl-C reaches the tool only; it forwards one SIGINT
    ) as process:
        assert process.stdout is not None and process.stderr is not None
        exited = threading.Event()
        readers: list[threading.Thread] = []
        try:
            _start(_watch, process, exited)
            readers += [_start(_read, process.stdout, on_output, stdout)]
            readers += [_start(_read, process.stderr, on_error, stderr)]
            exited.wait()  # unlike Popen.wait, gives an interrupt straight back (no 0.25 s grace)
        except KeyboardInterrupt as interrupt:
            terminated = isinstance(interrupt, Terminated)
            chosen = grace or (ON_TERMINATE if terminated else ON_INTERRUPT)
            detail = _cancel(process, exited, chosen)
            _drain(readers)
            raise EngineInterrupted(detail, terminated) from None
        _drain(readers)
    return process.returncode, "\n".join(stdout), "\n".join(stderr)


def _cancel(process: subprocess.Popen[str], exited: threading.Event, grace: CancelGrace) -> str:
    """Stop the engine within `grace`; say how it stopped."""
    asked = time.monotonic()
    _signal(process, signal.SIGINT)
    if _waited(exited, grace.cancel_seconds):
        return (
            f"the engine cancelled its update {time.monotonic() - asked:.1f} s after the request "
            f"(exit {process.returncode})"
        )
    _signal(process, signal.SIGINT)  # the CLI's second SIGINT: terminate now
    if _waited(exited, grace.terminate_seconds):
        return (
            f"the engine had not cancelled its update {grace.cancel_seconds:g} s after the request; "
            f"told to terminate at once, it stopped after {time.monotonic() - asked:.1f} s: resource "
            "operations in flight may be left pending in the stack's state (the rollback's `up` "
            "reports them)"
        )
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    _waited(exited, KILL_WAIT_SECONDS)
    return (
        f"the engine did not stop within {grace.cancel_seconds + grace.terminate_seconds:g} s of the "
        "cancel request and was killed: the stack may stay locked (`pulumi cancel` on Pulumi Cloud; on "
        "a file backend remove the lock under .pulumi/locks/) and hold pending operations"
    )


def _signal(process: subprocess.Popen[str], signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signum)


def _waited(exited: threading.Event, seconds: float) -> bool:
    """Whether the process exited within `seconds`; another interrupt ends the wait early."""
    try:
        return exited.wait(seconds)
    except KeyboardInterrupt:
        return exited.is_set()


def _start(target: Callable[..., None], *args: Any) -> threading.Thread:
    thread = threading.Thread(target=target, args=args, daemon=True)
    thread.start()
    return thread


def _watch(process: subprocess.Popen[str], exited: threading.Event) -> None:
    process.wait()
    exited.set()


def _read(stream: IO[str], callback: OnLine | None, lines: list[str]) -> None:
    try:
        for line in iter(stream.readline, ""):
            stripped = line.rstrip()
            if callback:
                callback(stripped)
            lines.append(stripped)
    except (ValueError, OSError):
        pass  # closed after the engine was killed and its output stopped being read


def _drain(readers: list[threading.Thread]) -> None:
    for reader in readers:
        reader.join(READER_WAIT_SECONDS)
