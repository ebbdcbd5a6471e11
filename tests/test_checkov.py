"""checkov (PyPI) on every stack's rendered manifests: no failed check but the documented skips.

checkov lives in its own virtualenv (tools/checkov/.venv, made by `make check`). Where it is missing
these tests are skipped with the reason; under CI=true a missing checkov fails them.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.conftest import PROJECT, ROOT

SCAN = ROOT / "tools" / "checkov" / "scan.py"
CHECKOV = ROOT / "tools" / "checkov" / ".venv" / "bin" / "checkov"


def checkov() -> Path:
    found = CHECKOV if CHECKOV.exists() else shutil.which("checkov")
    if found:
        return Path(found)
    reason = (
        f"checkov is not installed ({CHECKOV}; `make check` installs it from tools/checkov/requirements.txt)"
    )
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def scan(*options: str) -> tuple[int, Any]:
    answer = subprocess.run(
        [sys.executable, str(SCAN), "--checkov", str(checkov()), "--json", *options],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert answer.returncode in (0, 1), answer.stderr
    return answer.returncode, json.loads(answer.stdout)


def scan_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("checkov_scan", SCAN)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("manifests")
    release = Path(sys.executable).with_name("release")
    subprocess.run(
        [str(release), "plan", "--all", "--quiet", "--project-dir", str(PROJECT), "--out", str(out)],
        check=True,
        capture_output=True,
    )
    return out


def test_every_stack_passes_checkov_with_only_the_documented_skips(rendered: Path) -> None:
    code, scans = scan("--rendered", str(rendered), "--strict-skips")
    assert {stack["stack"] for stack in scans} == {"dev", "staging", "production"}
    assert code == 0, [(stack["stack"], stack["failed"], stack["stale_skips"]) for stack in scans]
    assert all(stack["passed"] > 500 and not stack["parsing_errors"] for stack in scans)
    by_stack = {stack["stack"]: stack for stack in scans}
    assert by_stack["production"]["skipped"] == []  # production needs no exception at all


def test_a_hardening_regression_fails_the_scan(rendered: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(rendered / "production", broken / "production")
    deployment = next((broken / "production").glob("*-deployment-api-blue.yaml"))
    deployment.write_text(
        deployment.read_text().replace("readOnlyRootFilesystem: true", "readOnlyRootFilesystem: false")
    )
    code, scans = scan("--rendered", str(broken))
    assert code == 1
    assert any(failure.startswith("CKV_K8S_22 ") for failure in scans[0]["failed"])


def test_a_skip_that_skips_nothing_is_stale_and_fails_with_strict_skips(
    rendered: Path, tmp_path: Path
) -> None:
    only_staging = tmp_path / "only"
    shutil.copytree(rendered / "staging", only_staging / "dev")  # digests everywhere: the dev skip is unused
    code, scans = scan("--rendered", str(only_staging), "--strict-skips")
    assert code == 1 and scans[0]["stale_skips"] == ["CKV_K8S_43"]


def test_a_stale_skip_after_a_release_pinned_every_dev_image_is_only_a_warning_by_default(
    rendered: Path, tmp_path: Path
) -> None:
    only_staging = tmp_path / "only"
    shutil.copytree(rendered / "staging", only_staging / "dev")  # as after a release of digests into dev
    code, scans = scan("--rendered", str(only_staging))
    assert code == 0 and scans[0]["stale_skips"] == ["CKV_K8S_43"]


def test_every_skip_names_a_check_its_stacks_and_a_one_line_reason(tmp_path: Path) -> None:
    module = scan_module()
    skips = module.read_skips()
    assert skips and all(skip.check.startswith("CKV") and skip.stacks and skip.reason for skip in skips)
    malformed = tmp_path / "skips.yaml"
    malformed.write_text(
        "- check: CKV_K8S_43\n  stacks: [dev]\n- check: CKV_K8S_15\n  stacks: [dev]\n  reason: ''\n"
    )
    with pytest.raises(ValueError, match="entry 1: needs exactly check, stacks and reason; entry 2"):
        module.read_skips(malformed)
