"""The workflows are part of the supply chain (issue 26 item 6): every action pinned to a commit, the
least permissions per job, no persisted credentials, secrets only where they are used.

zizmor (`make lint`, offline, medium and high) checks most of this; these tests state the project's own
rules, which zizmor does not (a version comment beside each hash, the signing key only in a job with a
GitHub environment, nothing granted at workflow level).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT

WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
ACTIONS = sorted((ROOT / ".github" / "actions").glob("*/action.yml"))
PINNED = re.compile(
    r"^\s*(?:- )?uses: (?P<action>[\w.-]+/[\w./-]+)@(?P<sha>[0-9a-f]{40}) # v\d+\.\d+\.\d+\s*$"
)
SECRET = re.compile(r"\$\{\{\s*secrets\.(\w+)\s*\}\}")


def uses_lines(path: Path) -> Iterator[tuple[int, str]]:
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if re.match(r"^\s*(?:- )?uses:", line):
            yield number, line


def load(path: Path) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text())
    assert isinstance(document, dict)
    return document


@pytest.mark.parametrize("path", WORKFLOWS + ACTIONS, ids=lambda path: path.name)
def test_every_action_is_pinned_to_a_full_commit_hash_with_its_version_beside_it(path: Path) -> None:
    lines = list(uses_lines(path))
    assert lines
    for number, line in lines:
        if line.split("uses:", 1)[1].strip().startswith("./"):
            continue  # the repository's own composite action, at the same commit as the workflow
        assert PINNED.match(line), f"{path.name}:{number}: {line.strip()}"


def test_one_action_is_pinned_to_one_commit_everywhere() -> None:
    pins: dict[str, set[str]] = {}
    for path in WORKFLOWS + ACTIONS:
        for _number, line in uses_lines(path):
            found = PINNED.match(line)
            if found:
                pins.setdefault(found["action"], set()).add(line.split("@", 1)[1].strip())
    assert pins
    assert {action: refs for action, refs in pins.items() if len(refs) > 1} == {}


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda path: path.name)
def test_a_workflow_grants_nothing_and_each_job_names_its_own_permissions(path: Path) -> None:
    document = load(path)
    assert document["permissions"] == {}, path.name
    for name, job in document["jobs"].items():
        assert isinstance(job.get("permissions"), dict), (path.name, name)
        assert "write-all" not in str(job["permissions"]), (path.name, name)


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda path: path.name)
def test_every_permission_says_why_it_is_granted(path: Path) -> None:
    text = path.read_text()
    for line in re.findall(r"^ {6}[\w-]+: (?:read|write).*$", text, flags=re.M):
        assert " # " in line, f"{path.name}: {line.strip()}"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda path: path.name)
def test_no_checkout_keeps_credentials(path: Path) -> None:
    for job in load(path)["jobs"].values():
        for step in job.get("steps", []):
            if str(step.get("uses", "")).startswith("actions/checkout@"):
                assert step.get("with", {}).get("persist-credentials") is False, path.name


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda path: path.name)
def test_no_secret_is_set_for_a_whole_workflow(path: Path) -> None:
    document = load(path)
    assert not SECRET.search(yaml.safe_dump(document.get("env", {}))), path.name


def test_the_signing_key_reaches_only_steps_of_jobs_in_a_github_environment() -> None:
    seen = 0
    for path in WORKFLOWS:
        for name, job in load(path)["jobs"].items():
            assert "RELEASE_SIGNING_KEY" not in yaml.safe_dump(job.get("env", {})), (path.name, name)
            for step in job.get("steps", []):
                if "RELEASE_SIGNING_KEY" in yaml.safe_dump(step):
                    seen += 1
                    assert job.get("environment"), (path.name, name)
                    assert str(step.get("run", "")).startswith("exec .venv/bin/release "), (path.name, name)
    assert seen >= 8


def test_the_image_build_holds_no_release_secret_and_only_it_pushes_images() -> None:
    """The image build holds no cloud role and no release secret: it pushes (packages: write) and,
    with the supply chain, signs (id-token: write) in that job alone."""
    release = load(ROOT / ".github" / "workflows" / "release.yml")
    build = release["jobs"]["build"]
    assert build["permissions"].get("packages") == "write"
    assert "environment" not in build
    for step in build["steps"]:
        for secret in SECRET.findall(yaml.safe_dump(step)):
            assert secret in ("REGISTRY", "GITHUB_TOKEN"), secret
    for name, job in release["jobs"].items():
        if name != "build":
            assert "packages" not in job["permissions"], name


def test_git_pushes_authenticate_per_command_never_in_the_checkout() -> None:
    script = (ROOT / ".github" / "scripts" / "git-with-token.sh").read_text()
    assert "GIT_CONFIG_VALUE_0" in script and "git config" not in script
    commit = (ROOT / ".github" / "scripts" / "commit-stack-config.sh").read_text()
    assert re.findall(r"^\S*git-with-token\.sh\" (\w+)", commit, flags=re.M) == ["pull", "push"]
    assert not re.search(r"^git (pull|push)", commit, flags=re.M)


def test_the_build_signs_attests_provenance_an_sbom_and_a_scan_of_every_image_it_pushes() -> None:
    """What the supply-chain gate checks (docs/supply-chain.md) is what the build job produces."""
    build = load(ROOT / ".github" / "workflows" / "release.yml")["jobs"]["build"]
    assert build["permissions"]["id-token"] == "write"
    steps = build["steps"]
    pushed = [
        step["id"] for step in steps if str(step.get("uses", "")).startswith("docker/build-push-action@")
    ]
    assert pushed == ["api", "web"]
    scripts = "\n".join(str(step.get("run", "")) for step in steps)
    for service in pushed:
        image = f'"${{REGISTRY}}/platform/{service}@${{{service.upper()}_DIGEST}}"'
        assert f"cosign sign --yes {image}" in scripts
        assert f"cosign attest --yes --type spdxjson --predicate {service}.spdx.json {image}" in scripts
        assert f"cosign attest --yes --type vuln --predicate {service}.vuln.json {image}" in scripts
        provenance = [
            step
            for step in steps
            if str(step.get("uses", "")).startswith("actions/attest-build-provenance@")
            and step["with"]["subject-digest"] == f"${{{{ steps.{service}.outputs.digest }}}}"
        ]
        assert len(provenance) == 1 and provenance[0]["with"]["push-to-registry"] is True
    for name, job in load(ROOT / ".github" / "workflows" / "release.yml")["jobs"].items():
        if name != "build":
            # the release jobs assume their stack's role; the page job the read-only role that reads state
            assert "id-token" not in job["permissions"] or name in ("dev", "staging", "production", "page"), (
                name
            )
