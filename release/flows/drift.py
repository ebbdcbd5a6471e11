"""`release drift <stack>`: has anyone changed the stack's resources outside Pulumi?

A refresh preview (`pulumi refresh --preview-only`, through the engine adapter) compares the state
with what the cloud holds, and changes nothing. A step is drift when it is an `update` (a property
changed by hand, e.g. `kubectl scale`), a `delete` (removed by hand) or a `replace`, or a `refresh`
step whose diff names properties or whose old and new outputs differ. (Which op a refresh step
reports has changed between CLI versions and cannot be observed here, so both forms count.)

Exit 0: no drift; 1: drift, each resource listed with the properties the engine names (a provider
that does not report properties leaves the list empty, and says so); 2: an error.

The engine's events are read in the shape of its JSON event stream, so the parsing is tested on that
shape exactly. (Drift in a refresh is reported per resource; `--expect-no-changes` exits 7 from CLI
v3.227.0, see docs/engine-facts.md#drift-exit-code.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from release.engine.protocol import Engine
from release.notify import NotificationResult, Notifier

NO_DRIFT_OPS = frozenset({"same", "read", "refresh-same"})


@dataclass(frozen=True)
class DriftedResource:
    urn: str
    type: str
    op: str
    properties: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.urn.rsplit("::", 1)[-1]

    def to_json(self) -> dict[str, Any]:
        return {"urn": self.urn, "type": self.type, "op": self.op, "properties": list(self.properties)}


@dataclass
class DriftReport:
    stack: str
    drifted: list[DriftedResource] = field(default_factory=list)
    checked: int = 0

    @property
    def exit_code(self) -> int:
        return 1 if self.drifted else 0

    def to_json(self) -> dict[str, Any]:
        return {
            "stack": self.stack,
            "drift": bool(self.drifted),
            "checkedResources": self.checked,
            "drifted": [resource.to_json() for resource in self.drifted],
            "exitCode": self.exit_code,
        }

    def render(self) -> str:
        if not self.drifted:
            return f"no drift in '{self.stack}': {self.checked} resources match the state\n"
        lines = [
            f"DRIFT in '{self.stack}': {len(self.drifted)} of {self.checked} resources changed outside Pulumi"
        ]
        for resource in self.drifted:
            properties = ", ".join(resource.properties) or "(the provider named no properties)"
            lines.append(f"  {resource.op:<8} {resource.type} {resource.name}: {properties}")
        lines.append(
            f"  fix: put the change into code and config, or undo it with `pulumi up -s {self.stack}`; "
            f"`pulumi refresh -s {self.stack}` accepts it into the state"
        )
        return "\n".join(lines) + "\n"


def parse_drift(stack: str, events: Sequence[dict[str, Any]]) -> DriftReport:
    """Drift from refresh-preview events shaped as the engine's JSON event stream."""
    report = DriftReport(stack)
    seen: set[str] = set()
    for event in events:
        metadata = (event.get("resourcePreEvent") or {}).get("metadata")
        if not metadata or metadata.get("type") == "pulumi:pulumi:Stack":
            continue
        urn = str(metadata.get("urn", ""))
        if urn in seen:
            continue
        seen.add(urn)
        report.checked += 1
        op = str(metadata.get("op", ""))
        if op in NO_DRIFT_OPS:
            continue
        properties = set(metadata.get("detailedDiff") or {}) | set(metadata.get("diffs") or [])
        old = (metadata.get("old") or {}).get("outputs")
        new = (metadata.get("new") or {}).get("outputs")
        if isinstance(old, dict) and isinstance(new, dict):
            properties |= {key for key in set(old) | set(new) if old.get(key) != new.get(key)}
        if op == "refresh" and not properties:
            continue  # refreshed, and nothing differs
        report.drifted.append(
            DriftedResource(urn, str(metadata.get("type", "")), op, tuple(sorted(properties)))
        )
    return report


def check_drift(
    engine: Engine, stack: str, notifier: Notifier, run: str
) -> tuple[DriftReport, NotificationResult | None]:
    """Refresh-preview `stack` and parse its events; on drift, tell the webhook (with the CI run, if
    any). The notification's result is returned, never raised: the check's own outcome comes first."""
    report = parse_drift(stack, engine.refresh_preview(stack))
    if not report.drifted:
        return report, None
    names = ", ".join(resource.name for resource in report.drifted)
    text = f"*drift* on {stack}: {len(report.drifted)} resource(s) changed outside Pulumi: {names}"
    return report, notifier.send("drift", text + (f"\nrun: {run}" if run else ""))
