"""Interruptions: SIGTERM (a cancelled CI job, `kill`) is turned into KeyboardInterrupt while a
command runs, so a release in progress fails its step and rolls back (release.flows.deploy) instead
of dying midway with traffic on a half-released colour."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


@contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """SIGTERM (a cancelled CI job, `kill`) interrupts like Ctrl-C, so a release in progress rolls
    back and reports instead of dying midway; the previous handler is restored afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(_signal: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
