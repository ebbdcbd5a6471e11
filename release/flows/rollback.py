"""Rollback: restore the config an earlier succeeded update ran with, from stack history, and `up`.

Pulumi has no rollback command (pulumi/pulumi#96, #1765: "re-run `up` with the previous program and
config"); this module is that, made safe:

- **From history only.** The restored values are the per-stack knobs recorded in the chosen history
  entry, objects included. Secrets come back from history without values and are left as they are;
  project-level values (Pulumi.yaml) come from the code, not from history.
- **Cheap when it can be.** When the restore only moves traffic back to images that are already
  running (a blue-green flip), the `up` targets just the stable and preview Services of the services
  that change: two resources each, whatever the size of the stack. The idle color keeps running
  what it ran (kept for inspection on the preview URL, replaced by the next deploy), and the report
  says so. Anything else is a full `up`, and the plan says why.
- **Migration-aware.** Moving a service's traffic off a digest whose migration is not declared
  backward compatible (`migration.expandContract: false`) is refused unless forced, with the reason.
- **To a settled state.** Without `--to-version`, the target is the state before the current release:
  the newest settled state (release.history.lifecycle) whose config differs from now, never an intermediate
  entry of a failed, rolled-back or unfinished release. `--dry-run` shows the target and why.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from core.config.project import ProjectSettings
from core.config.sources import StackConfigValues, validated_stack_config
from core.config.stack import IDLE_SCALED_DOWN
from core.errors import HistoryError
from release import log
from release.annotations import StepAnnotations, release_tags
from release.context import ReleaseContext
from release.flows.restore import plan_rollback, restore
from release.flows.snapshot import snapshot_past_risks
from release.history.entries import (
    RELEASES_KEY,
    HistoryEntry,
    entry_numbered,
    refuse_if_running,
)
from release.history.lifecycle import Lifecycle, choose_rollback_target, read_lifecycle
from release.history.records import Event, ReleaseRecord
from release.history.signing import Signer, refuse_unsigned_write
from release.report.release_report import Phase, ReleaseReport
from release.report.rollback_plan import RollbackPlan


def rollback(ctx: ReleaseContext, request: RollbackRequest) -> ReleaseReport:
    """`release rollback`: restore entry `to_number` of history, or the state before the current release.

    Without `to_number` the target is the newest settled state whose per-stack knobs differ from the
    stack's config now (release.history.lifecycle). The rollback finishes every unfinished release (its
    record names them). With `dry_run` nothing changes: the report holds the plan and why. After the
    `up`, the stable URL of every service whose active color moved back is health-checked.
    """
    stack = request.stack
    report = ReleaseReport("rollback", stack)
    current = ctx.engine.get_config(stack)
    stack_config = validated_stack_config(stack, current, ctx.project_file)
    project = stack_config.project
    entries = ctx.chains.history(stack)
    refuse_if_running(stack, entries)
    lifecycle = read_lifecycle(entries)
    plan = _plan_to(stack, request.to_number, entries, lifecycle, current, project)
    report.rollback = plan
    unfinished = [  # those that started after the target: restoring it undoes them
        release.id for release in lifecycle.unfinished if release.first.position < plan.target.position
    ]
    if request.dry_run:
        report.phase = Phase.PLANNED
        if plan.risks:
            report.notes.append("this rollback would be refused without --force (see migration risk)")
        if unfinished:
            report.notes.append(f"it would finish the unfinished release(s) {', '.join(unfinished)}")
        return report
    refuse_unsigned_write(project, stack, request.signer, "rollback", ctx.clock())
    data = snapshot_past_risks(ctx, stack_config, plan, request.force, report)
    ctx.progress(f"rollback: pulumi up -s {stack} ({plan.mode}, to {plan.target.label()})")
    record = ReleaseRecord(
        event=Event.ROLLBACK,
        stack=stack,
        actor=request.actor,
        service=",".join(plan.switched),
        finishes=tuple(unfinished),
        reason=request.reason,
        run=request.run,
        data=data,
    )
    annotate = StepAnnotations(
        ctx.annotator,
        ctx.clock,
        report,
        "rollback",
        plan.target.label(),
        release_tags(
            plan.switched or list(stack_config.settings.releases), stack_config.settings.namespace, stack
        ),
    )
    started = ctx.clock()
    with log.indented():
        outcome = restore(
            ctx,
            report,
            plan,
            record,
            request.signer,
            step="rollback",
            force=request.force,
            recheck=plan.switched if request.health_check else (),
            stable_urls=request.stable_urls,
        )
    annotate.new_steps(started)
    if outcome is None:
        report.notes.append("the stack already runs that config; nothing to restore")
    return annotate.finished()


def _plan_to(
    stack: str,
    to_number: int | None,
    entries: Sequence[HistoryEntry],
    lifecycle: Lifecycle,
    current: StackConfigValues,
    project: ProjectSettings,
) -> RollbackPlan:
    if to_number is not None:
        target = entry_numbered(entries, to_number)
        if not target.succeeded or RELEASES_KEY not in target.config:
            raise HistoryError(
                f"{target.label()} is not a succeeded update that recorded {RELEASES_KEY}; pick one "
                f"that is (see `release history {stack}`)"
            )
        plan = plan_rollback(stack, current, target, project)
        settled = any(entry.position == target.position for entry in lifecycle.settled)
        plan.why = f"{target.label()} was asked for (--to-version {to_number})"
        if not settled:
            plan.why += f"; note: it is {lifecycle.why_not_settled(target)}"
        return plan
    chosen = choose_rollback_target(
        lifecycle, entries, lambda entry: _restores_a_release(plan_rollback(stack, current, entry, project))
    )
    if chosen is None:
        raise HistoryError(
            f"stack history holds no settled state whose config differs from '{stack}' now; there is "
            f"nothing to roll back to (see `release history {stack}`)"
        )
    plan = plan_rollback(stack, current, chosen.entry, project)
    plan.why, plan.skipped = chosen.why, chosen.skipped
    return plan


def _restores_a_release(plan: RollbackPlan) -> bool:
    """Whether restoring changes more than whether the idle color is scaled down: the scale-down after
    a verified release is that release's housekeeping, not a state of its own to go back to."""
    return any(not change.key.endswith(f".{IDLE_SCALED_DOWN}") for change in plan.changes)


@dataclass
class RollbackRequest:
    stack: str
    actor: str
    to_number: int | None = None
    dry_run: bool = False
    force: bool = False
    reason: str = ""
    health_check: bool = True
    stable_urls: list[str] = field(default_factory=list)
    signer: Signer | None = None
    run: str = ""
