"""What the committed stack files declare, before and after a release rewrote one of them.

Every other test reads the pinned copy (tests/conftest.py: PROJECT), because the release workflow
commits the `Pulumi.<stack>.yaml` a release rewrote. These tests read the committed files, and
assert only what no release changes (strategies, policies, parity, every knob valid), each both on
the files as committed and on a copy in which a real `release deploy dev` (the deploy flow on the
engine double, tests.simulated_release) rewrote `Pulumi.dev.yaml`.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from core.config.rules import load_stack_config
from core.config.sources import read_stack_file
from release.cli import main
from tests.conftest import ROOT, SECRET_NAMES, STACKS
from tests.simulated_release import RELEASED, release_into_stack_file


@pytest.fixture(scope="module")
def after_a_release(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A copy of the committed project after `release deploy dev --service api --image RELEASED`."""
    directory = tmp_path_factory.mktemp("released")
    for path in [ROOT / "__main__.py", *ROOT.glob("Pulumi*.yaml")]:
        shutil.copy(path, directory / path.name)
    release_into_stack_file(directory, "dev", RELEASED)
    shutil.copy(ROOT / "Pulumi.yaml", directory / "Pulumi.yaml")  # the simulation's key, removed
    yield directory


@pytest.fixture(params=["as committed", "after a release rewrote Pulumi.dev.yaml"])
def committed(request: pytest.FixtureRequest, after_a_release: Path) -> Path:
    return ROOT if request.param == "as committed" else after_a_release


def test_committed_the_simulated_release_really_rewrote_dev(after_a_release: Path) -> None:
    released = yaml.safe_load((after_a_release / "Pulumi.dev.yaml").read_text())["config"][
        "platform:releases"
    ]
    api = released["api"]
    assert api["images"][api["activeColor"]] == RELEASED
    assert (after_a_release / "Pulumi.dev.yaml").read_text() != (ROOT / "Pulumi.dev.yaml").read_text()


def test_committed_stack_files_are_valid_in_every_stack(committed: Path) -> None:
    for stack in STACKS:
        load_stack_config(read_stack_file(committed, stack, SECRET_NAMES).raw)


def test_committed_stacks_hold_parity_and_pass_the_policy_pack(
    committed: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["plan", "--all", "--project-dir", str(committed)]) == 0  # the README's `make plan`
    assert "parity: OK" in capsys.readouterr().out


def test_committed_staging_and_production_release_by_canary_judged_by_metrics_and_dev_by_one_switch(
    committed: Path,
) -> None:
    for stack in ("staging", "production"):
        settings = load_stack_config(read_stack_file(committed, stack, SECRET_NAMES).raw).settings
        assert settings.strategy.type == "canary" and settings.strategy.steps == [10, 25, 50], stack
        assert settings.analysis is not None, stack
    dev = load_stack_config(read_stack_file(committed, "dev", SECRET_NAMES).raw).settings
    assert dev.strategy.type == "blueGreen"


def test_committed_production_requires_digests_signed_records_and_an_approval(committed: Path) -> None:
    project = load_stack_config(read_stack_file(committed, "production", SECRET_NAMES).raw).project
    policy = project.stack_policies["production"]
    assert policy.require_image_digest and policy.require_signed_records and policy.promotion.require_approval
    assert policy.promotion.promote_from == "staging"
    assert [(window.starts, window.ends) for window in policy.promotion.freeze_windows] == [
        ("Fri 16:00", "Mon 08:00")
    ]
