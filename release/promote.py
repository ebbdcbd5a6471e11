"""`release promote`, `release reject`, `release review`: moving one digest between stacks, on evidence.

    release promote staging production --service api [--digest sha256:...] [--approval REF --approver NAME]
                                                      [--break-glass --reason "..."]

1. Offline (no engine call at all): the target's gate from Pulumi.yaml; the service, the digest's
   form, the stage order, the approval, four eyes, freeze windows, a break-glass reason.
2. Reads only: the source stack's config and history give the image (byte-identical: the source's
   repository and digest) and its evidence (verified, revoked, rejected, live, since when).
3. Then, and only when every rule holds (or break-glass skipped it, recorded), the blue-green release
   of `release.deploy` runs on the target with the approval, break-glass and source in every record.

`reject` writes a `reject` record (the digest is never promoted again); `review` acknowledges a
break-glass release. Both are records in the stack's history, written by an `up` targeted at the
service's stable Service that changes nothing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from components.blue_green_service import service_urns
from components.config import PROJECT_NAME, ProjectSettings, repository_of
from release.deploy import DeployRequest, deploy
from release.engine import Engine
from release.errors import ConfigError, ConfigProblem, EngineError, PromotionRefusedError, UsageError
from release.gates import (
    GateViolation,
    approval_from,
    break_glass_problem,
    decide_promotion,
    evidence_for,
    run_url,
)
from release.history import RELEASES_KEY, entry_numbered, parse_history
from release.notify import NO_NOTIFIER, Notifier
from release.records import ReleaseRecord
from release.report import Checker, Progress, ReleaseReport, default_checker
from release.stack_files import project_settings

DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


@dataclass
class PromoteRequest:
    source: str
    target: str
    service: str
    actor: str
    digest: str | None = None
    approval_ref: str | None = None
    approver: str | None = None
    break_glass_reason: str | None = None
    reason: str = ""
    preview_urls: list[str] = field(default_factory=list)
    stable_urls: list[str] = field(default_factory=list)

    @property
    def what(self) -> str:
        return f"{self.service} {self.digest or '(the digest live in ' + self.source + ')'}"


def promote(
    engine: Engine,
    request: PromoteRequest,
    project_dir: Path,
    env: Mapping[str, str],
    now: datetime | None = None,
    checker: Checker = default_checker,
    progress: Progress = lambda message: None,
    notifier: Notifier = NO_NOTIFIER,
) -> ReleaseReport:
    moment = now or datetime.now(UTC)
    project = project_settings(project_dir)
    policy = project.stack_policies.get(request.target)
    if policy is None:
        raise UsageError(
            f"no stack policy for '{request.target}' in Pulumi.yaml; known: {sorted(project.stack_policies)}"
        )
    gate = policy.promotion
    _refuse_bad_input(request, project)
    approval = approval_from(request.approval_ref, request.approver, gate, env)
    offline = decide_promotion(
        request.target,
        gate,
        request.source,
        None,
        moment,
        request.actor,
        approval,
        request.break_glass_reason,
    )
    if not offline.allowed:
        raise PromotionRefusedError(request.source, request.target, request.what, offline.violations)

    image, live = _source_image(engine, request)
    entries = parse_history(engine.history(request.source))
    evidence = evidence_for(request.source, entries, request.service, image, live)
    decision = decide_promotion(
        request.target,
        gate,
        request.source,
        evidence,
        moment,
        request.actor,
        approval,
        request.break_glass_reason,
    )
    if not decision.allowed:
        raise PromotionRefusedError(
            request.source, request.target, f"{request.service} {image}", decision.violations
        )

    progress(f"promote {image} from {request.source} to {request.target}: {evidence.describe()}")
    release = DeployRequest(
        request.target,
        request.service,
        image,
        request.actor,
        reason=request.reason or (request.break_glass_reason or ""),
        preview_urls=request.preview_urls,
        stable_urls=request.stable_urls,
        run=run_url(env),
        approval=approval.to_json() if approval else {},
        break_glass=(
            {"reason": request.break_glass_reason, "skipped": decision.skipped}
            if request.break_glass_reason is not None
            else {}
        ),
        promoted_from=request.source,
    )
    report = deploy(engine, release, project_dir, checker, progress, notifier)
    report.command = "promote"
    report.notes.insert(0, f"from {request.source}: {evidence.describe()}")
    if approval is not None:
        report.notes.insert(
            1, f"approval {approval.ref} by {approval.approver or '(not named)'} ({approval.source})"
        )
    if request.break_glass_reason is not None:
        skipped = ", ".join(decision.skipped) or "none"
        report.notes.insert(1, f"BREAK-GLASS: {request.break_glass_reason}; skipped gates: {skipped}")
    return report


def _refuse_bad_input(request: PromoteRequest, project: ProjectSettings) -> None:
    problems = []
    services = [spec.name for spec in project.services]
    key = f"{PROJECT_NAME}:releases.{request.service}"
    if request.service not in services:
        problems.append(
            ConfigProblem(
                request.target,
                key,
                request.service,
                f"unknown service; Pulumi.yaml declares {services}",
                f"use --service with one of {services}",
            )
        )
    if request.digest is not None and not DIGEST.match(request.digest):
        problems.append(
            ConfigProblem(
                request.target,
                f"{key}.images",
                request.digest,
                "a promotion moves a digest, never a tag (a tag can point elsewhere by the time it lands)",
                "pass --digest sha256:<64 hex digits>, or leave it out to take the digest live in the source",
            )
        )
    if problems:
        raise ConfigError(request.target, problems)


def _source_image(engine: Engine, request: PromoteRequest) -> tuple[str, bool]:
    """The image to promote, byte-identical to the source's reference, and whether it is live there."""
    releases = engine.get_config(request.source).get(RELEASES_KEY)
    release = (releases.value if releases else {}).get(request.service)
    if not isinstance(release, dict):
        raise EngineError(f"stack '{request.source}' has no release of {request.service}")
    active = str(release["images"][release["activeColor"]])
    if request.digest is None:
        image = active
    else:
        repository = (
            active.split("@", 1)[0].rsplit(":", 1)[0] if "@" not in active else active.split("@", 1)[0]
        )
        image = f"{repository}@{request.digest}"
    if "@sha256:" not in image:
        violation = GateViolation(
            "verified",
            f"{request.source} runs {image}, a mutable tag: there is no digest to promote",
            f"release a digest in {request.source} first "
            f"(`release deploy {request.source} --image repo@sha256:...`)",
        )
        raise PromotionRefusedError(request.source, request.target, request.what, [violation])
    return image, image == active


def write_record(engine: Engine, stack: str, service: str, record: ReleaseRecord, summary: str) -> None:
    """Put a record into the stack's history with an `up` that changes nothing (targeted, no config)."""
    stable_urn = service_urns(stack, PROJECT_NAME, service)[0]
    outcome = engine.up(stack, {}, record.message(summary), targets=[stable_urn])
    if not outcome.succeeded:
        raise EngineError(f"stack '{stack}': the {record.event} record could not be written: {outcome.error}")


def reject(
    engine: Engine,
    stack: str,
    service: str,
    image_or_digest: str,
    reason: str,
    actor: str,
    env: Mapping[str, str],
) -> ReleaseRecord:
    """Mark an image as never to be promoted again (from `stack` onwards)."""
    problem = break_glass_problem(reason)
    if problem:
        raise UsageError(problem.replace("break-glass", "a rejection"))
    image = image_or_digest
    if DIGEST.match(image_or_digest):
        releases = engine.get_config(stack)[RELEASES_KEY].value
        any_image = next(iter(releases[service]["images"].values()))
        image = f"{repository_of(any_image)}@{image_or_digest}"
    record = ReleaseRecord(
        "reject", stack, actor, service=service, revokes=(image,), reason=reason, run=run_url(env)
    )
    write_record(engine, stack, service, record, f"release reject {service} {image}")
    return record


def review(
    engine: Engine, stack: str, number: int, note: str, actor: str, env: Mapping[str, str]
) -> ReleaseRecord:
    """Acknowledge the break-glass release in history entry `number`."""
    entry = entry_numbered(parse_history(engine.history(stack)), number)
    record = entry.record
    if record is None or not record.break_glass or record.event != "stage":
        raise UsageError(
            f"{entry.label()} is not the start of a break-glass release; `release audit {stack}` lists "
            "those that wait for review, with their numbers"
        )
    if record.actor.lower() == actor.lower():
        raise UsageError(f"{actor} made that break-glass release; someone else reviews it")
    review_record = ReleaseRecord(
        "review",
        stack,
        actor,
        service=record.service,
        image=record.image,
        reviews=number,
        reason=note,
        run=run_url(env),
    )
    write_record(engine, stack, record.service, review_record, f"release review of entry {number}")
    return review_record
