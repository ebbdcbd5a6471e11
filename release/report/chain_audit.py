"""`release audit --verify` and the chain section of `release status`: each stack's chain of records,
walked (release.history.chain), with its head, its length and where it breaks.

    chain of staging: head 3f2a9c1e4b7d (#12): 12 records chained, 3 from before the chain
      first break: entry 15: replayed (a copy of entry 9's record)
      signed time inconsistent: entry 14: signed 2026-11-24T13:00:00+00:00, after entry 15's ...

A break is a record whose signature counts but that does not extend the chain (replayed, forked); an
inconsistent time is a counted record whose signed time runs backwards along the chain or lies in
the future at the reader's now. Neither counts as evidence (the gates already leave them out);
`release audit --verify` exits 1 when any stack has either, so a replay or a fork is looked at.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from core.text import one_line
from release.history.entries import HistoryEntry, chain_head

HEAD_SHOWN = 12
"""Hex digits of a head's hash shown in tables (JSON keeps it whole)."""


@dataclass(frozen=True)
class ChainCheck:
    """One stack's chain as this read found it."""

    stack: str
    head: str
    """The newest counted record's hash (the genesis value while nothing counts)."""
    length: int
    """Records chained (the head's position)."""
    before_chain: int
    """Records that count from before the chain."""
    breaks: list[tuple[int, str]] = field(default_factory=list)
    """(entry number, standing: why), oldest first."""
    times: list[tuple[int, str]] = field(default_factory=list)
    """(entry number, why its signed time proves nothing), oldest first."""

    @property
    def intact(self) -> bool:
        return not self.breaks and not self.times

    def to_json(self) -> dict[str, Any]:
        return {
            "stack": self.stack,
            "head": self.head,
            "length": self.length,
            "beforeChain": self.before_chain,
            "breaks": [{"entry": number, "why": why} for number, why in self.breaks],
            "inconsistentTimes": [{"entry": number, "why": why} for number, why in self.times],
        }

    def render(self) -> str:
        lines = [
            f"chain of {self.stack}: head {self.head[:HEAD_SHOWN]} (#{self.length}): {self.length} records "
            f"chained, {self.before_chain} from before the chain"
        ]
        if self.breaks:
            number, why = self.breaks[0]
            more = f" ({len(self.breaks) - 1} more)" if len(self.breaks) > 1 else ""
            lines.append(one_line(f"  first break: entry {number}: {why}{more}"))
        for number, why in self.times:
            lines.append(one_line(f"  signed time inconsistent: entry {number}: {why}"))
        if self.intact:
            lines.append("  intact: every record that counts extends the chain, in time order")
        return "\n".join(lines) + "\n"


def check_chain(stack: str, entries: Sequence[HistoryEntry], now: datetime) -> ChainCheck:
    """Walk `stack`'s history (newest first, as read) oldest first: its head, length, breaks and
    signed times inconsistent with the chain at `now`."""
    head = chain_head(stack, entries)
    breaks, times = [], []
    for entry in reversed(entries):
        link = entry.link
        if link is None:
            continue
        if not link.counts:
            breaks.append((entry.number, f"{link.standing}: {link.detail}"))
        elif entry.time_problem(now):
            times.append((entry.number, entry.time_problem(now)))
    return ChainCheck(stack, head.prev, head.length, head.before_chain, breaks, times)


HEADS_TITLE = "chain of records per stack (`release audit <stack> --verify`)"
HEADS_HEADER = ["stack", "head", "chained", "before chain", "breaks", "inconsistent times"]


def heads_rows(checks: Sequence[ChainCheck]) -> list[list[str]]:
    """The chain section of `release status`: per stack its head, length and breaks."""
    return [
        [
            check.stack,
            check.head[:HEAD_SHOWN],
            str(check.length),
            str(check.before_chain),
            f"{len(check.breaks)} (first: entry {check.breaks[0][0]})" if check.breaks else "0",
            str(len(check.times)),
        ]
        for check in checks
    ]
