"""`release page --out DIR`: a static site read from stack history: an index and one page per stack.

Self-contained HTML: inline CSS and SVG, no script, no font or CDN, so any static host (or a file
opened from disk) shows it. Everything that came from outside (messages, actors, reasons, images,
stack and service names) goes through `_e`: control characters escaped as text (core.text.one_line),
then HTML-escaped; no free text is ever markup. No config value is shown but what `release status`
shows (images, colors, canary split and config fingerprints): never a secret.

    read_page(engine, project, stacks, now)   reads each stack's history and live `releases` (a stack
                                              that cannot be read is kept, with its error)
    build_page(project, histories, live, failures, now)   pure: what the site shows
    render_site(page)                         pure: {file name: HTML}

What it shows, most important first: what needs attention (unfinished releases, records that do not
count, break-glass releases awaiting review, stacks that cannot be read); the stacks side by side
(per service its live image, color, canary split, config fingerprints, verified); DORA tiles per
stack with a 13-week trend line of releases (release.report.metrics); per stack the timeline of its
last releases (stage, canary steps, switch, verify or rollback/abort, with durations, who, and the
reason a failed one gives), each release's metric analysis as bars of its values against their
limits, restore drills against their targets, and the last entries of its history.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from core.config.project import ProjectSettings
from core.errors import ReleaseError
from core.text import one_line
from release.engine.protocol import Engine
from release.history.entries import RELEASES_KEY, HistoryEntry, collector_paused, read_history
from release.history.lifecycle import Release, read_lifecycle
from release.history.records import Event
from release.report.audit import AuditRow, ServiceStatus, stack_status, unreviewed_break_glass
from release.report.chain_audit import HEAD_SHOWN, ChainCheck, check_chain
from release.report.metrics import (
    ALL_SERVICES,
    METRICS,
    GroupMetrics,
    compute_metrics,
    deployments,
    weekly_releases,
)

TIMELINE_RELEASES = 20
HISTORY_ENTRIES = 50
NOT_COUNTED_SHOWN = 50
METRICS_WINDOW = timedelta(days=30)
TREND_WEEKS = 13
"""About 90 days of weekly release counts behind each tile's trend line."""


@dataclass
class StackPage:
    """One stack as the site shows it; `error` set (and nothing else) when it could not be read."""

    name: str
    error: str = ""
    failure: ReleaseError | None = None
    """The error that kept its history from being read (its exit code is the command's)."""
    services: list[ServiceStatus] = field(default_factory=list)
    releases: list[Release] = field(default_factory=list)
    """Its last releases, newest first."""
    unfinished: list[Release] = field(default_factory=list)
    not_counted: list[HistoryEntry] = field(default_factory=list)
    """Records in its history that do not count, newest first."""
    unreviewed: list[AuditRow] = field(default_factory=list)
    drills: list[HistoryEntry] = field(default_factory=list)
    chain: ChainCheck | None = None
    metrics: GroupMetrics | None = None
    trend: list[int] = field(default_factory=list)
    entries: list[HistoryEntry] = field(default_factory=list)
    """Its last history entries, newest first."""

    @property
    def file(self) -> str:
        return f"stack-{self.name}.html"

    @property
    def attention(self) -> int:
        return len(self.unfinished) + len(self.not_counted) + len(self.unreviewed) + bool(self.error)


@dataclass
class Page:
    now: datetime
    stacks: list[StackPage]


def read_page(engine: Engine, project: ProjectSettings, stacks: Sequence[str], now: datetime) -> Page:
    """Each stack's history and the `releases` it holds now; a stack that cannot be read keeps its error."""
    histories: dict[str, list[HistoryEntry]] = {}
    live: dict[str, Any] = {}
    failures: dict[str, ReleaseError] = {}
    for stack in stacks:
        try:
            histories[stack] = read_history(engine, stack, project)
            value = engine.get_config(stack).get(RELEASES_KEY)
        except ReleaseError as error:
            histories.pop(stack, None)
            failures[stack] = error
            continue
        live[stack] = value.value if value is not None else {}
    return build_page(project, stacks, histories, live, failures, now)


@collector_paused()
def build_page(
    project: ProjectSettings,
    stacks: Sequence[str],
    histories: Mapping[str, Sequence[HistoryEntry]],
    live: Mapping[str, Any],
    failures: Mapping[str, ReleaseError],
    now: datetime,
) -> Page:
    """What the site shows for `stacks` (in that order), from their histories and live releases."""
    status = stack_status(project, histories, live, now)
    metrics = compute_metrics(histories, now - METRICS_WINDOW, now)
    pages = []
    for stack in stacks:
        if stack in failures or stack not in histories:
            error = failures.get(stack)
            pages.append(StackPage(stack, one_line(error) if error else "no history was read", error))
            continue
        entries = list(histories[stack])
        lifecycle = read_lifecycle(entries)
        releases = list(lifecycle.releases.values())[::-1]
        policy = project.stack_policies.get(stack)
        asserted = policy is None or policy.promotion.allow_asserted_review
        pages.append(
            StackPage(
                stack,
                services=[row for row in status if row.stack == stack],
                releases=releases[:TIMELINE_RELEASES],
                unfinished=lifecycle.unfinished,
                not_counted=[entry for entry in entries if entry.untrusted],
                unreviewed=unreviewed_break_glass(stack, entries, asserted),
                drills=[e for e in entries if e.record is not None and e.record.event == Event.DRILL][:10],
                chain=check_chain(stack, entries, now),
                metrics=next(g for g in metrics.groups if g.stack == stack and g.service == ALL_SERVICES),
                trend=weekly_releases(deployments(stack, entries), now, TREND_WEEKS),
                entries=entries[:HISTORY_ENTRIES],
            )
        )
    return Page(now, pages)


# -- rendering -----------------------------------------------------------------------------------


def _e(text: object) -> str:
    """Text from outside, safe inside HTML text and attribute values."""
    return html.escape(one_line(text), quote=True)


CSS = """
:root{color-scheme:light;--fg:#1a1a1a;--muted:#4a4a4a;--bad:#8a1010;--warn:#6b4a00;--ok:#0b5d1e;--line:#c8c8c8}
*{box-sizing:border-box}
body{font:16px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);background:#fff;
margin:0 auto;padding:1rem;max-width:72rem}
h1{font-size:1.6rem;margin:.2rem 0 1rem}h2{font-size:1.25rem;margin:1.6rem 0 .5rem}h3{font-size:1.05rem}
a{color:#0645ad}
li,td,p{overflow-wrap:anywhere}
.scroll{overflow-x:auto;-webkit-overflow-scrolling:touch}
table{border-collapse:collapse;width:100%;font-size:.9rem}
th,td{border-bottom:1px solid var(--line);padding:.35rem .5rem;text-align:left;vertical-align:top}
th{background:#f0f0f0}
code{font-size:.85rem;word-break:break-all}
.attention{border:2px solid var(--bad);padding:.5rem 1rem;background:#fff5f5}
.attention h2{margin-top:.3rem;color:var(--bad)}
.bad{color:var(--bad);font-weight:600}.ok{color:var(--ok);font-weight:600}.warn{color:var(--warn);font-weight:600}
.tiles{display:grid;grid-template-columns:repeat(auto-fit,minmax(13rem,1fr));gap:.75rem}
.tile{border:1px solid var(--line);border-radius:.4rem;padding:.6rem}
.tile .value{font-size:1.4rem;font-weight:700}
.muted{color:var(--muted)}
footer{margin-top:2rem;color:var(--muted);font-size:.85rem}
"""


def render_site(page: Page) -> dict[str, str]:
    """Every file of the site, by name: `index.html` and one `stack-<name>.html` per stack."""
    files = {"index.html": render_index(page)}
    for stack in page.stacks:
        files[stack.file] = render_stack(stack, page.now)
    return files


def _document(title: str, body: list[str], now: datetime) -> str:
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{_e(title)}</title>",
            f"<style>{CSS}</style>",
            "</head>",
            "<body>",
            "<main>",
            *body,
            "</main>",
            f"<footer>Read from stack history at {_e(_time(now))} by <code>release page</code>. "
            "Only records that count (signed, chained) make a figure; see docs/metrics.md and "
            "docs/signing.md.</footer>",
            "</body>",
            "</html>",
            "",
        ]
    )


def _table(caption: str, header: Sequence[str], rows: Sequence[Sequence[str]], cls: str = "") -> str:
    """A table whose cells are already HTML (each escaped where it was made)."""
    head = "".join(f'<th scope="col">{_e(cell)}</th>' for cell in header)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    klass = f' class="{cls}"' if cls else ""
    return (
        f'<div class="scroll"><table{klass}><caption class="muted">{_e(caption)}</caption>'
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"
    )


def render_index(page: Page) -> str:
    body = ["<h1>Releases: every stack</h1>", _attention(page.stacks, link=True)]
    body += ["<h2>Stacks side by side</h2>", _side_by_side(page.stacks)]
    body.append("<h2>DORA metrics, last 30 days</h2>")
    for stack in page.stacks:
        body.append(f'<h3><a href="{_e(stack.file)}">{_e(stack.name)}</a></h3>')
        body.append(_tiles(stack, 4))
    return _document("Releases", body, page.now)


def render_stack(stack: StackPage, now: datetime) -> str:
    body = [
        '<p><a href="index.html">All stacks</a></p>',
        f"<h1>Stack {_e(stack.name)}</h1>",
        _attention([stack], link=False),
    ]
    if stack.error:
        return _document(f"Stack {stack.name}", body, now)
    body += [
        "<h2>Live services</h2>",
        _services(stack),
        "<h2>DORA metrics, last 30 days</h2>",
        _tiles(stack, 3),
    ]
    body += ["<h2>Last releases</h2>", _timeline(stack), _analyses(stack)]
    body += ["<h2>Restore drills</h2>", _drills(stack), "<h2>Chain of records</h2>", _chain(stack)]
    body += [f"<h2>Last {len(stack.entries)} history entries</h2>", _history(stack)]
    return _document(f"Stack {stack.name}", body, now)


def _attention(stacks: Sequence[StackPage], link: bool) -> str:
    items = []
    for stack in stacks:
        name = f'<a href="{_e(stack.file)}">{_e(stack.name)}</a>' if link else _e(stack.name)
        if stack.error:
            items.append(f'<li class="bad">{name}: cannot be read: {_e(stack.error)}</li>')
        for release in stack.unfinished:
            items.append(f'<li class="bad">{name}: unfinished release: {_e(release.describe())}</li>')
        for entry in stack.not_counted[:NOT_COUNTED_SHOWN]:
            items.append(
                f'<li class="bad">{name}: entry {entry.number}: a record that does not count '
                f"({_e(entry.standing)}): <code>{_e(entry.message[:300])}</code></li>"
            )
        if len(stack.not_counted) > NOT_COUNTED_SHOWN:
            items.append(f"<li>{name}: {len(stack.not_counted) - NOT_COUNTED_SHOWN} more not counted</li>")
        for row in stack.unreviewed:
            items.append(
                f'<li class="warn">{name}: break-glass release in entry {row.number} by {_e(row.actor)} '
                f"awaits review: {_e(row.approval_or_reason)}</li>"
            )
    if not items:
        return (
            '<section aria-labelledby="attention"><h2 id="attention">Needs attention</h2><p class="ok">'
            "Nothing: no unfinished release, every record counts, no break-glass release awaits review."
            "</p></section>"
        )
    return (
        '<section class="attention" aria-labelledby="attention"><h2 id="attention">Needs attention '
        f"({len(items)})</h2><ul>{''.join(items)}</ul></section>"
    )


def _side_by_side(stacks: Sequence[StackPage]) -> str:
    services = sorted({row.service for stack in stacks for row in stack.services})
    header = ["service", *[stack.name for stack in stacks]]
    rows = []
    for service in services:
        cells = [f"<strong>{_e(service)}</strong>"]
        for stack in stacks:
            row = next((r for r in stack.services if r.service == service), None)
            if stack.error:
                cells.append('<span class="bad">cannot be read</span>')
            elif row is None:
                cells.append('<span class="muted">not released</span>')
            else:
                cells.append(_service_cell(row))
        rows.append(cells)
    return _table("Per service and stack: live image, color, canary split, config fingerprint", header, rows)


def _service_cell(row: ServiceStatus) -> str:
    image = row.images.get(row.active_color, "")
    canary = f"canary {row.canary_weight}% to the other color" if row.canary_weight else "no canary"
    verified = '<span class="ok">verified</span>' if row.verified else '<span class="bad">not verified</span>'
    return (
        f"<code>{_e(_short(image))}</code><br>{_e(row.active_color)} live, {_e(canary)}<br>"
        f"config <code>{_e(row.config.get(row.active_color, '?'))}</code><br>{verified}"
    )


def _services(stack: StackPage) -> str:
    rows = [
        [
            _e(row.service),
            _e(row.active_color),
            f"<code>{_e(_short(row.images.get('blue', '')))}</code>",
            f"<code>{_e(_short(row.images.get('green', '')))}</code>",
            _e(f"{row.canary_weight}%" if row.canary_weight else "-"),
            " / ".join(f"<code>{_e(row.config.get(color, '?'))}</code>" for color in ("blue", "green")),
            '<span class="ok">yes</span>' if row.verified else '<span class="bad">no</span>',
            f"<code>{_e(_short(row.waiting))}</code>" if row.waiting else "-",
        ]
        for row in stack.services
    ]
    header = [
        "service",
        "live color",
        "blue",
        "green",
        "canary",
        "config blue / green",
        "verified",
        "waiting",
    ]
    return _table(f"Services live in {stack.name}", header, rows)


def _tiles(stack: StackPage, level: int) -> str:
    if stack.error or stack.metrics is None:
        return f'<p class="bad">No figures: {_e(stack.error)}</p>'
    tiles = []
    for metric in METRICS:
        figure = stack.metrics.figure(metric)
        band = figure.band.name or "no band"
        trend = _sparkline(stack.trend, f"releases per week in {stack.name}, last {TREND_WEEKS} weeks")
        tiles.append(
            f'<div class="tile"><h{level}>{_e(metric)}</h{level}><div class="value">{_e(figure.shown)}</div>'
            f'<div>DORA band: <strong>{_e(band)}</strong> <span class="muted">({_e(figure.band.rule)})'
            f'</span></div><div class="muted">{_e(figure.note)}; '
            f"{len({ref['release'] for ref in figure.releases})} releases counted</div>"
            f"{trend if metric == METRICS[0] else ''}</div>"
        )
    return f'<div class="tiles">{"".join(tiles)}</div>'


def _sparkline(values: Sequence[int], label: str) -> str:
    """An inline SVG line of `values` (oldest first), with its numbers as its accessible title."""
    if not values:
        return ""
    width, height, top = 160, 36, max(max(values), 1)
    step = width / max(len(values) - 1, 1)
    points = " ".join(
        f"{index * step:.1f},{height - 2 - (value / top) * (height - 4):.1f}"
        for index, value in enumerate(values)
    )
    title = f"{label}: {', '.join(str(value) for value in values)}"
    return (
        f'<svg role="img" aria-label="{_e(title)}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}"><title>{_e(title)}</title>'
        f'<polyline fill="none" stroke="#0645ad" stroke-width="2" points="{points}"/></svg>'
    )


def _timeline(stack: StackPage) -> str:
    rows = []
    for release in stack.releases:
        steps = []
        previous: HistoryEntry | None = None
        for event, entry in release.steps:
            took = ""
            if previous is not None:
                took = f" +{_duration((entry.finished_at - previous.finished_at).total_seconds())}"
            failed = "" if entry.succeeded else f" ({entry.result})"
            steps.append(f"{_e(event)}{_e(took)}{_e(failed)}")
            previous = entry
        first = release.first.record
        glass = '<span class="warn">BREAK-GLASS</span> ' if first is not None and first.break_glass else ""
        outcome = release.outcome or "unfinished"
        klass = "ok" if outcome == "Verified" else "bad"
        why = _why_failed(release)
        total = (release.steps[-1][1].finished_at - release.first.finished_at).total_seconds()
        rows.append(
            [
                _e(_time(release.first.finished_at)),
                f"<code>{_e(release.id)}</code>",
                _e(release.service),
                f"<code>{_e(_short(release.image))}</code>",
                glass + " → ".join(steps),
                f'<span class="{klass}">{_e(outcome)}</span>'
                + (f'<br><span class="muted">{_e(why)}</span>' if why else ""),
                _e(_duration(total)),
                _e(release.actor),
            ]
        )
    header = ["started", "release", "service", "image", "steps", "outcome", "took", "who"]
    return _table(f"The last {len(rows)} releases of {stack.name}, newest first", header, rows)


def _why_failed(release: Release) -> str:
    """The reason its rollback or abort record gives (a canary abort's names the step that failed),
    its image shortened as the image column shows it."""
    for event, entry in reversed(release.steps):
        if event in (Event.ROLLBACK, Event.ABORT) and entry.record is not None:
            reason = entry.record.reason
            return reason.replace(release.image, _short(release.image)) if release.image else reason
    return ""


def _analyses(stack: StackPage) -> str:
    """Each release's metric analysis (its verify or rollback record's window), values against limits."""
    parts = []
    for release in stack.releases:
        for _, entry in release.steps:
            record = entry.record
            analysis = record.window.get("analysis") if record is not None else None
            if not isinstance(analysis, dict) or not isinstance(analysis.get("measurements"), list):
                continue
            bars = [m for m in analysis["measurements"] if isinstance(m, dict)]
            parts.append(
                f"<h3>Analysis of {_e(release.id)}: {_e(analysis.get('outcome'))}</h3>{_analysis_chart(bars)}"
            )
    return "".join(parts)


ANALYSIS_COLORS = {"Successful": "#0b5d1e", "Failed": "#8a1010"}
"""Bar colors by a measurement's outcome (release.analysis.Outcome); an inconclusive one is amber."""
_LIMIT = re.compile(r"[<>]=\s*([0-9]+(?:\.[0-9]+)?(?:e[-+]?[0-9]+)?)(?:\s|$)")
"""The number in a measurement's limit as the analysis writes it: `<= 0.01`, `>= 50`, `<= 2 s`."""


def _analysis_chart(measurements: Sequence[Mapping[str, Any]]) -> str:
    """One bar per measurement: its value as a share of its limit (100% at the dashed line; a bar
    stops at 150%), colored by its outcome, with the value written after it."""
    bar, line, width, row = 110, 120, 360, 22
    height = row * len(measurements) + 4
    shapes, described = [], []
    for index, measurement in enumerate(measurements):
        value, limit = measurement.get("value"), _limit_of(measurement.get("limit"))
        name, outcome = str(measurement.get("name")), str(measurement.get("outcome"))
        numeric = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        share = min(max(float(value) / limit, 0.0), 1.5) if numeric and limit else 0.0  # type: ignore[arg-type]
        y = index * row + 2
        shapes.append(
            f'<text x="0" y="{y + 13}" font-size="12">{_e(name[:16])}</text>'
            f'<rect x="{bar}" y="{y}" width="{share * line:.1f}" height="{row - 6}" '
            f'fill="{ANALYSIS_COLORS.get(outcome, "#6b4a00")}"/>'
            f'<text x="{bar + share * line + 4:.1f}" y="{y + 13}" font-size="12">'
            f"{_e(f'{value:.4g}' if numeric else '-')}</text>"
        )
        described.append(f"{name} {value} (limit {measurement.get('limit')}, {outcome})")
    at = bar + line
    shapes.append(f'<line x1="{at}" y1="0" x2="{at}" y2="{height}" stroke="#1a1a1a" stroke-dasharray="3"/>')
    label = "value against limit (dashed line): " + "; ".join(described)
    return (
        f'<svg class="analysis" role="img" aria-label="{_e(label)}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}"><title>{_e(label)}</title>{"".join(shapes)}</svg>'
    )


def _limit_of(limit: object) -> float | None:
    """The positive number a limit names (`<= 0.01` is 0.01), or None."""
    found = _LIMIT.match(limit) if isinstance(limit, str) else None
    number = float(found.group(1)) if found else None
    return number if number is not None and number > 0 else None


def _drills(stack: StackPage) -> str:
    rows = []
    for entry in stack.drills:
        assert entry.record is not None
        drill = entry.record.drill
        figures = drill.get("figures") if isinstance(drill.get("figures"), dict) else {}
        cells = [_e(_time(entry.finished_at)), str(entry.number), _e(drill.get("verdict"))]
        for name in ("rto", "rpo"):
            figure = figures.get(name) if isinstance(figures, dict) else None
            cells.append(_e(_against_target(figure)))
        cells.append(_e(drill.get("restoredFrom")))
        rows.append(cells)
    if not rows:
        return '<p class="warn">No restore drill counts in this history.</p>'
    return _table(
        "Restore drills, newest first", ["when", "entry", "verdict", "RTO", "RPO", "restored from"], rows
    )


def _against_target(figure: Any) -> str:
    if not isinstance(figure, dict):
        return "unknown"
    seconds, target = figure.get("seconds"), figure.get("targetSeconds")
    shown = _duration(seconds) if isinstance(seconds, int | float) else "unknown"
    if isinstance(target, int | float):
        verdict = "within" if isinstance(seconds, int | float) and seconds <= target else "MISSED"
        return f"{shown} (target {_duration(target)}: {verdict})"
    return shown


def _chain(stack: StackPage) -> str:
    chain = stack.chain
    if chain is None:
        return ""
    state = '<span class="ok">intact</span>' if chain.intact else '<span class="bad">broken</span>'
    breaks = "".join(f"<li>entry {number}: {_e(why)}</li>" for number, why in chain.breaks + chain.times)
    return (
        f"<p>{state}: head <code>{_e(chain.head[:HEAD_SHOWN])}</code>, {chain.length} records chained, "
        f"{chain.before_chain} from before the chain.</p>" + (f"<ul>{breaks}</ul>" if breaks else "")
    )


def _history(stack: StackPage) -> str:
    rows = []
    for entry in stack.entries:
        record = entry.record
        if record is not None:
            what = f"{record.event} {record.service} {_short(record.image)}".strip()
            standing = entry.standing
        elif entry.untrusted:
            what, standing = entry.message[:200], f"{entry.standing}: not counted"
        else:
            what, standing = entry.message[:200], "foreign update"
        klass = ' class="bad"' if entry.untrusted else ""
        rows.append(
            [
                str(entry.number),
                _e(_time(entry.finished_at)),
                _e(entry.actor),
                f"<span{klass}>{_e(standing)}</span>",
                _e(what),
                _e(entry.result),
            ]
        )
    return _table(
        f"History of {stack.name}, newest first", ["#", "time", "who", "record", "what", "result"], rows
    )


def _short(image: str) -> str:
    if "@sha256:" in image:
        repository, digest = image.split("@sha256:", 1)
        return f"{repository.rsplit('/', 1)[-1]}@sha256:{digest[:12]}"
    return image or "-"


def _time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
