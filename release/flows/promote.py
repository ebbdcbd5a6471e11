"""`release promote`, `release reject`, `release review`: moving one digest between stacks, on evidence.

    release promote staging production --service api [--digest sha256:...]
                                                      [--break-glass --reason "..."]

1. Offline (no engine call at all): the target's gate from Pulumi.yaml; the service, the digest's
   form, the stage order, the approval (read from GitHub's API inside GitHub Actions), four eyes,
   freeze windows, a break-glass reason, and a signing key where the target needs signed records.
2. Reads only: the source stack's config and history give the image (byte-identical: the source's
   repository and digest) and its evidence (verified, revoked, rejected, live, since when), from
   records that count, and only signed ones where the gate requires signed evidence.
3. Then, and only when every rule holds (or break-glass skipped it, recorded), the blue-green release
   of `release.flows.deploy` runs on the target with the approval, break-glass and source in every record.

`reject` writes a signed `reject` record (the digest is never promoted again); `review` acknowledges
a break-glass release. Both are records in the stack's history, written by an `up` targeted at the
service's stable Service that changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from core.config.base import PROJECT_NAME
from core.config.project import ProjectSettings
from core.config.stack import ServiceRelease, project_pod_config, releases_of
from core.errors import ConfigError, ConfigProblem, EngineError, PromotionRefusedError, UsageError
from core.images import ImageRef, ImageRefError, parse_digest, parse_image, parse_pinned_image
from core.text import one_line
from release import log
from release.context import ReleaseContext
from release.engine.protocol import Engine
from release.flows.deploy import deploy
from release.flows.deploy_request import DeployRequest
from release.gates import (
    ASSERTED,
    GITHUB_RUN,
    Approval,
    ApprovalReader,
    Evidence,
    GateDecision,
    GateViolation,
    approval_from,
    break_glass_problem,
    decide_promotion,
    evidence_for,
)
from release.github import read_environment_approval
from release.history.entries import RELEASES_KEY, HistoryEntry, entry_numbered, read_history
from release.history.records import Event, ReleaseRecord
from release.history.signing import Signer, refuse_unsigned_write
from release.report.release_report import ReleaseReport, record_step


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
    prometheus_url: str = ""
    signer: Signer | None = None
    flags: dict[str, str] = field(default_factory=dict)
    """Feature flag values to release into the target with the digest; each must run in the source."""
    env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.break_glass_reason is not None and not self.break_glass_reason:
            raise UsageError(
                '--break-glass needs --reason "<what broke, and why now>": it is recorded and reviewed'
            )

    @property
    def what(self) -> str:
        return f"{self.service} {self.digest or '(the digest live in ' + self.source + ')'}"


def promote(
    ctx: ReleaseContext,
    request: PromoteRequest,
    approval_reader: ApprovalReader = read_environment_approval,
) -> ReleaseReport:
    """Judge the target's gate offline, then on the source's history; release the digest into the
    target with the deploy flow, its records naming the source, the approval and any break-glass."""
    moment = ctx.clock()
    project = ctx.project
    policy = project.stack_policies.get(request.target)
    if policy is None:
        raise UsageError(
            f"no stack policy for '{request.target}' in Pulumi.yaml; known: {sorted(project.stack_policies)}"
        )
    gate = policy.promotion
    _refuse_bad_input(request, project)
    refuse_unsigned_write(project, request.target, request.signer, "promotion", ctx.clock())
    approval, approval_problem = approval_from(
        request.approval_ref, request.approver, gate, ctx.env, approval_reader
    )

    def decide(evidence: Evidence | None, what: str) -> GateDecision:
        decision = decide_promotion(
            request.target,
            gate,
            request.source,
            evidence,
            moment,
            request.actor,
            approval,
            request.break_glass_reason,
            approval_problem,
        )
        if not decision.allowed:
            raise PromotionRefusedError(request.source, request.target, what, decision.violations)
        return decision

    decide(None, request.what)  # offline: no engine call before the rules that need none pass
    image, live = _source_image(ctx.engine, request)
    entries = read_history(ctx.engine, request.source, project)
    evidence = evidence_for(
        request.source, entries, request.service, image, live, signed_only=gate.require_signed_evidence
    )
    decision = decide(evidence, f"{request.service} {image}")
    unproven = _config_not_live_in_source(ctx, request)
    unproven += _no_recent_drill(ctx, request, gate.require_drill_within_days, moment)
    if unproven and request.break_glass_reason is None:
        raise PromotionRefusedError(request.source, request.target, request.what, unproven)
    decision.skipped += [violation.rule for violation in unproven]
    ctx.progress(f"promote {image} from {request.source} to {request.target}: {evidence.describe()}")
    with log.indented():
        report = deploy(ctx, _release_request(ctx, request, image, approval, decision))
    report.command = "promote"
    report.notes.insert(0, f"from {request.source}: {evidence.describe()}")
    if approval is not None:
        approvers = ", ".join(approval.approvers) or "(not named)"
        report.notes.insert(1, one_line(f"approval {approval.ref} by {approvers} ({approval.source})"))
    if request.break_glass_reason is not None:
        skipped = ", ".join(decision.skipped) or "none"
        report.notes.insert(
            1, one_line(f"BREAK-GLASS: {request.break_glass_reason}; skipped gates: {skipped}")
        )
    return report


def _release_request(
    ctx: ReleaseContext,
    request: PromoteRequest,
    image: str,
    approval: Approval | None,
    decision: GateDecision,
) -> DeployRequest:
    """The deploy of `image` into the target, its records carrying where it came from and why."""
    return DeployRequest(
        request.target,
        request.service,
        image,
        request.actor,
        reason=request.reason or (request.break_glass_reason or ""),
        preview_urls=request.preview_urls,
        stable_urls=request.stable_urls,
        prometheus_url=request.prometheus_url,
        run=ctx.run_url,
        approval=approval.to_json() if approval else {},
        break_glass=(
            {"reason": request.break_glass_reason, "skipped": decision.skipped}
            if request.break_glass_reason is not None
            else {}
        ),
        promoted_from=request.source,
        signer=request.signer,
        flags=request.flags,
        env=request.env,
    )


def _config_not_live_in_source(ctx: ReleaseContext, request: PromoteRequest) -> list[GateViolation]:
    """The config values to promote that the source's live color does not run: config reaches the
    target only after it ran where the digest was verified (break-glass may skip this, recorded)."""
    if not request.flags and not request.env:
        return []
    live = _source_release(ctx.engine, request.source, request.service).active_run.config
    runs = project_pod_config(ctx.project, request.service, live)
    assert runs is not None  # _refuse_bad_input refused a service Pulumi.yaml does not declare
    wanted = [("flag", name, value, runs.flags) for name, value in sorted(request.flags.items())]
    wanted += [("env", name, value, runs.env) for name, value in sorted(request.env.items())]
    return [
        GateViolation(
            "config-live-in-source",
            f"{request.source}'s live {request.service} runs {kind} {name}="
            f"{known.get(name, '(undeclared)')}, not {value}",
            f"release it in {request.source} first (`release deploy {request.source} --service "
            f"{request.service} --set-{kind} {name}=...`, or promote it there), or --break-glass "
            '--reason "..." for a kill switch',
        )
        for kind, name, value, known in wanted
        if known.get(name) != value
    ]


def _no_recent_drill(
    ctx: ReleaseContext, request: PromoteRequest, within_days: int | None, now: datetime
) -> list[GateViolation]:
    """The target's newest counted drill record, in the chain's order, must have passed within
    `within_days` (the stack policy's requireDrillWithinDays), its signed time consistent with the
    chain (release.history.chain); break-glass may skip this, recorded."""
    if within_days is None:
        return []
    entries = ctx.chains.history(request.target)
    drills = [entry for entry in entries if entry.record is not None and entry.record.event == Event.DRILL]
    fix = (
        f'run `release drill {request.target}` (docs/data-safety.md), or --break-glass --reason "..." '
        "(recorded)"
    )
    if not drills:
        return [GateViolation("recent-drill", f"{request.target} has no restore drill in its history", fix)]
    newest = drills[0]
    assert newest.record is not None
    verdict = newest.record.drill.get("verdict")
    signed_at = newest.record.signed_at
    if verdict != "Passed":
        return [
            GateViolation(
                "recent-drill",
                f"{request.target}'s newest restore drill {verdict or 'is unreadable'} "
                f"(entry {newest.number})",
                fix,
            )
        ]
    late = newest.time_problem(now)
    if late:
        return [
            GateViolation(
                "recent-drill",
                f"{request.target}'s newest restore drill (entry {newest.number}) proves no age: {late}",
                fix,
            )
        ]
    if signed_at is None or now - signed_at > timedelta(days=within_days):
        age = "of unknown age" if signed_at is None else f"{(now - signed_at).days} days old"
        return [
            GateViolation(
                "recent-drill",
                f"{request.target}'s newest passing restore drill is {age}; the policy asks for one within "
                f"{within_days} days",
                fix,
            )
        ]
    return []


def _unknown_service(stack: str, service: str, project: ProjectSettings) -> ConfigProblem | None:
    services = [spec.name for spec in project.services]
    if service in services:
        return None
    return ConfigProblem.unknown_service(stack, service, services, "Pulumi.yaml declares")


def _refuse_bad_input(request: PromoteRequest, project: ProjectSettings) -> None:
    problems = []
    unknown = _unknown_service(request.target, request.service, project)
    if unknown is not None:
        problems.append(unknown)
    if request.digest is not None:
        try:
            parse_digest(request.digest)
        except ImageRefError as error:
            problems.append(
                ConfigProblem(
                    request.target,
                    f"{PROJECT_NAME}:releases.{request.service}.images",
                    request.digest,
                    f"a promotion moves a digest, never a tag: {error}",
                    "pass --digest sha256:<64 hex digits>, or leave it out to take the digest live in "
                    "the source",
                )
            )
    if problems:
        raise ConfigError(request.target, problems)


def _source_release(engine: Engine, stack: str, service: str) -> ServiceRelease:
    releases = engine.get_config(stack).get(RELEASES_KEY)
    release = releases_of(releases.value if releases is not None else None).get(service)
    if release is None:
        raise EngineError(f"stack '{stack}' has no release of {service}")
    return release


def _source_image(engine: Engine, request: PromoteRequest) -> tuple[str, bool]:
    """The image to promote, byte-identical to the source's reference, and whether it is live there."""
    active = _source_release(engine, request.source, request.service).active_image
    try:
        active_ref = parse_image(active)
    except ImageRefError as error:
        raise EngineError(f"stack '{request.source}': {request.service}'s active image: {error}") from error
    image = str(active_ref if request.digest is None else active_ref.with_digest(request.digest))
    if not parse_image(image).pinned:
        violation = GateViolation(
            "verified",
            f"{request.source} runs {image}, a mutable tag: there is no digest to promote",
            f"release a digest in {request.source} first "
            f"(`release deploy {request.source} --image repo@sha256:...`)",
        )
        raise PromotionRefusedError(request.source, request.target, request.what, [violation])
    return image, image == active


def reject(
    ctx: ReleaseContext,
    stack: str,
    service: str,
    image_or_digest: str,
    reason: str,
    actor: str,
    signer: Signer | None = None,
    force: bool = False,
) -> ReleaseRecord:
    """Mark an image as never to be promoted again (from `stack` onwards).

    The image (or digest, completed with the service's repository) must have been deployed in
    `stack`: named by its history's config or records. `force` (with a reason) rejects one that was
    not, e.g. to block a digest before it arrives.
    """
    engine, project = ctx.engine, ctx.project
    problems = []
    unknown = _unknown_service(stack, service, project)
    if unknown is not None:
        problems.append(unknown)
    parsed: ImageRef | None = None
    digest = ""
    try:
        parsed, digest = _named_digest(image_or_digest)
    except ImageRefError as error:
        problems.append(
            ConfigProblem(
                stack,
                f"{PROJECT_NAME}:releases.{service}.images",
                image_or_digest,
                f"a rejection names one digest: {error}",
                "pass --digest sha256:<64 lower-case hex digits> or <repository>@sha256:<...>",
            )
        )
    if problems:
        raise ConfigError(stack, problems)
    problem = break_glass_problem(reason)
    if problem:
        raise UsageError(problem.replace("break-glass", "a rejection"))
    refuse_unsigned_write(project, stack, signer, "rejection", ctx.clock())
    entries = ctx.chains.history(stack)
    image = _deployed_image(entries, service, digest, str(parsed) if parsed is not None else None)
    if image is None:
        if not force:
            raise UsageError(
                f"{digest} was never deployed as {service} in '{stack}' (its history names it nowhere); "
                "nothing was rejected. Check the digest, or pass --force with the reason to block it "
                "before it arrives"
            )
        repository = (
            parsed.repository if parsed is not None else _repository_of_service(engine, stack, service)
        )
        image = f"{repository}@{digest}"
    record = ReleaseRecord(
        Event.REJECT, stack, actor, service=service, revokes=(image,), reason=reason, run=ctx.run_url
    )
    step = record_step(
        ctx, stack, service, record, f"release reject {service} {image}", signer, lambda _: None
    )
    if not step.succeeded:
        raise EngineError(f"stack '{stack}': the reject record could not be written: {step.detail}")
    return record


def _named_digest(text: str) -> tuple[ImageRef | None, str]:
    """A rejection names a digest, alone or in a full image reference."""
    if "@" not in text:
        return None, parse_digest(text)
    parsed = parse_pinned_image(text)
    assert parsed.digest is not None
    return parsed, parsed.digest


def _deployed_image(entries: list[HistoryEntry], service: str, digest: str, wanted: str | None) -> str | None:
    """The full reference under which `digest` ran as `service` in this history, if it ever did
    (exactly `wanted`, when the caller named a full reference)."""
    for entry in entries:
        state = entry.services.get(service)
        candidates = list(state.images.values()) if state else []
        record = entry.record
        if record is not None and record.service == service:
            candidates.append(record.image)
        for image in candidates:
            if image.endswith(f"@{digest}") and (wanted is None or image == wanted):
                return image
    return None


def _repository_of_service(engine: Engine, stack: str, service: str) -> str:
    return parse_image(_source_release(engine, stack, service).images.blue).repository


def review(
    ctx: ReleaseContext, stack: str, number: int, note: str, actor: str, signer: Signer | None = None
) -> ReleaseRecord:
    """Acknowledge the break-glass release in history entry `number` (someone else's)."""
    project = ctx.project
    refuse_unsigned_write(project, stack, signer, "review", ctx.clock())
    entry = entry_numbered(ctx.chains.history(stack), number)
    record = entry.record
    if record is None or not record.break_glass or record.event != Event.STAGE:
        raise UsageError(
            f"{entry.label()} is not the start of a break-glass release (with a record that counts); "
            f"`release audit {stack}` lists those that wait for review, with their numbers"
        )
    if record.actor.strip().casefold() == actor.strip().casefold():
        raise UsageError(one_line(f"{actor} made that break-glass release; someone else reviews it"))
    proven = bool(ctx.run_url)  # in GitHub Actions: the reviewer is who started the run's attempt
    policy = project.stack_policies.get(stack)
    if not proven and policy is not None and not policy.promotion.allow_asserted_review:
        raise UsageError(
            f"a review outside GitHub Actions names its reviewer by a typed name (asserted), and "
            f"stackPolicies.{stack}.promotion.allowAssertedReview is false, so it would not close entry "
            f"{number}; nothing was changed. Run the review workflow (.github/workflows/review.yml)"
        )
    review_record = ReleaseRecord(
        Event.REVIEW,
        stack,
        actor,
        service=record.service,
        image=record.image,
        reviews=number,
        reason=note,
        run=ctx.run_url,
        approval={"source": GITHUB_RUN if proven else ASSERTED},
    )
    step = record_step(
        ctx, stack, record.service, review_record, f"release review of entry {number}", signer, lambda _: None
    )
    if not step.succeeded:
        raise EngineError(f"stack '{stack}': the review record could not be written: {step.detail}")
    return review_record
