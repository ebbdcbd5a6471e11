"""Interruptions: SIGTERM (a cancelled CI job, `kill`) and SIGINT (Ctrl-C, or a CI runner's first
signal) are turned into KeyboardInterrupt while a command runs, so a release in progress fails its
step and rolls back (release.flows.deploy) instead of dying midway with traffic on a half-released
colour.

Before raising, the handler calls what the running engine operation registered with `stopping`
(release.engine.automation: SIGINT to the running `pulumi`, release.engine.cli_process), so the tool
does not wait for a whole `up` to finish before it can roll back. A Ctrl-C typed at the terminal
already reached the CLI (the terminal signals the whole foreground process group), so then nothing
is forwarded: a second SIGINT would make the CLI stop at once instead of cancelling gracefully.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

_stops: list[Callable[[], object]] = []


@contextmanager
def stopping(stop: Callable[[], object]) -> Iterator[None]:
    """While the block runs, an interruption calls `stop` before it raises KeyboardInterrupt."""
    _stops.append(stop)
    try:
        yield
    finally:
        _stops.remove(stop)


@contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """SIGTERM interrupts like Ctrl-C, and both first stop the running engine operation, so a release
    in progress rolls back and reports instead of dying midway; the previous handlers are restored
    afterwards."""
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
    if number == signal.SIGTERM or not _typed_at_the_terminal():
        for stop in list(_stops):
            stop()
    raise KeyboardInterrupt


def _typed_at_the_terminal() -> bool:
    """True when our process group is the terminal's foreground group: a Ctrl-C there reached every
    process of the group, the CLI included."""
    try:
        return sys.stdin.isatty() and os.tcgetpgrp(sys.stdin.fileno()) == os.getpgrp()
    except (OSError, ValueError, AttributeError):
        return False
