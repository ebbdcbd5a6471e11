"""A manual snapshot of a stack's database before a change that cannot be undone: a release that
stages a new digest of a service whose migration is not expand/contract, or a rollback or abort
forced past one. The snapshot is a resource of the stack's data stack (core.data_plan,
components.data_program), taken through the engine and waited for (bounded by
`dataSafety.snapshotTimeoutMinutes`); a snapshot that fails stops the command before anything
changed.

Retention (`dataSafety.retention`): the newest `keep` snapshots stay, and older ones until they are
`maxAgeDays` old; the newest snapshot taken before each digest still live in the stack always stays
(it is the way back from that digest's migration).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from core.config.data_safety import DataSafetySpec
from core.config.stack import StackConfig
from core.data_plan import SNAPSHOTS_OUTPUT, DataPlan, SnapshotSpec, snapshot_id
from core.errors import ExitCode, ReleaseError
from core.images import fingerprint_of
from release import log
from release.context import ReleaseContext
from release.engine.protocol import DataTimeouts, Engine
from release.history.records import new_release_id
from release.report.release_report import ReleaseReport
from release.report.rollback_plan import RollbackPlan


class SnapshotFailedError(ReleaseError):
    """The snapshot before a risky change failed or timed out: the change did not start."""

    exit_code = ExitCode.ENGINE


@dataclass(frozen=True)
class SnapshotTaken:
    snapshot_id: str
    source_instance: str
    created_at: datetime
    seconds: float
    pruned: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "snapshot": self.snapshot_id,
            "sourceInstance": self.source_instance,
            "createdAt": self.created_at.isoformat(timespec="seconds"),
            "seconds": round(self.seconds, 3),
            "pruned": list(self.pruned),
        }


def needs_snapshot(stack_config: StackConfig, service: str, image: str) -> bool:
    """True when staging `image` on `service` runs a migration that is not expand/contract: the
    service declares one with `expandContract: false`, and the image is not already on a color."""
    spec = next(s.spec for s in stack_config.services if s.name == service)
    if spec.migration is None or spec.migration.expand_contract:
        return False
    release = stack_config.settings.releases[service]
    return image not in (release.images.blue, release.images.green)


def data_safety_of(stack_config: StackConfig) -> DataSafetySpec:
    spec = stack_config.project.data_safety
    if spec is None:
        raise SnapshotFailedError(
            f"stack '{stack_config.stack}': a snapshot is needed but Pulumi.yaml declares no `dataSafety`; "
            "declare it (docs/data-safety.md)"
        )
    return spec


def take_snapshot(
    engine: Engine,
    stack_config: StackConfig,
    service: str,
    image: str,
    release_id: str,
    progress: log.Progress,
    now: datetime,
) -> SnapshotTaken:
    """Take a manual snapshot of `stack_config`'s database, named from stack, service, digest and
    time, and prune old ones by the retention rule, in one update of the data stack."""
    safety = data_safety_of(stack_config)
    stack = stack_config.stack
    at = now
    source = stack_config.settings.namespace  # components.database: the instance identifier
    try:
        name = snapshot_id(stack, service, fingerprint_of(image), at)
    except ValueError as error:
        raise SnapshotFailedError(f"stack '{stack}': no snapshot name for {service}: {error}") from None
    new = SnapshotSpec(name, source, service, image, release_id, at)
    outputs = engine.data_outputs(stack)
    unreadable = unreadable_snapshots(outputs)
    if unreadable:
        # The data program is declarative: leaving them out of the plan would delete them.
        raise SnapshotFailedError(
            f"stack '{stack}': the data stack holds snapshot entries the release tool cannot read "
            f"({', '.join(unreadable)}), so it takes no snapshot (the plan would delete them); inspect "
            f"`pulumi stack output -s {stack}` in project platform-data and repair or remove them "
            "(docs/data-safety.md); nothing changed"
        )
    existing = snapshots_of(outputs)
    live = _live_images(stack_config)
    kept = retained(existing, safety, live, at)
    pruned = tuple(spec.snapshot_id for spec in existing if spec not in kept)
    plan = DataPlan(stack, (*kept, new), tags={"app": "platform", "stack": stack})
    progress(
        f"snapshot: {new.snapshot_id} of {source} before {service}'s migration "
        f"(waiting up to {safety.snapshot_timeout_minutes} min)"
    )
    started = time.monotonic()
    timeouts = DataTimeouts(safety.snapshot_timeout_minutes, safety.restore_timeout_minutes)
    outcome = engine.data_up(
        stack, plan, timeouts, f"release snapshot {new.snapshot_id}", on_output=log.detail
    )
    if not outcome.succeeded:
        raise SnapshotFailedError(
            f"stack '{stack}': the snapshot {new.snapshot_id} before {service}'s migration failed, so the "
            f"release did not start (nothing changed): {outcome.error.strip()[-500:]}"
        )
    return SnapshotTaken(new.snapshot_id, source, at, time.monotonic() - started, pruned)


def snapshots_of(outputs: dict[str, Any]) -> list[SnapshotSpec]:
    """The snapshots the data stack holds that the tool can read, oldest first (take_snapshot
    refuses while any cannot be read: see unreadable_snapshots)."""
    specs = [spec for spec in map(_snapshot_spec, _snapshot_items(outputs)) if spec is not None]
    return sorted(specs, key=lambda spec: spec.created_at)


def unreadable_snapshots(outputs: dict[str, Any]) -> list[str]:
    """The ids (or positions) of the data stack's snapshot entries that do not parse."""
    return [
        str(item.get("id", f"entry {index}")) if isinstance(item, dict) else f"entry {index}"
        for index, item in enumerate(_snapshot_items(outputs))
        if _snapshot_spec(item) is None
    ]


def _snapshot_items(outputs: dict[str, Any]) -> list[Any]:
    items = outputs.get(SNAPSHOTS_OUTPUT) or []
    return items if isinstance(items, list) else [items]


def _snapshot_spec(item: Any) -> SnapshotSpec | None:
    try:
        created_at = datetime.fromisoformat(str(item["createdAt"]).replace("Z", "+00:00"))
        if created_at.tzinfo is None:
            return None
        return SnapshotSpec(
            snapshot_id=str(item["id"]),
            source_instance=str(item["sourceInstance"]),
            service=str(item["service"]),
            image=str(item["image"]),
            release_id=str(item["releaseId"]),
            created_at=created_at,
        )
    except (KeyError, TypeError, ValueError):
        return None


def retained(
    snapshots: Sequence[SnapshotSpec], safety: DataSafetySpec, live_images: set[str], now: datetime
) -> list[SnapshotSpec]:
    """The snapshots the retention rule keeps, oldest first."""
    ordered = sorted(snapshots, key=lambda spec: spec.created_at)
    newest = set(ordered[-safety.retention.keep :]) if safety.retention.keep else set()
    young = {
        spec for spec in ordered if now - spec.created_at < timedelta(days=safety.retention.max_age_days)
    }
    guarding = {
        max((spec for spec in ordered if spec.image == image), key=lambda spec: spec.created_at)
        for image in live_images
        if any(spec.image == image for spec in ordered)
    }
    return [spec for spec in ordered if spec in newest or spec in young or spec in guarding]


def _live_images(stack_config: StackConfig) -> set[str]:
    return {
        image
        for release in stack_config.settings.releases.values()
        for image in (release.images.blue, release.images.green)
    }


def snapshot_past_risks(
    ctx: ReleaseContext,
    stack_config: StackConfig,
    plan: RollbackPlan,
    force: bool,
    report: ReleaseReport,
) -> dict[str, Any]:
    """A rollback or abort forced past a migration that cannot be undone keeps the database as it
    is now first (the new schema's writes); the record's `data` and the report name the snapshot.
    `{}` when there is no such risk or it is not forced (the restore then refuses)."""
    if not (plan.risks and force):
        return {}
    risk = plan.risks[0]
    taken = take_snapshot(
        ctx.engine, stack_config, risk.service, risk.digest, new_release_id(), ctx.progress, ctx.clock()
    )
    report.snapshot = taken.to_json()
    return {"snapshot": taken.to_json()}
