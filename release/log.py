"""The tool's one logger: `release` on stderr, one line per step; results go to stdout.

    release: preview: pulumi up -s staging (release deploy api: ...)    a step (shown by default)
    release: verify failed: ...; rolling back
    release:   rollback: pulumi up -s staging (...)                      its steps, indented
    release: evaluating stack 'dev' under the mock runtime ...          a detail (--verbose)

`--quiet` keeps warnings and errors only. Every line is escaped (`core.text.printable`): text from
outside (stack files, history, engine errors) cannot forge a line. The `core` package logs through
the same handler (a skipped stack file, say), so the tool has one style on stderr.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

Progress = Callable[[str], None]
"""How flows report a step: `progress` below, or a test's list.append."""

LOGGER_NAMES = ("release", "core")
log = logging.getLogger("release")
_depth: ContextVar[int] = ContextVar("release_log_depth", default=0)


class _StderrHandler(logging.Handler):
    """Writes to the stderr of the moment (tests swap it), prefixed `release: ` and escaped."""

    def emit(self, record: logging.LogRecord) -> None:
        from core.text import printable

        try:
            indent = "  " * _depth.get()
            sys.stderr.write(printable(f"release: {indent}{record.getMessage()}") + "\n")
            sys.stderr.flush()
        except Exception:  # noqa: BLE001 - logging must never break the command it reports on
            self.handleError(record)


def configure(verbose: bool = False, quiet: bool = False) -> None:
    """Show details under --verbose, only warnings and errors under --quiet, else steps."""
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    for name in LOGGER_NAMES:
        logger = logging.getLogger(name)
        logger.handlers = [_StderrHandler()]
        logger.setLevel(level)
        logger.propagate = False


@contextmanager
def indented() -> Iterator[None]:
    """The steps logged inside are part of the step logged before (a rollback inside a release)."""
    token = _depth.set(_depth.get() + 1)
    try:
        yield
    finally:
        _depth.reset(token)


def progress(message: str) -> None:
    """A step of a command (the `Progress` callback flows take)."""
    log.info(message)


def detail(message: str) -> None:
    """A detail only --verbose shows."""
    log.debug(message)


def error(message: str) -> None:
    """An error for people; shown even under --quiet."""
    log.error(message)
