"""What a release command did, step by step: the report the CLI prints as text or JSON.

Phases use Argo Rollouts' words: Healthy (the release or rollback finished and checks pass),
RolledBack (a release failed and was rolled back automatically), RollbackFailed (the rollback
itself failed or was refused: a human is needed), Planned (a dry run; nothing changed).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from core.config.base import PROJECT_NAME
from core.config.sources import ConfigEntry
from core.config.stack import HealthCheckSettings, StackConfig
from core.errors import ExitCode
from core.health import Verdict, check_sync
from core.naming import service_urns
from release.clock import Clock
from release.engine.protocol import Engine, UpdateOutcome
from release.history.records import ReleaseRecord, summary_of
from release.history.signing import Signer
from release.history.writer import RecordChains
from release.log import Progress
from release.notify import NotificationResult
from release.report.rollback_plan import RollbackPlan
from release.smoke import SmokeResult, Suite, run_suite_sync

Checker = Callable[[Sequence[str], HealthCheckSettings, Mapping[str, str]], Verdict]


class Phase(StrEnum):
    """Where a release (or rollback) ended, as Argo Rollouts names phases; each has one exit code."""

    HEALTHY = "Healthy"
    PLANNED = "Planned"
    ROLLED_BACK = "RolledBack"
    ROLLBACK_FAILED = "RollbackFailed"

    @property
    def exit_code(self) -> ExitCode:
        return {
            Phase.HEALTHY: ExitCode.OK,
            Phase.PLANNED: ExitCode.OK,
            Phase.ROLLED_BACK: ExitCode.FINDING,
            Phase.ROLLBACK_FAILED: ExitCode.NEEDS_A_HUMAN,
        }[self]


class HttpChecker:
    """The real checker (core.health over HTTP), sending `headers` with every probe."""

    def __init__(self, headers: Mapping[str, str] | None = None) -> None:
        self._headers = dict(headers or {})

    def __call__(
        self, urls: Sequence[str], settings: HealthCheckSettings, expect_json: Mapping[str, str]
    ) -> Verdict:
        return check_sync(urls, settings, expect_json, headers=self._headers)

    def with_headers(self, headers: Mapping[str, str]) -> HttpChecker:
        return HttpChecker({**self._headers, **headers})

    def __repr__(self) -> str:
        return f"HttpChecker(headers={sorted(self._headers)})"  # names only, never a value


default_checker: Checker = HttpChecker()


def with_headers(checker: Checker, headers: Mapping[str, str]) -> Checker:
    """`checker` sending `headers` too, if it sends requests itself (HttpChecker); a checker that
    sends none (a test's recorder) is returned as it is."""
    bind = getattr(checker, "with_headers", None)
    return bind(headers) if callable(bind) and headers else checker


@dataclass
class Step:
    name: str
    succeeded: bool
    seconds: float
    detail: str = ""
    verdict: Verdict | None = None
    update: UpdateOutcome | None = None
    analysis: dict[str, Any] | None = None
    """The metric analysis this step ran (release.analysis.Analysis.to_json): queries, values, verdicts."""
    smoke: SmokeResult | None = None
    """The smoke suite this step ran (release.smoke): the count and each failed check."""

    def to_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "step": self.name,
            "succeeded": self.succeeded,
            "seconds": round(self.seconds, 3),
            "detail": self.detail,
        }
        if self.update is not None:
            document["resourceChanges"] = self.update.resource_changes
            document["engineError"] = self.update.error or None
        if self.verdict is not None:
            document["verdict"] = self.verdict.to_json()
        if self.analysis is not None:
            document["analysis"] = self.analysis
        if self.smoke is not None:
            document["smoke"] = self.smoke.to_json()
        return document


@dataclass
class ReleaseReport:
    """What a release did, step by step; the CLI prints it as text or JSON."""

    command: str
    stack: str
    phase: Phase = Phase.HEALTHY
    service: str = ""
    image: str = ""
    config_changes: dict[str, str] = field(default_factory=dict)
    """The flag and env values this release sets on the color it stages (its other values as before)."""
    config_fingerprint: str = ""
    snapshot: dict[str, Any] = field(default_factory=dict)
    """The database snapshot taken before this release's migration (release.flows.snapshot)."""
    """The fingerprint of everything the staged color reads besides its image."""
    steps: list[Step] = field(default_factory=list)
    failure: str = ""
    rollback: RollbackPlan | None = None
    notes: list[str] = field(default_factory=list)
    notifications: list[NotificationResult] = field(default_factory=list)

    @property
    def exit_code(self) -> ExitCode:
        return self.phase.exit_code

    @property
    def seconds(self) -> float:
        return sum(step.seconds for step in self.steps)

    def to_json(self) -> dict[str, Any]:
        return {
            "command": self.command,
            "stack": self.stack,
            "service": self.service or None,
            "image": self.image or None,
            "configChanges": self.config_changes,
            "configFingerprint": self.config_fingerprint or None,
            "snapshot": self.snapshot or None,
            "phase": self.phase,
            "failure": self.failure or None,
            "seconds": round(self.seconds, 3),
            "steps": [step.to_json() for step in self.steps],
            "rollback": None if self.rollback is None else self.rollback.to_json(),
            "notes": self.notes,
            "notifications": [result.to_json() for result in self.notifications],
            "exitCode": self.exit_code,
        }

    def to_markdown(self) -> str:
        """The report for humans in a PR or job summary: steps with timings, verdicts, what was restored."""
        lines = [f"## release {self.command} {self.service} on `{self.stack}`: **{self.phase}**", ""]
        if self.image:
            lines.append(f"- image: `{self.image}`")
        if self.config_fingerprint:
            changes = ", ".join(f"`{name}={value}`" for name, value in sorted(self.config_changes.items()))
            lines.append(f"- config `{self.config_fingerprint}`" + (f": sets {changes}" if changes else ""))
        if self.snapshot:
            lines.append(f"- database snapshot before the migration: `{_snapshot_text(self.snapshot)}`")
        if self.failure:
            lines.append(f"- failed: {self.failure}")
        lines += [f"- {note}" for note in self.notes]
        lines += ["", "| step | result | seconds | detail |", "|---|---|---|---|"]
        for step in self.steps:
            detail = step.detail.replace("|", "\\|")
            lines.append(
                f"| {step.name} | {'ok' if step.succeeded else 'FAILED'} | {step.seconds:.2f} | {detail} |"
            )
        verdicts = [step for step in self.steps if step.verdict is not None]
        if verdicts:
            lines += ["", "### Health verdicts", ""]
            for step in verdicts:
                assert step.verdict is not None
                kinds = ", ".join(step.verdict.failure_kinds) or "none"
                lines.append(
                    f"- {step.name}: {step.verdict.phase}, {len(step.verdict.probes)} probes, "
                    f"failures: {kinds}; {step.verdict.reason}"
                )
        smoked = [step for step in self.steps if step.smoke is not None]
        if smoked:
            lines += ["", "### Smoke checks", ""]
            for step in smoked:
                assert step.smoke is not None
                lines.append(f"- {step.name} ({step.smoke.origin}): {step.smoke.headline()}")
                lines += [
                    f"  - `{check.name}` FAILED: {check.describe().split(': ', 1)[1]}".replace("|", "\\|")
                    for check in step.smoke.failed
                ]
        if self.rollback is not None:
            lines += ["", "### Rollback", "", "```", self.rollback.render().rstrip(), "```"]
        if self.notifications:
            lines += ["", "### Notifications", ""]
            lines += [
                f"- {result.event}: {'sent' if result.sent else 'NOT sent: ' + result.error}"
                for result in self.notifications
            ]
        return "\n".join(lines) + "\n"

    def render(self) -> str:
        title = f"{self.command} {self.service} {self.image}".strip()
        lines = [f"{title} on '{self.stack}': {self.phase}"]
        if self.config_changes:
            sets = ", ".join(f"{name}={value}" for name, value in sorted(self.config_changes.items()))
            lines.append(f"  config {self.config_fingerprint}: sets {sets}")
        if self.snapshot:
            lines.append(f"  snapshot before the migration: {_snapshot_text(self.snapshot)}")
        for step in self.steps:
            mark = "ok  " if step.succeeded else "FAIL"
            lines.append(f"  {mark} {step.name:<13} {step.seconds:7.2f}s  {step.detail}")
        if self.failure:
            lines.append(f"  failed: {self.failure}")
        if self.rollback is not None:
            lines += ["  " + line for line in self.rollback.render().splitlines()]
        lines += [f"  note: {note}" for note in self.notes]
        lines += [
            f"  notification ({result.event}): {'sent' if result.sent else 'NOT sent: ' + result.error}"
            for result in self.notifications
        ]
        return "\n".join(lines) + "\n"


def up_step(
    name: str,
    engine: Engine,
    stack: str,
    config: Mapping[str, ConfigEntry],
    message: str,
    progress: Progress,
    targets: Sequence[str] = (),
) -> Step:
    progress(f"{name}: pulumi up -s {stack} ({summary_of(message)})")
    started = time.monotonic()
    outcome = engine.up(stack, config, message, targets=targets)
    seconds = time.monotonic() - started
    detail = (
        f"{outcome.changed} resource(s) changed" if outcome.succeeded else f"update failed: {outcome.error}"
    )
    return Step(name, outcome.succeeded, seconds, detail, update=outcome)


class RecordWriting(Protocol):
    """What writing a record takes (a ReleaseContext has it): the engine, the chains, the clock."""

    @property
    def engine(self) -> Engine: ...

    @property
    def chains(self) -> RecordChains: ...

    @property
    def clock(self) -> Clock: ...


def record_step(
    ctx: RecordWriting,
    stack: str,
    service: str,
    record: ReleaseRecord,
    summary: str,
    signer: Signer | None,
    progress: Progress,
    name: str = "record",
) -> Step:
    """Write `record`, chained onto the stack's head (release.history.writer), into the stack's
    history with an `up` that changes nothing: targeted at the service's stable Service, with no
    config change. `name` is the step's, in the report and log."""
    stable_urn = service_urns(stack, PROJECT_NAME, service)[0]
    with ctx.chains.writing(stack, record, summary, signer, ctx.clock()) as message:
        return up_step(name, ctx.engine, stack, {}, message, progress, targets=[stable_urn])


def check_step(
    name: str,
    checker: Checker,
    urls: Sequence[str],
    settings: HealthCheckSettings,
    expect: Mapping[str, str],
    progress: Progress,
) -> Step:
    progress(f"{name}: health-checking {', '.join(urls)}")
    started = time.monotonic()
    verdict = checker(urls, settings, expect)
    seconds = time.monotonic() - started
    return Step(name, verdict.healthy, seconds, f"{verdict.phase}: {verdict.reason}", verdict=verdict)


def smoke_step(
    name: str, suite: Suite, target: str, origin: str, headers: Mapping[str, str], progress: Progress
) -> Step:
    """Run `suite` against `origin` (`target`: preview, the idle color through the preview route; or
    stable): a step that succeeds only when every check passes, and keeps the result."""
    progress(f"{name}: {len(suite.checks)} smoke check(s) of {suite.service} against {origin}")
    started = time.monotonic()
    result = run_suite_sync(suite, target, origin, headers)
    return Step(name, result.passed, time.monotonic() - started, result.summary(), smoke=result)


def smoke_counts(steps: Sequence[Step]) -> dict[str, Any]:
    """What a record keeps of the smoke suites a release ran: per target, the count and the checks
    that failed (`{"preview": {"passed": 4, "total": 4, "failed": []}, "stable": ...}`)."""
    return {step.smoke.target: step.smoke.counts() for step in steps if step.smoke is not None}


def health_urls(
    stack_config: StackConfig,
    outputs: Mapping[str, Any],
    service: str,
    preview: bool,
    override: Sequence[str],
) -> list[str]:
    """Where to check a service: `override` if given, else the hostname the stack's outputs expose
    (`services.<svc>.stableHostname` / `previewHostname`), else the one its config derives."""
    if override:
        return list(override)
    exposed = (outputs.get("services") or {}).get(service) or {}
    hostname = exposed.get("previewHostname" if preview else "stableHostname")
    return [stack_config.health_url(service, preview, hostname if isinstance(hostname, str) else None)]


def _snapshot_text(snapshot: dict[str, Any]) -> str:
    return f"{snapshot.get('snapshot')} of {snapshot.get('sourceInstance')} at {snapshot.get('createdAt')}"
