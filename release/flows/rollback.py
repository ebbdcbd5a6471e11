"""Rollback: restore the config an earlier succeeded update ran with, from stack history, and `up`.

Pulumi has no rollback command (pulumi/pulumi#96, #1765: "re-run `up` with the previous program and
config"); this module is that, made safe:

- **From history only.** The restored values are the per-stack knobs recorded in the chosen history
  entry, objects included. Secrets come back from history without values and are left as they are;
  project-level values (Pulumi.yaml) come from the code, not from history.
- **Cheap when it can be.** When the restore only moves traffic back to images that are already
  running (a blue-green flip), the `up` targets just the stable and preview Services of the services
  that change: two resources each, whatever the size of the stack. The idle colour keeps running
  what it ran (kept for inspection on the preview URL, replaced by the next deploy), and the report
  says so. Anything else is a full `up`, and the plan says why.
- **Migration-aware.** Moving a service's traffic off a digest whose migration is not declared
  backward compatible (`migration.expandContract: false`) is refused unless forced, with the reason.
- **To a settled state.** Without `--to-version`, the target is the state before the current release:
  the newest settled state (release.history.lifecycle) whose config differs from now, never an intermediate
  entry of a failed, rolled-back or unfinished release. `--dry-run` shows the target and why.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from core.config.model import (
    PROJECT_NAME,
    SECRETS_KEY,
    STACK_KNOBS,
    Color,
    ProjectSettings,
    StackConfig,
    full_key,
)
from core.config.sources import ConfigEntry, StackConfigValues, validated_stack_config
from core.errors import (
    HistoryError,
    MigrationRisk,
    RollbackRefusedError,
    UsageError,
)
from core.naming import service_urns
from release.engine.protocol import Engine, UpdateOutcome
from release.history.entries import (
    RELEASES_KEY,
    HistoryEntry,
    entry_numbered,
    read_history,
    refuse_if_running,
)
from release.history.lifecycle import Lifecycle, choose_rollback_target, read_lifecycle
from release.history.records import ReleaseRecord
from release.history.signing import SIGNING_KEY_ENV, Signer, TrustedKeys
from release.offline.parity import flatten
from release.report.release_report import (
    Checker,
    Phase,
    Progress,
    ReleaseReport,
    Step,
    check_step,
    default_checker,
    health_urls,
)

RESTORABLE_KEYS = frozenset(full_key(knob) for knob in STACK_KNOBS if knob != SECRETS_KEY)


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
    """Services whose active colour moves back."""
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
        }

    def render(self) -> str:
        lines = [f"rollback of '{self.stack}' to {self.target.label()}: {self.mode}"]
        if self.why:
            lines.append(f"  why: {self.why}")
        lines += [f"  passed over: {note}" for note in self.skipped]
        lines += [f"  {change.key}: {change.current!r} -> {change.restored!r}" for change in self.changes]
        if self.targets:
            lines.append(f"  targeted up: {len(self.targets)} resources")
            lines += [f"    {urn}" for urn in self.targets]
        elif self.restore:
            lines.append(f"  full up: {self.full_up_reason}")
        lines += [f"  left in the cluster: {note}" for note in self.left_in_cluster]
        lines += [f"  not restored: {note}" for note in self.not_restored]
        lines += [f"  migration risk: {risk.render()}" for risk in self.risks]
        return "\n".join(lines) + "\n"


def plan_rollback(
    stack: str,
    current: StackConfigValues,
    target: HistoryEntry,
    project: ProjectSettings,
    idle_as_deployed: bool = True,
) -> RollbackPlan:
    """Compare the stack's current config with `target`'s and decide how to restore it.

    A targeted restore leaves an idle colour's Deployment as it is; with `idle_as_deployed` the
    restored config keeps that colour's image as the current config has it, so config says what
    runs. (False when the update that set it failed, so what runs there is not known.)"""
    restore: dict[str, ConfigEntry] = {}
    not_restored: list[str] = []
    for key, entry in sorted(target.config.items()):
        if entry.secret:
            not_restored.append(f"{key}: a secret (history keeps no value); left as it is")
        elif key not in RESTORABLE_KEYS:
            not_restored.append(f"{key}: not a per-stack knob; it comes from the code (Pulumi.yaml)")
        elif key not in current or current[key].value != entry.value:
            restore[key] = ConfigEntry(copy.deepcopy(entry.value))
    for key in sorted(RESTORABLE_KEYS & set(current) - set(target.config)):
        not_restored.append(f"{key}: that update did not record it; left as it is")

    current_releases = _releases(current.get(RELEASES_KEY))
    restored_releases = _releases(restore[RELEASES_KEY]) if RELEASES_KEY in restore else current_releases
    switched = sorted(
        name
        for name, release in restored_releases.items()
        if current_releases.get(name, {}).get("activeColor") != release.get("activeColor")
    )
    plan = RollbackPlan(stack, target, restore, [], switched, [], not_restored=not_restored)
    plan.moved_away = [
        current_releases[name]["images"][current_releases[name]["activeColor"]]
        for name in switched
        if name in current_releases
    ]
    _decide_targets(plan, current_releases, restored_releases, idle_as_deployed)
    unchanged = [
        key for key, entry in restore.items() if key in current and current[key].value == entry.value
    ]
    for key in unchanged:  # only an idle image that stays as it runs differed: nothing to restore
        del restore[key]
    if plan.nothing_to_do:
        plan.targets, plan.left_in_cluster = [], []
    plan.changes = [  # after _decide_targets, which may keep an idle colour's image as it runs
        ConfigChange(f"{key}{'.' + path if path else ''}", before, after)
        for key, entry in restore.items()
        for path, (before, after) in _leaf_changes(
            current[key].value if key in current else None, entry.value
        )
    ]
    plan.risks = _migration_risks(plan, project, current_releases, restored_releases)
    return plan


def execute_rollback(
    engine: Engine, plan: RollbackPlan, record: ReleaseRecord, signer: Signer | None, force: bool = False
) -> UpdateOutcome | None:
    """Apply `plan` (None when there is nothing to restore), with `record` in the update message.

    Refuses migration risks unless forced. `record` (a rollback or abort) says why, what it revokes
    (the images traffic moves away from, unless the caller named others) and which releases it
    finishes; the summary beside it is composed here from the plan.
    """
    if plan.risks and not force:
        raise RollbackRefusedError(plan.stack, plan.risks)
    if plan.nothing_to_do:
        return None
    what = ", ".join(f"{name} back to {_active(plan, name)}" for name in plan.switched) or "config"
    summary = f"release {record.event} to {plan.target.label()}: {what}"
    if plan.risks:
        record = replace(record, reason=f"forced past migration risks: {record.reason or 'no reason given'}")
    if not record.revokes:
        record = replace(record, revokes=tuple(plan.moved_away))
    return engine.up(plan.stack, plan.restore, record.message(summary, signer), targets=plan.targets)


def _active(plan: RollbackPlan, service: str) -> str:
    release = _releases(plan.restore.get(RELEASES_KEY)).get(service, {})
    return str(release.get("activeColor", "?"))


def _decide_targets(
    plan: RollbackPlan,
    current: Mapping[str, dict[str, Any]],
    restored: Mapping[str, dict[str, Any]],
    idle_as_deployed: bool,
) -> None:
    """Targeted when only the releases change, and only by moving traffic to images already running."""
    if plan.nothing_to_do:
        return
    other_keys = sorted(set(plan.restore) - {RELEASES_KEY})
    if other_keys:
        plan.full_up_reason = f"knobs other than the releases change: {', '.join(other_keys)}"
        return
    if set(current) != set(restored):
        plan.full_up_reason = "the set of services differs"
        return
    changed_services = []
    for name, release in sorted(restored.items()):
        live = current[name]
        if live == release:
            continue
        idle = Color(release["activeColor"]).other.value
        if _without_idle_image(live, idle) != _without_idle_image(release, idle):
            plan.full_up_reason = (
                f"{name}: the restored active colour {release['activeColor']} would run a different "
                "image (or replica count) than it runs now, so its Deployment must change too"
            )
            return
        changed_services.append(name)
        live_idle, restored_idle = live["images"][idle], release["images"][idle]
        if live_idle != restored_idle and idle_as_deployed:
            # A targeted up leaves the idle Deployment as it is: config must say so too, or a later
            # flip back to that colour would be planned against an image it does not run.
            release["images"][idle] = live_idle
            plan.left_in_cluster.append(
                f"{name}: the idle {idle} colour keeps running {live_idle}, and config records it so "
                f"(inspect it on the preview URL; {restored_idle} ran there in {plan.target.label()}); "
                f"the next `release deploy` of {name} replaces it"
            )
        elif live_idle != restored_idle:
            plan.left_in_cluster.append(
                f"{name}: the idle {idle} colour may still run {live_idle} (its update failed midway); "
                f"config records {restored_idle}, and the next `release deploy` of {name} replaces it"
            )
    plan.targets = [urn for name in changed_services for urn in service_urns(plan.stack, PROJECT_NAME, name)]


def _without_idle_image(release: Mapping[str, Any], idle: str) -> dict[str, Any]:
    comparable = copy.deepcopy(dict(release))
    comparable.pop("activeColor", None)
    comparable.get("images", {}).pop(idle, None)
    return comparable


def _migration_risks(
    plan: RollbackPlan,
    project: ProjectSettings,
    current: Mapping[str, dict[str, Any]],
    restored: Mapping[str, dict[str, Any]],
) -> list[MigrationRisk]:
    risks = []
    for spec in project.services:
        if spec.migration is None or spec.migration.expand_contract:
            continue
        live, release = current.get(spec.name), restored.get(spec.name)
        if live is None or release is None:
            continue
        live_active = live["images"][live["activeColor"]]
        restored_active = release["images"][release["activeColor"]]
        leaving = {live_active} - {restored_active}
        if not plan.targets:  # a full up also redeploys the colours whose image is restored
            leaving |= set(live["images"].values()) - set(release["images"].values())
        risks += [MigrationRisk(spec.name, digest, restored_active) for digest in sorted(leaving)]
    return risks


def _releases(entry: ConfigEntry | None) -> dict[str, dict[str, Any]]:
    if entry is None or not isinstance(entry.value, dict):
        return {}
    return {str(name): release for name, release in entry.value.items() if isinstance(release, dict)}


def _leaf_changes(before: Any, after: Any) -> list[tuple[str, tuple[Any, Any]]]:
    old, new = flatten(before), flatten(after)
    return [
        (path, (old.get(path), new.get(path)))
        for path in sorted(set(old) | set(new))
        if old.get(path) != new.get(path)
    ]


def rollback(
    engine: Engine,
    request: RollbackRequest,
    project_dir: Path,
    checker: Checker = default_checker,
    progress: Progress = lambda message: None,
) -> ReleaseReport:
    """`release rollback`: restore entry `to_number` of history, or the state before the current release.

    Without `to_number` the target is the newest settled state whose per-stack knobs differ from the
    stack's config now (release.history.lifecycle). The rollback finishes every unfinished release (its
    record names them). With `dry_run` nothing changes: the report holds the plan and why. After the
    `up`, the stable URL of every service whose active colour moved back is health-checked.
    """
    stack = request.stack
    report = ReleaseReport("rollback", stack)
    current = engine.get_config(stack)
    project = validated_stack_config(stack, current, project_dir).project
    entries = read_history(engine, stack, project)
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
    refuse_unsigned_write(project, stack, request.signer, "rollback")
    progress(f"rollback: pulumi up -s {stack} ({plan.mode}, to {plan.target.label()})")
    started = time.monotonic()
    record = ReleaseRecord(
        event="rollback",
        stack=stack,
        actor=request.operator,
        service=",".join(plan.switched),
        finishes=tuple(unfinished),
        reason=request.reason,
        run=request.run,
    )
    outcome = execute_rollback(engine, plan, record, request.signer, request.force)
    if outcome is None:
        report.notes.append("the stack already runs that config; nothing to restore")
        return report
    report.steps.append(restore_step("rollback", plan, outcome, time.monotonic() - started))
    if not outcome.succeeded:
        report.phase = Phase.ROLLBACK_FAILED
        return report
    if request.health_check:
        restored = validated_stack_config(stack, engine.get_config(stack), project_dir)
        for service in plan.switched:
            urls = health_urls(restored, engine.outputs(stack), service, False, request.stable_urls)
            report.steps.append(recheck_stable(restored, service, checker, urls, progress))
        if not all(step.succeeded for step in report.steps):
            report.phase = Phase.ROLLBACK_FAILED
    return report


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
        lifecycle, entries, lambda entry: not plan_rollback(stack, current, entry, project).nothing_to_do
    )
    if chosen is None:
        raise HistoryError(
            f"stack history holds no settled state whose config differs from '{stack}' now; there is "
            f"nothing to roll back to (see `release history {stack}`)"
        )
    plan = plan_rollback(stack, current, chosen.entry, project)
    plan.why, plan.skipped = chosen.why, chosen.skipped
    return plan


def refuse_unsigned_write(project: ProjectSettings, stack: str, signer: Signer | None, verb: str) -> None:
    """A stack that counts only signed records gets no record it would not count: refuse before any
    change when there is no signing key, or its key is not one Pulumi.yaml trusts."""
    policy = project.stack_policies.get(stack)
    if policy is None or not policy.require_signed_records:
        return
    rule = f"stackPolicies.{stack}.requireSignedRecords in Pulumi.yaml"
    if signer is None:
        problem = f"${SIGNING_KEY_ENV} is not set"
    elif not TrustedKeys(project.release_signing.trusted_keys).trusts(signer.key_id):
        problem = (
            f"the key in ${SIGNING_KEY_ENV} (key id {signer.key_id}) is not in releaseSigning.trustedKeys "
            "in Pulumi.yaml"
        )
    else:
        return
    raise UsageError(
        f"stack '{stack}' counts only signed release records ({rule}), and {problem}, so this {verb} "
        "would write records that do not count; nothing was changed. Run it where the signing key is "
        "(the release workflow), or see docs/signing.md"
    )


@dataclass
class RollbackRequest:
    stack: str
    operator: str
    to_number: int | None = None
    dry_run: bool = False
    force: bool = False
    reason: str = ""
    health_check: bool = True
    stable_urls: list[str] = field(default_factory=list)
    signer: Signer | None = None
    run: str = ""


def restore_step(name: str, plan: RollbackPlan, outcome: UpdateOutcome, seconds: float) -> Step:
    """The report's step for the `up` that restored `plan` (rollback or abort)."""
    detail = (
        f"{plan.mode}: {outcome.changed} resource(s) changed"
        if outcome.succeeded
        else f"update failed: {outcome.error}"
    )
    return Step(name, outcome.succeeded, seconds, detail, update=outcome)


def recheck_stable(
    stack_config: StackConfig,
    service: str,
    checker: Checker,
    stable_urls: Sequence[str],
    progress: Progress,
) -> Step:
    """Health-check a service's stable URLs, expecting the image its active colour now runs."""
    release = stack_config.settings.releases[service]
    settings = stack_config.settings.health_check
    active_image = release.images.of(release.active_color)
    expect = {settings.version_field: active_image} if settings.version_field else {}
    return check_step(f"recheck {service}", checker, stable_urls, settings, expect, progress)
