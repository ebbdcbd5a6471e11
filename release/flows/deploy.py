"""`release deploy`: a blue-green release of one image to one service, rolled back automatically.

    0. refuse    before any change (release.flows.deploy_request.prepare): a bad request, an
                 unfinished release in the stack, a stack that needs signed records and no signing
                 key, an image the supply-chain policy refuses, an unmet precondition (preflight);
                 or decide what the release will do
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
from dataclasses import replace
from datetime import datetime
from typing import Any

from core.config.base import PROJECT_NAME
from core.config.sources import ConfigEntry
from core.config.stack import (
    AnalysisSettings,
    StrategyType,
)
from core.errors import (
    ConcurrentReleaseError,
    RollbackRefusedError,
)
from core.naming import canary_urn, color_urns
from release import log
from release.analysis import Outcome, analyse, prometheus_query
from release.annotations import StepAnnotations, release_tags
from release.clock import Clock
from release.context import ReleaseContext
from release.flows.deploy_request import DeployRequest, PreparedRelease, prepare
from release.flows.restore import plan_rollback, restore
from release.flows.snapshot import take_snapshot
from release.history.entries import RELEASES_KEY
from release.history.records import Event, ReleaseRecord
from release.interrupts import describe
from release.notify import NotificationResult, Notifier, PendingNotification
from release.notify import message as notify_message
from release.report.release_report import (
    Checker,
    Phase,
    ReleaseReport,
    Step,
    check_step,
    record_step,
    smoke_counts,
    smoke_step,
    up_step,
    with_headers,
)
from release.smoke import origin_of


def deploy(ctx: ReleaseContext, request: DeployRequest) -> ReleaseReport:
    """Run the steps; on any failure after the first `up`, roll back automatically. Returns the report.

    Notifications: break-glass before the first update, a promotion before its verify record, a
    failed release in the background while the rollback runs (never delaying it).
    """
    report = ReleaseReport("deploy", request.stack, service=request.service, image=request.image)
    release = prepare(ctx, request, report)
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


def _steps(
    ctx: ReleaseContext, request: DeployRequest, release: PreparedRelease, stage_notification: dict[str, Any]
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
    ctx: ReleaseContext, request: DeployRequest, release: PreparedRelease, report: ReleaseReport
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
    ctx: ReleaseContext, request: DeployRequest, release: PreparedRelease, report: ReleaseReport
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


def _roll_back(
    ctx: ReleaseContext,
    request: DeployRequest,
    release: PreparedRelease,
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
