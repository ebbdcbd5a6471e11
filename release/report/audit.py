"""`release audit` and `release status`: read back from stack history what happened and where things stand.

Audit: one row per update in each stack's history: releases, promotions, verifications, rollbacks,
rejections, reviews (from their release records), and foreign updates (a plain `pulumi up`), with
time, actor, stack, service, digest before -> after, approval or reason, result and duration.
Break-glass releases that nobody else has reviewed yet are listed apart.

Status: per stack and service, the active color, the image of each color, whether the active one
is verified, and what waits to be promoted (a source stack's verified digest its target lacks).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from core.config.base import Color
from core.config.project import ProjectSettings
from core.config.stack import ServiceRelease, project_pod_config, releases_of
from core.errors import ReleaseError
from core.gateway import canary_weights
from core.text import one_line
from release.engine.protocol import Engine
from release.gates import GITHUB_RUN, Evidence, evidence_for
from release.history.entries import RELEASES_KEY, HistoryEntry, read_history
from release.history.records import Event, ReleaseRecord
from release.report.chain_audit import HEADS_HEADER, HEADS_TITLE, ChainCheck, check_chain, heads_rows


@dataclass
class Audit:
    """What `release audit` shows: rows newest first, break-glass releases awaiting review, and the
    stacks whose history could not be read (each with its error)."""

    rows: list[AuditRow] = field(default_factory=list)
    unreviewed: list[AuditRow] = field(default_factory=list)
    failures: list[tuple[str, ReleaseError]] = field(default_factory=list)
    chains: list[ChainCheck] = field(default_factory=list)
    """Each stack's chain walked (release.report.chain_audit)."""

    def to_json(self, verify: bool = False) -> dict[str, Any]:
        document = {
            "rows": [row.to_json() for row in self.rows],
            "breakGlassAwaitingReview": [row.to_json() for row in self.unreviewed],
        }
        if verify:
            document["chains"] = [check.to_json() for check in self.chains]
        return document


def read_audit(
    engine: Engine, project: ProjectSettings, stacks: Sequence[str], since: datetime | None, now: datetime
) -> Audit:
    """Every stack's history as audit rows and its chain walked at `now`; a stack that cannot be read
    is a failure, not the end."""
    audit = Audit()
    for stack in stacks:
        try:
            entries = read_history(engine, stack, project)
        except ReleaseError as error:
            audit.failures.append((stack, error))
            continue
        audit.rows += audit_rows(stack, entries, since)
        audit.chains.append(check_chain(stack, entries, now))
        policy = project.stack_policies.get(stack)
        asserted_counts = policy is None or policy.promotion.allow_asserted_review
        audit.unreviewed += unreviewed_break_glass(stack, entries, asserted_counts)
    audit.rows.sort(key=lambda row: row.time, reverse=True)
    return audit


@dataclass
class Status:
    """What `release status` shows: a row per stack and service, and the stacks it could not read."""

    rows: list[ServiceStatus] = field(default_factory=list)
    failures: list[tuple[str, ReleaseError]] = field(default_factory=list)
    chains: list[ChainCheck] = field(default_factory=list)
    """Each stack's chain: its head, length and breaks."""


def read_status(engine: Engine, project: ProjectSettings, stacks: Sequence[str], now: datetime) -> Status:
    """Each stack's history and the `releases` knob it holds now, judged at `now` into status rows."""
    histories: dict[str, list[HistoryEntry]] = {}
    releases: dict[str, dict[str, Any]] = {}
    failures: list[tuple[str, ReleaseError]] = []
    for stack in stacks:
        try:
            history = read_history(engine, stack, project)
            value = engine.get_config(stack).get(RELEASES_KEY)
        except ReleaseError as error:
            failures.append((stack, error))
            continue
        histories[stack] = history
        releases[stack] = value.value if value is not None else {}
    chains = [check_chain(stack, history, now) for stack, history in histories.items()]
    return Status(stack_status(project, histories, releases, now), failures, chains)


EVENT_NAMES = {
    Event.STAGE: "release",
    Event.SWITCH: "switch",
    Event.VERIFY: "verification",
    Event.ROLLBACK: "rollback",
    Event.ABORT: "abort",
    Event.REJECT: "rejection",
    Event.REVIEW: "review",
    Event.SCALE: "idle scaled down",
    Event.CANARY: "canary step",
    Event.DRILL: "restore drill",
}


@dataclass(frozen=True)
class AuditRow:
    time: str
    stack: str
    number: int
    event: str
    actor: str
    service: str
    before: str
    after: str
    approval_or_reason: str
    result: str
    seconds: float | None
    break_glass: bool = False
    run: str = ""
    notification: str = ""
    record: str = ""
    """The record's trust (signed, unsigned, invalid signature, ...); '' for a foreign update."""
    counted: bool = True
    release: str = ""
    supply_chain: dict[str, Any] = field(default_factory=dict)
    """A stage record's verified supply-chain claims (release.supply.verdict), as recorded."""

    def to_json(self) -> dict[str, Any]:
        return {
            "time": self.time,
            "stack": self.stack,
            "number": self.number,
            "event": self.event,
            "actor": self.actor,
            "service": self.service,
            "before": self.before,
            "after": self.after,
            "approvalOrReason": self.approval_or_reason,
            "result": self.result,
            "seconds": self.seconds,
            "breakGlass": self.break_glass,
            "run": self.run or None,
            "notification": self.notification or None,
            "record": self.record or None,
            "counted": self.counted,
            "release": self.release or None,
            "supplyChain": self.supply_chain or None,
        }


def audit_rows(stack: str, entries: Sequence[HistoryEntry], since: datetime | None = None) -> list[AuditRow]:
    """Rows for one stack's history (newest first), optionally only those finished at or after `since`."""
    rows = []
    for index, entry in enumerate(entries):
        if since is not None and entry.finished_at < since:
            continue
        older = entries[index + 1] if index + 1 < len(entries) else None
        rows.append(_row(stack, entry, older))
    return rows


def _row(stack: str, entry: HistoryEntry, older: HistoryEntry | None) -> AuditRow:
    """One row. A record that does not count (unsigned where signing is required, a bad signature,
    another stack's, malformed) is shown as what it claims, marked, with its actor marked unverified."""
    record = entry.record
    claimed = entry.claimed.record if entry.claimed is not None else None
    shown = record or claimed
    services = shown.services if shown and shown.service else sorted(entry.shown_services)
    before = _active_images(older, services) if older else ""
    after = _active_images(entry, services)
    trust = entry.trust.value if entry.trust is not None else ""
    if shown is None:
        event = f"{entry.kind} (foreign)" if entry.trust is None else f"{entry.kind} ({trust}, not counted)"
        why = entry.message
        actor = entry.actor
    else:
        event = EVENT_NAMES[shown.event]
        if shown.event == Event.STAGE and shown.promoted_from:
            event = f"promotion from {shown.promoted_from}"
        if shown.event in (Event.STAGE, Event.SWITCH) and shown.previous:
            before = shown.previous
        if shown.event in (Event.STAGE, Event.VERIFY):
            after = shown.image
        if shown.event == Event.REJECT:
            before, after = ", ".join(shown.revokes), "(rejected)"
        if shown.event == Event.REVIEW:
            event = f"review of entry {shown.reviews}"
        if record is None:
            event += f" ({entry.standing}, not counted)"
        parts = [
            _approval_or_reason(shown.approval, shown.break_glass, shown.reason),
            _judged_on(shown.window.get("analysis")),
            _smoke_counts(shown.window.get("smoke")),
            _config_set(shown.config.get("set")),
            _data_safety(shown),
            supply_chain_summary(shown.supply_chain),
        ]
        why = one_line("; ".join(part for part in parts if part))
        actor = shown.actor if record is not None else f"{shown.actor} (unverified)"
    return AuditRow(
        time=entry.end_time or entry.start_time,
        stack=stack,
        number=entry.number,
        event=event,
        actor=actor,
        service=",".join(services),
        before=before,
        after=after,
        approval_or_reason=why,
        result=entry.result,
        seconds=entry.seconds,
        break_glass=bool(record and record.break_glass),
        run=record.run if record else "",
        notification=_notification(record.notification) if record else "",
        record=trust,
        counted=entry.trust is None or entry.counted,
        release=record.release if record else "",
        supply_chain=record.supply_chain if record else {},
    )


def unreviewed_break_glass(
    stack: str, entries: Sequence[HistoryEntry], asserted_counts: bool = True
) -> list[AuditRow]:
    """Break-glass releases (their first update) that no later `review` record acknowledges; where
    asserted reviews do not count (allowAssertedReview false), only a review run in GitHub Actions
    does (a review record from before reviews were marked counts as asserted)."""
    reviewed = {
        entry.record.reviews
        for entry in entries
        if entry.record
        and entry.record.event == Event.REVIEW
        and (asserted_counts or entry.record.approval.get("source") == GITHUB_RUN)
    }
    rows = []
    for index, entry in enumerate(entries):
        record = entry.record
        if record and record.event == Event.STAGE and record.break_glass and entry.number not in reviewed:
            older = entries[index + 1] if index + 1 < len(entries) else None
            rows.append(_row(stack, entry, older))
    return rows


def _active_images(entry: HistoryEntry, services: Sequence[str]) -> str:
    shown = entry.shown_services
    return ", ".join(entry.shown_active_image(name) for name in services if name in shown)


def _approval_or_reason(approval: Mapping[str, str], break_glass: Mapping[str, Any], reason: str) -> str:
    parts = []
    if approval:
        approvers = ", ".join(str(name) for name in approval.get("approvers") or []) or "?"
        how = "github" if approval.get("source") == "github-environment" else "ASSERTED"
        parts.append(f"approved {approval.get('ref')} by {approvers} ({how})")
    if break_glass:
        skipped = ", ".join(break_glass.get("skipped") or [])
        parts.append(f"BREAK-GLASS: {break_glass.get('reason')} (skipped {skipped})")
    if reason and not break_glass:
        parts.append(reason)
    return "; ".join(parts)


def supply_chain_summary(claims: Mapping[str, Any]) -> str:
    """A stage record's supply-chain claims in one line: the verdict, who signed, where it was built
    from, the scan's counts and exceptions, the SBOM."""
    if not claims:
        return ""
    parts = [f"supply chain {claims.get('verdict')} ({claims.get('mode')})"]
    if claims.get("signer"):
        parts.append(f"signed by {claims['signer']}")
    built = claims.get("provenance")
    if isinstance(built, dict):
        parts.append(
            f"built by {built.get('builder')} from {built.get('source')}@{str(built.get('commit'))[:12]}"
        )
    scan = claims.get("scan")
    if isinstance(scan, dict):
        counts: dict[str, Any] = scan["counts"] if isinstance(scan.get("counts"), dict) else {}
        found = ", ".join(f"{count} {name}" for name, count in counts.items()) or "no findings"
        used = ", ".join(scan.get("exceptionsUsed") or [])
        parts.append(
            f"scan {scan.get('scanner')} {scan.get('finishedAt')}: {found}"
            + (f" (excepted {used})" if used else "")
        )
    sbom = claims.get("sbom")
    if isinstance(sbom, dict):
        parts.append(f"sbom {sbom.get('format')} {str(sbom.get('digest'))[:19]}")
    for name in claims.get("skipped") or []:
        parts.append(f"SKIPPED {name} (break-glass)")
    for item in claims.get("unmet") or []:
        parts.append(f"UNMET {item}")
    return ", ".join(parts)


def _notification(notification: Mapping[str, Any]) -> str:
    if not notification:
        return ""
    if notification.get("sent") is True:
        return f"{notification.get('event')}: sent"
    return f"{notification.get('event')}: NOT sent ({notification.get('error') or notification.get('sent')})"


AUDIT_HEADER = [
    "time",
    "stack",
    "#",
    "event",
    "actor",
    "service",
    "before -> after",
    "approval / reason",
    "result",
    "s",
]


def _cells(row: AuditRow) -> list[str]:
    return [
        one_line(cell)
        for cell in [
            row.time[:19],
            row.stack,
            str(row.number),
            ("BREAK-GLASS " if row.break_glass else "") + row.event,
            row.actor,
            row.service,
            f"{_short(row.before)} -> {_short(row.after)}",
            row.approval_or_reason,
            row.result,
            "" if row.seconds is None else f"{row.seconds:.0f}",
        ]
    ]


COMPACT_HEADER = ["time", "stack", "#", "event", "record", "actor", "service", "image", "result", "why"]
REASON_WIDTH = 28


def _compact_cells(row: AuditRow) -> list[str]:
    """A row that fits a terminal: the image's digest, the record's trust mark, the reason cut short."""
    reason = one_line(row.approval_or_reason)
    return [
        one_line(cell)
        for cell in [
            row.time[:16].replace("T", " "),
            row.stack,
            str(row.number),
            ("BREAK-GLASS " if row.break_glass else "") + row.event.split(" (", 1)[0],
            (row.record or "-") + ("" if row.counted else ", not counted"),
            row.actor[:16],
            row.service,
            _short(row.after).rsplit("@", 1)[-1],
            row.result,
            reason[:REASON_WIDTH] + ("…" if len(reason) > REASON_WIDTH else ""),
        ]
    ]


def render_audit(
    rows: Sequence[AuditRow], unreviewed: Sequence[AuditRow], markdown: bool, wide: bool = True
) -> str:
    """The audit table (`wide`: every field, as the markdown report has it; else one short line per
    entry), then the break-glass releases awaiting review."""
    header, cells = (AUDIT_HEADER, _cells) if wide or markdown else (COMPACT_HEADER, _compact_cells)
    lines = _table(header, [cells(row) for row in rows], markdown)
    title = "break-glass releases awaiting review (`release review <stack> <#> --note ...`)"
    lines += ["", f"## {title}" if markdown else title]
    if unreviewed:
        lines += _table(header, [cells(row) for row in unreviewed], markdown)
    else:
        lines.append("none")
    return "\n".join(lines) + "\n"


def _table(header: list[str], body: list[list[str]], markdown: bool) -> list[str]:
    if markdown:
        return [
            "| " + " | ".join(header) + " |",
            "|" + "---|" * len(header),
            *("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in body),
        ]
    widths = [max(len(cell) for cell in column) for column in zip(header, *body, strict=True)]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [header, *body]
    ]


def _short(images: str) -> str:
    """`registry/.../api@sha256:<64 hex>` -> `api@sha256:<12 hex>`, for tables (JSON keeps them whole)."""
    shown = []
    for image in images.split(", "):
        if "@sha256:" in image:
            repository, digest = image.split("@sha256:", 1)
            shown.append(f"{repository.rsplit('/', 1)[-1]}@sha256:{digest[:12]}")
        elif image:
            shown.append(image)
    return ", ".join(shown) or "-"


# --------------------------------------------------------------------------------------------------
# Status
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServiceStatus:
    stack: str
    service: str
    active_color: str
    images: dict[str, str]
    verified: bool
    waiting: str = ""
    """The image live and verified in this stack's source that this stack does not run yet."""
    canary_weight: int = 0
    """The share of the stable host's traffic a canary in progress sends to the idle color."""
    config: dict[str, str] = field(default_factory=dict)
    """Each color's config fingerprint (`core.config.stack.PodConfig`): equal means the same declared
    env vars, flags, mounted secrets and database settings (not the image, which is beside it)."""
    last_drill: dict[str, Any] | None = None
    """The stack's newest counted restore drill (`release drill`): when, verdict, RTO, RPO."""

    def to_json(self) -> dict[str, Any]:
        return {
            "stack": self.stack,
            "service": self.service,
            "activeColor": self.active_color,
            "images": self.images,
            "configFingerprints": self.config,
            "canaryWeight": self.canary_weight,
            "activeVerified": self.verified,
            "waitingForPromotion": self.waiting or None,
            "lastDrill": self.last_drill,
        }


def stack_status(
    project: ProjectSettings,
    histories: Mapping[str, Sequence[HistoryEntry]],
    releases: Mapping[str, Any],
    now: datetime | None = None,
) -> list[ServiceStatus]:
    """`releases`: stack -> the `platform:releases` value it holds now; `histories`: stack -> entries.
    At `now`, a verification whose signed time is inconsistent with the chain does not count."""
    parsed = {stack: releases_of(value) for stack, value in releases.items()}
    rows = []
    for stack, stack_releases in parsed.items():
        gate = project.stack_policies[stack].promotion if stack in project.stack_policies else None
        source = gate.promote_from if gate is not None else None
        for service, release in sorted(stack_releases.items()):
            evidence = evidence_for(stack, histories.get(stack, []), service, release.active_image, live=True)
            waiting = ""
            if source is not None and service in parsed.get(source, {}):
                source_active = parsed[source][service].active_image
                source_evidence = evidence_for(
                    source,
                    histories.get(source, []),
                    service,
                    source_active,
                    live=True,
                    signed_only=gate is not None and gate.require_signed_evidence,
                )
                if source_active != release.active_image and _holds(source_evidence, now):
                    waiting = source_active
            rows.append(
                ServiceStatus(
                    stack,
                    service,
                    release.active_color.value,
                    release.images.model_dump(),
                    _holds(evidence, now),
                    waiting,
                    release.canary_weight,
                    _config_fingerprints(project, service, release),
                    last_drill(histories.get(stack, [])),
                )
            )
    return rows


def _holds(evidence: Evidence, now: datetime | None) -> bool:
    if now is not None:
        return evidence.holds(now)
    return evidence.verified is not None and evidence.revoked is None


def last_drill(entries: Sequence[HistoryEntry]) -> dict[str, Any] | None:
    """The newest counted `drill` record of a stack's history (newest first), summarised."""
    for entry in entries:
        record = entry.record
        if record is None or record.event != Event.DRILL:
            continue
        return {"entry": entry.number, "time": record.time, **_drill_summary(record.drill)}
    return None


def _drill_summary(drill: Mapping[str, Any]) -> dict[str, Any]:
    """A drill record's verdict, RTO and RPO (in minutes) and what it restored."""
    figures = drill.get("figures")
    figures = figures if isinstance(figures, Mapping) else {}
    return {
        "verdict": drill.get("verdict"),
        "rto": _minutes(figures.get("rto")),
        "rpo": _minutes(figures.get("rpo")),
        "restoredFrom": drill.get("restoredFrom"),
    }


def _config_fingerprints(project: ProjectSettings, service: str, release: ServiceRelease) -> dict[str, str]:
    configs = {color.value: project_pod_config(project, service, release.config.of(color)) for color in Color}
    return {color: config.fingerprint for color, config in configs.items() if config is not None}


def render_status(
    rows: Sequence[ServiceStatus], markdown: bool = False, chains: Sequence[ChainCheck] = ()
) -> str:
    header = [
        "stack",
        "service",
        "active",
        "blue",
        "green",
        "config blue/green",
        "verified",
        "waiting for promotion",
    ]
    body = [
        [
            row.stack,
            row.service,
            row.active_color + _route_weights(row.canary_weight),
            _short(row.images.get("blue", "")),
            _short(row.images.get("green", "")),
            "/".join(row.config.get(color, "?") for color in ("blue", "green")),
            "yes" if row.verified else "no",
            _short(row.waiting) if row.waiting else "-",
        ]
        for row in rows
    ]
    lines = _table(header, body, markdown)
    drills = {row.stack: row.last_drill for row in rows}
    title = "last restore drill per stack (`release drill <stack>`)"
    lines += ["", f"## {title}" if markdown else title]
    lines += _table(
        ["stack", "when", "verdict", "RTO", "RPO", "restored from"],
        [
            [
                stack,
                drill["time"][:19],
                str(drill["verdict"]),
                drill["rto"],
                drill["rpo"],
                str(drill["restoredFrom"]),
            ]
            if drill
            else [stack, "never", "-", "-", "-", "-"]
            for stack, drill in drills.items()
        ],
        markdown,
    )
    if chains:
        lines += ["", f"## {HEADS_TITLE}" if markdown else HEADS_TITLE]
        lines += _table(HEADS_HEADER, heads_rows(chains), markdown)
    return "\n".join(lines) + "\n"


def _data_safety(record: ReleaseRecord) -> str:
    """The snapshot a release took before its migration, or a drill's verdict and figures."""
    parts = []
    snapshot = record.data.get("snapshot")
    if isinstance(snapshot, Mapping):
        parts.append(f"snapshot {snapshot.get('snapshot')}")
    if record.drill:
        drill = _drill_summary(record.drill)
        parts.append(
            f"drill {drill['verdict']}: RTO {drill['rto']} RPO {drill['rpo']} from {drill['restoredFrom']}"
        )
    return "; ".join(parts)


def _minutes(figure: Any) -> str:
    seconds = figure.get("seconds") if isinstance(figure, Mapping) else None
    return f"{seconds / 60:.1f} min" if isinstance(seconds, int | float) else "unknown"


def _config_set(released: Any) -> str:
    """The flag and env values a release set (its record's `config.set`), in one line."""
    if not isinstance(released, dict) or not released:
        return ""
    return "config " + ", ".join(f"{name}={value}" for name, value in sorted(released.items(), key=str))


def _judged_on(analysis: Any) -> str:
    """A verify record's metric analysis in one line: the outcome and each measured value."""
    if not isinstance(analysis, dict) or not isinstance(analysis.get("measurements"), list):
        return ""
    values = [
        f"{m.get('name')} {m.get('value'):.4g}"
        if isinstance(m.get("value"), int | float)
        else f"{m.get('name')} -"
        for m in analysis["measurements"]
        if isinstance(m, dict)
    ]
    return f"metrics {analysis.get('outcome')}: {', '.join(values)}"


def _smoke_counts(smoke: Any) -> str:
    """A record's smoke suites in one line: `smoke preview 4/4, stable 3/4 (failed: search)`."""
    if not isinstance(smoke, dict):
        return ""
    parts = []
    for target, counts in smoke.items():
        if not isinstance(counts, dict):
            continue
        passed, total, failed = counts.get("passed"), counts.get("total"), counts.get("failed")
        if isinstance(passed, int) and isinstance(total, int):
            names = [str(name) for name in failed] if isinstance(failed, list) else []
            parts.append(f"{target} {passed}/{total}" + (f" (failed: {', '.join(names)})" if names else ""))
    return f"smoke {', '.join(parts)}" if parts else ""


def _route_weights(canary_weight: int) -> str:
    """During a canary, the live HTTPRoute's weights as written (core.gateway.canary_weights)."""
    if not canary_weight:
        return ""
    live, idle = canary_weights(canary_weight)
    return f" (canary: route weights live {live} / other {idle})"
