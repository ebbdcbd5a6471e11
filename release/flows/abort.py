"""`release abort <stack> --service S`: finish an unfinished release by restoring the state before it.

A release killed after its stage or switch (a `kill -9`, a lost runner) leaves its changes live and
unverified, and every later deploy or promotion into the stack is refused until it is finished
(release.history.lifecycle). Abort is the narrow way to finish it (Argo Rollouts' abort):

1. find the newest release of S; it must be unfinished (else: nothing to abort, use `release rollback`);
2. take S's release (colors, images, replicas) from the newest settled state before that release
   started; every other service stays as it is now;
3. `up` (targeted at S's Services when only traffic moves back), with an `abort` record that
   finishes the release and revokes its image; when nothing needs restoring (the release's updates
   failed before changing anything) the record is written by an `up` that changes nothing;
4. health-check S's stable URL when its active color moved back.

Migration risks refuse it like a rollback, unless `--force` with a reason.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from core.config.base import PROJECT_NAME
from core.config.sources import ConfigEntry, validated_stack_config
from core.config.stack import releases_of, with_release
from core.errors import ConfigError, ConfigProblem, HistoryError, UsageError
from core.naming import canary_urn, service_urns
from release import log
from release.annotations import StepAnnotations, release_tags
from release.context import ReleaseContext
from release.flows.restore import plan_rollback, restore
from release.flows.snapshot import snapshot_past_risks
from release.history.entries import RELEASES_KEY, HistoryEntry, refuse_if_running
from release.history.lifecycle import Release, read_lifecycle
from release.history.records import Event, ReleaseRecord
from release.history.signing import Signer, refuse_unsigned_write
from release.report.release_report import Phase, ReleaseReport


@dataclass
class AbortRequest:
    stack: str
    service: str
    actor: str
    reason: str = ""
    force: bool = False
    dry_run: bool = False
    health_check: bool = True
    stable_urls: list[str] = field(default_factory=list)
    signer: Signer | None = None
    run: str = ""


def abort(ctx: ReleaseContext, request: AbortRequest) -> ReleaseReport:
    stack, service = request.stack, request.service
    report = ReleaseReport("abort", stack, service=service)
    current = ctx.engine.get_config(stack)
    stack_config = validated_stack_config(stack, current, ctx.project_file)
    releases = stack_config.settings.releases
    if service not in releases:
        raise ConfigError(
            stack, [ConfigProblem.unknown_service(stack, service, list(releases), "this stack releases")]
        )
    entries = ctx.chains.history(stack)
    refuse_if_running(stack, entries)
    lifecycle = read_lifecycle(entries)
    release = lifecycle.newest_release_of(service)
    if release is None or not release.unfinished:
        newest = release.describe() + f" ({release.outcome})" if release else "none"
        raise UsageError(
            f"{service} on '{stack}' has no unfinished release (newest: {newest}); nothing to abort. "
            f"To go back to an earlier state, use `release rollback {stack}`"
        )
    report.image = release.image
    before = lifecycle.settled_before(release.first)
    target = _state_before(release, before, current, stack)
    plan = plan_rollback(stack, current, target, stack_config.project)
    plan.not_restored = []
    if plan.nothing_to_do:
        # Config already says what the state before the release was (a rollback's `up` set it,
        # then failed or was interrupted), but the cluster may still route traffic as the release
        # left it: apply that config to the service's traffic resources, the two Services and the
        # live HTTPRoute (its canary weight back to 0).
        plan.restore = {RELEASES_KEY: current[RELEASES_KEY]}
        plan.targets = [*service_urns(stack, PROJECT_NAME, service), canary_urn(stack, PROJECT_NAME, service)]
    plan.why = f"{service} as it was in {target.label()}, before {release.describe()}"
    report.rollback = plan
    if request.dry_run:
        report.phase = Phase.PLANNED
        if plan.risks:
            report.notes.append("this abort would be refused without --force (see migration risk)")
        return report
    refuse_unsigned_write(stack_config.project, stack, request.signer, "abort", ctx.clock())
    data = snapshot_past_risks(ctx, stack_config, plan, request.force, report)
    record = ReleaseRecord(
        event=Event.ABORT,
        stack=stack,
        actor=request.actor,
        service=service,
        image=release.image,
        finishes=(release.id,),
        # A config-only release kept its image live: aborting it revokes no digest.
        revokes=() if _kept_image(release) else (release.image,),
        reason=request.reason,
        run=request.run,
        data=data,
    )
    ctx.progress(f"abort: {release.describe()}; restoring {service} from {target.label()} ({plan.mode})")
    annotate = StepAnnotations(
        ctx.annotator,
        ctx.clock,
        report,
        f"abort {service}",
        release.image,
        release_tags([service], stack_config.settings.namespace, stack),
    )
    started = ctx.clock()
    with log.indented():
        restore(
            ctx,
            report,
            plan,
            record,
            request.signer,
            step="abort",
            force=request.force,
            recheck=[service] if request.health_check and service in plan.switched else (),
            stable_urls=request.stable_urls,
            record_unchanged=f"release abort {service}: nothing to restore ({release.id})",
        )
    annotate.new_steps(started)
    return annotate.finished()


def _state_before(
    release: Release, before: HistoryEntry | None, current: dict[str, ConfigEntry], stack: str
) -> HistoryEntry:
    """The stack as it is now, with the service's release as it was in `before`."""
    recorded = before.config.get(RELEASES_KEY) if before is not None else None
    service_before = releases_of(recorded.value).get(release.service) if recorded is not None else None
    if before is None or service_before is None:
        raise HistoryError(
            f"stack history holds no settled state of {release.service} before {release.describe()}; "
            f"pick an entry to restore with `release rollback {stack} --to-version N`"
        )
    now = current.get(RELEASES_KEY)
    releases = with_release(now.value if now is not None else {}, release.service, service_before)
    config = {key: entry for key, entry in current.items() if not entry.secret}
    config[RELEASES_KEY] = ConfigEntry(releases)
    return dataclasses.replace(before, config=config)


def _kept_image(release: Release) -> bool:
    record = release.first.record
    return record is not None and record.keeps_image
