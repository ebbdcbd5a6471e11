"""`release deploy`: a blue-green release of one image to one service, rolled back automatically.

    1. preview   set the digest on the idle colour and `up` (its migration Job runs with the new
                 image before its pods start)
    2. analyse   health-check the preview Service (pre-promotion analysis, in Argo Rollouts' words)
    3. promote   switch the active colour and `up` (the stable Service's health hook runs here too)
    4. verify    health-check the stable Service (post-promotion analysis)
    on failure   abort: restore the config of the last succeeded update before the release, from
                 stack history, `up` (targeted at the Services when that is enough) and check again

A request the config layer refuses (bad digest, unknown service, another repository) raises
ConfigError before anything is changed. Another update holding the stack raises
ConcurrentReleaseError, also before anything is changed.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components.blue_green_service import service_urns
from components.config import DIGEST_IMAGE, PROJECT_NAME, Color, StackConfig, full_key, repository_of
from release.engine import ConfigEntry, Engine, StackConfigValues
from release.errors import (
    ConcurrentReleaseError,
    ConfigError,
    ConfigProblem,
    HistoryError,
    RollbackRefusedError,
)
from release.history import (
    RELEASES_KEY,
    HistoryEntry,
    in_progress,
    last_succeeded_update,
    parse_history,
)
from release.notify import NO_NOTIFIER, NotificationResult, Notifier, PendingNotification
from release.notify import message as notify_message
from release.records import ReleaseRecord
from release.report import (
    HEALTHY,
    ROLLBACK_FAILED,
    ROLLED_BACK,
    Checker,
    Progress,
    ReleaseReport,
    Step,
    check_step,
    default_checker,
    health_urls,
    up_step,
)
from release.rollback import execute_rollback, plan_rollback, recheck_stable
from release.stack_files import validated_stack_config


@dataclass
class DeployRequest:
    stack: str
    service: str
    image: str
    operator: str
    reason: str = ""
    preview_urls: list[str] = field(default_factory=list)
    """Overrides the preview URL the stack exposes (e.g. a port-forward)."""
    stable_urls: list[str] = field(default_factory=list)
    run: str = ""
    """The CI run URL, recorded with every update."""
    approval: dict[str, str] = field(default_factory=dict)
    break_glass: dict[str, Any] = field(default_factory=dict)
    promoted_from: str = ""

    def record(self, event: str, **fields: Any) -> ReleaseRecord:
        """The release record every update of this release carries (see release.records)."""
        return ReleaseRecord(
            event=event,
            stack=self.stack,
            actor=self.operator,
            service=self.service,
            image=self.image,
            run=self.run,
            approval=self.approval,
            break_glass=self.break_glass,
            promoted_from=self.promoted_from,
            reason=self.reason,
            **fields,
        )


def deploy(
    engine: Engine,
    request: DeployRequest,
    project_dir: Path,
    checker: Checker = default_checker,
    progress: Progress = lambda message: None,
    notifier: Notifier = NO_NOTIFIER,
) -> ReleaseReport:
    """Run the four steps; on any failure roll back automatically. Returns the report.

    Notifications: break-glass before the first update, a promotion before its verify record, a
    failed release in the background while the rollback runs (never delaying it).
    """
    report = ReleaseReport("deploy", request.stack, service=request.service, image=request.image)
    current = engine.get_config(request.stack)
    entries = parse_history(engine.history(request.stack))
    _refuse_if_locked(request.stack, entries)
    stack_config = validated_stack_config(request.stack, current, project_dir)
    _refuse_bad_request(request, stack_config)
    baseline = _baseline(entries, report)

    release = stack_config.settings.releases[request.service]
    idle = release.active_color.other
    if release.images.of(release.active_color) == request.image:
        report.notes.append(f"{request.service} already serves {request.image} on {release.active_color}")
        return report
    settings = stack_config.settings.health_check
    expect = {settings.version_field: request.image} if settings.version_field else {}
    outputs = engine.outputs(request.stack)
    preview_urls = health_urls(stack_config, outputs, request.service, True, request.preview_urls)
    stable_urls = health_urls(stack_config, outputs, request.service, False, request.stable_urls)
    releases = _releases_value(current)
    staged = copy.deepcopy(releases)
    staged[request.service]["images"][idle.value] = request.image
    promoted = copy.deepcopy(staged)
    promoted[request.service]["activeColor"] = idle.value
    because = f": {request.reason}" if request.reason else ""
    previous = release.images.of(release.active_color)
    stage_notification: dict[str, Any] = {}
    if request.break_glass:
        detail = (
            f"break-glass: {request.break_glass.get('reason')}; skipped: {request.break_glass.get('skipped')}"
        )
        stage_notification = _notify(notifier, report, request, "break-glass release", detail).to_json()
    stable_urn = service_urns(request.stack, PROJECT_NAME, request.service)[0]

    steps: list[Callable[[], Step]] = [
        lambda: up_step(
            "preview",
            engine,
            request.stack,
            {RELEASES_KEY: ConfigEntry(staged)},
            request.record("stage", previous=previous, notification=stage_notification).message(
                f"release deploy {request.service}: {idle.value} <- {request.image}{because}"
            ),
            progress,
        ),
        lambda: check_step("analyse", checker, preview_urls, settings, expect, progress),
        lambda: up_step(
            "promote",
            engine,
            request.stack,
            {RELEASES_KEY: ConfigEntry(promoted)},
            request.record("switch", previous=previous).message(
                f"release promote {request.service}: active {release.active_color.value} -> {idle.value} "
                f"({request.image}){because}"
            ),
            progress,
        ),
        lambda: check_step("verify", checker, stable_urls, settings, expect, progress),
    ]
    for run_step in steps:
        step = run_step()
        report.steps.append(step)
        if not step.succeeded:
            report.failure = f"{step.name}: {step.detail}"
            progress(f"{step.name} failed: {step.detail}; rolling back")
            text = notify_text(request, "release failed, rolling back", report.failure)
            pending = notifier.start("failed release", text)
            _roll_back(
                engine,
                request,
                project_dir,
                baseline,
                current,
                checker,
                stable_urls,
                report,
                progress,
                pending,
            )
            final = pending.result(notifier.timeout_seconds + 1)
            report.notifications.append(final or NotificationResult("failed release", False, "still sending"))
            restored = report.rollback.target.label() if report.rollback else "nothing"
            _notify(notifier, report, request, "automatic rollback", f"{report.phase}: restored {restored}")
            return report
    notification: dict[str, Any] = {}
    if request.promoted_from:
        detail = f"promoted from {request.promoted_from}; approval: {request.approval or 'not required'}"
        notification = _notify(notifier, report, request, "promotion", detail).to_json()
    _record_verification(engine, request, report, stable_urn, progress, notification)
    progress(f"{request.service} on {request.stack} is {HEALTHY} on {idle.value} ({request.image})")
    return report


def _notify(
    notifier: Notifier, report: ReleaseReport, request: DeployRequest, event: str, detail: str
) -> NotificationResult:
    result = notifier.send(event, notify_text(request, event, detail))
    report.notifications.append(result)
    return result


def notify_text(request: DeployRequest, event: str, detail: str) -> str:
    return notify_message(
        event, request.stack, request.service, request.image, request.operator, request.run, detail
    )


def _record_verification(
    engine: Engine,
    request: DeployRequest,
    report: ReleaseReport,
    stable_urn: str,
    progress: Progress,
    notification: dict[str, Any],
) -> None:
    """Write the evidence that this digest passed its health window into the stack's history.

    An `up` targeted at the stable Service, with no config change: it changes nothing, and the
    backend keeps its message (the `verify` record) for every operator and CI runner to read.
    """
    verdict = report.steps[-1].verdict
    window = {"seconds": round(report.steps[-1].seconds, 3), "probes": len(verdict.probes) if verdict else 0}
    message = request.record("verify", window=window, notification=notification).message(
        f"release verified {request.service}: {request.image} healthy on {request.stack}"
    )
    step = up_step("record", engine, request.stack, {}, message, progress, targets=[stable_urn])
    report.steps.append(step)
    if not step.succeeded:
        report.notes.append(
            f"the verification of {request.image} could not be recorded in {request.stack}'s history, so "
            f"promotions from {request.stack} will not accept it; {step.detail}"
        )


def _refuse_if_locked(stack: str, entries: Sequence[HistoryEntry]) -> None:
    running = in_progress(entries)
    if running is not None:
        raise ConcurrentReleaseError(
            stack, f"in progress: {running.label()} by {running.operator}: {running.message}"
        )


def _refuse_bad_request(request: DeployRequest, stack_config: StackConfig) -> None:
    """Check the request against the stack's rules before anything changes; report every problem."""
    stack = request.stack
    problems = []
    releases = stack_config.settings.releases
    key = full_key(f"releases.{request.service}")
    if request.service not in releases:
        problems.append(
            ConfigProblem(
                stack,
                key,
                request.service,
                f"unknown service; this stack releases {sorted(releases)}",
                f"use --service with one of {sorted(releases)}",
            )
        )
    matched = DIGEST_IMAGE.match(request.image)
    if matched is None:
        problems.append(
            ConfigProblem(
                stack,
                f"{key}.images",
                request.image,
                "a release is pinned by digest; a tag can change under you",
                "pass --image <repository>@sha256:<64 hex digits> (the digest your build pushed)",
            )
        )
    elif request.service in releases:
        repositories = {repository_of(releases[request.service].images.of(color)) for color in Color}
        if matched.group("repository") not in repositories:
            problems.append(
                ConfigProblem(
                    stack,
                    f"{key}.images",
                    request.image,
                    f"{request.service} runs images from {sorted(repositories)}, not "
                    f"{matched.group('repository')} (another service's image?)",
                    f"pass an image of {request.service}'s repository",
                )
            )
    if problems:
        raise ConfigError(stack, problems)


def _baseline(entries: Sequence[HistoryEntry], report: ReleaseReport) -> HistoryEntry | None:
    try:
        return last_succeeded_update(entries)
    except HistoryError as error:
        report.notes.append(f"{error}; a failure would restore the config read before the release")
        return None


def _releases_value(current: StackConfigValues) -> dict[str, Any]:
    value = current[RELEASES_KEY].value
    return copy.deepcopy(value) if isinstance(value, dict) else {}


def _roll_back(
    engine: Engine,
    request: DeployRequest,
    project_dir: Path,
    baseline: HistoryEntry | None,
    before_release: StackConfigValues,
    checker: Checker,
    stable_urls: Sequence[str],
    report: ReleaseReport,
    progress: Progress,
    notification: PendingNotification,
) -> None:
    """Abort: restore the last good config and check the stable Service again."""
    started = time.monotonic()
    current = engine.get_config(request.stack)
    target = baseline or _pre_release_entry(before_release)
    stack_config = validated_stack_config(request.stack, current, project_dir)
    plan = plan_rollback(request.stack, current, target, stack_config.project)
    report.rollback = plan
    try:
        outcome = execute_rollback(
            engine,
            plan,
            request.operator,
            reason=f"release of {request.image} failed at {report.failure.split(':')[0]}",
            revokes=[request.image],
            run=request.run,
            notification=_so_far(notification),
        )
    except RollbackRefusedError as error:
        report.phase = ROLLBACK_FAILED
        report.steps.append(Step("rollback", False, time.monotonic() - started, str(error)))
        return
    if outcome is not None and not outcome.succeeded:
        report.phase = ROLLBACK_FAILED
        report.steps.append(
            Step("rollback", False, outcome.seconds, f"update failed: {outcome.error}", update=outcome)
        )
        return
    changed = 0 if outcome is None else outcome.changed
    report.steps.append(
        Step(
            "rollback",
            True,
            time.monotonic() - started,
            f"{plan.mode}: {changed} resource(s) changed",
            update=outcome,
        )
    )
    restored = validated_stack_config(request.stack, engine.get_config(request.stack), project_dir)
    check = recheck_stable(restored, request.service, checker, stable_urls, progress)
    report.steps.append(check)
    report.phase = ROLLED_BACK if check.succeeded else ROLLBACK_FAILED


def _so_far(pending: PendingNotification) -> dict[str, Any]:
    """The failed-release notification's outcome if known by now; the rollback never waits for it."""
    result = pending.result(0)
    return result.to_json() if result else {"event": pending.event, "sent": "pending"}


def _pre_release_entry(before_release: StackConfigValues) -> HistoryEntry:
    """When history holds no succeeded update, the config read before the release stands in for one."""
    return HistoryEntry(
        number=0,
        version=0,
        position=-1,
        kind="update",
        result="succeeded",
        start_time="(before this release)",
        end_time=None,
        message="config read before the release (history held no succeeded update)",
        environment={},
        config=dict(before_release),
    )
