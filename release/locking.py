"""A per-stack release lock, held for a whole release or rollback, not just for one `up`.

Pulumi locks a stack only while an update runs. A release is several updates with health checks in
between, so a second release could slip in between two of them. This lock (an exclusive `flock` on
`.release/<stack>.lock` in the project directory) makes the second release on the same checkout or
runner fail at once, naming who holds it. Across machines, the protection is Pulumi's own stack
lock on each `up` and the in-progress check on stack history; CI should also run one release per
stack at a time.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from release.errors import ConcurrentReleaseError

LOCK_DIRECTORY = ".release"


@contextmanager
def release_lock(project_dir: Path, stack: str, holder: str) -> Iterator[None]:
    """Hold the stack's release lock; raise ConcurrentReleaseError at once if another holds it."""
    directory = project_dir / LOCK_DIRECTORY
    directory.mkdir(exist_ok=True)
    with open(directory / f"{stack}.lock", "a+") as lock_file:
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock_file.seek(0)
            held_by = lock_file.read().strip() or "another release"
            raise ConcurrentReleaseError(stack, f"release lock held by {held_by}") from None
        lock_file.seek(0)
        lock_file.truncate()
        started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        lock_file.write(f"{holder} (pid {os.getpid()}, since {started})\n")
        lock_file.flush()
        try:
            yield
        finally:
            lock_file.seek(0)
            lock_file.truncate()
            fcntl.flock(lock_file, fcntl.LOCK_UN)
