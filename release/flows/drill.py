"""`release drill <stack>`: prove the stack's database can be restored, and measure how long it
takes (RTO) and how much it loses (RPO).

The steps, in order:
1. `cleanup`: a scratch instance left by a drill that did not finish (killed midway) is removed
   first; the drill stack (core.data_plan: `<stack>-drill`) holds at most one.
2. `restore`: the newest snapshot the release tool took (or the database at `--at`, a point in time
   within its backup retention) into a scratch instance that mirrors the source (engine version,
   parameter group, subnet group, security groups; `database.drillInstanceClass`), waited for up
   to `dataSafety.restoreTimeoutMinutes`.
3. `verify`: the project's verification queries against it, each read-only with a deadline
   (release.data.verification); RTO = start to verified, RPO = target time - newest write found;
   both compared with `dataSafety.targets`.
4. `destroy`: the scratch instance is removed, whatever happened before (unless `--keep`).
5. `record`: a signed `drill` record in the stack's history: what was restored, the figures, the
   verdict; `release audit`, `release status` and the promotion gate read it.

Credentials of the scratch instance come from its managed secret (a secret output) and are never
printed, logged or recorded.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from core.config.data_safety import DataSafetySpec
from core.config.project import parameter_group_family
from core.config.sources import validated_stack_config
from core.config.stack import StackConfig
from core.data_plan import (
    SCRATCH_OUTPUT,
    SCRATCH_PASSWORD_OUTPUT,
    DataPlan,
    ScratchSpec,
    scratch_identifier,
)
from core.errors import ExitCode, ReleaseError
from core.text import one_line
from release import log
from release.context import ReleaseContext
from release.data.verification import (
    DatabaseConnection,
    RecoveryFigures,
    Verification,
    format_verification,
    recovery_figures,
    verify_database,
)
from release.engine.protocol import DataTimeouts, SecretValue, UpdateOutcome
from release.flows.snapshot import data_safety_of, snapshots_of
from release.history.records import Event, ReleaseRecord
from release.history.signing import Signer, refuse_unsigned_write
from release.interrupts import describe
from release.notify import NotificationResult
from release.notify import message as notify_message
from release.report.release_report import Step, record_step


class DrillRefusedError(ReleaseError):
    """The drill cannot start (nothing to restore, a bad --at): nothing was created."""

    exit_code = ExitCode.BAD_INPUT


@dataclass
class DrillRequest:
    stack: str
    actor: str
    at: datetime | None = None
    """Restore the database as it was at this time instead of the newest snapshot."""
    keep: bool = False
    reason: str = ""
    run: str = ""
    signer: Signer | None = None
    sslmode: str = "require"
    """How the drill connects to the scratch instance (tests use a local server without TLS)."""


@dataclass
class DrillReport:
    stack: str
    steps: list[Step] = field(default_factory=list)
    restored_from: str = ""
    target_time: datetime | None = None
    verification: Verification | None = None
    figures: RecoveryFigures | None = None
    kept: str = ""
    notes: list[str] = field(default_factory=list)
    notification: NotificationResult | None = None

    @property
    def passed(self) -> bool:
        return (
            all(step.succeeded for step in self.steps)
            and self.figures is not None
            and self.figures.passed
            and self.verification is not None
            and self.verification.passed
        )

    @property
    def verdict(self) -> str:
        return "Passed" if self.passed else "Failed"

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.OK if self.passed else ExitCode.FINDING

    def record_data(self) -> dict[str, Any]:
        """What the signed `drill` record keeps (no credentials, no endpoint)."""
        return {
            "drill": {
                "verdict": self.verdict,
                "restoredFrom": self.restored_from,
                "targetTime": self.target_time.isoformat(timespec="seconds") if self.target_time else None,
                "figures": self.figures.to_json() if self.figures else None,
                "queries": self.verification.to_json() if self.verification else None,
                "failedStep": next((step.name for step in self.steps if not step.succeeded), None),
                "kept": self.kept or None,
            }
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "command": "drill",
            "stack": self.stack,
            "verdict": self.verdict,
            **self.record_data()["drill"],
            "steps": [step.to_json() for step in self.steps],
            "notes": self.notes,
            "notification": self.notification.to_json() if self.notification else None,
            "exitCode": self.exit_code,
        }

    def render(self) -> str:
        lines = [f"drill of '{self.stack}' from {self.restored_from or 'nothing'}: {self.verdict}"]
        for step in self.steps:
            mark = "ok  " if step.succeeded else "FAIL"
            lines.append(f"  {mark} {step.name:<12} {step.seconds:7.2f}s  {step.detail}")
        if self.verification is not None and self.figures is not None:
            table = format_verification(self.verification, self.figures).splitlines()
            lines += [f"  {line}" if line else "" for line in table]
        lines += [f"  note: {note}" for note in self.notes]
        if self.notification is not None:
            sent = "sent" if self.notification.sent else "NOT sent: " + self.notification.error
            lines.append(f"  notification (drill): {sent}")
        return "\n".join(lines) + "\n"


def drill(ctx: ReleaseContext, request: DrillRequest) -> DrillReport:
    """Run a restore drill of `request.stack`'s database; the scratch instance never outlives it
    (unless `keep`), and the record is written whatever the verdict."""
    current = ctx.engine.get_config(request.stack)
    stack_config = validated_stack_config(request.stack, current, ctx.project_file)
    safety = data_safety_of(stack_config)
    refuse_unsigned_write(stack_config.project, request.stack, request.signer, "drill", ctx.clock())
    report = DrillReport(request.stack)
    timeouts = DataTimeouts(safety.snapshot_timeout_minutes, safety.restore_timeout_minutes)
    scratch = _scratch_spec(
        stack_config, request, report, ctx.engine.data_outputs(request.stack), ctx.clock()
    )
    started_at = ctx.clock()
    report.steps.append(_remove_leftover(ctx, request.stack, timeouts, report))
    if not report.steps[-1].succeeded:
        _record(ctx, request, stack_config, report)
        return report
    stopped: BaseException | None = None
    step = "restore"
    try:
        restored = _restore(ctx, request.stack, scratch, safety, timeouts)
        report.steps.append(restored)
        if restored.succeeded:
            step = "verify"
            report.steps.append(_verify(ctx, request, safety, report, started_at))
    except BaseException as error:  # noqa: BLE001 - removed and recorded below, then raised again
        stopped = error
        what = describe(error) if isinstance(error, KeyboardInterrupt) else f"{type(error).__name__}: {error}"
        report.steps.append(Step(step, False, 0.0, one_line(what)[:300]))
    finally:
        if request.keep:
            report.kept = scratch.identifier
            report.notes.append(
                f"the scratch instance {scratch.identifier} was kept for inspection; the next "
                f"`release drill {request.stack}` removes it first (or remove it now with "
                f"`pulumi destroy -s {request.stack}-drill` in the platform-data project)"
            )
        else:
            report.steps.append(_destroy(ctx, request.stack, timeouts))
    _record(ctx, request, stack_config, report)
    report.notification = ctx.notifier.send("drill", _notification_text(request, report))
    if stopped is not None:
        raise stopped
    return report


def _notification_text(request: DrillRequest, report: DrillReport) -> str:
    """The drill's outcome for the team's channel: verdict, figures against targets, what failed."""
    figures = report.figures
    detail = [f"restored from {report.restored_from or 'nothing'}"]
    if figures is not None:
        for figure in (figures.rto, figures.rpo):
            seconds = "unknown" if figure.seconds is None else f"{figure.seconds / 60:.1f} min"
            missed = (
                f", MISSED by {figure.missed_by_seconds / 60:.1f} min" if figure.missed_by_seconds else ""
            )
            detail.append(
                f"{figure.name.upper()} {seconds} (target {figure.target_seconds / 60:.0f} min{missed})"
            )
    failed = next((step for step in report.steps if not step.succeeded), None)
    if failed is not None:
        detail.append(f"failed at {failed.name}: {failed.detail}")
    return notify_message(
        f"restore drill {report.verdict}",
        request.stack,
        "database",
        "",
        request.actor,
        request.run,
        "; ".join(detail),
    )


def _remove_leftover(ctx: ReleaseContext, stack: str, timeouts: DataTimeouts, report: DrillReport) -> Step:
    started = time.monotonic()
    leftover = ctx.engine.data_outputs(stack, drill=True).get(SCRATCH_OUTPUT)
    if not leftover:
        return Step("cleanup", True, time.monotonic() - started, "no scratch instance was left behind")
    name = leftover.get("identifier", "?") if isinstance(leftover, dict) else "?"
    ctx.progress(f"cleanup: removing the scratch instance {name} a drill left behind")
    outcome = _remove_scratch(ctx, stack, timeouts, "release drill: remove leftover")
    if outcome.succeeded:
        report.notes.append(f"removed the scratch instance {name} left by a drill that did not finish")
        return Step("cleanup", True, time.monotonic() - started, f"removed the leftover {name}")
    return Step("cleanup", False, time.monotonic() - started, f"could not remove {name}: {outcome.error}")


def _scratch_spec(
    stack_config: StackConfig,
    request: DrillRequest,
    report: DrillReport,
    snapshot_outputs: dict[str, Any],
    now: datetime,
) -> ScratchSpec:
    """What to restore, mirroring the source; refused before anything is created when there is
    nothing to restore or `--at` is outside what RDS can restore."""
    stack, settings, postgres = request.stack, stack_config.settings, stack_config.project.postgres
    source = settings.namespace
    snapshot: str | None = None
    if request.at is None:
        snapshots = snapshots_of(snapshot_outputs)
        if not snapshots:
            raise DrillRefusedError(
                f"stack '{stack}': no snapshot exists yet to restore; a release of a non-expand/contract "
                f"migration takes one, or drill a point in time: `release drill {stack} --at <UTC time>` "
                f"(within the last {settings.database.backup_retention_days} days)"
            )
        newest = snapshots[-1]
        snapshot, report.target_time, report.restored_from = (
            newest.snapshot_id,
            newest.created_at,
            f"snapshot {newest.snapshot_id}",
        )
    else:
        _refuse_bad_point_in_time(stack_config, request, now)
        report.target_time = request.at
        report.restored_from = f"{source} at {request.at.isoformat(timespec='seconds')}"
    return ScratchSpec(
        identifier=scratch_identifier(stack),
        source_instance=source,
        engine_version=postgres.engine_version,
        parameter_group_name=f"{source}-{parameter_group_family(postgres.engine_version)}",
        subnet_group_name=settings.database.subnet_group_name,
        security_group_ids=tuple(settings.database.security_group_ids),
        instance_class=settings.database.drill_instance_class or settings.database.instance_class,
        port=postgres.port,
        database_name=postgres.database_name,
        snapshot_id=snapshot,
        restore_time=request.at,
    )


def _refuse_bad_point_in_time(stack_config: StackConfig, request: DrillRequest, now: datetime) -> None:
    assert request.at is not None
    retention = stack_config.settings.database.backup_retention_days
    if request.at.tzinfo is None:
        raise DrillRefusedError(f"stack '{request.stack}': --at needs a time zone, e.g. 2026-11-30T08:00:00Z")
    if request.at > now:
        raise DrillRefusedError(
            f"stack '{request.stack}': --at {request.at.isoformat()} is in the future; use a past UTC time"
        )
    if request.at < now - timedelta(days=retention):
        raise DrillRefusedError(
            f"stack '{request.stack}': --at {request.at.isoformat()} is older than the backup retention "
            f"({retention} days, database.backupRetentionDays); choose a later time"
        )


def _restore(
    ctx: ReleaseContext, stack: str, scratch: ScratchSpec, safety: DataSafetySpec, timeouts: DataTimeouts
) -> Step:
    ctx.progress(
        f"restore: {scratch.snapshot_id or scratch.restore_time} into {scratch.identifier} "
        f"(waiting up to {safety.restore_timeout_minutes} min)"
    )
    started = time.monotonic()
    plan = DataPlan(stack, scratch=scratch, drill=True, tags={"app": "platform", "stack": stack})
    outcome = ctx.engine.data_up(
        stack, plan, timeouts, f"release drill: restore into {scratch.identifier}", on_output=log.detail
    )
    detail = (
        f"{scratch.identifier} available"
        if outcome.succeeded
        else f"the scratch instance did not become available: {outcome.error.strip()[-500:]}"
    )
    return Step("restore", outcome.succeeded, time.monotonic() - started, detail)


def _verify(
    ctx: ReleaseContext,
    request: DrillRequest,
    safety: DataSafetySpec,
    report: DrillReport,
    started_at: datetime,
) -> Step:
    started = time.monotonic()
    outputs = ctx.engine.data_outputs(request.stack, drill=True)
    scratch, password = outputs.get(SCRATCH_OUTPUT), outputs.get(SCRATCH_PASSWORD_OUTPUT)
    if not isinstance(scratch, dict) or not isinstance(password, SecretValue):
        return Step("verify", False, time.monotonic() - started, "the scratch instance's outputs are missing")
    connection = DatabaseConnection(
        host=str(scratch["address"]),
        port=int(scratch["port"]),
        database=str(scratch["databaseName"]),
        user=str(scratch["username"]),
        password=password.reveal(),
        sslmode=request.sslmode,
    )
    ctx.progress(f"verify: {len(safety.verification)} read-only queries against {scratch.get('identifier')}")
    verification = verify_database(connection, safety.verification, safety.query_timeout_seconds)
    verified_at = ctx.clock()
    assert report.target_time is not None
    figures = recovery_figures(
        started_at, verified_at, report.target_time, verification.newest_write, safety.targets
    )
    report.verification, report.figures = verification, figures
    passed = verification.passed and figures.passed
    detail = "queries passed" if verification.passed else "a query failed"
    return Step(
        "verify",
        passed,
        time.monotonic() - started,
        f"{detail}; targets {'met' if figures.passed else 'missed'}",
    )


def _destroy(ctx: ReleaseContext, stack: str, timeouts: DataTimeouts) -> Step:
    ctx.progress("destroy: removing the scratch instance")
    started = time.monotonic()
    outcome = _remove_scratch(ctx, stack, timeouts, "release drill: destroy")
    detail = "the scratch instance is gone" if outcome.succeeded else f"could not remove it: {outcome.error}"
    return Step("destroy", outcome.succeeded, time.monotonic() - started, detail)


def _remove_scratch(ctx: ReleaseContext, stack: str, timeouts: DataTimeouts, message: str) -> UpdateOutcome:
    """An update of the drill stack that declares no scratch instance: the engine deletes it."""
    return ctx.engine.data_up(stack, DataPlan(stack, drill=True), timeouts, message)


def _record(
    ctx: ReleaseContext, request: DrillRequest, stack_config: StackConfig, report: DrillReport
) -> None:
    record = ReleaseRecord(
        event=Event.DRILL,
        stack=request.stack,
        actor=request.actor,
        run=request.run,
        reason=request.reason,
        data=report.record_data(),
    )
    summary = (
        f"release drill {request.stack}: {report.verdict} ({report.restored_from or 'nothing restored'})"
    )
    first_service = stack_config.services[0].name
    report.steps.append(
        record_step(ctx, request.stack, first_service, record, summary, request.signer, ctx.progress)
    )
