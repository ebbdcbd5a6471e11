"""Driver for tests/test_interrupts.py: `release deploy dev --service api` through `release.cli.main`,
in its own process so that a test can send it a real SIGTERM.

Its engine is the engine double with one difference: every `up` first runs `pulumi up` (the stand-in
first on PATH, tests/pulumi_standin.py) the way the real adapter runs the CLI
(release.engine.cancel.run_cancellable), and only if that succeeded changes the double's state. So
the release's preview `up` is a real 6 s child process an interrupt must cancel, and the rollback's
`up` after it is another, which fails as the CLI does if the first still holds the stack's lock.
Real HTTP servers answer for the service's preview and stable URLs (tests.release_doubles.cluster).

Run: `python -m tests.interrupted_deploy` (exits with the command's exit code).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from core.config.sources import ConfigEntry
from core.errors import ConcurrentReleaseError
from release.cli import main
from release.engine.cancel import run_cancellable
from release.engine.protocol import UpdateOutcome
from release.testing.fake_engine import FakeEngine
from tests.release_doubles import FAST_BLUE_GREEN, NEW_API, cluster, signed_project


class CliBackedEngine(FakeEngine):
    """The engine double, whose every `up` (once `cli` is set) first runs `pulumi up` as a child process."""

    cli = False

    def up(
        self,
        stack: str,
        config: Mapping[str, ConfigEntry],
        message: str,
        targets: Sequence[str] = (),
        on_output: Any = None,
    ) -> UpdateOutcome:
        if self.cli:
            directory = str(self.project_dir)
            code, _stdout, stderr = run_cancellable(["pulumi", "up"], directory, os.environ, on_output)
            if "the stack is currently locked by" in stderr:
                raise ConcurrentReleaseError(stack, stderr)
            if code != 0:
                return UpdateOutcome(False, 0.0, error=stderr)
        return super().up(stack, config, message, targets, on_output)


def run() -> int:
    engine = CliBackedEngine(project_dir=signed_project())
    engine.add_stack("dev", edit=FAST_BLUE_GREEN)
    engine.cli = True
    with cluster(engine, "dev") as api:
        argv = ["deploy", "dev", "--service", "api", "--image", NEW_API]
        argv += ["--preview-url", api.preview_url, "--stable-url", api.stable_url]
        return main([*argv, "--project-dir", str(engine.project_dir)], lambda _: engine, engine.clock)


if __name__ == "__main__":
    sys.exit(run())
