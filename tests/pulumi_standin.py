"""A stand-in for the `pulumi` CLI, for tests of what an interrupt does to a running `up` (the real CLI
cannot be installed on the development machines). `install(directory, ...)` writes it as an
executable `pulumi` to put first on PATH.

It answers what the engine adapter asks around an `up` (`version`, `stack select`, `config --json`,
`config set-all`, `stack output --json`, `stack history --json`) and behaves like `pulumi up` the
way the CLI's cancellation scope does (pulumi/pulumi, `cancellationScopeSource.NewScope`): it holds
the stack's lock while its update runs (another `up` meanwhile fails as the file backend's does:
"the stack is currently locked by ..."), prints progress; the first SIGINT prints "^C received;
cancelling..." and the update stops after the operations in flight (`cancel_seconds`); a second
SIGINT prints "^C received; terminating" and exits at once, unless `deaf` (it then runs on until it
is killed). A cancelled or terminated update exits 255 and releases the lock; one killed (SIGKILL,
or SIGPIPE when its output is no longer read) leaves the lock behind.

Every start, signal and exit is appended to the JSON-lines `log` with `time.monotonic()` (one clock
for every process on the machine), so a test measures from outside how fast the engine was asked to
stop and how fast it stopped.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any

VERSION = "v3.272.0"
CANCELLING = "^C received; cancelling. If you would like to terminate immediately, press ^C again."


def install(
    directory: Path,
    log: Path,
    up_seconds: float = 6.0,
    cancel_seconds: float = 0.3,
    slow_ups: int = 1,
    deaf: bool = False,
) -> Path:
    """Write the stand-in as `directory/pulumi`; return the directory (put it first on PATH).

    Its first `slow_ups` updates take `up_seconds`; later ones (a rollback's) take 0.1 s. A cancel
    request stops an update `cancel_seconds` later."""
    directory.mkdir(parents=True, exist_ok=True)
    settings = {"log": str(log), "up": up_seconds, "cancel": cancel_seconds, "slow": slow_ups, "deaf": deaf}
    script = directory / "pulumi"
    script.write_text(
        f"#!{sys.executable}\nimport sys\nsys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        f"from pulumi_standin import main\nraise SystemExit(main(sys.argv[1:], {settings!r}))\n"
    )
    script.chmod(0o755)
    return directory


def events(log: Path) -> list[dict[str, Any]]:
    """What the stand-ins wrote to `log`, in order."""
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def main(argv: list[str], settings: dict[str, Any]) -> int:
    # Like the Go CLI (Go's os/signal: a write to a broken pipe on stdout or stderr kills the program
    # with SIGPIPE unless it asked for that signal): a reader that went away kills it mid-update,
    # leaving the stack's lock behind.
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    words = [word for word in argv if not word.startswith("-")]
    log = Path(settings["log"])
    if words[:1] == ["version"]:
        print(VERSION)
        return 0
    if words[:1] == ["up"]:
        return _up(log, settings)
    if words[:2] == ["stack", "history"]:
        print(json.dumps([HISTORY_ENTRY]))
    elif words[:1] in (["config"], ["stack"]) and "--json" in argv and "set-all" not in words:
        print("{}")
    return 0


HISTORY_ENTRY = {
    "version": 0,
    "kind": "update",
    "startTime": "2026-11-23T09:00:00.000Z",
    "message": "",
    "environment": {},
    "config": {},
    "result": "succeeded",
    "endTime": "2026-11-23T09:00:06.000Z",
    "resourceChanges": {"update": 1},
}


def _write(log: Path, event: str, **fields: Any) -> None:
    with log.open("a") as file:
        file.write(json.dumps({"event": event, "pid": os.getpid(), "t": time.monotonic(), **fields}) + "\n")


def _up(log: Path, settings: dict[str, Any]) -> int:
    number = 1 + sum(1 for entry in events(log) if entry["event"] == "up")
    seconds = settings["up"] if number <= settings["slow"] else 0.1
    signals: list[float] = []

    def interrupted(_signal: int, _frame: FrameType | None) -> None:
        signals.append(time.monotonic())
        _write(log, "sigint", number=len(signals))
        if len(signals) == 1:
            print(CANCELLING, flush=True)
        else:
            print("^C received; terminating", flush=True)

    lock = log.with_suffix(".lock")
    try:
        descriptor = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        print(f"error: the stack is currently locked by 1 lock(s): {lock.read_text()}", file=sys.stderr)
        _write(log, "locked", number=number)
        return 255
    os.write(descriptor, f"pulumi up (pid {os.getpid()})".encode())
    os.close(descriptor)
    try:
        signal.signal(signal.SIGINT, interrupted)
        _write(log, "up", number=number, seconds=seconds)
        return _update(log, settings, seconds, signals)
    finally:
        lock.unlink()


def _update(log: Path, settings: dict[str, Any], seconds: float, signals: list[float]) -> int:
    print("Updating (dev):", flush=True)
    started = printed = time.monotonic()
    while time.monotonic() - started < seconds:
        if signals and settings["deaf"]:
            pass  # an engine stuck in an operation: only SIGKILL ends it
        elif len(signals) >= 2 or (signals and time.monotonic() - signals[0] >= settings["cancel"]):
            print("error: update canceled", file=sys.stderr, flush=True)
            _write(log, "exit", code=255, cancelled=True)
            return 255
        if time.monotonic() - printed >= 0.5:
            printed = time.monotonic()
            print(f"    ~  kubernetes:apps/v1:Deployment api updating ({printed - started:.0f}s)", flush=True)
        time.sleep(0.02)
    print("Resources:\n    1 updated", flush=True)
    _write(log, "exit", code=0, cancelled=False)
    return 0
