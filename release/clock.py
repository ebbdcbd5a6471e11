"""The one clock of the release tool: every decision that depends on the time asks a `Clock`.

A command runs on the system clock (`system_clock`); tests and benchmarks hand the context a clock
they move by hand (release.testing.fake_clock.FakeClock), so a freeze window, a soak period or a
drill's age is judged at an instant the test chose, on any day the suite runs. Durations that are
only measured (how long a step took) use `time.monotonic` and never decide anything.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]
"""Returns the current time as an aware UTC datetime."""


def system_clock() -> datetime:
    return datetime.now(UTC)
