"""Asking the person at the terminal, with a deadline: the only input the tool reads from stdin."""

from __future__ import annotations

import select
import sys
from collections.abc import Callable

Ask = Callable[[str], str | None]
"""Put a question to the person at the terminal; their answer, or None when nobody can answer (stdin
or stderr is not a terminal: CI, a pipe, a cron job)."""

ANSWER_SECONDS = 300.0
"""How long a question waits for its answer; no answer in time is a "no"."""

MAX_ANSWER = 4096


def ask(question: str) -> str | None:
    if sys.stdin is None or sys.stderr is None or not (sys.stdin.isatty() and sys.stderr.isatty()):
        return None
    sys.stderr.write(question)
    sys.stderr.flush()
    ready, _, _ = select.select([sys.stdin], [], [], ANSWER_SECONDS)
    if not ready:
        sys.stderr.write("\n(no answer in time)\n")
        return ""
    try:
        return sys.stdin.readline(MAX_ANSWER)
    except (UnicodeDecodeError, OSError):  # an answer that is not text is not the stack's name
        return ""
