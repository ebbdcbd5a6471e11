"""`release deploy`: a blue-green release of one image to one service, rolled back automatically.

    0. refuse    before any change: a bad request (ConfigError), another update running
                 (ConcurrentReleaseError), an unfinished release in the stack (UnfinishedReleaseError),
                 a stack that needs signed records and no signing key (UsageError)
    1. preview   set the digest on the idle color and `up` (its migration Job runs with the new
                 image before its pods start)
    2. analyse   health-check the preview Service (pre-promotion analysis, in Argo Rollouts' words)
    3. switch    switch the active color and `up` (the stable Service's health hook runs here too)
    4. verify    health-check the stable Service (post-promotion analysis)
       metrics   where the stack sets `analysis`: the new color's numbers from Prometheus against
                 limits and against the color it replaced (release.analysis)
    5. record    write the signed `verify` record: the evidence promotions read
    on failure   abort: restore the newest settled state (release.history.lifecycle: the last state a release
                 verified, or no release touched), `up` (targeted at the Services when that is
                 enough) and check again

Every record of the release carries one release id, so a release killed midway is seen as
unfinished by the next one. After the first `up`, any error at all (an engine failure, a crash in
a check) ends in the rollback and the report; only a stack lock held by another update before the
first `up` stops the release with nothing changed.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from core.config.base import PROJECT_NAME, Color, full_key
from core.config.rules import undeclared_config_problems
from core.config.sources import ConfigEntry, StackConfigValues, validated_stack_config
from core.config.stack import (
    AnalysisSettings,
    ColorConfig,
    ColorRun,
    HealthCheckSettings,
    ServiceRelease,
    StackConfig,
    StrategySettings,
    StrategyType,
    with_release,
    without_defaults,
)
from core.errors import (
    ConcurrentReleaseError,
    ConfigError,
    ConfigProblem,
    RollbackRefusedError,
    UnfinishedReleaseError,
)
from core.gateway import PREVIEW_HEADER
from core.images import ImageRefError, parse_pinned_image, repository_of
from core.naming import canary_urn, color_urns
from release import log
from release.analysis import Outcome, analyse, prometheus_query
from release.annotations import StepAnnotations, release_tags
from release.clock import Clock
from release.context import ReleaseContext
from release.engine.shapes import UpdateResult
from release.flows.preflight import preflight
from release.flows.restore import plan_rollback, restore
from release.flows.snapshot import needs_snapshot, take_snapshot
from release.history.entries import RELEASES_KEY, HistoryEntry, refuse_if_running
from release.history.lifecycle import Lifecycle, read_lifecycle
from release.history.records import Event, ReleaseRecord, new_release_id
from release.history.signing import Signer, refuse_unsigned_write
from release.interrupts import describe
from release.notify import NotificationResult, Notifier, PendingNotification
from release.notify import message as notify_message
from release.report.release_report import (
    Checker,
    HttpChecker,
    Phase,
    ReleaseReport,
    Step,
    check_step,
    health_urls,
    record_step,
    smoke_counts,
    smoke_step,
    up_step,
    with_headers,
)
from release.smoke import Suite, origin_of, suite_for, unreadable_secret
from release.supply.gate import check_image


@dataclass
class DeployRequest:
    stack: str
    service: str
    image: str
    """The image to stage; empty: the one the active color runs (a config-only release)."""
    actor: str
    reason: str = ""
    flags: dict[str, str] = field(default_factory=dict)
    """Feature flag values to stage with it (`--set-flag`); the color's other values as live."""
    env: dict[str, str] = field(default_factory=dict)
    """Env var values to stage with it (`--set-env`)."""
    preview_urls: list[str] = field(default_factory=list)
    """Overrides the preview URL the stack exposes (e.g. a port-forward)."""
    stable_urls: list[str] = field(default_factory=list)
    prometheus_url: str = ""
    """Overrides the stack's analysis.prometheusUrl for this run (e.g. a port-forward)."""
    run: str = ""
    """The CI run URL, recorded with every update."""
    approval: dict[str, Any] = field(default_factory=dict)
    break_glass: dict[str, Any] = field(default_factory=dict)
    promoted_from: str = ""
    signer: Signer | None = None
    """Signs every record (None: records are unsigned, refused where the stack requires signing)."""
    release_id: str = field(default_factory=new_release_id)
    staged_config: dict[str, Any] = field(default_factory=dict)
    """Set by the flow: the `config` every record of this release carries (see ReleaseRecord.config)."""
    data: dict[str, Any] = field(default_factory=dict)
    """Set by the flow: `snapshot`, when one was taken before this release's migration."""
    supply_chain: dict[str, Any] = field(default_factory=dict)
    """Set by the flow: the image's supply-chain claims (release.supply), in the stage record."""

    @property
    def changes(self) -> dict[str, str]:
        """The config values this release sets (flags and env), and nothing else the color carries."""
        return {**self.flags, **self.env}

    def record(self, event: Event, **fields: Any) -> ReleaseRecord:
        """The release record every update of this release carries (see release.history.records)."""
        return ReleaseRecord(
            event=event,
            stack=self.stack,
            actor=self.actor,
            service=self.service,
            image=self.image,
            release=self.release_id,
            run=self.run,
            approval=self.approval,
            break_glass=self.break_glass,
            promoted_from=self.promoted_from,
            reason=self.reason,
            config=self.staged_config,
            data=self.data,
            supply_chain=self.supply_chain if event == Event.STAGE else {},
            **fields,
        )


@dataclass(frozen=True)
class _Release:
    """What a release of one image will do, decided before its first `up`."""

    baseline: HistoryEntry
    """What a failure restores: the newest settled state."""
    before: ServiceRelease
    run: ColorRun
    """What the idle color will run: the image, and the live color's config with the changes."""
    service: str
    releases: dict[str, Any]
    """The `releases` knob as it was read before the release (every other service as it is)."""
    staged: ServiceRelease
    """The service with `run` on its idle color, at full size."""
    settings: HealthCheckSettings
    analysis: AnalysisSettings | None
    """The stack's metric analysis (None: the health checks alone judge the release)."""
    strategy: StrategySettings
    expect: dict[str, str]
    preview_urls: list[str]
    stable_urls: list[str]
    stack_config: StackConfig
    preview_headers: dict[str, str] = field(default_factory=dict, repr=False)
    """What every preview check sends: the preview header with the stack's token (never shown)."""
    smoke: Suite | None = None
    """The service's smoke suite with the stack's secrets (None: the service declares none)."""

    @property
    def snapshot_needed(self) -> bool:
        """The staged image runs a migration that is not expand/contract: snapshot the database first."""
        return needs_snapshot(self.stack_config, self.service, self.run.image)

    def knob(self, release: ServiceRelease) -> dict[str, Any]:
        """The `releases` knob with this service's release replaced by `release`."""
        return with_release(self.releases, self.service, release)

    @property
    def scaled_down(self) -> ServiceRelease | None:
        """Once verified, traffic on the staged color and the color it left at its declared idle
        size; None when that color stays at full size."""
        verified = self.staged.switched().idle_scaled_to_declared_size()
        return verified if verified.idle_scaled_down else None


def deploy(ctx: ReleaseContext, request: DeployRequest) -> ReleaseReport:
    """Run the steps; on any failure after the first `up`, roll back automatically. Returns the report.

    Notifications: break-glass before the first update, a promotion before its verify record, a
    failed release in the background while the rollback runs (never delaying it).
    """
    report = ReleaseReport("deploy", request.stack, service=request.service, image=request.image)
    release = _prepare(ctx, request, report)
    if release is None:
        return report
    request.image = report.image = release.run.image
    if release.snapshot_needed:
        taken = take_snapshot(
            ctx.engine,
            release.stack_config,
            request.service,
            release.run.image,
            request.release_id,
            ctx.progress,
            ctx.clock(),
        )
        request.data = {"snapshot": taken.to_json()}
        report.snapshot = taken.to_json()
    stage_notification: dict[str, Any] = {}
    if request.break_glass:
        detail = (
            f"break-glass: {request.break_glass.get('reason')}; skipped: {request.break_glass.get('skipped')}"
        )
        stage_notification = _notify(ctx.notifier, report, request, "break-glass release", detail).to_json()
    ctx.progress(
        f"release {request.release_id}: {request.service} {release.run.describe_change(request.changes)} "
        f"on {request.stack}"
    )
    annotate = StepAnnotations(
        ctx.annotator,
        ctx.clock,
        report,
        f"{report.command} {request.service}",
        request.image,
        release_tags([request.service], release.stack_config.settings.namespace, request.stack),
    )
    for number, (name, run_step) in enumerate(_steps(ctx, request, release, stage_notification)):
        started = ctx.clock()
        step = _run_guarded(name, run_step, first=number == 0)
        report.steps.append(step)
        annotate.new_steps(started)
        if not step.succeeded:
            started = ctx.clock()
            _fail_and_roll_back(ctx, request, release, report)
            annotate.new_steps(started)
            return annotate.finished()
    notification: dict[str, Any] = {}
    if request.promoted_from:
        how = request.approval.get("source") if request.approval else "not required"
        detail = f"promoted from {request.promoted_from}; approval: {how}"
        notification = _notify(ctx.notifier, report, request, "promotion", detail).to_json()
    started = ctx.clock()
    _record_verification(ctx, request, report, notification)
    annotate.new_steps(started)
    if report.steps[-1].succeeded and release.scaled_down is not None:
        started = ctx.clock()
        _scale_down_idle(ctx, request, release, report)
        annotate.new_steps(started)
    idle = release.before.idle_color.value
    ctx.progress(
        f"{request.service} on {request.stack} is {Phase.HEALTHY} on {idle} "
        f"({release.run.describe_change(request.changes)})"
    )
    return annotate.finished()


def _prepare(ctx: ReleaseContext, request: DeployRequest, report: ReleaseReport) -> _Release | None:
    """Refuse before any change (every reason in the module docstring), or decide the release; None
    when the service already serves the image (a note says so)."""
    current = ctx.engine.get_config(request.stack)
    stack_config = validated_stack_config(request.stack, current, ctx.project_file)
    _refuse_bad_request(request, stack_config)
    refuse_unsigned_write(stack_config.project, request.stack, request.signer, "release", ctx.clock())
    entries = ctx.chains.history(request.stack)
    refuse_if_running(request.stack, entries)
    lifecycle = read_lifecycle(entries)
    refuse_if_unfinished(request.stack, lifecycle)
    baseline = _baseline(lifecycle, current, report)
    before = stack_config.settings.releases[request.service]
    service = next(service for service in stack_config.services if service.name == request.service)
    config = without_defaults(
        service.spec, service.declared_flags, before.active_run.config.changed(request.flags, request.env)
    )
    run = ColorRun(request.image or before.active_image, config)
    fingerprint = service.pod_config_of(run.config).fingerprint
    report.config_changes = {**request.flags, **request.env}
    report.config_fingerprint = fingerprint
    request.staged_config = {
        "set": report.config_changes,
        "fingerprint": fingerprint,
        "imageKept": run.image == before.active_image,
    }
    live = service.pod_config_of(before.active_run.config).fingerprint
    if (run.image, fingerprint) == (before.active_image, live):
        report.notes.append(f"{request.service} already serves {run.describe()} on {before.active_color}")
        return None
    if run.image != before.active_image:  # a config-only release keeps the image verified when it went live
        _verify_supply_chain(ctx, request, run.image, report)
    settings = stack_config.settings.health_check
    outputs = ctx.engine.outputs(request.stack)
    releases = current[RELEASES_KEY].value
    token = ctx.engine.preview_token(request.stack)
    unreadable = [] if token is not None and token.reveal() else [unreadable_secret(request.stack)]
    smoke, unread = suite_for(ctx.engine, stack_config, request.service)
    if unreadable or unread:  # the validated config has them: the engine could not read them
        raise ConfigError(request.stack, unreadable + unread)
    assert token is not None
    analysis = stack_config.settings.analysis
    if analysis is not None and request.prometheus_url:
        analysis = analysis.model_copy(update={"prometheus_url": request.prometheus_url})
    preview_urls = health_urls(stack_config, outputs, request.service, True, request.preview_urls)
    stable_urls = health_urls(stack_config, outputs, request.service, False, request.stable_urls)
    preflight(
        request.stack,
        analysis,
        [*preview_urls, *stable_urls],
        resolve_hosts=isinstance(ctx.checker, HttpChecker),
        env=ctx.env,
    )
    if analysis is None and request.prometheus_url:
        report.notes.append(
            f"--prometheus-url was not used: stack '{request.stack}' declares no metric analysis "
            "(platform:analysis)"
        )
    return _Release(
        baseline=baseline,
        before=before,
        run=run,
        service=request.service,
        releases=releases,
        staged=before.with_run(before.idle_color, run).at_full_size(),
        settings=settings,
        analysis=analysis,
        strategy=stack_config.settings.strategy,
        expect={settings.version_field: run.image} if settings.version_field else {},
        preview_urls=preview_urls,
        stable_urls=stable_urls,
        stack_config=stack_config,
        preview_headers={PREVIEW_HEADER: token.reveal()},
        smoke=smoke,
    )


def _steps(
    ctx: ReleaseContext, request: DeployRequest, release: _Release, stage_notification: dict[str, Any]
) -> list[tuple[str, Callable[[], Step]]]:
    """The release as ordered steps (preview, analyse, switch, verify), each run when its turn comes."""
    before, previous = release.before, release.before.active_image
    idle = before.idle_color.value
    stage = request.record(Event.STAGE, previous=previous, notification=stage_notification)
    switch = request.record(Event.SWITCH, previous=previous)
    stage_summary = (
        f"release deploy {request.service}: {idle} <- {release.run.describe_change(request.changes)}"
    )
    switch_summary = (
        f"release switch {request.service}: active {before.active_color.value} -> {idle} "
        f"({release.run.describe_change(request.changes)})"
    )

    def up(name: str, releases: dict[str, Any], record: ReleaseRecord, summary: str) -> Step:
        config = {RELEASES_KEY: ConfigEntry(releases)}
        with ctx.chains.writing(request.stack, record, summary, request.signer, ctx.clock()) as message:
            return up_step(name, ctx.engine, request.stack, config, message, ctx.progress)

    def check(name: str, urls: list[str], checker: Checker = ctx.checker) -> Step:
        return check_step(name, checker, urls, release.settings, release.expect, ctx.progress)

    # The idle color answers on the stable host only to requests carrying the preview header
    # (components.routes): every preview check sends it, to whichever URL it probes.
    preview_checker = with_headers(ctx.checker, release.preview_headers)

    switched_at: list[datetime] = []

    def switch_up() -> Step:
        switched_at.append(ctx.clock())  # traffic may move as soon as the up starts
        return up("switch", release.knob(release.staged.switched()), switch, switch_summary)

    def canary(percent: int) -> Step:
        """One canary step: `percent` of the stable host to the new color (an up targeted at the
        service's live HTTPRoute: weights live 100 - percent, idle percent), held `pause_seconds`,
        then judged by the metric analysis against the live color over the same minutes."""
        weighted = release.knob(release.staged.weighted(percent))
        record = request.record(Event.CANARY, previous=previous)
        summary = (
            f"release canary {request.service}: {percent}% of the stable host to {idle} ({release.run.image})"
        )
        config = {RELEASES_KEY: ConfigEntry(weighted)}
        with ctx.chains.writing(request.stack, record, summary, request.signer, ctx.clock()) as message:
            moved = up_step(
                f"canary {percent}%",
                ctx.engine,
                request.stack,
                config,
                message,
                ctx.progress,
                targets=[canary_urn(request.stack, PROJECT_NAME, request.service)],
            )
        if not moved.succeeded or release.analysis is None:
            return moved
        judged = judged_step(
            f"canary {percent}%",
            release.analysis,
            request.service,
            idle,
            before.active_color.value,
            release.strategy.pause_seconds,
            ctx.progress,
            ctx.sleep,
            ctx.clock,
        )
        return replace(
            judged,
            seconds=moved.seconds + judged.seconds,
            detail=f"{moved.detail}; {judged.detail}",
            update=moved.update,
        )

    steps: list[tuple[str, Callable[[], Step]]] = [
        (
            "preview",
            lambda: up("preview", release.knob(release.staged), stage, stage_summary),
        ),
        ("analyse", lambda: check("analyse", release.preview_urls, preview_checker)),
    ]
    suite = release.smoke
    if suite is not None:  # before any traffic moves: the idle color, through the preview route
        preview_origin = origin_of(release.preview_urls[0])
        steps.append(
            (
                "smoke preview",
                lambda: smoke_step(
                    "smoke preview", suite, "preview", preview_origin, release.preview_headers, ctx.progress
                ),
            )
        )
    if release.strategy.type is StrategyType.CANARY:
        steps += [
            (f"canary {percent}%", functools.partial(canary, percent)) for percent in release.strategy.steps
        ]
    steps.append(("switch", switch_up))
    if suite is not None:  # stable traffic on the new color: the stable host, no preview header
        stable_origin = origin_of(release.stable_urls[0])
        steps.append(
            (
                "smoke stable",
                lambda: smoke_step("smoke stable", suite, "stable", stable_origin, {}, ctx.progress),
            )
        )
    steps.append(("verify", lambda: check("verify", release.stable_urls)))
    if release.analysis is not None:
        analysis = release.analysis
        steps.append(
            (
                "metrics",
                lambda: metrics_step(
                    analysis,
                    request.service,
                    idle,
                    before.active_color.value,
                    switched_at[0],
                    ctx.progress,
                    ctx.sleep,
                    ctx.clock,
                ),
            )
        )
    return steps


PROGRESS_SECONDS = 10.0
"""A wait (a canary step's pause, the metrics window) says how far it is at least this often."""

SCRAPE_MARGIN_SECONDS = 30
"""Two scrape intervals (components.service_monitoring scrapes every 15 s): the window's last samples."""


def metrics_step(
    settings: AnalysisSettings,
    service: str,
    color: str,
    replaced: str,
    switched_at: datetime,
    progress: log.Progress,
    sleep: Callable[[float], None],
    clock: Clock,
) -> Step:
    """Post-promotion metric analysis: the new color over a whole window of stable traffic (it waits
    until `window_seconds` plus two scrapes have passed since the switch), against the color it
    replaced over the window that ended when the switch began (release.analysis)."""
    ready = switched_at.timestamp() + settings.window_seconds + SCRAPE_MARGIN_SECONDS
    wait = max(0.0, ready - clock().timestamp())
    return judged_step(
        "metrics", settings, service, color, replaced, wait, progress, sleep, clock, baseline_at=switched_at
    )


def judged_step(
    name: str,
    settings: AnalysisSettings,
    service: str,
    color: str,
    replaced: str,
    wait: float,
    progress: log.Progress,
    sleep: Callable[[float], None],
    clock: Clock,
    baseline_at: datetime | None = None,
) -> Step:
    """Wait `wait` seconds, then judge `color` against `replaced` (release.analysis): a step that
    succeeds only on a Successful analysis and keeps its queries, values and verdicts. While it
    waits, the analysis also runs every `interval_seconds`; a Failed one ends the step at once (an
    early abort: the bad color stops taking traffic within an interval, not at the end of the wait)."""
    started = time.monotonic()
    query = prometheus_query(settings)
    progress(
        f"{name}: waiting {wait:.0f} s (checking every {settings.interval_seconds} s), then {service} "
        f"{color} against {replaced} over {settings.window_seconds} s from {settings.prometheus_url}"
    )
    waited = 0.0
    so_far = ""

    def hold_until(until: float) -> None:
        """Sleep until `until` seconds into the wait, saying how far it is every PROGRESS_SECONDS."""
        nonlocal waited
        while until - waited > 0:
            nap = min(PROGRESS_SECONDS, until - waited)
            sleep(nap)
            waited += nap
            if waited < wait:
                progress(f"{name}: {waited:.0f} of {wait:.0f} s{so_far}")

    while wait - waited > settings.interval_seconds:
        hold_until(waited + settings.interval_seconds)
        early = analyse(settings, service, color, replaced, query, clock(), baseline_at=baseline_at)
        if early.outcome is Outcome.FAILED:
            detail = f"after {waited:.0f} of {wait:.0f} s: {early.summary()}"
            return Step(name, False, time.monotonic() - started, detail, analysis=early.to_json())
        so_far = f"; so far {early.summary()}"
    hold_until(wait)
    analysis = analyse(settings, service, color, replaced, query, clock(), baseline_at=baseline_at)
    return Step(
        name, analysis.passed, time.monotonic() - started, analysis.summary(), analysis=analysis.to_json()
    )


def _run_guarded(name: str, run_step: Callable[[], Step], first: bool) -> Step:
    """Run one step; any error or interruption is the step's failure (so it ends in a rollback),
    except a stack lock held by someone else before the first `up`, which changed nothing and stops
    the release. A second interruption, during the rollback, stops the tool: the release is then
    unfinished, and the next command offers `release abort`."""
    started = time.monotonic()
    try:
        return run_step()
    except ConcurrentReleaseError:
        if first:
            raise
        return Step(name, False, time.monotonic() - started, "another update took the stack's lock")
    except KeyboardInterrupt as interrupt:  # Ctrl-C, or SIGTERM (a cancelled CI job): abort the release
        return Step(name, False, time.monotonic() - started, describe(interrupt))
    except Exception as error:  # noqa: BLE001 - after a change, every error must end in a rollback
        return Step(
            name, False, time.monotonic() - started, f"internal error: {type(error).__name__}: {error}"
        )


def _fail_and_roll_back(
    ctx: ReleaseContext, request: DeployRequest, release: _Release, report: ReleaseReport
) -> None:
    """The failed step ends the release: tell the webhook in the background, roll back, report."""
    step = report.steps[-1]
    report.failure = f"{step.name}: {step.detail}"
    ctx.progress(f"{step.name} failed: {step.detail}; rolling back")
    notifier = ctx.notifier
    pending = notifier.start(
        "failed release", notify_text(request, "release failed, rolling back", report.failure)
    )
    started = time.monotonic()
    try:
        with log.indented():
            _roll_back(ctx, request, release, report, pending)
    except Exception as error:  # noqa: BLE001 - the report must still be printed, naming the error
        report.phase = Phase.ROLLBACK_FAILED
        detail = f"internal error: {type(error).__name__}: {error}"
        report.steps.append(Step("rollback", False, time.monotonic() - started, detail))
    final = pending.result(notifier.timeout_seconds + 1)
    report.notifications.append(final or NotificationResult("failed release", False, "still sending"))
    restored = report.rollback.target.label() if report.rollback else "nothing"
    _notify(notifier, report, request, "automatic rollback", f"{report.phase}: restored {restored}")


def _notify(
    notifier: Notifier, report: ReleaseReport, request: DeployRequest, event: str, detail: str
) -> NotificationResult:
    result = notifier.send(event, notify_text(request, event, detail))
    report.notifications.append(result)
    return result


def notify_text(request: DeployRequest, event: str, detail: str) -> str:
    return notify_message(
        event, request.stack, request.service, request.image, request.actor, request.run, detail
    )


def _record_verification(
    ctx: ReleaseContext, request: DeployRequest, report: ReleaseReport, notification: dict[str, Any]
) -> None:
    """Write the evidence that this digest passed its health window into the stack's history.

    An `up` targeted at the stable Service, with no config change: it changes nothing, and the
    backend keeps its message (the signed `verify` record, which also finishes the release) for every
    operator and CI runner to read.
    """
    verify = next(step for step in report.steps if step.name == "verify")
    verdict = verify.verdict
    window: dict[str, Any] = {
        "seconds": round(verify.seconds, 3),
        "probes": len(verdict.probes) if verdict else 0,
    }
    window.update(_judged_on(report))  # what the release was judged on, for `release audit`
    record = request.record(Event.VERIFY, window=window, notification=notification)
    summary = f"release verified {request.service}: {request.image} healthy on {request.stack}"
    step = record_step(ctx, request.stack, request.service, record, summary, request.signer, ctx.progress)
    report.steps.append(step)
    if not step.succeeded:
        report.notes.append(
            f"the verification of {request.image} could not be recorded in {request.stack}'s history, so "
            f"promotions from {request.stack} will not accept it and release {request.release_id} stays "
            f"unfinished; {step.detail}"
        )


def _scale_down_idle(
    ctx: ReleaseContext, request: DeployRequest, release: _Release, report: ReleaseReport
) -> None:
    """Shrink the color traffic left to its declared idle size, with an `up` targeted at that color's
    Deployment and autoscaler. After the verify record: the release stands whatever this does, and
    a rollback to that color scales it back up first (release.flows.restore)."""
    new = release.scaled_down
    assert new is not None
    left = release.before.active_color.value
    record = request.record(Event.SCALE)
    summary = (
        f"release scale {request.service}: idle {left} {release.before.replicas} -> "
        f"{new.replicas_of(new.idle_color)} replicas"
    )
    with ctx.chains.writing(request.stack, record, summary, request.signer, ctx.clock()) as message:
        step = up_step(
            "scale down",
            ctx.engine,
            request.stack,
            {RELEASES_KEY: ConfigEntry(release.knob(new))},
            message,
            ctx.progress,
            targets=color_urns(request.stack, PROJECT_NAME, request.service, left),
        )
    report.steps.append(step)
    if not step.succeeded:
        report.notes.append(
            f"the idle {left} color stays at full size (scaling it down failed: {step.detail}); the "
            "release is verified, and a rollback to it is a plain switch"
        )


def _verify_supply_chain(
    ctx: ReleaseContext, request: DeployRequest, image: str, report: ReleaseReport
) -> None:
    """The image against Pulumi.yaml's supplyChain, before any change (release.supply.gate): refused
    where the stack enforces it; its claims go into the stage record. A break-glass promotion may skip
    the vulnerability verdict only, and says so in its record."""
    verdict = check_image(
        ctx.project,
        ctx.images,
        request.stack,
        request.service,
        image,
        ctx.clock(),
        ctx.progress,
        break_glass=bool(request.break_glass),
    )
    if verdict is None:
        return
    request.supply_chain = verdict.to_json()
    report.notes.append(f"supply chain: {request.supply_chain['verdict']} ({verdict.mode.value})")
    if verdict.skipped:
        skipped = [
            *request.break_glass.get("skipped", []),
            *(f"supply-chain {name}" for name in verdict.skipped),
        ]
        request.break_glass = {**request.break_glass, "skipped": skipped}


def refuse_if_unfinished(stack: str, lifecycle: Lifecycle) -> None:
    """Refuse while any release of the stack is unfinished, naming it and the commands that finish it.

    Stack-wide, not per service: the automatic rollback restores the whole `releases` knob, so a
    release of one service on top of another's unfinished one could undo or strand it.
    """
    unfinished = lifecycle.unfinished
    if not unfinished:
        return
    fixes = [
        f'`release abort {stack} --service {release.service} --reason "..."` (restores {release.service} '
        "as it was before that release)"
        for release in unfinished
    ]
    fixes.append(f"or `release rollback {stack} --dry-run`, then without --dry-run (the state before it)")
    raise UnfinishedReleaseError(stack, [release.describe() for release in unfinished], fixes)


def _refuse_bad_request(request: DeployRequest, stack_config: StackConfig) -> None:
    """Check the request against the stack's rules before anything changes; report every problem."""
    stack = request.stack
    problems = []
    releases = stack_config.settings.releases
    key = full_key(f"releases.{request.service}")
    if request.service not in releases:
        problems.append(
            ConfigProblem.unknown_service(stack, request.service, list(releases), "this stack releases")
        )
    if request.service in releases:
        spec = next(spec for spec in stack_config.project.services if spec.name == request.service)
        staged = ColorConfig(flags=request.flags, env=request.env)
        idle = releases[request.service].idle_color
        problems += undeclared_config_problems(stack, stack_config.project, spec, staged, idle)
    if not request.image:
        if not request.flags and not request.env:
            problems.append(
                ConfigProblem(
                    stack,
                    f"{key}.images",
                    None,
                    "nothing to release: no image and no config value",
                    "pass --image <repository>@sha256:<digest>, and/or --set-flag NAME=VALUE / "
                    "--set-env NAME=VALUE",
                )
            )
        if problems:
            raise ConfigError(stack, problems)
        return
    try:
        image = parse_pinned_image(request.image)
    except ImageRefError as error:
        problems.append(
            ConfigProblem(
                stack,
                f"{key}.images",
                request.image,
                f"a release is pinned by digest: {error}",
                "pass --image <repository>@sha256:<64 hex digits> (the digest your build pushed)",
            )
        )
    else:
        if request.service in releases:
            repositories = {repository_of(releases[request.service].images.of(color)) for color in Color}
            if image.repository not in repositories:
                problems.append(
                    ConfigProblem(
                        stack,
                        f"{key}.images",
                        request.image,
                        f"{request.service} runs images from {sorted(repositories)}, not "
                        f"{image.repository} (another service's image?)",
                        f"pass an image of {request.service}'s repository",
                    )
                )
    if problems:
        raise ConfigError(stack, problems)


def _baseline(lifecycle: Lifecycle, current: StackConfigValues, report: ReleaseReport) -> HistoryEntry:
    """What a failure restores: the newest settled state, else the config read before the release."""
    if lifecycle.baseline is not None:
        return lifecycle.baseline
    report.notes.append(
        "stack history holds no settled state; a failure would restore the config read before the release"
    )
    return _pre_release_entry(current)


def _roll_back(
    ctx: ReleaseContext,
    request: DeployRequest,
    release: _Release,
    report: ReleaseReport,
    notification: PendingNotification,
) -> None:
    """Abort: restore the baseline, in a record that finishes this release, and check again."""
    baseline, stable_urls = release.baseline, release.stable_urls
    started = time.monotonic()
    current = ctx.engine.get_config(request.stack)
    idle_deployed = report.steps[0].succeeded  # the stage up that put the new image on the idle color
    image_changed = release.run.image != release.before.active_image
    plan = plan_rollback(request.stack, current, baseline, ctx.project, idle_deployed)
    plan.why = f"{baseline.label()}: the newest settled state before release {request.release_id}"
    report.rollback = plan
    record = ReleaseRecord(
        event=Event.ROLLBACK,
        stack=request.stack,
        actor=request.actor,
        service=request.service,
        image=request.image,
        release=request.release_id,
        finishes=(request.release_id,),
        # A failed config-only release revokes no image: the digest stays as good as it was.
        revokes=(request.image,) if image_changed else (),
        reason=f"release of {request.image} failed at {report.failure.split(':')[0]}",
        run=request.run,
        window=_judged_on(report),
        notification=_so_far(notification),
    )
    try:
        restore(
            ctx,
            report,
            plan,
            record,
            request.signer,
            step="rollback",
            recheck=[request.service],
            stable_urls=stable_urls,
            record_unchanged=(
                f"release rollback {request.service}: stable traffic unchanged ({request.release_id})"
            ),
        )
    except RollbackRefusedError as error:
        report.phase = Phase.ROLLBACK_FAILED
        report.steps.append(Step("rollback", False, time.monotonic() - started, str(error)))
        return
    if report.phase != Phase.ROLLBACK_FAILED:
        report.phase = Phase.ROLLED_BACK


def _judged_on(report: ReleaseReport) -> dict[str, Any]:
    """The metric analysis a release ran last (the failing one for a rollback, the post-switch one
    for a verify; its record keeps it, pass or fail), and the counts of the smoke suites it ran."""
    metrics = next((step.analysis for step in reversed(report.steps) if step.analysis is not None), None)
    judged: dict[str, Any] = {"analysis": metrics} if metrics is not None else {}
    smoke = smoke_counts(report.steps)
    if smoke:
        judged["smoke"] = smoke  # "N/M smoke checks passed", per target, signed with the record
    return judged


def _so_far(pending: PendingNotification) -> dict[str, Any]:
    """The failed-release notification's outcome if known by now; the rollback never waits for it."""
    result = pending.result(0)
    return result.to_json() if result else {"event": pending.event, "sent": "pending"}


def _pre_release_entry(before_release: StackConfigValues) -> HistoryEntry:
    """When history holds no settled state, the config read before the release stands in for one."""
    return HistoryEntry(
        number=0,
        version=0,
        position=-1,
        kind="update",
        result=UpdateResult.SUCCEEDED,
        start_time="(before this release)",
        end_time=None,
        message="config read before the release (history held no settled state)",
        environment={},
        config=dict(before_release),
    )
