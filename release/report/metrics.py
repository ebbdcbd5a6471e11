"""`release metrics`: DORA's five metrics, computed from the records that count in each stack's history.

Only what the chain counts takes part (release.history.entries.HistoryEntry.record: signed by a
trusted key where signing is required, and chained or from before the chain): an untrusted, replayed
or forked record is never a release here. Releases come from release.history.lifecycle (one per
release id); every time is the backend's time of the update that wrote the record (`endTime`), never
a signer's clock. Definitions, bands and what each figure counts: docs/metrics.md.

    deployment frequency            releases started in the window, per day
    lead time for changes           median, per verified release: from the digest's first stage
                                    record in any stack read (no record carries a commit time) to its
                                    verify record here
    change failure rate             failed releases over finished releases: rolled back, aborted, or
                                    verified but followed (same stack and service) by a break-glass
                                    release
    failed deployment recovery time median, per failed release: from when it first took stable
                                    traffic (its first canary step, else its switch; else its stage)
                                    to its rollback or abort record, or to the verify of the release
                                    that fixed it
    rework rate                     break-glass (unplanned) releases over releases

Every figure names the releases behind it (`Figure.releases`), so a person can check it.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any

from core.errors import UsageError
from core.text import one_line
from release.history.entries import HistoryEntry, collector_paused
from release.history.lifecycle import ABORTED, ROLLED_BACK, VERIFIED, read_lifecycle
from release.history.records import Event

DAY = timedelta(days=1)
WEEK = timedelta(days=7)
MONTH = timedelta(days=30)
HOUR = timedelta(hours=1)

ALL_SERVICES = "*"
"""The group of every service of a stack."""

_DURATION = re.compile(r"([1-9][0-9]{0,3})([dw])")


def parse_since(text: str, now: datetime) -> datetime:
    """`30d`, `12w` (before `now`) or a date `YYYY-MM-DD` (UTC midnight); UsageError otherwise."""
    found = _DURATION.fullmatch(text)
    if found is not None:
        count, unit = int(found.group(1)), found.group(2)
        return now - (DAY if unit == "d" else WEEK) * count
    try:
        moment = datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError as error:
        raise UsageError(
            f"--since {one_line(text)!r}: use a number of days or weeks (30d, 12w) or YYYY-MM-DD"
        ) from error
    if moment >= now:
        raise UsageError(
            f"--since {text}: the window must start before now ({now.isoformat(timespec='seconds')})"
        )
    return moment


@dataclass(frozen=True)
class Deployment:
    """One counted release of one service in one stack, as its records tell it."""

    stack: str
    service: str
    id: str
    image: str
    actor: str
    entry: int
    """The history entry of its first record."""
    started: datetime
    outcome: str
    """Verified, RolledBack, Aborted; '' while unfinished."""
    break_glass: bool
    live_at: datetime
    """When it first took stable traffic (its first canary step, else its switch), else when it started."""
    finished_at: datetime | None
    """When its verify, rollback or abort record was written."""

    @property
    def digest(self) -> str:
        return self.image.rsplit("@", 1)[-1] if "@" in self.image else self.image

    def ref(self, **extra: Any) -> dict[str, Any]:
        """How a figure names this release (with `extra` fields for that figure)."""
        return {**self._ref, **extra}

    @cached_property
    def _ref(self) -> dict[str, Any]:
        """Built once: every figure of every group the release is in names it."""
        return {
            "stack": self.stack,
            "service": self.service,
            "release": self.id,
            "entry": self.entry,
            "image": self.image,
            "started": _iso(self.started),
            "outcome": self.outcome or "unfinished",
        }


def deployments(stack: str, entries: Sequence[HistoryEntry]) -> list[Deployment]:
    """Every counted release in one stack's history (newest first), oldest first, one per service it
    released (a release of `api,web` is one deployment of each)."""
    found = []
    for release in read_lifecycle(entries).releases.values():
        live = [entry.finished_at for event, entry in release.steps if event in (Event.CANARY, Event.SWITCH)]
        first = release.first.record
        break_glass = bool(first is not None and first.break_glass)
        finished = None
        if release.outcome:
            for event, entry in release.steps:
                if event in (Event.VERIFY, Event.ROLLBACK, Event.ABORT) and entry.succeeded:
                    finished = entry.finished_at
        started = release.first.finished_at
        for service in [name for name in release.service.split(",") if name] or [""]:
            found.append(
                Deployment(
                    stack,
                    service,
                    release.id,
                    release.image,
                    release.actor,
                    release.first.number,
                    started,
                    release.outcome,
                    break_glass,
                    live[0] if live else started,
                    finished,
                )
            )
    return sorted(found, key=lambda deployment: deployment.started)


def first_staged(histories: Mapping[str, Sequence[HistoryEntry]]) -> dict[str, tuple[datetime, str, int]]:
    """Per image digest, the earliest counted stage record in any stack read: (time, stack, entry)."""
    first: dict[str, tuple[datetime, str, int]] = {}
    for stack, entries in histories.items():
        for entry in entries:
            record = entry.record
            if record is None or record.event != Event.STAGE or not record.digest:
                continue
            seen = first.get(record.digest)
            if seen is None or entry.finished_at < seen[0]:
                first[record.digest] = (entry.finished_at, stack, entry.number)
    return first


@dataclass(frozen=True)
class Band:
    name: str
    """elite, high, medium, low; '' where DORA publishes no band."""
    rule: str
    """The band's bound, as DORA states it."""


@dataclass(frozen=True)
class Figure:
    """One metric for one group: its value (None when nothing was there to measure), its DORA band,
    and the releases it counted."""

    metric: str
    value: float | None
    unit: str
    band: Band
    releases: list[dict[str, Any]] = field(default_factory=list)
    note: str = ""

    @property
    def shown(self) -> str:
        return format_value(self.value, self.unit)

    def to_json(self) -> dict[str, Any]:
        return {
            "value": self.value,
            "unit": self.unit,
            "shown": self.shown,
            "band": self.band.name or None,
            "bandRule": self.band.rule,
            "note": self.note or None,
            "releases": self.releases,
        }


@dataclass(frozen=True)
class GroupMetrics:
    stack: str
    service: str
    """ALL_SERVICES for the stack as a whole."""
    figures: list[Figure]

    def figure(self, metric: str) -> Figure:
        return next(figure for figure in self.figures if figure.metric == metric)

    def to_json(self) -> dict[str, Any]:
        return {
            "stack": self.stack,
            "service": None if self.service == ALL_SERVICES else self.service,
            **{_camel(figure.metric): figure.to_json() for figure in self.figures},
        }


FREQUENCY = "deployment frequency"
LEAD_TIME = "lead time for changes"
FAILURE_RATE = "change failure rate"
RECOVERY = "failed deployment recovery time"
REWORK = "rework rate"
METRICS = (FREQUENCY, LEAD_TIME, FAILURE_RATE, RECOVERY, REWORK)


def frequency_band(per_day: float | None) -> Band:
    """DORA (2023 report): elite on demand (several a day), high between once a day and once a week,
    medium between once a week and once a month, low less often."""
    if per_day is None:
        return Band("", "no releases")
    if per_day >= 1:
        return Band("elite", "at least once a day (on demand)")
    if per_day >= 1 / 7:
        return Band("high", "between once a day and once a week")
    if per_day >= 1 / 30:
        return Band("medium", "between once a week and once a month")
    return Band("low", "less than once a month")


def duration_band(value: timedelta | None, elite: timedelta, high: timedelta, medium: timedelta) -> Band:
    if value is None:
        return Band("", "nothing to measure")
    for name, bound in (("elite", elite), ("high", high), ("medium", medium)):
        if value < bound:
            return Band(name, f"under {_span(bound)}")
    return Band("low", f"{_span(medium)} or more")


def failure_band(rate: float | None) -> Band:
    """DORA (2023 report): elite 5%, high 10%, medium 15%, low above."""
    if rate is None:
        return Band("", "no finished releases")
    for name, bound in (("elite", 0.05), ("high", 0.10), ("medium", 0.15)):
        if rate <= bound:
            return Band(name, f"at most {bound:.0%}")
    return Band("low", "above 15%")


def group_metrics(
    stack: str,
    service: str,
    found: Sequence[Deployment],
    origins: Mapping[str, tuple[datetime, str, int]],
    since: datetime,
    now: datetime,
) -> GroupMetrics:
    """The five figures for the deployments of one group (all of a stack's, or one service's), counting
    those started in [since, now]."""
    released = [d for d in found if since <= d.started <= now]
    days = max((now - since) / DAY, 1e-9)
    per_day = len(released) / days if released else None
    frequency = Figure(
        FREQUENCY,
        len(released) / days,
        "per day",
        frequency_band(per_day),
        [d.ref() for d in released],
        f"{len(released)} releases in {days:.1f} days",
    )
    leads: list[tuple[Deployment, timedelta, str]] = []
    for d in released:
        if d.outcome != VERIFIED or d.finished_at is None:
            continue
        origin = origins.get(d.digest)
        start, where = (
            (origin[0], f"{origin[1]} entry {origin[2]}") if origin else (d.started, "its own stage")
        )
        leads.append((d, d.finished_at - min(start, d.started), where))
    lead_figure = _median_figure(
        LEAD_TIME,
        [(d.ref(**{"from": where}), gap) for d, gap, where in leads],
        (DAY, WEEK, MONTH),
        "median; from the digest's first stage record in any stack read (no record carries a commit time)",
    )
    finished = [d for d in released if d.outcome]
    failed = _failures(found, released)
    rate = len(failed) / len(finished) if finished else None
    failure = Figure(
        FAILURE_RATE,
        rate,
        "ratio",
        failure_band(rate),
        [d.ref(failed=d.id in failed, why=failed.get(d.id, ("", None))[0] or None) for d in finished],
        f"{len(failed)} failed of {len(finished)} finished",
    )
    recoveries = [
        (d, end - d.live_at, how)
        for d in finished
        if d.id in failed
        for how, end in [failed[d.id]]
        if end is not None
    ]
    recovery_figure = _median_figure(
        RECOVERY,
        [(d.ref(recoveredBy=how), gap) for d, gap, how in recoveries],
        (HOUR, DAY, WEEK),
        "median; from the failed release's first canary step or switch (else its stage) to its "
        "rollback/abort or the fix's verify",
    )
    unplanned = [d for d in released if d.break_glass]
    rework = Figure(
        REWORK,
        len(unplanned) / len(released) if released else None,
        "ratio",
        Band("", "DORA publishes no band for rework rate"),
        [d.ref(breakGlass=d.break_glass) for d in released],
        f"{len(unplanned)} break-glass of {len(released)} releases",
    )
    return GroupMetrics(stack, service, [frequency, lead_figure, failure, recovery_figure, rework])


def _median_figure(
    metric: str,
    measured: Sequence[tuple[dict[str, Any], timedelta]],
    bounds: tuple[timedelta, timedelta, timedelta],
    note: str,
) -> Figure:
    """A duration metric: the median of `measured` (each release's reference and its duration)."""
    median = _median([gap for _, gap in measured])
    return Figure(
        metric,
        median.total_seconds() if median is not None else None,
        "seconds",
        duration_band(median, *bounds),
        [{**ref, "seconds": gap.total_seconds()} for ref, gap in measured],
        note,
    )


def _failures(
    found: Sequence[Deployment], released: Sequence[Deployment]
) -> dict[str, tuple[str, datetime | None]]:
    """Failed releases among `released`, by id: (why, when the stack recovered, None if not yet)."""
    failed: dict[str, tuple[str, datetime | None]] = {}
    following: dict[tuple[str, str], Deployment] = {}
    """The next release of the same service, after each (`found` is oldest first)."""
    newest: dict[str, Deployment] = {}
    for d in found:
        if d.service in newest and newest[d.service].started < d.started:
            following[(d.service, newest[d.service].id)] = d
        if d.service not in newest or newest[d.service].started < d.started:
            newest[d.service] = d
    for d in released:
        if d.outcome in (ROLLED_BACK, ABORTED):
            failed[d.id] = ("rolled back" if d.outcome == ROLLED_BACK else "aborted", d.finished_at)
            continue
        if d.outcome != VERIFIED:
            continue
        fix = following.get((d.service, d.id))
        if fix is not None and fix.break_glass:
            fixed_at = fix.finished_at if fix.outcome == VERIFIED else None
            failed[d.id] = (f"followed by break-glass {fix.id}", fixed_at)
    return failed


@dataclass
class Metrics:
    since: datetime
    now: datetime
    groups: list[GroupMetrics]
    not_counted: list[dict[str, Any]]
    """Records in the histories read that do not count (never part of a figure), to show they exist."""

    def to_json(self) -> dict[str, Any]:
        return {
            "since": _iso(self.since),
            "now": _iso(self.now),
            "groups": [group.to_json() for group in self.groups],
            "notCounted": self.not_counted,
        }


@collector_paused()
def compute_metrics(
    histories: Mapping[str, Sequence[HistoryEntry]],
    since: datetime,
    now: datetime,
    service: str | None = None,
) -> Metrics:
    """Per stack (all its services, then each service) the five figures over [since, now]; with
    `service`, that service's only."""
    origins = first_staged(histories)
    groups = []
    not_counted = []
    for stack, entries in histories.items():
        found = deployments(stack, entries)
        services = sorted({d.service for d in found})
        if service is not None:
            groups.append(
                group_metrics(stack, service, [d for d in found if d.service == service], origins, since, now)
            )
        else:
            groups.append(group_metrics(stack, ALL_SERVICES, found, origins, since, now))
            groups += [
                group_metrics(stack, name, [d for d in found if d.service == name], origins, since, now)
                for name in services
            ]
        not_counted += [
            {"stack": stack, "entry": entry.number, "standing": entry.standing}
            for entry in entries
            if entry.untrusted and since <= entry.finished_at <= now
        ]
    return Metrics(since, now, groups, not_counted)


def weekly_releases(found: Sequence[Deployment], now: datetime, weeks: int = 13) -> list[int]:
    """Releases started in each of the last `weeks` weeks before `now`, oldest first (a trend line)."""
    counts = [0] * weeks
    for d in found:
        age = (now - d.started) / WEEK
        if 0 <= age < weeks:
            counts[weeks - 1 - int(age)] += 1
    return counts


def format_value(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "ratio":
        return f"{value:.0%}"
    if unit == "per day":
        return f"{value:.2f}/day" if value >= 1 / 7 else f"{value * 7:.2f}/week"
    return _span(timedelta(seconds=value))


def format_metrics(metrics: Metrics) -> str:
    """A table per group: metric, figure, band, what it counted (release ids)."""
    lines = [
        f"DORA metrics from counted records, {_iso(metrics.since)} to {_iso(metrics.now)} (docs/metrics.md)"
    ]
    for group in metrics.groups:
        lines += ["", f"{group.stack} / {'all services' if group.service == ALL_SERVICES else group.service}"]
        for figure in group.figures:
            band = figure.band.name or "-"
            counted = ", ".join(sorted({ref["release"] for ref in figure.releases})) or "none"
            lines.append(
                one_line(
                    f"  {figure.metric:<32} {figure.shown:>12}  {band:<7} {figure.note}; releases: {counted}"
                )
            )
    if metrics.not_counted:
        shown = ", ".join(
            f"{item['stack']} entry {item['entry']} ({item['standing']})" for item in metrics.not_counted[:10]
        )
        lines += ["", one_line(f"records not counted ({len(metrics.not_counted)}): {shown}")]
    return "\n".join(lines) + "\n"


def _median(values: Sequence[timedelta]) -> timedelta | None:
    if not values:
        return None
    return timedelta(seconds=statistics.median(value.total_seconds() for value in values))


def _span(value: timedelta) -> str:
    seconds = value.total_seconds()
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    if seconds < 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def _camel(metric: str) -> str:
    first, *rest = metric.split()
    return first + "".join(word.title() for word in rest)
