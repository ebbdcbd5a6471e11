"""What a real release does to a committed stack file, done to a copy: the release workflow runs
`release deploy dev --service api --image <digest>` and commits the `Pulumi.dev.yaml` the engine
rewrote. Here the real deploy flow runs against the engine double, and the `platform:releases`
value it leaves in the stack is written back into the copy's stack file, as `pulumi config set`
would.

    python -m tests.simulated_release <project dir> [stack]

rewrites `<project dir>/Pulumi.<stack>.yaml` (default: dev) in place: use it on a copy only (CI
runs the suite on a rewritten clone to prove that no test depends on values a release changes).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

from core.config.base import PROJECT_NAME
from release.context import ReleaseContext
from release.flows.deploy import deploy
from release.testing.fake_engine import FakeEngine
from tests.release_doubles import FAST_HEALTH_CHECK, TEST_KEYS, cluster, trust_key

RELEASED = "registry.example.test/platform/api@sha256:" + "5e" * 32
"""The digest the simulated release deploys (any digest the committed files do not hold)."""


def release_into_stack_file(project_dir: Path, stack: str = "dev", image: str = RELEASED) -> dict[str, Any]:
    """Release `image` as `api` into `stack` of the project at `project_dir` and write the
    resulting `platform:releases` into its stack file; returns the new value."""
    trust_key(project_dir, "simulated-release", TEST_KEYS.public_key)
    engine = FakeEngine(project_dir=project_dir)
    engine.add_stack(stack, edit={f"{PROJECT_NAME}:healthCheck": FAST_HEALTH_CHECK})
    with cluster(engine, stack) as api:
        report = deploy(ReleaseContext.for_tests(engine, project_dir), api.request(image))
    if report.phase != "Healthy":
        raise RuntimeError(f"the simulated release did not finish Healthy: {report.failure}")
    releases = engine.stacks[stack].config[f"{PROJECT_NAME}:releases"].value
    path = project_dir / f"Pulumi.{stack}.yaml"
    document = yaml.safe_load(path.read_text())
    document["config"][f"{PROJECT_NAME}:releases"] = releases
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return dict(releases)


def _untrust(project_dir: Path) -> None:
    """Remove the key the simulation trusted, so the copy's Pulumi.yaml is as committed."""
    path = project_dir / "Pulumi.yaml"
    document = yaml.safe_load(path.read_text())
    keys = document["config"]["releaseSigning"]["value"]["trustedKeys"]
    document["config"]["releaseSigning"]["value"]["trustedKeys"] = [
        key for key in keys if key.get("name") != "simulated-release"
    ]
    path.write_text(yaml.safe_dump(document, sort_keys=False))


if __name__ == "__main__":
    directory = Path(sys.argv[1]).resolve()
    original = (directory / "Pulumi.yaml").read_text()
    released = release_into_stack_file(directory, sys.argv[2] if len(sys.argv) > 2 else "dev")
    (directory / "Pulumi.yaml").write_text(original)
    print(f"rewrote {directory}/Pulumi.{sys.argv[2] if len(sys.argv) > 2 else 'dev'}.yaml: api -> {RELEASED}")
