"""Interruptions: SIGTERM (a cancelled CI job, `kill`) and SIGINT (Ctrl-C, or a CI runner's first
signal) are turned into KeyboardInterrupt while a command runs, so a release in progress fails its
step and rolls back (release.flows.deploy) instead of dying midway with traffic on a half-released
color.

An interrupt that arrives while the engine runs a `pulumi` command does not wait for the command to
finish: release.engine.cancel asks it to cancel at once, waits (bounded) until it has stopped, so the
rollback's own `up` finds the stack unlocked, and raises `EngineInterrupted`, which says how the
engine stopped. SIGTERM raises `Terminated`: its sender usually kills soon after, so the engine gets
the shorter grace.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

INTERRUPTED = "interrupted (Ctrl-C or SIGTERM)"


class Terminated(KeyboardInterrupt):
    """SIGTERM: like Ctrl-C, but whoever sent it usually kills the process soon after (a cancelled
    GitHub Actions step: 2.5 s later)."""


class EngineInterrupted(KeyboardInterrupt):
    """An interrupt that stopped a running engine command; `detail` says how the engine stopped
    (it cancelled within its grace, was told to terminate at once, or was killed)."""

    def __init__(self, detail: str, terminated: bool = False) -> None:
        super().__init__(detail)
        self.detail = detail
        self.terminated = terminated
        """The interrupt was SIGTERM (see Terminated)."""


def describe(interrupt: KeyboardInterrupt) -> str:
    """`interrupted (Ctrl-C or SIGTERM)`, and how the engine stopped when one was running."""
    if isinstance(interrupt, EngineInterrupted):
        return f"{INTERRUPTED}; {interrupt.detail}"
    return INTERRUPTED


@contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """SIGTERM and SIGINT interrupt (even where SIGINT was ignored, as for a command started in the
    background of a script), so a release in progress rolls back and reports instead of dying
    midway; the previous handlers are restored afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {number: signal.signal(number, _interrupt) for number in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _interrupt(number: int, _frame: FrameType | None) -> None:
    if number == signal.SIGTERM:
        raise Terminated
    raise KeyboardInterrupt
