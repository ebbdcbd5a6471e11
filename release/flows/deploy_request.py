"""What `release deploy` is asked to do, and what it will do, decided before its first `up`.

`prepare` is step 0 of the release (release.flows.deploy): it refuses before any change, naming
every reason at once where there are several,

- a bad request: an unknown service, an image not pinned by digest or of another service's
  repository, a flag or env var the service does not declare, nothing to release (ConfigError);
- a stack that needs signed records and no signing key (UsageError);
- another update running (ConcurrentReleaseError), or an unfinished release of the stack
  (UnfinishedReleaseError);
- an image the stack's supply-chain policy refuses (release.supply.gate);
- a precondition the release will need and does not have: a Prometheus that does not answer,
  health URLs that do not resolve (release.flows.preflight);

or decides the release (`PreparedRelease`): what the idle color will run, what a failure restores,
where it is checked and how it is judged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from core.config.base import Color, full_key
from core.config.rules import undeclared_config_problems
from core.config.sources import StackConfigValues, validated_stack_config
from core.config.stack import (
    AnalysisSettings,
    ColorConfig,
    ColorRun,
    HealthCheckSettings,
    ServiceRelease,
    StackConfig,
    StrategySettings,
    with_release,
    without_defaults,
)
from core.errors import (
    ConfigError,
    ConfigProblem,
    UnfinishedReleaseError,
)
from core.gateway import PREVIEW_HEADER
from core.images import ImageRefError, parse_pinned_image, repository_of
from release.context import ReleaseContext
from release.engine.shapes import UpdateResult
from release.flows.preflight import preflight
from release.flows.snapshot import needs_snapshot
from release.history.entries import RELEASES_KEY, HistoryEntry, refuse_if_running
from release.history.lifecycle import Lifecycle, read_lifecycle
from release.history.records import Event, ReleaseRecord, new_release_id
from release.history.signing import Signer, refuse_unsigned_write
from release.report.release_report import (
    HttpChecker,
    ReleaseReport,
    health_urls,
)
from release.smoke import Suite, suite_for, unreadable_secret
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
class PreparedRelease:
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


def prepare(ctx: ReleaseContext, request: DeployRequest, report: ReleaseReport) -> PreparedRelease | None:
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
    return PreparedRelease(
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
