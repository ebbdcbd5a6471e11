"""Restoring a state from stack history: the one sequence rollback, abort and a failed release share.

plan      compare the stack's config now with the target entry's: what changes, whether a
          targeted `up` (the stable and preview Services only) is enough, which migrations the
          restore would move traffic away from (release.report.rollback_plan)
restore   refuse migration risks unless forced; `up` with the restored knobs and a signed record
          that finishes the releases it undoes (or, with nothing to restore, only the record)
re-check  health-check the stable URL of each service whose traffic moved, expecting its image
"""

from __future__ import annotations

import copy
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from core.config.base import PROJECT_NAME, SECRETS_KEY, Color, config_texts, full_key
from core.config.project import ProjectSettings
from core.config.sources import ConfigEntry, StackConfigValues, validated_stack_config
from core.config.stack import (
    SIZING_FIELDS,
    STACK_KNOBS,
    ServiceRelease,
    StackConfig,
    invalid_releases,
    releases_of,
    with_release,
)
from core.errors import HistoryError, MigrationRisk, RollbackRefusedError
from core.naming import canary_urn, color_urns, service_urns
from release.context import ReleaseContext
from release.engine.protocol import UpdateOutcome
from release.history.entries import RELEASES_KEY, HistoryEntry
from release.history.records import ReleaseRecord
from release.history.signing import Signer
from release.offline.parity import flatten
from release.report.release_report import (
    Checker,
    Phase,
    Progress,
    ReleaseReport,
    Step,
    check_step,
    health_urls,
    record_step,
)
from release.report.rollback_plan import ConfigChange, RollbackPlan

RESTORABLE_KEYS = frozenset(full_key(knob) for knob in STACK_KNOBS if knob != SECRETS_KEY)


def plan_rollback(
    stack: str,
    current: StackConfigValues,
    target: HistoryEntry,
    project: ProjectSettings,
    idle_as_deployed: bool = True,
) -> RollbackPlan:
    """Compare the stack's current config with `target`'s and decide how to restore it.

    A targeted restore leaves an idle color's Deployment as it is; with `idle_as_deployed` the
    restored config keeps that color's image as the current config has it, so config says what
    runs. (False when the update that set it failed, so what runs there is not known.)"""
    recorded = target.config.get(RELEASES_KEY)
    unreadable = invalid_releases(recorded.value) if recorded is not None else []
    if unreadable:
        raise HistoryError(
            f"{target.label()} recorded releases of {', '.join(unreadable)} that are not valid releases "
            f"(a failed or foreign update?); pick another entry (see `release history {stack}`)"
        )
    restore: dict[str, ConfigEntry] = {}
    not_restored: list[str] = []
    recorded_config = _upgraded(target.config, current, project)
    from_code = []
    for key, entry in sorted(recorded_config.items()):
        if entry.secret:
            not_restored.append(f"{key}: a secret (history keeps no value); left as it is")
        elif key not in RESTORABLE_KEYS:
            from_code.append(key)
        elif key not in current or current[key].value != entry.value:
            restore[key] = ConfigEntry(copy.deepcopy(entry.value))
    if from_code:
        not_restored.append(
            f"{', '.join(from_code)}: not per-stack knobs; they come from the code (Pulumi.yaml)"
        )
    for key in sorted(RESTORABLE_KEYS & set(current) - set(recorded_config)):
        not_restored.append(f"{key}: that update did not record it; left as it is")

    current_releases = _releases(current.get(RELEASES_KEY))
    restored_releases = _releases(restore[RELEASES_KEY]) if RELEASES_KEY in restore else current_releases
    switched = sorted(
        name
        for name, release in restored_releases.items()
        if name not in current_releases or current_releases[name].active_color != release.active_color
    )
    plan = RollbackPlan(stack, target, restore, [], switched, [], not_restored=not_restored)
    plan.moved_away = [  # an image that stays live (a config-only release undone) is not moved away from
        current_releases[name].active_image
        for name in switched
        if name in current_releases
        and current_releases[name].active_image != restored_releases[name].active_image
    ]
    plan.live_images = {
        name: (current_releases[name].active_image, release.active_image)
        for name, release in sorted(restored_releases.items())
        if name in current_releases and current_releases[name].active_image != release.active_image
    }
    _decide_targets(plan, current_releases, restored_releases, idle_as_deployed)
    unchanged = [
        key for key, entry in restore.items() if key in current and current[key].value == entry.value
    ]
    for key in unchanged:  # only an idle image that stays as it runs differed: nothing to restore
        del restore[key]
    if plan.nothing_to_do:
        plan.targets, plan.left_in_cluster = [], []
    plan.changes = [  # after _decide_targets, which may keep an idle color's image as it runs
        ConfigChange(f"{key}{'.' + path if path else ''}", before, after)
        for key, entry in restore.items()
        for path, (before, after) in _leaf_changes(
            current[key].value if key in current else None, entry.value
        )
    ]
    # What the restore really writes: _decide_targets may have kept an idle color's image as it runs,
    # and an unchanged knob is no longer restored; a color that is not redeployed walks nothing back.
    restored_releases = _releases(restore[RELEASES_KEY]) if RELEASES_KEY in restore else current_releases
    plan.risks = _migration_risks(plan, project, current_releases, restored_releases)
    return plan


LEGACY_FLAGS_KEY = full_key("featureFlags")
"""Where entries written before flags rode the release kept them: one set for every color."""
SIZING_KEYS = tuple(str(ServiceRelease.model_fields[name].alias) for name in SIZING_FIELDS)


def _upgraded(
    recorded: Mapping[str, ConfigEntry], current: StackConfigValues, project: ProjectSettings
) -> dict[str, ConfigEntry]:
    """An entry written before config rode the release, read as the state it was: its stack-wide
    `featureFlags` become every color's own values (flags are not silently reset to the defaults;
    flags no longer declared are dropped), and the autoscaling knobs it never had keep their current
    values."""
    if LEGACY_FLAGS_KEY not in recorded or RELEASES_KEY not in recorded:
        return dict(recorded)
    legacy = recorded[LEGACY_FLAGS_KEY].value
    flags = {
        name: value
        for name, value in (config_texts(legacy) if isinstance(legacy, dict) else {}).items()
        if project.feature_flags.get(name, value) != value
    }
    releases = copy.deepcopy(recorded[RELEASES_KEY].value)
    now = current[RELEASES_KEY].value if RELEASES_KEY in current else {}
    if not isinstance(releases, dict) or not isinstance(now, dict):
        return dict(recorded)
    for name, release in releases.items():
        if not isinstance(release, dict):
            continue
        if "config" not in release and flags:
            release["config"] = {color.value: {"flags": dict(flags)} for color in Color}
        found = now.get(name)
        live: dict[str, Any] = found if isinstance(found, dict) else {}
        for key in SIZING_KEYS:
            if key not in release and key in live:
                release[key] = live[key]
    upgraded = {key: entry for key, entry in recorded.items() if key != LEGACY_FLAGS_KEY}
    upgraded[RELEASES_KEY] = ConfigEntry(releases)
    return upgraded


def _execute(
    ctx: ReleaseContext, plan: RollbackPlan, record: ReleaseRecord, signer: Signer | None, force: bool
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
    with ctx.chains.writing(plan.stack, record, summary, signer, ctx.clock()) as message:
        return ctx.engine.up(plan.stack, plan.restore, message, targets=plan.targets)


def _active(plan: RollbackPlan, service: str) -> str:
    release = _releases(plan.restore.get(RELEASES_KEY)).get(service)
    return release.active_color.value if release is not None else "?"


def _decide_targets(
    plan: RollbackPlan,
    current: Mapping[str, ServiceRelease],
    restored: Mapping[str, ServiceRelease],
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
    scale_ups: list[str] = []
    for name, release in sorted(restored.items()):
        live = current[name]
        if live == release:
            continue
        idle = release.idle_color
        if (live.sizing, live.run_of(release.active_color)) != (release.sizing, release.active_run):
            plan.full_up_reason = (
                f"{name}: the restored active color {release.active_color.value} would run a different "
                "image, config or size (replicas, autoscaling) than it runs now, so its Deployment must "
                "change too"
            )
            return
        changed_services.append(name)
        # A targeted up never resizes the idle color, so config must say the size it runs at.
        if live.active_color != release.active_color:
            scaled = False  # traffic leaves a full-size color; the next verified release shrinks it
        elif idle_as_deployed:
            scaled = live.idle_scaled_down  # the idle Deployment stays as it runs
        else:  # unknown (its update failed midway): assume the smaller, so a switch to it scales it up
            scaled = live.idle_scaled_down or release.idle_scaled_down
        recorded = release.model_copy(update={"idle_scaled_down": scaled})  # what the restore writes
        running = live.replicas_of(release.active_color)
        if running != release.replicas:
            # The color traffic moves to was scaled down: the same targeted up resizes its Deployment
            # first (the Services depend on it) and waits for its pods to be ready, then switches.
            scale_ups.append(name)
            plan.scaled_up.append(
                f"{name}: {release.active_color.value} runs {running} replica(s) (scaled down after the last "
                f"release); the up scales it to {release.replicas} and waits for it to be ready before "
                "switching traffic"
            )
        live_idle, restored_idle = live.run_of(idle), release.idle_run
        if live_idle != restored_idle and idle_as_deployed:
            # A targeted up leaves the idle Deployment as it is: config must say so too, or a later
            # flip back to that color would be planned against what it does not run.
            recorded = recorded.with_run(idle, live_idle)
            plan.left_in_cluster.append(
                f"{name}: the idle {idle.value} color keeps running {live_idle.describe()}, and config "
                f"records it so (inspect it on the preview URL; {restored_idle.describe()} ran there in "
                f"{plan.target.label()}); the next `release deploy` of {name} replaces it"
            )
        elif live_idle != restored_idle:
            plan.left_in_cluster.append(
                f"{name}: the idle {idle.value} color may still run {live_idle.describe()} (its update "
                f"failed midway); config records {restored_idle.describe()}, and the next "
                f"`release deploy` of {name} replaces it"
            )
        if recorded != release:
            kept = with_release(plan.restore[RELEASES_KEY].value, name, recorded)
            plan.restore[RELEASES_KEY] = ConfigEntry(kept)
    plan.targets = [urn for name in changed_services for urn in service_urns(plan.stack, PROJECT_NAME, name)]
    # A canary's weight goes back with the traffic, always: after a failed `up` config may already
    # say 0 while the service's HTTPRoute still sends its last weight (config is set before the update runs).
    plan.targets += [canary_urn(plan.stack, PROJECT_NAME, name) for name in changed_services]
    plan.targets += [
        urn
        for name in scale_ups
        for urn in color_urns(plan.stack, PROJECT_NAME, name, restored[name].active_color.value)
    ]


def _migration_risks(
    plan: RollbackPlan,
    project: ProjectSettings,
    current: Mapping[str, ServiceRelease],
    restored: Mapping[str, ServiceRelease],
) -> list[MigrationRisk]:
    risks = []
    for spec in project.services:
        if spec.migration is None or spec.migration.expand_contract:
            continue
        live, release = current.get(spec.name), restored.get(spec.name)
        if live is None or release is None:
            continue
        leaving = {live.active_image} - {release.active_image}
        if not plan.targets:  # a full up also redeploys the colors whose image is restored
            leaving |= {live.images.blue, live.images.green} - {release.images.blue, release.images.green}
        risks += [MigrationRisk(spec.name, digest, release.active_image) for digest in sorted(leaving)]
    return risks


def _releases(entry: ConfigEntry | None) -> dict[str, ServiceRelease]:
    return releases_of(entry.value) if entry is not None else {}


def _leaf_changes(before: Any, after: Any) -> list[tuple[str, tuple[Any, Any]]]:
    old, new = flatten(before), flatten(after)
    return [
        (path, (old.get(path), new.get(path)))
        for path in sorted(set(old) | set(new))
        if old.get(path) != new.get(path)
    ]


def restore(
    ctx: ReleaseContext,
    report: ReleaseReport,
    plan: RollbackPlan,
    record: ReleaseRecord,
    signer: Signer | None,
    *,
    step: str,
    force: bool = False,
    recheck: Sequence[str] = (),
    stable_urls: Sequence[str] = (),
    record_unchanged: str = "",
) -> UpdateOutcome | None:
    """Restore `plan` with `record` in the update's message, then re-check `recheck`'s stable URLs.

    Raises RollbackRefusedError (exit 5) for a migration risk unless `force`: nothing changed. With
    nothing to restore, `record_unchanged` (the update's summary) still writes the record, so the
    releases it finishes are finished; without it nothing is written and None is returned. Any failed
    step sets the report's phase to RollbackFailed; the caller decides what success is called.
    """
    started = time.monotonic()
    outcome = _execute(ctx, plan, record, signer, force)
    if outcome is None:
        if not record_unchanged:
            return None
        if len(record.services) != 1:
            raise ValueError(f"a record written without a restore names one service, not {record.service!r}")
        written = record_step(
            ctx, plan.stack, record.service, record, record_unchanged, signer, ctx.progress, name=step
        )
        report.steps.append(written)
    else:
        report.steps.append(restore_step(step, plan, outcome, time.monotonic() - started))
    if not report.steps[-1].succeeded:
        report.phase = Phase.ROLLBACK_FAILED
        return outcome
    if recheck:
        restored = validated_stack_config(plan.stack, ctx.engine.get_config(plan.stack), ctx.project_file)
        outputs = {} if stable_urls else ctx.engine.outputs(plan.stack)
        checks = [
            recheck_stable(
                restored,
                service,
                ctx.checker,
                health_urls(restored, outputs, service, False, stable_urls),
                ctx.progress,
            )
            for service in recheck
        ]
        report.steps += checks
        if not all(check.succeeded for check in checks):
            report.phase = Phase.ROLLBACK_FAILED
    return outcome


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
    """Health-check a service's stable URLs, expecting the image its active color now runs."""
    release = stack_config.settings.releases[service]
    settings = stack_config.settings.health_check
    active_image = release.active_image
    expect = {settings.version_field: active_image} if settings.version_field else {}
    return check_step(f"recheck {service}", checker, stable_urls, settings, expect, progress)
