"""ReleaseContext: what every command and flow works with, built once per command.

The engine, the project (its directory and Pulumi.yaml's settings, read once), who is acting, the
health checker, the webhook notifier, the record signer, the CI run's URL and the log. Flows take
one context instead of five collaborators; tests and the benchmark build one around the engine
double (`ReleaseContext.for_tests`).
"""

from __future__ import annotations

import getpass
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from core.config.sources import ProjectFile, project_dir_of
from core.errors import UsageError
from release import log
from release.clock import Clock, system_clock
from release.log import Progress
from release.terminal import Ask, ask
from release.testing.fake_clock import FakeClock

if TYPE_CHECKING:
    # What a collaborator is made of is imported where it is made (below): `release plan`, which
    # needs none of them, loads no HTTP client, signing library or history reader.
    from core.config.project import ProjectSettings
    from release.annotations import Annotator
    from release.engine.protocol import Engine
    from release.history.signing import Signer
    from release.history.writer import RecordChains
    from release.notify import Notifier
    from release.report.release_report import Checker
    from release.supply.gate import ImageVerifier

EngineFactory = Callable[[Path], "Engine"]


@dataclass
class ReleaseContext:
    """One command's collaborators. Each is made on first use, so `release keygen` needs no project
    and `release plan` no engine."""

    env: Mapping[str, str]
    engine_factory: EngineFactory
    given_project_dir: Path | None = None
    given_actor: str | None = None
    given_checker: Checker | None = None
    """How a step checks health; None: over HTTP (release.report.release_report.HttpChecker)."""
    progress: Progress = log.progress
    sleep: Callable[[float], None] = time.sleep
    """How a step waits (the metric analysis waits for its window to fill after a switch)."""
    clock: Clock = system_clock
    """The time every decision is taken at (freeze windows, soak, drill age, record times)."""
    given_notifier: Notifier | None = None
    given_annotator: Annotator | None = None
    given_signer: Signer | None = None
    from_environment: bool = True
    """False in tests: the signer and notifier are only what was given, never the environment's."""
    ask: Ask = ask
    """Questions to the person at the terminal (a confirmation before changing a guarded stack)."""
    given_images: ImageVerifier | None = None
    """Verifies images against Pulumi.yaml's supplyChain (release.supply); default: their registry."""

    @cached_property
    def project_dir(self) -> Path:
        return project_dir_of((self.given_project_dir or Path.cwd()).resolve())

    @cached_property
    def project_file(self) -> ProjectFile:
        """Pulumi.yaml, read once per command."""
        return ProjectFile.read(self.project_dir)

    @property
    def project(self) -> ProjectSettings:
        """Pulumi.yaml's project-level settings; StackFileError (exit 2) when invalid."""
        return self.project_file.settings

    @cached_property
    def checker(self) -> Checker:
        from release.report.release_report import HttpChecker

        return self.given_checker if self.given_checker is not None else HttpChecker()

    @cached_property
    def engine(self) -> Engine:
        return self.engine_factory(self.project_dir)

    @cached_property
    def actor(self) -> str:
        """Who acts. In GitHub Actions always who started the run's attempt: `--actor` may not name
        someone else there (an approver could otherwise release as another person)."""
        from release.github import in_github_actions

        found = actor_from(self.env)
        if self.given_actor and in_github_actions(self.env) and self.given_actor != found:
            raise UsageError(
                f"--actor {self.given_actor!r}: in GitHub Actions the person releasing is who started the "
                f"run ({found}, from GITHUB_TRIGGERING_ACTOR/GITHUB_ACTOR); leave --actor out there"
            )
        return self.given_actor or found

    @cached_property
    def chains(self) -> RecordChains:
        """Each stack's history as this command reads it, and the head of its chain of records, which
        every record it writes extends (release.history.writer)."""
        from release.history.entries import read_history
        from release.history.writer import RecordChains

        return RecordChains(lambda stack: read_history(self.engine, stack, self.project))

    @cached_property
    def signer(self) -> Signer | None:
        from release.history.signing import Signer

        if self.given_signer is not None or not self.from_environment:
            return self.given_signer
        return Signer.from_environment(self.env)

    @cached_property
    def notifier(self) -> Notifier:
        from release.notify import NO_NOTIFIER, Notifier

        if self.given_notifier is not None:
            return self.given_notifier
        return Notifier.from_environment(self.env) if self.from_environment else NO_NOTIFIER

    @cached_property
    def annotator(self) -> Annotator:
        """Grafana's annotations of each release step ($GRAFANA_URL and $GRAFANA_TOKEN), or none."""
        from release.annotations import NO_ANNOTATOR, Annotator

        if self.given_annotator is not None:
            return self.given_annotator
        return Annotator.from_environment(self.env) if self.from_environment else NO_ANNOTATOR

    @cached_property
    def images(self) -> ImageVerifier:
        """Verifies images against their registry, once per digest and command (release.supply.gate)."""
        from release.supply.gate import RegistryImageVerifier

        if self.given_images is not None:
            return self.given_images
        return RegistryImageVerifier(self.env, self.project_dir)

    @cached_property
    def run_url(self) -> str:
        """The CI run's URL (GitHub Actions), recorded with every update; '' outside CI."""
        return run_url(self.env)

    @classmethod
    def for_tests(
        cls,
        engine: Engine,
        project_dir: Path,
        *,
        checker: Checker | None = None,
        progress: Progress = log.progress,
        notifier: Notifier | None = None,
        annotator: Annotator | None = None,
        signer: Signer | None = None,
        env: Mapping[str, str] | None = None,
        sleep: Callable[[float], None] | None = None,
        clock: FakeClock | None = None,
        images: ImageVerifier | None = None,
    ) -> ReleaseContext:
        """A context around an engine (double) that reads nothing from the environment, nor the wall
        clock: it runs on `clock`, by default the engine double's own (`FakeEngine.clock`). Its waits
        move that clock by what they wait, unless the test gives `sleep` (a recorder: then no time
        passes, as when a test's series already fill every window)."""
        test_clock = clock if clock is not None else getattr(engine, "clock", None)
        if not isinstance(test_clock, FakeClock):
            raise TypeError("a test context needs a FakeClock: pass clock=, or use the engine double's")

        return cls(
            env=dict(env or {}),
            engine_factory=lambda _: engine,
            given_project_dir=project_dir,
            given_checker=checker,
            progress=progress,
            sleep=sleep or test_clock.sleep,
            clock=test_clock,
            given_notifier=notifier,
            given_annotator=annotator,
            given_signer=signer,
            from_environment=False,
            given_images=images,
        )


def actor_from(env: Mapping[str, str]) -> str:
    """Who is acting: in GitHub Actions who started this attempt of the run ($GITHUB_TRIGGERING_ACTOR,
    the re-runner on a re-run, else $GITHUB_ACTOR); elsewhere $RELEASE_OPERATOR, else git's user.name,
    else the login."""
    from release.github import in_github_actions

    if in_github_actions(env):
        for variable in ("GITHUB_TRIGGERING_ACTOR", "GITHUB_ACTOR"):
            if (env.get(variable) or "").strip():
                return env[variable].strip()
    named = env.get("RELEASE_OPERATOR") or env.get("GITHUB_ACTOR")
    if named:
        return named
    try:
        configured = subprocess.run(
            ["git", "config", "user.name"], capture_output=True, text=True, timeout=5, check=False
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        configured = ""
    if configured:
        return configured
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def run_url(env: Mapping[str, str]) -> str:
    """The GitHub Actions run URL, or '' outside GitHub Actions."""
    from release.github import in_github_actions

    if not in_github_actions(env) or not env.get("GITHUB_RUN_ID"):
        return ""
    server = env.get("GITHUB_SERVER_URL", "https://github.com")
    return f"{server}/{env.get('GITHUB_REPOSITORY', '')}/actions/runs/{env['GITHUB_RUN_ID']}"
