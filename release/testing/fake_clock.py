"""A clock that moves only when told: the tests' and benchmarks' `Clock`.

It starts at a fixed instant (a Monday morning outside every freeze window) and advances when a
test calls `advance`/`set`, when the engine double finishes an update, or when a flow sleeps through
`sleep` (so a wait of 120 s takes no time and moves the clock by exactly 120 s).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

MONDAY_MORNING = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
"""Where a FakeClock starts: Monday 23 November 2026, 09:00 UTC (10:00 in Europe/Berlin)."""


class FakeClock:
    def __init__(self, start: datetime = MONDAY_MORNING) -> None:
        self._now = _aware(start)

    def __call__(self) -> datetime:
        return self._now

    def set(self, moment: datetime) -> None:
        """Move to `moment` (backwards too: a test may replay an earlier instant)."""
        self._now = _aware(moment)

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"a clock advances by a non-negative number of seconds, not {seconds}")
        self._now += timedelta(seconds=seconds)

    def sleep(self, seconds: float) -> None:
        """A flow's wait: the clock moves by `seconds`, no real time passes."""
        self.advance(max(0.0, seconds))


def _aware(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError(f"a clock holds aware times; {moment.isoformat()} has no time zone")
    return moment.astimezone(UTC)
