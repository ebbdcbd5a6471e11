"""Shared helpers: evaluate the real program (`__main__.py`) under Pulumi's mock runtime.

The program reads its config from the runtime exactly as under `pulumi up`; these helpers hand it
the config the engine would, built from the repository's own Pulumi.yaml and stack files, in a copy
(PROJECT) whose `platform:releases` are the pinned ones of tests/fixtures/releases.yaml: a release
rewrites that knob in the committed files, so no test depends on what the last release left there.
In that copy no stack verifies images (each stack policy's `supplyChain` is left out): its images
name a registry that does not exist; tests/test_supply_chain.py releases against a real registry.
"""

from __future__ import annotations

import atexit
import copy
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.config.base import PROJECT_NAME
from core.config.rules import load_stack_config
from core.config.sources import engine_text, read_stack_file
from core.errors import ConfigError, ConfigProblem
from release.offline.mock_runtime import ProgramRun, evaluate_program

ROOT = Path(__file__).resolve().parents[1]
"""The repository: its code, docs and committed stack files (tests of those are `test_committed_*`)."""
STACKS = ("dev", "staging", "production")
RELEASES_FIXTURE = ROOT / "tests" / "fixtures" / "releases.yaml"


def pinned_project(destination: Path) -> Path:
    """The program, Pulumi.yaml and stack files copied into `destination`, each stack's
    `platform:releases` replaced by its value in tests/fixtures/releases.yaml."""
    pinned = yaml.safe_load(RELEASES_FIXTURE.read_text())
    shutil.copy(ROOT / "__main__.py", destination / "__main__.py")
    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    for policy in project["config"]["stackPolicies"]["value"].values():
        policy.pop("supplyChain", None)
    (destination / "Pulumi.yaml").write_text(yaml.safe_dump(project, sort_keys=False))
    for stack in STACKS:
        document = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())
        document["config"][f"{PROJECT_NAME}:releases"] = pinned[stack]
        (destination / f"Pulumi.{stack}.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
    return destination


def _session_project() -> Path:
    directory = Path(tempfile.mkdtemp(prefix="pinned-project-"))
    atexit.register(shutil.rmtree, directory, True)
    return pinned_project(directory)


PROJECT = _session_project()
"""The project every test reads its stack files from (never mutate it: copy it with `project`)."""

# Test-only values, so tests can prove these exact strings never leak. Not real secrets.
TEST_SECRETS = {
    "SESSION_SIGNING_KEY": "test-only-session-signing-value-7f3a",
    "PAYMENT_PROVIDER_API_KEY": "test-only-payment-provider-value-91c2",
    "PREVIEW_TOKEN": "test-only-preview-token-value-5d8e",
    "SMOKE_ACCOUNT_TOKEN": "test-only-smoke-account-value-3b7c",
}

SECRET_NAMES = sorted(TEST_SECRETS)

Edit = Callable[[dict[str, Any]], None]


def engine_config(
    stack: str, edit: Edit | None = None, secrets: dict[str, str] | None = None, project_dir: Path = PROJECT
) -> tuple[dict[str, str], list[str]]:
    """The config the engine would pass the program for `stack`; `edit` may change parsed values."""
    stack_file = read_stack_file(project_dir, stack)
    values = copy.deepcopy(stack_file.raw.values)
    secret_keys = set(stack_file.secret_keys)
    secrets = TEST_SECRETS if secrets is None else secrets
    if secrets:
        values[f"{PROJECT_NAME}:appSecrets"] = dict(secrets)
        secret_keys.add(f"{PROJECT_NAME}:appSecrets")
    if edit is not None:
        edit(values)
    return {key: engine_text(value) for key, value in values.items()}, sorted(secret_keys)


def run_program(
    stack: str, edit: Edit | None = None, secrets: dict[str, str] | None = None, project_dir: Path = PROJECT
) -> ProgramRun:
    config, secret_keys = engine_config(stack, edit, secrets, project_dir)
    return evaluate_program(project_dir / "__main__.py", PROJECT_NAME, stack, config, secret_keys)


@cache
def baseline(stack: str) -> ProgramRun:
    """The unmodified stack, evaluated once per test session (callers must not mutate it)."""
    return run_program(stack)


def copy_project(destination: Path) -> Path:
    """A throwaway copy of the test project (program, Pulumi.yaml, pinned stack files) to change."""
    for path in [PROJECT / "__main__.py", *PROJECT.glob("Pulumi*.yaml")]:
        shutil.copy(path, destination / path.name)
    return destination


def edit_yaml(path: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    document = yaml.safe_load(path.read_text())
    edit(document)
    path.write_text(yaml.safe_dump(document, sort_keys=False))


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return copy_project(tmp_path)


def with_knob(knob: str, **changes: Any) -> Edit:
    """An edit of one object knob (`platform:<knob>`): `changes` replace its keys; a None removes one."""

    def edit(values: dict[str, Any]) -> None:
        changed = {**values[f"{PROJECT_NAME}:{knob}"], **changes}
        values[f"{PROJECT_NAME}:{knob}"] = {key: value for key, value in changed.items() if value is not None}

    return edit


def releases(values: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = values[f"{PROJECT_NAME}:releases"]
    return result


def json_text(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def problems_of(project: Path, stack: str, edit: Edit) -> list[ConfigProblem]:
    """The problems `load_stack_config` reports for `stack` once `edit` changed its file's `config:`."""
    edit_yaml(project / f"Pulumi.{stack}.yaml", lambda document: edit(document["config"]))
    with pytest.raises(ConfigError) as raised:
        load_stack_config(read_stack_file(project, stack, SECRET_NAMES).raw)
    assert raised.value.stack == stack
    return raised.value.problems


def only(problems: list[ConfigProblem], key: str) -> ConfigProblem:
    """The one problem reported for `key`."""
    matching = [problem for problem in problems if problem.key == key]
    assert len(matching) == 1, problems
    return matching[0]


def stdout_of_a_fresh_python(script: str, **env: str) -> str:
    """What `script` prints, run by this interpreter in a new process on the repository (`env` added
    to the environment): nothing of this test process (its imports, its event loops) carries over."""
    finished = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        check=True,
    )
    return finished.stdout


ANOTHER_CODE_PATH = (
    "\nimport pulumi_kubernetes as k8s\n"
    "if pulumi.get_stack() == 'production':\n"
    "    k8s.core.v1.ConfigMap('debug', data={'VERBOSE': '1'}, opts=on_cluster)\n"
)
"""Appended to the program: a resource only production registers (a parity violation)."""
