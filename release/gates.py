"""Promotion gates as plain functions over parsed stack history: is this digest allowed into that stack?

Every rule is data in `Pulumi.yaml` (`stackPolicies.<stack>.promotion`, see core.config.project's
PromotionGate), never `if stack == ...`. The rules, by name:

    stage       the target is promoted from exactly one stack (production from staging, ...)
    verified    the digest passed a release's health window in the source stack (a `verify` record),
                and no later failed release, rollback or rejection revoked it
    rejected    the digest was rejected with `release reject` (never promoted again, even by break-glass)
    soak        the digest has been live and verified in the source for at least min_soak_minutes
    fresh       the verification is at most max_verification_age_hours old
    approval    inside GitHub Actions: the run's approval of the gate's environment, read from
                GitHub's API (who, when, which environment); outside it: a typed --approval, only
                where the gate allows asserted approvals (the audit marks them `asserted`)
    four-eyes   someone other than the person releasing (and than the run's actors and the author
                of the run's commit) approved
    freeze      no freeze window of the target is open now
    reason      a break-glass reason of at least three words

Evidence is read only from records that count (release.history.entries.RecordRules, and standing in the
stack's chain, release.history.chain), and where the gate requires signed evidence only from records
a trusted key signed; it is ordered by the chain, never by a signer's clock, so a verify record
replayed after a revocation never counts, and a revocation signed by a slow clock still follows the
verification it revokes. Soak and freshness read a verification's signed time only where it is
consistent with the chain and not in the future.

Break-glass skips `verified`, `soak`, `fresh` and `freeze`, never the others, and never the record.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from core.config.project import FreezeWindow, ProjectSettings, PromotionGate
from core.errors import ApprovalEvidenceError, UsageError
from release.github import EnvironmentApproval, in_github_actions, read_environment_approval
from release.history.chain import Standing
from release.history.entries import HistoryEntry
from release.history.records import Event
from release.history.signing import Trust

BREAK_GLASS_SKIPS = ("verified", "soak", "fresh", "freeze")
Broken = Callable[[str, str, str], None]
"""Report a broken rule: (rule, what was found, how to proceed)."""
MIN_REASON_WORDS = 3


GITHUB_ENVIRONMENT = "github-environment"
ASSERTED = "asserted"
GITHUB_RUN = "github-run"
"""A review run in GitHub Actions: its reviewer is who started the run's attempt, with the run's URL."""
ApprovalReader = Callable[[Mapping[str, str], str], EnvironmentApproval]


@dataclass(frozen=True)
class Approval:
    """How a promotion was approved: proven by GitHub's API, or asserted by a typed flag."""

    source: str
    """GITHUB_ENVIRONMENT (read from the run's review history) or ASSERTED (--approval/--approver)."""
    ref: str
    approvers: tuple[str, ...]
    environment: str = ""
    run_actor: str = ""
    """Who triggered the GitHub run (four eyes is checked against it too)."""
    read_at: str = ""
    triggering_actor: str = ""
    """Who started this attempt of the run (a re-run's; four eyes is checked against it too)."""
    commit_author: str = ""
    """The GitHub login of the run's commit's author (four eyes is checked against it too)."""
    commit_author_name: str = ""
    """That commit's git author name; shown when GitHub links no login to it."""

    @property
    def proven(self) -> bool:
        return self.source == GITHUB_ENVIRONMENT

    def to_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {"source": self.source, "ref": self.ref, "approvers": list(self.approvers)}
        if self.proven:
            document |= {"environment": self.environment, "runActor": self.run_actor, "readAt": self.read_at}
            if self.triggering_actor and self.triggering_actor != self.run_actor:
                document["triggeringActor"] = self.triggering_actor
            if self.commit_author:
                document["commitAuthor"] = self.commit_author
        return document


@dataclass(frozen=True)
class Evidence:
    """What the source stack's history says about one image of one service."""

    stack: str
    service: str
    image: str
    deployed: HistoryEntry | None = None
    verified: HistoryEntry | None = None
    revoked: HistoryEntry | None = None
    rejected: HistoryEntry | None = None
    live: bool = False
    uncounted_verify: HistoryEntry | None = None
    """The newest verify record of the image that history holds but that does not count as evidence
    here (unsigned where signed evidence is required, an untrusted key, outside the chain): said as
    the reason, never counted."""

    def holds(self, now: datetime) -> bool:
        """Verified, not revoked, and its signed time consistent with the chain at `now`."""
        return self.verified is not None and self.revoked is None and not self.verified.time_problem(now)

    @property
    def verified_at(self) -> datetime:
        """When the verification happened: its record's signed time (read only where it is consistent
        with the chain, see Evidence.holds), else its entry's end."""
        assert self.verified is not None
        record = self.verified.record
        return (record.signed_at if record else None) or self.verified.finished_at

    def describe(self) -> str:
        if self.verified is None and self.uncounted_verify is not None:
            return _why_not_evidence(self.uncounted_verify)
        if self.verified is None:
            return "no verify record" if self.deployed else f"never deployed in {self.stack}"
        text = f"verified in {self.verified.label()}"
        if self.revoked is not None:
            text += f", revoked by {self.revoked.label()}: {_reason(self.revoked)}"
        return text


@dataclass(frozen=True)
class GateViolation:
    rule: str
    found: str
    fix: str

    def render(self) -> str:
        return f"[{self.rule}] {self.found}\n      fix: {self.fix}"


@dataclass
class GateDecision:
    violations: list[GateViolation] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    """Rules break-glass skipped (each recorded with the release)."""

    @property
    def allowed(self) -> bool:
        return not self.violations


def evidence_for(
    stack: str,
    entries: Sequence[HistoryEntry],
    service: str,
    image: str,
    live: bool,
    signed_only: bool = False,
) -> Evidence:
    """Read `image`'s story in `stack` from its history.

    Records are taken newest first in the chain's order (release.history.chain: the counted records
    in history order; a replayed or forked record never counts, and no signer's clock orders
    anything). The newest `verify` record of this service and image counts, unless a newer record
    revoked it: a rollback, abort or rejection that names the image, or a failed update of the image
    itself. `signed_only`: only records a trusted key signed take part.
    """
    deployed = verified = revoked = rejected = None
    for entry in entries:
        state = entry.services.get(service)
        if deployed is None and entry.succeeded and state is not None and image in state.images.values():
            deployed = entry
            break
    for entry in entries:
        record = entry.signed_record if signed_only else entry.record
        if record is None:
            continue
        if rejected is None and record.event == Event.REJECT and image in record.revokes:
            rejected = entry
        if verified is not None:
            continue
        failed_release = record.image == image and not entry.succeeded and not record.keeps_image
        if revoked is None and (image in record.revokes or failed_release):
            revoked = entry
        if (
            record.event == Event.VERIFY
            and record.image == image
            and record.service == service
            and entry.succeeded
        ):
            verified = entry
    uncounted = None
    if verified is None:
        uncounted = next(
            (entry for entry in entries if _uncounted_verify(entry, service, image, signed_only)), None
        )
    return Evidence(stack, service, image, deployed, verified, revoked, rejected, live, uncounted)


def _uncounted_verify(entry: HistoryEntry, service: str, image: str, signed_only: bool) -> bool:
    claimed = entry.claimed.record if entry.claimed is not None else None
    counts = (entry.signed_record if signed_only else entry.record) is not None
    return (
        claimed is not None
        and not counts
        and claimed.event == Event.VERIFY
        and claimed.image == image
        and claimed.service == service
        and entry.succeeded
    )


def _why_not_evidence(entry: HistoryEntry) -> str:
    """Why a verify record history holds is not evidence: what the person must change."""
    if entry.trust is Trust.UNSIGNED:
        return (
            f"its verify record ({entry.label()}) is unsigned, and only records signed by a trusted key "
            "count as evidence here: release with RELEASE_SIGNING_KEY set (docs/operations.md, "
            "running a release from a laptop)"
        )
    if entry.trust is Trust.UNTRUSTED_KEY:
        return (
            f"its verify record ({entry.label()}) is signed by a key Pulumi.yaml did not trust when the "
            "record was signed (not in releaseSigning.trustedKeys, or retired before then): release again "
            "with a trusted key (docs/signing.md, key rotation)"
        )
    if entry.standing == Standing.REPLAYED:
        return (
            f"its verify record ({entry.label()}) is replayed{_link_detail(entry)}, which never counts: "
            "verify the digest again with a release of it"
        )
    if entry.standing == Standing.FORKED:
        return (
            f"its verify record ({entry.label()}) is on a fork of the stack's chain{_link_detail(entry)}: "
            "two writers started from one head, and a fork never counts; verify the digest again with a "
            "release of it (`release audit --verify` shows the chain)"
        )
    if entry.trust is Trust.INVALID_SIGNATURE:
        return (
            f"its verify record ({entry.label()}) has a signature that does not verify (changed after it "
            "was signed, or forged), which never counts: verify the digest again with a release of it"
        )
    return (
        f"its verify record ({entry.label()}) does not count here ({entry.standing or 'not in the chain'}): "
        "verify the digest again with a release of it in this stack"
    )


def _link_detail(entry: HistoryEntry) -> str:
    """` (<the chain's detail>)`, or '' when the chain gave none."""
    return f" ({entry.link.detail})" if entry.link is not None and entry.link.detail else ""


def decide_promotion(
    target: str,
    gate: PromotionGate,
    source: str,
    evidence: Evidence | None,
    now: datetime,
    actor: str,
    approval: Approval | None,
    break_glass_reason: str | None,
    approval_problem: str = "",
) -> GateDecision:
    """Every rule the promotion breaks (evidence None: not read yet, the evidence rules wait)."""
    decision = GateDecision()
    breaking_glass = break_glass_reason is not None

    def broken(rule: str, found: str, fix: str) -> None:
        if breaking_glass and rule in BREAK_GLASS_SKIPS:
            decision.skipped.append(rule)
        else:
            decision.violations.append(GateViolation(rule, found, fix))

    if gate.promote_from is None:
        broken(
            "stage", f"{target} is an entry stage: nothing is promoted into it", f"`release deploy {target}`"
        )
    elif source != gate.promote_from:
        broken(
            "stage",
            f"{target} takes digests from {gate.promote_from} only, not from {source}",
            f"`release promote {gate.promote_from} {target} ...` once the digest is verified there",
        )
    if breaking_glass:
        problem = break_glass_problem(break_glass_reason or "")
        if problem:
            decision.violations.append(
                GateViolation("reason", problem, 'give --reason "<what broke, and why now>"')
            )
    _approval_rules(target, gate, actor, approval, approval_problem, broken)
    window = open_freeze_window(gate.freeze_windows, now)
    if window is not None:
        broken(
            "freeze",
            f"{target} is frozen {window.starts} to {window.ends} {window.time_zone}"
            + (f" ({window.reason})" if window.reason else ""),
            "wait for the window to end, or --break-glass --reason for a real emergency",
        )
    if evidence is not None:
        _evidence_rules(gate, source, evidence, now, broken)
    decision.skipped = sorted(set(decision.skipped))
    return decision


def _approval_rules(
    target: str,
    gate: PromotionGate,
    actor: str,
    approval: Approval | None,
    problem: str,
    broken: Broken,
) -> None:
    environment = gate.approval_environment
    in_workflow = f"run the promotion in the GitHub workflow job of environment '{environment}'"
    if gate.require_approval and approval is None:
        fix = in_workflow if environment else "--approval <ticket or review URL> --approver <name>"
        if gate.allow_asserted_approval and environment:
            fix += ", or give --approval <ticket or review URL> --approver <name>"
        broken("approval", problem or "no approval given", fix)
    if approval is None:
        return
    if not approval.proven and not gate.allow_asserted_approval:
        broken(
            "approval",
            f"a typed approval ({approval.ref} by {', '.join(approval.approvers) or '?'}) is asserted, not "
            f"proven, and stackPolicies.{target}.promotion.allowAssertedApproval is false",
            in_workflow if environment else "ask for the promotion to be run where approvals are proven",
        )
    people = (actor, approval.run_actor, approval.triggering_actor, approval.commit_author)
    excluded = {name.strip().casefold() for name in people}
    excluded.discard("")
    counted = {name.strip().casefold() for name in approval.approvers if name.strip()}
    if gate.four_eyes:
        counted -= excluded
    if gate.four_eyes and approval.proven and not approval.commit_author:
        broken(
            "four-eyes",
            "GitHub links the author of the run's commit"
            + (f" ({approval.commit_author_name})" if approval.commit_author_name else "")
            + " to no account, so no approval can be proven to come from someone other than its author",
            "make the commit with an email linked to the author's GitHub account (or merge it through "
            "a pull request), then start a new run",
        )
    elif gate.four_eyes and not counted:
        who = ", ".join(approval.approvers) or "nobody"
        runners = sorted({approval.run_actor, approval.triggering_actor} - {"", actor})
        author = approval.commit_author if approval.commit_author not in ("", actor, *runners) else ""
        broken(
            "four-eyes",
            f"approved by {who}, who is not someone other than the person releasing ({actor}"
            + (f", run by {' and '.join(runners)}" if runners else "")
            + (f", the commit's author {author}" if author else "")
            + ")",
            "ask someone else to approve" + (" the environment" if approval.proven else ", and name them"),
        )
    elif len(counted) < gate.min_approvals:
        broken(
            "min-approvals",
            f"{len(counted)} distinct approver(s) count"
            + (" (the person releasing, the run's actors and the commit's author do not)" * gate.four_eyes)
            + f"; stackPolicies.{target}.promotion.minApprovals asks for {gate.min_approvals}",
            f"{gate.min_approvals - len(counted)} more reviewer(s) approve"
            + (" the environment" if approval.proven else ", and name them"),
        )


def _evidence_rules(
    gate: PromotionGate, source: str, evidence: Evidence, now: datetime, broken: Broken
) -> None:
    image = evidence.image
    if evidence.rejected is not None:  # never skipped, not even by break-glass
        broken(
            "rejected",
            f"{image} was rejected in {source} ({evidence.rejected.label()}: {_reason(evidence.rejected)})",
            "build and release a new digest",
        )
    if evidence.verified is None or evidence.revoked is not None:
        broken(
            "verified",
            f"{image} is not verified in {source}: {evidence.describe()}",
            f"release it in {source} (`release deploy`/`release promote`) and let its health window pass",
        )
        return
    late = evidence.verified.time_problem(now)
    if late:
        broken(
            "verified",
            f"{image} was verified in {source} in {evidence.verified.label()}, but that record's time "
            f"proves no age: {late}",
            f"release it in {source} again from a machine whose clock is right",
        )
        return
    age = now - evidence.verified_at
    if not evidence.live:
        broken(
            "soak",
            f"{image} is no longer live in {source}",
            f"promote what {source} runs now, or release {image} there again",
        )
    elif age < timedelta(minutes=gate.min_soak_minutes):
        remaining = timedelta(minutes=gate.min_soak_minutes) - age
        broken(
            "soak",
            f"{image} has been live and verified in {source} for {_minutes(age)} of the required "
            f"{gate.min_soak_minutes} min",
            f"wait {_minutes(remaining)} more",
        )
    if gate.max_verification_age_hours is not None and age > timedelta(hours=gate.max_verification_age_hours):
        broken(
            "fresh",
            f"the verification of {image} is {age.total_seconds() / 3600:.1f} h old (limit "
            f"{gate.max_verification_age_hours:g} h)",
            f"release it in {source} again to re-verify it",
        )


def open_freeze_window(windows: Sequence[FreezeWindow], now: datetime) -> FreezeWindow | None:
    """The freeze window open at `now` (an aware datetime), if any; judged in each window's zone."""
    for window in windows:
        local = now.astimezone(ZoneInfo(window.time_zone))
        if window.contains(local.weekday() * 1440 + local.hour * 60 + local.minute):
            return window
    return None


def break_glass_problem(reason: str) -> str:
    words = reason.split()
    if len(words) < MIN_REASON_WORDS:
        return (
            f"break-glass needs a reason of at least {MIN_REASON_WORDS} words; got {reason!r}. It is "
            "recorded in stack history and reviewed later"
        )
    return ""


def approval_from(
    approval_ref: str | None,
    approver: str | None,
    gate: PromotionGate,
    env: Mapping[str, str],
    reader: ApprovalReader = read_environment_approval,
) -> tuple[Approval | None, str]:
    """The approval of this promotion, and why there is none when the gate needs one.

    Inside GitHub Actions, for a gate with an approval environment, the approval is read from the
    run's review history through GitHub's API (typed flags are ignored there: what counts is what
    GitHub recorded). Elsewhere a typed --approval is an asserted approval.
    """
    environment = gate.approval_environment
    if gate.require_approval and environment and in_github_actions(env):
        try:
            proof = reader(env, environment)
        except ApprovalEvidenceError as error:
            return None, f"GitHub does not prove an approval of environment '{environment}': {error}"
        return (
            Approval(
                GITHUB_ENVIRONMENT,
                proof.run_url,
                proof.approvers,
                environment=proof.environment,
                run_actor=proof.actor,
                read_at=proof.read_at,
                triggering_actor=proof.triggering_actor,
                commit_author=proof.commit_author,
                commit_author_name=proof.commit_author_name,
            ),
            "",
        )
    if approval_ref:
        return Approval(ASSERTED, approval_ref, (approver,) if approver else ()), ""
    return None, ""


def _reason(entry: HistoryEntry) -> str:
    record = entry.record
    return record.reason if record is not None and record.reason else entry.message


def _minutes(delta: timedelta) -> str:
    return f"{max(0, int(delta.total_seconds() // 60))} min"


def refuse_deploy_into_promotion_stage(project: ProjectSettings, stack: str, service: str) -> None:
    """A stack whose gate names a source receives digests by promotion only: `release deploy` into it
    is refused (UsageError, exit 2) with the promote command to use instead."""
    policy = project.stack_policies.get(stack)
    if policy is not None and policy.promotion.promote_from is not None:
        source = policy.promotion.promote_from
        raise UsageError(
            f"'{stack}' receives digests by promotion only, from '{source}' (stackPolicies.{stack}"
            f".promotion in Pulumi.yaml): `release promote {source} {stack} --service {service}`"
        )
