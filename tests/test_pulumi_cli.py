"""Integration with the real Pulumi CLI: runs where `pulumi` is on PATH, skipped (with the reason) elsewhere.

What these check cannot be observed under the mock runtime: that the engine accepts Pulumi.yaml's
project-level `value:` config and merges it into every stack exactly as the program and the offline
plan assume, and that the installed CLI satisfies `requiredPulumiVersion`. They use a local file
backend and the passphrase secrets provider; no cloud account is touched.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT, copy_project

PULUMI = shutil.which("pulumi")
pytestmark = pytest.mark.skipif(
    PULUMI is None,
    reason="the Pulumi CLI is not on PATH (not installable on the development machines); "
    "these run wherever it is",
)


def pulumi(project: Path, *args: str) -> str:
    assert PULUMI is not None
    env = {
        **os.environ,
        "PULUMI_BACKEND_URL": f"file://{project / '.state'}",
        "PULUMI_CONFIG_PASSPHRASE": "test-only-passphrase",
        "PULUMI_SKIP_UPDATE_CHECK": "true",
    }
    result = subprocess.run(
        [PULUMI, *args, "--non-interactive"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture
def cli_project(tmp_path: Path) -> Path:
    project = copy_project(tmp_path)
    (project / ".state").mkdir()
    pulumi(project, "stack", "init", "staging", "--secrets-provider", "passphrase")
    return project


def test_the_installed_cli_satisfies_required_pulumi_version() -> None:
    required = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["requiredPulumiVersion"]
    minimum = tuple(int(part) for part in re.findall(r"\d+", required)[:3])
    installed = subprocess.run([str(PULUMI), "version"], capture_output=True, text=True, check=True).stdout
    assert tuple(int(part) for part in re.findall(r"\d+", installed)[:3]) >= minimum


def test_the_engine_merges_project_level_config_into_the_stack(cli_project: Path) -> None:
    config: dict[str, Any] = json.loads(pulumi(cli_project, "config", "--json", "-s", "staging"))
    postgres = config["platform:postgres"]
    value = postgres.get("objectValue") or json.loads(postgres["value"])
    assert value["engineVersion"] == "16.4"
    assert "platform:releases" in config


def test_a_secret_set_with_path_is_stored_encrypted_in_the_stack_file(cli_project: Path) -> None:
    pulumi(
        cli_project,
        "config",
        "set",
        "--secret",
        "--path",
        "appSecrets.SESSION_SIGNING_KEY",
        "test-only-value",
        "-s",
        "staging",
    )
    text = (cli_project / "Pulumi.staging.yaml").read_text()
    assert "test-only-value" not in text
    assert "secure:" in text
