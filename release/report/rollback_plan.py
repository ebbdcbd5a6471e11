"""A rollback plan: what restoring a history entry would change, how the `up` runs, and why.

Report data, made by `release.flows.restore.plan_rollback` and shown by every report that restores
(a rollback, an abort, a failed release's automatic rollback).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from core.config.sources import ConfigEntry
from core.errors import MigrationRisk
from release.history.entries import HistoryEntry, short_image


@dataclass(frozen=True)
class ConfigChange:
    key: str
    current: Any
    restored: Any

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "current": self.current, "restored": self.restored}


@dataclass
class RollbackPlan:
    """What restoring `target` would change, and how the `up` would run."""

    stack: str
    target: HistoryEntry
    restore: dict[str, ConfigEntry]
    changes: list[ConfigChange]
    switched: list[str]
    """Services whose active color moves back."""
    targets: list[str]
    """URNs for a targeted `up`; empty means a full `up` (see `full_up_reason`)."""
    full_up_reason: str = ""
    left_in_cluster: list[str] = field(default_factory=list)
    not_restored: list[str] = field(default_factory=list)
    risks: list[MigrationRisk] = field(default_factory=list)
    moved_away: list[str] = field(default_factory=list)
    """The images stable traffic moves away from (the active image of each switched service)."""
    why: str = ""
    """Why this target was chosen (and which newer entries were passed over)."""
    skipped: list[str] = field(default_factory=list)
    scaled_up: list[str] = field(default_factory=list)
    """Services whose restored active color is scaled down now: the up scales it up before switching."""
    live_images: dict[str, tuple[str, str]] = field(default_factory=dict)
    """Per service whose live image changes: (the image live now, the image live after the restore)."""

    @property
    def nothing_to_do(self) -> bool:
        return not self.restore

    @property
    def mode(self) -> str:
        if self.nothing_to_do:
            return "nothing to restore"
        return "targeted" if self.targets else "full"

    def to_json(self) -> dict[str, Any]:
        return {
            "stack": self.stack,
            "restoredFrom": self.target.to_json(),
            "mode": self.mode,
            "targets": self.targets,
            "fullUpReason": self.full_up_reason or None,
            "switchedServices": self.switched,
            "changes": [change.to_json() for change in self.changes],
            "leftInCluster": self.left_in_cluster,
            "notRestored": self.not_restored,
            "migrationRisks": [risk.render() for risk in self.risks],
            "why": self.why or None,
            "skipped": self.skipped,
            "scaledUp": self.scaled_up,
            "liveImages": {
                name: {"now": now, "restored": back} for name, (now, back) in self.live_images.items()
            },
        }

    def render(self) -> str:
        lines = [f"rollback of '{self.stack}' to {self.target.label()}: {self.mode}"]
        if self.why:
            lines.append(f"  why: {self.why}")
        lines += [f"  passed over: {note}" for note in self.skipped]
        lines += [
            f"  {name}: live {short_image(now)} -> {short_image(back)}"
            for name, (now, back) in self.live_images.items()
        ]
        lines += [f"  {change.key}: {change.current!r} -> {change.restored!r}" for change in self.changes]
        if self.targets:
            lines.append(f"  targeted up: {len(self.targets)} resources")
            lines += [f"    {urn}" for urn in self.targets]
        elif self.restore:
            lines.append(f"  full up: {self.full_up_reason}")
        lines += [f"  scaled up first: {note}" for note in self.scaled_up]
        lines += [f"  left in the cluster: {note}" for note in self.left_in_cluster]
        lines += [f"  not restored: {note}" for note in self.not_restored]
        lines += [f"  migration risk: {risk.render()}" for risk in self.risks]
        return "\n".join(lines) + "\n"
