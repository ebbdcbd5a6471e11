"""Stack history, parsed from the shape `pulumi stack history --json` prints.

    [{"version", "kind", "startTime", "message", "environment": {...},
      "config": {"platform:releases": {"value": "<JSON text>", "objectValue": {...}, "secret": false},
                 "platform:appSecrets": {"secret": true}},
      "result": "succeeded|failed|in-progress", "endTime", "resourceChanges": {...}}, ...]   newest first

Facts this relies on (docs/engine-facts.md#file-backend-versions-are-0): the file backend numbers no
update (every `version` is 0), so an entry is addressed by its `number`: the version where the
backend numbers updates, else its position counted from the oldest entry (1 = the first update),
which is what Pulumi Cloud's versions count too. Object config may come back as JSON text only: it
is parsed back into objects. A secret comes back without its value and is never restored.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

from core.config.base import SECRET_MARKER, full_key
from core.config.project import ProjectSettings
from core.config.sources import ConfigEntry, parse_engine_value
from core.config.stack import ServiceRelease, releases_of
from core.errors import ConcurrentReleaseError, HistoryError
from core.text import one_line
from release.engine.protocol import Engine
from release.engine.shapes import UpdateResult
from release.history.chain import ChainHead, Link, classify, future_problem, head_of
from release.history.records import ParsedRecord, ReleaseRecord, describe, parse_record, summary_of, utc_time
from release.history.signing import Trust, TrustedKeys

RELEASES_KEY = full_key("releases")


@dataclass(frozen=True)
class RecordRules:
    """How the records in one stack's history are judged (release.history.signing.Trust).

    A record counts when it is signed by a trusted key for this stack, or, in a stack whose policy
    does not require signed records, when it is unsigned (or signed by a key nobody listed). A record
    naming another stack, a signature that does not verify, or a malformed record never counts.
    """

    stack: str
    keys: TrustedKeys
    require_signed: bool

    def judge(self, parsed: ParsedRecord | None) -> Trust | None:
        if parsed is None:
            return None
        record = parsed.record
        if record is None:
            return Trust.MALFORMED
        if record.stack != self.stack:
            return Trust.WRONG_STACK
        if parsed.signature is None:
            return Trust.UNSIGNED
        return self.keys.verify(
            parsed.signature.key, parsed.payload, parsed.signature.value, record.signed_at
        )

    def counts(self, trust: Trust | None) -> bool:
        if trust is Trust.SIGNED:
            return True
        return not self.require_signed and trust in (Trust.UNSIGNED, Trust.UNTRUSTED_KEY)


def record_rules(project: ProjectSettings, stack: str) -> RecordRules:
    policy = project.stack_policies.get(stack)
    return RecordRules(
        stack,
        TrustedKeys(project.release_signing.trusted_keys),
        require_signed=policy.require_signed_records if policy is not None else True,
    )


@dataclass(frozen=True)
class HistoryEntry:
    number: int
    """What `release history` shows and `release rollback --to-version` takes."""
    version: int
    """The backend's own version (0 on the file backend, which does not number updates)."""
    position: int
    """0 for the newest entry."""
    kind: str
    result: str
    start_time: str
    end_time: str | None
    message: str
    environment: dict[str, str]
    config: dict[str, ConfigEntry]
    resource_changes: dict[str, int] = field(default_factory=dict)
    claimed: ParsedRecord | None = None
    """The record the message carries, whatever its trust."""
    trust: Trust | None = None
    """How far `claimed` can be believed (None: the message carries no record)."""
    counted: bool = False
    """Whether `claimed` counts in this stack: its trust counts (RecordRules) and it stands in the
    chain (release.history.chain: chained, or from before the chain)."""
    link: Link | None = None
    """Its place in the stack's chain, when its trust counts (None otherwise)."""

    @property
    def succeeded(self) -> bool:
        return self.result == UpdateResult.SUCCEEDED

    @property
    def record(self) -> ReleaseRecord | None:
        """The release record, if it counts here; None for a foreign update or an untrusted record."""
        if self.counted and self.claimed is not None:
            return self.claimed.record
        return None

    @property
    def signed_record(self) -> ReleaseRecord | None:
        """The record only if a trusted key signed it (what a gate requiring signed evidence reads)."""
        return self.record if self.trust is Trust.SIGNED else None

    @property
    def untrusted(self) -> bool:
        """The message carries a record mark, but the record does not count here."""
        return self.trust is not None and not self.counted

    @property
    def standing(self) -> str:
        """Why a record does not count (its trust, or `replayed`/`forked`), or how it counts
        (`chained`, `before chain`); '' for a foreign update."""
        if self.link is not None:
            return self.link.standing.value
        return self.trust.value if self.trust is not None else ""

    def time_problem(self, now: datetime) -> str:
        """Why the counted record's signed time proves no age at `now` ('' when it does): it runs
        backwards along the chain, or lies in the future (release.history.chain)."""
        record = self.record
        if record is None or self.link is None:
            return ""
        return self.link.time_problem or future_problem(record.signed_at, now)

    @property
    def actor(self) -> str:
        """Who ran it: the actor of a record that counts, else the git author, else '-'."""
        if self.record is not None:
            return self.record.actor
        return self.environment.get("git.author") or self.environment.get("git.committer") or "-"

    @cached_property
    def services(self) -> dict[str, ServiceRelease]:
        """Each service's release (active color and images) from this update's `platform:releases`;
        one that is not a valid release (a failed or foreign update's) is left out."""
        entry = self.config.get(RELEASES_KEY)
        return releases_of(entry.value) if entry is not None else {}

    @cached_property
    def shown_services(self) -> dict[str, tuple[str, dict[str, str]]]:
        """What the update recorded per service, as shown (active color, images), valid or not: a
        table or an audit shows what happened, even a failed update's broken release."""
        entry = self.config.get(RELEASES_KEY)
        value = entry.value if entry is not None and isinstance(entry.value, dict) else {}
        shown = {}
        for name, release in value.items():
            if isinstance(release, dict):
                recorded = release.get("images")
                images: dict[Any, Any] = recorded if isinstance(recorded, dict) else {}
                shown[str(name)] = (
                    str(release.get("activeColor", "")),
                    {str(color): str(image) for color, image in images.items()},
                )
        return shown

    def shown_active_image(self, service: str) -> str:
        active, images = self.shown_services.get(service, ("", {}))
        return images.get(active, "")

    @cached_property
    def finished_at(self) -> datetime:
        """When the update ended (or started, while it runs), as an aware UTC datetime (parsed once:
        the lifecycle, the metrics and the page read it)."""
        return parse_time(self.end_time or self.start_time)

    @property
    def seconds(self) -> float | None:
        """How long the update took; None while it runs."""
        if not self.end_time:
            return None
        return (parse_time(self.end_time) - parse_time(self.start_time)).total_seconds()

    def label(self) -> str:
        return f"entry {self.number} ({self.kind} {self.result}, started {self.start_time})"

    def to_json(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "version": self.version,
            "kind": self.kind,
            "result": self.result,
            "startTime": self.start_time,
            "endTime": self.end_time,
            "operator": self.actor,
            "message": self.message,
            "record": self.trust.value if self.trust is not None else None,
            "chain": self.link.standing.value if self.link is not None else None,
            "seq": self.link.seq if self.link is not None and self.link.seq else None,
            "services": {
                name: {"activeColor": active, "images": images}
                for name, (active, images) in self.shown_services.items()
            },
            "resourceChanges": self.resource_changes,
        }


def read_history(engine: Engine, stack: str, project: ProjectSettings) -> list[HistoryEntry]:
    """The stack's history from the engine, newest first, each record judged by the stack's rules."""
    return parse_history(engine.history(stack), record_rules(project, stack))


VERIFY_THREADS = 2
"""Signatures are verified on this many threads (`cryptography` verifies outside the GIL, so on two
cores two verify at once). A verifying thread takes the GIL between two signatures, so it gets little
done while the main thread parses: most are verified after, two at a time."""
VERIFY_IN_PARALLEL_FROM = 200
"""Below this many entries, one thread is faster than starting others."""
VERIFY_CHUNK = 250
"""Records handed to a verifying thread at a time: parsing the next chunk overlaps verifying this one."""

Claims = list[ParsedRecord | None]


def _read_records(
    raw: Sequence[Mapping[str, Any]], messages: Sequence[str], rules: RecordRules
) -> tuple[Claims, list[Trust | None], list[dict[str, ConfigEntry]]]:
    """Each message's record, its trust (`rules.judge`) and each entry's config, in history order.
    On a long history the signatures are verified on other threads while this one parses."""

    def configs() -> list[dict[str, ConfigEntry]]:
        return [
            {key: _config_entry(value) for key, value in (item.get("config") or {}).items()} for item in raw
        ]

    workers = min(VERIFY_THREADS, os.cpu_count() or 1)
    if workers < 2 or len(messages) < VERIFY_IN_PARALLEL_FROM:
        claims = [parse_record(message) for message in messages]
        return claims, [rules.judge(claimed) for claimed in claims], configs()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="verify") as pool:
        claims, pending = [], []
        for start in range(0, len(messages), VERIFY_CHUNK):
            chunk = [parse_record(message) for message in messages[start : start + VERIFY_CHUNK]]
            claims += chunk
            pending.append(pool.submit(_judge_chunk, rules, chunk))
        entry_configs = configs()
        trusts = [trust for verified in pending for trust in verified.result()]
    return claims, trusts, entry_configs


def _judge_chunk(rules: RecordRules, claims: Claims) -> list[Trust | None]:
    return [rules.judge(claimed) for claimed in claims]


@contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off for a while: reading a long history allocates some
    100,000 objects that all live on, and the collector would scan the growing heap for cycles again
    and again (a fifth of reading 5,000 entries, `make bench-page`). It is on again after, as before.
    What reads the entries after (metrics, the page) pauses it too: the first allocations after it is
    on again would scan that whole heap."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@collector_paused()
def parse_history(raw: Sequence[Mapping[str, Any]], rules: RecordRules) -> list[HistoryEntry]:
    """Entries as `pulumi stack history --json` prints them (newest first), numbered and typed."""
    numbered_by_backend = bool(raw) and all(int(item.get("version") or 0) > 0 for item in raw)
    messages = [str(item.get("message", "")) for item in raw]
    claims, trusts, configs = _read_records(raw, messages, rules)
    numbers = [
        int(item.get("version") or 0) if numbered_by_backend else len(raw) - position
        for position, item in enumerate(raw)
    ]
    links = classify(
        rules.stack,
        [
            (number, claimed if rules.counts(trust) else None)
            for number, claimed, trust in reversed(list(zip(numbers, claims, trusts, strict=True)))
        ],
    )[::-1]
    entries = []
    for position, item in enumerate(raw):
        version = int(item.get("version") or 0)
        message, claimed, trust, link = (
            messages[position],
            claims[position],
            trusts[position],
            links[position],
        )
        entries.append(
            HistoryEntry(
                number=numbers[position],
                version=version,
                position=position,
                kind=str(item.get("kind", "")),
                result=str(item.get("result", "")),
                start_time=str(item.get("startTime", "")),
                end_time=item.get("endTime"),
                message=message,
                environment={str(key): str(value) for key, value in (item.get("environment") or {}).items()},
                config=configs[position],
                resource_changes={str(op): int(n) for op, n in (item.get("resourceChanges") or {}).items()},
                claimed=claimed,
                trust=trust,
                counted=link is not None and link.counts,
                link=link,
            )
        )
    return entries


def chain_head(stack: str, entries: Sequence[HistoryEntry]) -> ChainHead:
    """Where the next record of `stack` goes, given its history (newest first)."""
    return head_of(stack, [entry.link for entry in entries])


def parse_time(text: str) -> datetime:
    """A history time (`2026-11-23T09:00:30.000Z`, fractional seconds optional) as aware UTC."""
    fast = utc_time(text)  # the engine's usual form, read without strptime
    if fast is not None:
        return fast
    moment = text.replace("Z", "+0000")
    pattern = "%Y-%m-%dT%H:%M:%S.%f%z" if "." in moment else "%Y-%m-%dT%H:%M:%S%z"
    return datetime.strptime(moment, pattern).astimezone(UTC)


def _config_entry(value: Mapping[str, Any]) -> ConfigEntry:
    if value.get("secret"):
        return ConfigEntry(SECRET_MARKER, secret=True)
    if value.get("objectValue") is not None:
        return ConfigEntry(value["objectValue"])
    return ConfigEntry(parse_engine_value(value.get("value")))


def entry_numbered(entries: Sequence[HistoryEntry], number: int) -> HistoryEntry:
    for entry in entries:
        if entry.number == number:
            return entry
    known = ", ".join(str(entry.number) for entry in entries[:10]) or "none"
    raise HistoryError(f"no history entry {number}; the newest are: {known} (see `release history <stack>`)")


def refuse_if_running(stack: str, entries: Sequence[HistoryEntry]) -> None:
    """Raise ConcurrentReleaseError when the newest entry is still running (another update holds
    the stack), naming it; nothing has been changed yet."""
    if entries and entries[0].result == UpdateResult.IN_PROGRESS:
        running = entries[0]
        raise ConcurrentReleaseError(
            stack, one_line(f"in progress: {running.label()} by {running.actor}: {running.message}")
        )


def render_history(stack: str, entries: Sequence[HistoryEntry], now: datetime | None = None) -> str:
    """A table: number, time, operator, per-service active color and digests, result, and what the
    update says: for a record that counts its signed fields (`describe`) with its place in the chain
    (and a signed time inconsistent with the chain, or in the future at `now`), else the message,
    marked when it carries a record that does not count (its trust, or replayed, forked)."""
    lines = [f"history of stack '{stack}' (newest first; `release rollback {stack} --to-version N`)"]
    for entry in entries:
        services = "; ".join(
            f"{name} {active}* blue={short_image(images.get('blue', ''))} "
            f"green={short_image(images.get('green', ''))}"
            for name, (active, images) in sorted(entry.shown_services.items())
        )
        lines.append(
            one_line(
                f"{entry.number:>4}  {entry.start_time[:19]:<19}  {entry.kind:<8} {entry.result:<11} "
                f"{entry.actor:<12} {services or '-'}"
            )
        )
        record = entry.record
        if record is not None and entry.link is not None:
            place = f"#{entry.link.seq}" if entry.link.seq else entry.link.standing.value
            late = entry.time_problem(now) if now is not None else entry.link.time_problem
            mark = f"[{place}, time inconsistent: {late}]" if late else f"[{place}]"
            lines.append(f"      {mark} {one_line(describe(record))}")
        elif entry.message:
            mark = f"[{entry.standing}: not counted] " if entry.untrusted else ""
            lines.append(f"      {mark}{one_line(entry.message)}")
    if len(lines) == 1:
        lines.append("  (no updates yet)")
    return "\n".join(lines) + "\n"


def render_history_compact(stack: str, entries: Sequence[HistoryEntry], now: datetime | None = None) -> str:
    """One line per entry (`release history`; `--wide` is render_history): number, time, result,
    operator, per-service live color and digest, and the record in a few words behind its trust
    mark: `signed #4` (its trust and place in the chain), `unsigned, not counted`, or `no record`
    for an update the tool did not write (then the first words of its message)."""
    lines = [
        f"history of stack '{stack}' (newest first; --wide for every field; "
        f"`release rollback {stack} --to-version N`)"
    ]
    for entry in entries:
        services = " ".join(
            f"{name}={active}:{short_image(images.get(active, '')).removeprefix('sha256:')}"
            for name, (active, images) in sorted(entry.shown_services.items())
        )
        lines.append(
            one_line(
                f"{entry.number:>4}  {entry.start_time[:16].replace('T', ' '):<16}  {entry.result:<10} "
                f"{entry.actor[:16]:<16} {services or '-'}  {_record_in_brief(entry, now)}"
            )
        )
    if len(lines) == 1:
        lines.append("  (no updates yet)")
    return "\n".join(lines) + "\n"


def _record_in_brief(entry: HistoryEntry, now: datetime | None) -> str:
    record = entry.record
    if record is not None and entry.link is not None:
        place = f"#{entry.link.seq}" if entry.link.seq else entry.link.standing.value
        late = entry.time_problem(now) if now is not None else entry.link.time_problem
        mark = f"[{entry.trust or 'unsigned'} {place}{', time inconsistent' if late else ''}]"
        return f"{mark} {record.event} {record.service} {short_image(record.image)}".rstrip()
    if entry.claimed is not None and entry.claimed.record is not None:
        claimed = entry.claimed.record
        return f"[{entry.standing}, not counted] {claimed.event} {claimed.service}".rstrip()
    summary = summary_of(entry.message)
    return f"[no record] {summary[:40]}{'…' if len(summary) > 40 else ''}" if summary else "[no record]"


def short_image(image: str) -> str:
    """`repo@sha256:<12 hex>` is enough to tell digests apart in a table."""
    digest = image.partition("@sha256:")[2]
    return f"sha256:{digest[:12]}" if digest else (image.rsplit("/", 1)[-1] or "-")


__all__ = [
    "HistoryEntry",
    "RecordRules",
    "entry_numbered",
    "parse_history",
    "read_history",
    "record_rules",
    "refuse_if_running",
    "render_history",
    "render_history_compact",
    "short_image",
]
