"""The release record: a signed, parseable JSON object at the end of every update message we write.

Evidence of what was released, verified, rejected or rolled back lives in the stack's own history in
the Pulumi state backend, where every operator and CI runner reads the same thing. Each update the
release tool runs carries its record in the update message:

    <summary the tool composed> release/v1 {"actor": "alice", "event": "verify", ..., "sig": {...}}

The summary is made only of values the tool parsed (service, colors, image references, entry
numbers); free text (a reason, an actor name) lives only inside the JSON. The record is parsed from
the end of the message: the JSON after the first ` release/v1 ` must be one object that runs to the
very end, with no duplicate key, only known keys, and the right type for each. The JSON has:

    event        stage | switch | verify | rollback | abort | reject | review
    stack        the stack the update ran on (a record naming another stack never counts)
    release      the id of the release this record belongs to (every record of one release carries it)
    time         when the tool wrote it (UTC): soak and freshness read it where it is consistent with
                 the chain; evidence is ordered by the chain (prev, seq), never by this time
    finishes     the ids of unfinished releases a rollback or abort finishes
    service      the service it concerns (several, comma-separated, for a whole-stack rollback)
    image        the full image reference concerned;  digest: its sha256:<64 hex>
    previous     the image the stable Service served before (stage, switch)
    actor        who ran it (--actor, $GITHUB_ACTOR, git config, login)
    run          the CI run URL, when there is one
    approval     how a promotion was approved: {"source": "github-environment", "approvers", "environment",
                 "run", "readAt"} read from GitHub's API, or {"source": "asserted", "ref", "approver"} typed
    breakGlass   {"reason", "skipped": [gates]} when gates were skipped
    promotedFrom the source stack of a promotion
    revokes      the images whose verification this event takes away (rollback, abort, reject)
    reviews      the history entry number a review acknowledges (review of a break-glass)
    reason       why (rollback, abort, reject, review, break-glass)
    window       {"seconds", "probes"} of the health check that verified a digest (verify); what a
                 release was judged on (verify, rollback): "analysis" (the metric analysis), "smoke"
                 ({"preview"|"stable": {"passed", "total", "failed": [check names]}})
    notification {"event", "sent", "error"} for events that notify
    supplyChain  (stage) the image's verified supply-chain claims: verdict, mode, signer, provenance
                 {builder, source, commit}, scan {scanner, finishedAt, counts, exceptionsUsed}, sbom
                 {format, digest}, unmet and skipped requirements (release.supply.verdict)
    prev         the chain link: SHA-256 (64 hex) over the canonical signed payload of the record before
                 it on this stack (release.history.chain), or the stack's genesis value for the first
    seq          the record's position in the stack's chain (1 for the first chained record)
    sig          {"key": <key id>, "ed25519": <base64>} over the canonical JSON of everything else

Updates without a record (a plain `pulumi up`, older releases) are listed by `release audit` as
foreign updates; they never count as verification. See release.history.signing and
release.history.chain for what makes a record count.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from functools import cached_property
from typing import Any

from core.images import digest_of
from release.history.signing import Signer

MARK = "release/v1"
_MARK_AT = re.compile(r"(?:^|(?<=\s))" + re.escape(MARK) + r" (?=\{)")
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
RELEASE_ID = re.compile(r"r-[0-9a-f]{12}")


class Event(StrEnum):
    """What a record says happened; its value is the record's `event` field."""

    STAGE = "stage"
    """a release put its image on the idle color"""
    SWITCH = "switch"
    """a release moved stable traffic to that color"""
    VERIFY = "verify"
    """the image passed its health window on stable traffic: the evidence promotions read"""
    ROLLBACK = "rollback"
    ABORT = "abort"
    REJECT = "reject"
    """the image must never be promoted again"""
    REVIEW = "review"
    """someone else acknowledged a break-glass release"""
    CANARY = "canary"
    """a canary step sent part of the stable host's traffic to the new color (or back to none)"""
    SCALE = "scale"
    """after a verified release, the color traffic left was shrunk to its declared idle size"""
    DRILL = "drill"
    """a restore drill of the stack's database: its RTO, RPO and verdict (release drill)"""


EVENTS = tuple(Event)
STARTS = (Event.STAGE, Event.SWITCH)
"""Events that open a release (its changes are live, unverified)."""
FINISHES = (Event.VERIFY, Event.ROLLBACK, Event.ABORT)
"""Events that finish a release."""
MAX_MESSAGE_CHARACTERS = 64 * 1024
"""A longer message is not parsed for a record (the tool never writes one that long)."""


def new_release_id() -> str:
    return f"r-{secrets.token_hex(6)}"


def record_time(moment: datetime) -> str:
    """`moment` (an aware time, from the release context's clock) as a record's `time`."""
    return moment.astimezone(UTC).strftime(TIME_FORMAT)[:-4] + "Z"


UTC_TIME = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,6}))?Z"
)
"""`2026-11-23T09:00:30.123Z` (fraction optional): read with one match and int()s, as strptime is
the largest cost of reading a long history."""


def utc_time(text: str) -> datetime | None:
    """`text` when it is a UTC time as written above (an impossible date is None), as aware UTC."""
    found = UTC_TIME.fullmatch(text)
    if found is None:
        return None
    year, month, day, hour, minute, second, fraction = found.groups()
    try:
        return datetime(
            int(year),
            int(month),
            int(day),
            int(hour),
            int(minute),
            int(second),
            int((fraction or "0").ljust(6, "0")),
            tzinfo=UTC,
        )
    except ValueError:
        return None


def parse_record_time(text: str) -> datetime | None:
    """A record's `time` (`2026-11-23T09:00:30.123Z`, the fraction required), or None."""
    return utc_time(text) if "." in text else None


@dataclass(frozen=True)
class ReleaseRecord:
    event: Event
    stack: str
    actor: str
    service: str = ""
    image: str = ""
    previous: str = ""
    release: str = ""
    time: str = ""
    finishes: tuple[str, ...] = ()
    run: str = ""
    approval: dict[str, Any] = field(default_factory=dict)
    break_glass: dict[str, Any] = field(default_factory=dict)
    promoted_from: str = ""
    revokes: tuple[str, ...] = ()
    reviews: int | None = None
    reason: str = ""
    window: dict[str, Any] = field(default_factory=dict)
    notification: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    """Data safety: `snapshot` (taken before this release's migration), or a drill's figures."""
    prev: str = ""
    """The hash of the record before it on this stack's chain, or the genesis value ('' before the chain)."""
    seq: int | None = None
    """Its position in the chain (None before the chain)."""
    supply_chain: dict[str, Any] = field(default_factory=dict)
    """(stage) What the image proved against the stack's supplyChain policy (release.supply.verdict)."""
    config: dict[str, Any] = field(default_factory=dict)
    """What a release staged besides its image: `set` (the flag and env values it set), `fingerprint`
    (of everything the color reads), and `imageKept` (true for a config-only release: the image
    was already live, so a failure of this release never revokes it)."""

    @property
    def keeps_image(self) -> bool:
        """A config-only release: its image was live before it and stays as good as it was."""
        return self.config.get("imageKept") is True

    @property
    def drill(self) -> dict[str, Any]:
        """A `drill` record's outcome (release.flows.drill.DrillReport.record_data); {} otherwise."""
        drill = self.data.get("drill")
        return drill if isinstance(drill, dict) else {}

    @cached_property
    def digest(self) -> str:
        """The digest `image` names (parsed once: the record's JSON, its checks and the metrics read it)."""
        return digest_of(self.image)

    @cached_property
    def signed_at(self) -> datetime | None:
        """`time` as an aware datetime (parsed once: the signature, the chain and the gates read it)."""
        return parse_record_time(self.time)

    @property
    def services(self) -> list[str]:
        return [name for name in self.service.split(",") if name]

    def to_json(self) -> dict[str, Any]:
        """The record as its JSON object (empty fields left out), without a signature."""
        document: dict[str, Any] = {
            "event": self.event,
            "stack": self.stack,
            "release": self.release,
            "time": self.time,
            "finishes": list(self.finishes),
            "actor": self.actor,
            "service": self.service,
            "image": self.image,
            "digest": self.digest,
            "previous": self.previous,
            "run": self.run,
            "approval": self.approval,
            "breakGlass": self.break_glass,
            "promotedFrom": self.promoted_from,
            "revokes": list(self.revokes),
            "reviews": self.reviews,
            "reason": self.reason,
            "window": self.window,
            "notification": self.notification,
            "config": self.config,
            "supplyChain": self.supply_chain,
            "data": self.data,
            "prev": self.prev,
            "seq": self.seq,
        }
        return {key: value for key, value in document.items() if value not in ("", {}, [], None)}

    def payload(self) -> bytes:
        """What is signed: the canonical JSON of `to_json()` (computed once: the signature check and
        the chain both read it)."""
        return self._payload

    @cached_property
    def _payload(self) -> bytes:
        return canonical_json(self.to_json())

    def hash(self) -> str:
        """SHA-256 (hex) over `payload()`: what the next record on the stack's chain names as `prev`."""
        return hashlib.sha256(self.payload()).hexdigest()

    def message(self, summary: str, signer: Signer | None, at: datetime) -> str:
        """The whole update message: the tool's summary, then this record (signed when `signer`).

        The record's `time` is set here to `at` (the clock's now, when it is signed), if the caller
        left it empty.
        """
        record = self if self.time else replace(self, time=record_time(at))
        document = record.to_json()
        if signer is not None:
            document["sig"] = {"key": signer.key_id, "ed25519": signer.sign(record.payload())}
        return f"{summary} {MARK} {canonical_json(document).decode()}"


def canonical_json(document: Any) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


@dataclass(frozen=True)
class Signature:
    key: str
    value: str


@dataclass(frozen=True)
class ParsedRecord:
    """What a message claims: the record (None when malformed, with `problem`) and its signature."""

    record: ReleaseRecord | None
    signature: Signature | None = None
    problem: str = ""

    @cached_property
    def payload(self) -> bytes:
        """What its signature covers (computed once: the signature check and the chain both read it)."""
        return self.record.payload() if self.record is not None else b""

    @cached_property
    def hash(self) -> str:
        """SHA-256 (hex) over the payload: what the next record on the chain names as its `prev`."""
        return hashlib.sha256(self.payload).hexdigest()


class _MalformedError(ValueError):
    pass


def parse_record(message: str) -> ParsedRecord | None:
    """The record at the end of an update message; None when the message carries no record mark.

    The first ` release/v1 {` starts the record; the JSON from there must be one object that runs
    to the end of the message (so free text inside the JSON, even text that looks like a record,
    stays inside it).
    """
    if len(message) > MAX_MESSAGE_CHARACTERS:
        return ParsedRecord(None, problem="message too long to hold a record") if MARK in message else None
    found = _MARK_AT.search(message)
    if found is None:
        return None
    text = message[found.end() :].rstrip()
    try:
        data, end = _DECODER.raw_decode(text)
        if end != len(text):
            raise _MalformedError("text follows the record's JSON")
        return _record_from(data)
    except (_MalformedError, ValueError, RecursionError) as error:
        return ParsedRecord(None, problem=str(error)[:200])


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document = dict(pairs)
    if len(document) != len(pairs):
        keys = [key for key, _ in pairs]
        duplicate = next(key for key in keys if keys.count(key) > 1)
        raise _MalformedError(f"duplicate key {duplicate!r}")
    return document


_DECODER = json.JSONDecoder(object_pairs_hook=_unique_keys)
"""One decoder for every record (as `json.loads` shares one)."""


_STRING_FIELDS = {
    "event": "event",
    "stack": "stack",
    "release": "release",
    "time": "time",
    "actor": "actor",
    "service": "service",
    "image": "image",
    "previous": "previous",
    "run": "run",
    "promotedFrom": "promoted_from",
    "reason": "reason",
}
_OBJECT_FIELDS = {
    "approval": "approval",
    "breakGlass": "break_glass",
    "window": "window",
    "notification": "notification",
    "config": "config",
    "supplyChain": "supply_chain",
    "data": "data",
}
_LIST_FIELDS = {"finishes": "finishes", "revokes": "revokes"}
_KNOWN = {*_STRING_FIELDS, *_OBJECT_FIELDS, *_LIST_FIELDS, "reviews", "digest", "sig", "prev", "seq"}
_HASH = re.compile(r"[0-9a-f]{64}")


def _record_from(data: Any) -> ParsedRecord:
    if not isinstance(data, dict):
        raise _MalformedError("the record is not a JSON object")
    unknown = sorted(set(data) - _KNOWN)
    if unknown:
        raise _MalformedError(f"unknown keys {unknown}")
    fields: dict[str, Any] = {}
    for key, name in _STRING_FIELDS.items():
        value = data.get(key, "")
        if not isinstance(value, str):
            raise _MalformedError(f"{key} must be a string")
        fields[name] = value
    for key, name in _OBJECT_FIELDS.items():
        value = data.get(key, {})
        if not isinstance(value, dict):
            raise _MalformedError(f"{key} must be an object")
        fields[name] = value
    for key, name in _LIST_FIELDS.items():
        value = data.get(key, [])
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise _MalformedError(f"{key} must be a list of strings")
        fields[name] = tuple(value)
    reviews = data.get("reviews")
    if reviews is not None and (isinstance(reviews, bool) or not isinstance(reviews, int)):
        raise _MalformedError("reviews must be an integer")
    prev, seq = data.get("prev", ""), data.get("seq")
    if ("prev" in data) != ("seq" in data):
        raise _MalformedError("prev and seq come together")
    if "prev" in data and (not isinstance(prev, str) or not _HASH.fullmatch(prev)):
        raise _MalformedError("prev must be 64 lower-case hex digits")
    if seq is not None and (isinstance(seq, bool) or not isinstance(seq, int) or seq < 1):
        raise _MalformedError("seq must be a positive integer")
    fields["prev"], fields["seq"] = prev, seq
    if fields["event"] not in EVENTS:
        raise _MalformedError(f"unknown event {fields['event']!r}")
    if fields["release"] and not RELEASE_ID.fullmatch(fields["release"]):
        raise _MalformedError("release is not a release id")
    record = ReleaseRecord(reviews=reviews, **{**fields, "event": Event(fields["event"])})
    if record.time and record.signed_at is None:
        raise _MalformedError("time is not a UTC time")
    if "digest" in data and data["digest"] != record.digest:
        raise _MalformedError("digest does not match image")
    return ParsedRecord(record, _signature_from(data.get("sig")))


def _signature_from(value: Any) -> Signature | None:
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) != {"key", "ed25519"}:
        raise _MalformedError("sig must be {key, ed25519}")
    if not isinstance(value["key"], str) or not isinstance(value["ed25519"], str):
        raise _MalformedError("sig values must be strings")
    return Signature(value["key"], value["ed25519"])


def describe(record: ReleaseRecord) -> str:
    """The record in one line, rendered from its signed fields only: what `release history` shows for
    a record that counts, never the free text in front of it (which anyone who runs `pulumi up` writes)."""
    parts = [f"release {record.event}", record.service, record.image]
    if record.previous:
        parts.append(f"(was {record.previous})")
    if record.promoted_from:
        parts.append(f"from {record.promoted_from}")
    if record.revokes:
        parts.append("revokes " + ", ".join(record.revokes))
    if record.finishes:
        parts.append("finishes " + ", ".join(record.finishes))
    if record.reviews is not None:
        parts.append(f"reviews entry {record.reviews}")
    if record.drill:
        parts.append(f"drill {record.drill.get('verdict')}")
    if record.release:
        parts.append(record.release)
    parts.append(f"by {record.actor}")
    return " ".join(part for part in parts if part)


def summary_of(message: str) -> str:
    """The human part of a message (without the record)."""
    found = _MARK_AT.search(message[:MAX_MESSAGE_CHARACTERS])
    return message[: found.start()].strip() if found else message.strip()
