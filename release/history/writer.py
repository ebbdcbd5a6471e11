"""Writing records onto a stack's chain: each one names the head the tool read, and becomes the head.

A command reads a stack's history once (`RecordChains.history`, which the flows already do before a
release: the unfinished-release refusal and the rollback targets need it); the head of the chain
comes from that read (release.history.chain.head_of). Every record written afterwards names the
head and becomes it, so the records of one release's `up`s chain onto each other without reading
history again:

    with ctx.chains.writing(stack, record, summary, signer, ctx.clock()) as message:
        outcome = engine.up(stack, config, message)

An `up` that returns (succeeded or failed) is in history with its record. One that raises (a stack
lock held by someone else, an interruption) may or may not be: the head is forgotten, and the next
record of that stack reads history again to find it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime

from release.history.chain import ChainHead
from release.history.entries import HistoryEntry, chain_head
from release.history.records import ReleaseRecord, record_time
from release.history.signing import Signer

HistoryReader = Callable[[str], list[HistoryEntry]]


class RecordChains:
    """The head of each stack's chain, as this command last read or wrote it."""

    def __init__(self, read: HistoryReader) -> None:
        self._read = read
        self._heads: dict[str, ChainHead] = {}

    def history(self, stack: str) -> list[HistoryEntry]:
        """The stack's history (newest first), read now; its chain's head is noted for the next record."""
        entries = self._read(stack)
        self._heads[stack] = chain_head(stack, entries)
        return entries

    def head(self, stack: str) -> ChainHead:
        if stack not in self._heads:
            self.history(stack)
        return self._heads[stack]

    def link(self, stack: str, record: ReleaseRecord, at: datetime) -> ReleaseRecord:
        """`record` as the next on the stack's chain: after the head, signed at `at` unless it has a time."""
        head = self.head(stack)
        return replace(record, prev=head.prev, seq=head.seq + 1, time=record.time or record_time(at))

    @contextmanager
    def writing(
        self, stack: str, record: ReleaseRecord, summary: str, signer: Signer | None, at: datetime
    ) -> Iterator[str]:
        """The update message carrying `record` chained onto the head; the record becomes the head once
        the body (the `up`) returns, and the head is forgotten if it raises."""
        linked = self.link(stack, record, at)
        try:
            yield linked.message(summary, signer, at)
        except BaseException:
            self._heads.pop(stack, None)
            raise
        assert linked.seq is not None
        self._heads[stack] = ChainHead(linked.hash(), linked.seq)
