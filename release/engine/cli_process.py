"""Stopping the running `pulumi` when the tool is interrupted.

`pulumi.automation` starts the CLI with `subprocess.Popen` in the calling thread and gives no handle
on it; when our process is interrupted, its `Popen` block still waits for the CLI's output pipes to
close, i.e. for the whole update to finish. So an interruption asks the CLI to stop the way a
terminal's Ctrl-C does: SIGINT to each `pulumi` that is a direct child of this process (read from
/proc). The Pulumi CLI then cancels gracefully: it starts no new resource operation, waits for those
in flight, saves its state, releases the stack's lock and exits. If it is still running
CANCEL_GRACE_SECONDS later, a second SIGINT makes it stop at once (its second-interrupt behaviour),
so the tool can roll back before CI's runner kills it (docs/operations.md#interruptions).
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from pathlib import Path

CLI_NAME = "pulumi"
CANCEL_GRACE_SECONDS = 5.0
"""How long the CLI may take to cancel gracefully before it is told to stop at once."""


def cli_children(parent: int | None = None, proc: Path = Path("/proc")) -> list[int]:
    """The process ids of `pulumi` processes whose parent is `parent` (default: this process)."""
    wanted = os.getpid() if parent is None else parent
    found = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # it exited while we looked
        # "<pid> (<comm>) <state> <ppid> ...": comm may hold spaces and parentheses
        name = stat[stat.find("(") + 1 : stat.rfind(")")]
        fields = stat[stat.rfind(")") + 2 :].split()
        if name == CLI_NAME and len(fields) > 1 and int(fields[1]) == wanted:
            found.append(int(entry.name))
    return sorted(found)


def cancel_running_cli() -> list[int]:
    """SIGINT to every running `pulumi` child now, and again to those still running
    CANCEL_GRACE_SECONDS later (from a daemon timer, so the caller never waits here); returns their ids."""
    children = cli_children()
    for pid in children:
        _interrupt(pid)
    if children:
        timer = threading.Timer(CANCEL_GRACE_SECONDS, _stop_at_once, args=(children,))
        timer.daemon = True
        timer.start()
    return children


def _stop_at_once(children: list[int]) -> None:
    for pid in set(children) & set(cli_children()):
        _interrupt(pid)


def _interrupt(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # it finished meanwhile
        os.kill(pid, signal.SIGINT)
