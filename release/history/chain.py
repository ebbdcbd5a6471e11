"""The chain: a stack's release records are an append-only chain, not a heap of signed messages.

Every record the tool writes names the record before it on the same stack and its own position:

    prev    SHA-256 (hex) over the previous counted record's canonical signed payload (the bytes its
            signature covers, release.history.records.ReleaseRecord.payload)
    seq     its position: 1 for the first chained record, then one more per record

The first record of a stack names the stack's genesis value, SHA-256 over `genesis:<project>/<stack>`
(`genesis`). The first record written into a history from before the chain (records without
prev/seq) names the newest record that counts there, with seq 1.

`classify` walks a history oldest first, once per read, and gives every record that passes its trust
rules (release.history.entries.RecordRules) a standing; every gate reads the result:

    chained       extends the chain read so far (`prev` is the head, `seq` the next): counts
    before chain  has no prev/seq and no chained record precedes it (written before the chain):
                  counts, read as before the chain
    replayed      a copy of a record the chain already holds; a record without prev/seq after the chain
                  began; or one naming a predecessor the chain does not hold: never counts
    forked        names a record the chain holds that another record already follows (two writers
                  started from the same head), or extends such a fork: never counts. The first in
                  history order counts, because it is the one every later writer read and chained onto

Order, for every gate, is the chain's: the counted records in history order. A signer's clock never
orders anything. Signed times are read only where they are consistent with the chain: a counted
record signed earlier than a counted record before it, or later than one after it, has an
inconsistent time (`Link.time_problem`), and so has one signed later than the reader's now plus
CLOCK_SKEW (`future_problem`). Such a record still counts for what it takes away (a revocation, a
failed drill, the end of a release) but proves no age: it is no evidence for soak, freshness or a
recent drill.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from core.config.base import PROJECT_NAME
from release.history.records import ParsedRecord

CLOCK_SKEW = timedelta(minutes=5)
"""How far after the reader's now a record's signed time may lie (clocks differ a little, never by hours)."""


class Standing(StrEnum):
    """Where a record stands in its stack's chain (only records whose trust counts have one)."""

    CHAINED = "chained"
    BEFORE_CHAIN = "before chain"
    REPLAYED = "replayed"
    FORKED = "forked"


COUNTING = (Standing.CHAINED, Standing.BEFORE_CHAIN)


def genesis(stack: str, project: str = PROJECT_NAME) -> str:
    """What the first record of `stack` names as its predecessor."""
    return hashlib.sha256(f"genesis:{project}/{stack}".encode()).hexdigest()


@dataclass(frozen=True)
class Link:
    """One record's place in the chain."""

    standing: Standing
    hash: str
    """SHA-256 over the record's signed payload (what the next record names)."""
    seq: int = 0
    """Its position, when chained (0 otherwise)."""
    detail: str = ""
    """Why it does not count (replayed, forked)."""
    time_problem: str = ""
    """Why its signed time is inconsistent with the chain ('' when consistent)."""

    @property
    def counts(self) -> bool:
        return self.standing in COUNTING


@dataclass(frozen=True)
class ChainHead:
    """Where the next record of a stack goes: after `prev` (a record's hash, or genesis), at `seq` + 1."""

    prev: str
    seq: int
    length: int = 0
    """Records chained so far (`seq` of the head when it is chained)."""
    before_chain: int = 0
    """Records that count from before the chain."""


def classify(stack: str, claims: Sequence[tuple[int, ParsedRecord | None]]) -> list[Link | None]:
    """Each record's link, for `claims` oldest first: (entry number, the record when its trust
    counts, else None). A pure function of the history: the reader's now plays no part."""
    links: list[Link | None] = []
    head, head_seq, chain_started = genesis(stack), 0, False
    owner: dict[str, int] = {}
    """Entry number of each counted record, by hash."""
    followed_by: dict[str, int] = {}
    """Entry number of the counted record that follows a hash (genesis included)."""
    forked: dict[str, int] = {}
    for number, parsed in claims:
        record = parsed.record if parsed is not None else None
        if parsed is None or record is None:
            links.append(None)
            continue
        digest = parsed.hash
        if digest in owner or digest in forked:
            original = owner.get(digest, forked.get(digest))
            links.append(Link(Standing.REPLAYED, digest, detail=f"a copy of entry {original}'s record"))
        elif record.seq is None:
            if chain_started:
                links.append(
                    Link(Standing.REPLAYED, digest, detail="no predecessor, written after the chain began")
                )
                continue
            followed_by.setdefault(head, number)
            head = digest
            owner[digest] = number
            links.append(Link(Standing.BEFORE_CHAIN, digest))
        elif record.prev == head and record.seq == head_seq + 1:
            followed_by.setdefault(head, number)
            head, head_seq, chain_started = digest, record.seq, True
            owner[digest] = number
            links.append(Link(Standing.CHAINED, digest, seq=record.seq))
        elif record.prev in forked:
            forked[digest] = number
            links.append(
                Link(Standing.FORKED, digest, detail=f"extends the fork at entry {forked[record.prev]}")
            )
        elif record.prev in followed_by:
            forked[digest] = number
            named = (
                "the genesis value"
                if record.prev == genesis(stack)
                else f"entry {owner[record.prev]}'s record"
            )
            links.append(
                Link(
                    Standing.FORKED,
                    digest,
                    detail=f"names {named}, which entry {followed_by[record.prev]}'s record already follows",
                )
            )
        elif record.prev == head:
            links.append(
                Link(
                    Standing.REPLAYED,
                    digest,
                    detail=f"claims position {record.seq}, the next is {head_seq + 1}",
                )
            )
        else:
            links.append(
                Link(Standing.REPLAYED, digest, detail="names a predecessor the chain does not hold")
            )
    return _check_times(claims, links)


def _check_times(
    claims: Sequence[tuple[int, ParsedRecord | None]], links: list[Link | None]
) -> list[Link | None]:
    """Mark counted records whose signed time runs backwards along the chain: signed before a counted
    record earlier in it, or after one later in it."""
    timed = []
    for index, ((number, parsed), link) in enumerate(zip(claims, links, strict=True)):
        record = parsed.record if parsed is not None else None
        if link is not None and link.counts and record is not None and record.signed_at is not None:
            timed.append((index, number, record.signed_at))
    problems: dict[int, str] = {}
    latest: tuple[datetime, int] | None = None
    for index, number, moment in timed:
        if latest is not None and moment < latest[0]:
            problems[index] = (
                f"signed {_shown(moment)}, before entry {latest[1]}'s record ({_shown(latest[0])}) that "
                "precedes it in the chain"
            )
        if latest is None or moment > latest[0]:
            latest = (moment, number)
    earliest: tuple[datetime, int] | None = None
    for index, number, moment in reversed(timed):
        if earliest is not None and moment > earliest[0] and index not in problems:
            problems[index] = (
                f"signed {_shown(moment)}, after entry {earliest[1]}'s record ({_shown(earliest[0])}) that "
                "follows it in the chain"
            )
        if earliest is None or moment < earliest[0]:
            earliest = (moment, number)
    for index, problem in problems.items():
        link = links[index]
        assert link is not None
        links[index] = replace(link, time_problem=problem + ": a signer's clock is wrong")
    return links


def future_problem(signed_at: datetime | None, now: datetime) -> str:
    """Why a signed time proves nothing at the reader's `now` ('' when it is not in the future)."""
    if signed_at is not None and signed_at > now + CLOCK_SKEW:
        return (
            f"signed {_shown(signed_at)} (now is {_shown(now)}, {CLOCK_SKEW.seconds // 60} min of skew "
            "allowed), in the future: a signer's clock is wrong"
        )
    return ""


def _shown(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def head_of(stack: str, links: Sequence[Link | None]) -> ChainHead:
    """Where the next record goes, given a history's links (newest first)."""
    counted = [link for link in links if link is not None and link.counts]
    length = max((link.seq for link in counted), default=0)
    before = sum(1 for link in counted if link.standing is Standing.BEFORE_CHAIN)
    if not counted:
        return ChainHead(genesis(stack), 0)
    return ChainHead(counted[0].hash, counted[0].seq, length, before)
