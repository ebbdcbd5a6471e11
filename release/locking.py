"""A per-stack release lock, held for a whole release or rollback, not just for one `up`.

Pulumi locks a stack only while an update runs. A release is several updates with health checks in
between, so a second release could slip in between two of them. This lock (an exclusive `flock` on
`.release/<stack>.lock` in the project directory) makes the second release on the same checkout or
runner fail at once, naming who holds it. Across machines, the protection is Pulumi's own stack
lock on each `up` and the in-progress check on stack history; CI should also run one release per
stack at a time.

The stack name becomes a file name, so `release_lock` refuses a name that is not a valid stack name
(`core.stack_name`) and a lock path that does not resolve inside `.release/` (a symlinked lock
file included): no release can create or truncate a file anywhere else.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from core.errors import ConcurrentReleaseError, UsageError
from core.stack_name import StackName

LOCK_DIRECTORY = ".release"


@contextmanager
def release_lock(project_dir: Path, stack: str, holder: str) -> Iterator[None]:
    """Hold the stack's release lock; raise ConcurrentReleaseError at once if another holds it.

    Raises StackNameError (exit 2) for an invalid stack name and UsageError (exit 2) when the lock
    path would resolve outside `.release/`; nothing is created or truncated then.
    """
    name = StackName.parse(stack)
    with open(_lock_file_descriptor(project_dir, name), "r+") as lock_file:
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


@contextmanager
def release_lock_unless(dry_run: bool, project_dir: Path, stack: str, holder: str) -> Iterator[None]:
    """`release_lock`, except for a dry run, which changes nothing and so takes no lock."""
    if dry_run:
        yield
        return
    with release_lock(project_dir, stack, holder):
        yield


def lock_path(project_dir: Path, stack: StackName) -> Path:
    """`.release/<stack>.lock` in the project; UsageError if it would resolve outside `.release/`."""
    directory = project_dir / LOCK_DIRECTORY
    path = directory / f"{stack}.lock"
    if path.resolve().parent != directory.resolve():
        raise UsageError(
            f"stack '{stack}': the release lock {path} resolves to {path.resolve()}, outside "
            f"{directory}; remove it (a lock file is never a link) and run this again"
        )
    return path


def _lock_file_descriptor(project_dir: Path, stack: StackName) -> int:
    """Open (creating it) the stack's lock file without following a symlink at the last step."""
    (project_dir / LOCK_DIRECTORY).mkdir(exist_ok=True)
    path = lock_path(project_dir, stack)
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    except OSError as error:
        raise UsageError(f"stack '{stack}': cannot open the release lock {path}: {error.strerror}") from error
