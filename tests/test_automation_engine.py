"""The engine adapter against the real Pulumi CLI: runs where `pulumi` is on PATH, skipped elsewhere.

A cluster and a cloud account are not needed: the adapter is exercised on a tiny project (same
project name, no cloud resources) with a local file backend and the passphrase secrets provider.
What this checks cannot be observed under the mock runtime: `set_all_config_json` writes objects as
objects, the file backend leaves every history version at 0, history hands object config back in a
form `parse_history` restores, and a missing stack is a clear EngineError.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from core.config.sources import ConfigEntry
from core.errors import EngineError
from release.engine.automation import AutomationEngine
from release.history.entries import RELEASES_KEY, parse_history
from release.history.records import Event, ReleaseRecord
from release.history.signing import Trust
from release.testing.fake_clock import MONDAY_MORNING
from tests.conftest import ROOT
from tests.history_data import STAGING_RULES
from tests.release_doubles import TEST_SIGNER

PULUMI = shutil.which("pulumi")
pytestmark = pytest.mark.skipif(
    PULUMI is None,
    reason="the Pulumi CLI is not on PATH (not installable on the development machines); "
    "these run wherever it is",
)

PROGRAM = """
import pulumi

config = pulumi.Config()
pulumi.export("releases", config.require_object("releases"))
"""


@pytest.fixture
def engine(tmp_path: Path) -> AutomationEngine:
    (tmp_path / "Pulumi.yaml").write_text(
        f"name: platform\nruntime:\n  name: python\n  options:\n    virtualenv: {ROOT / '.venv'}\n"
    )
    (tmp_path / "__main__.py").write_text(PROGRAM)
    (tmp_path / ".state").mkdir()
    env = {
        "PULUMI_BACKEND_URL": f"file://{tmp_path / '.state'}",
        "PULUMI_CONFIG_PASSPHRASE": "test-only-passphrase",
        "PULUMI_SKIP_UPDATE_CHECK": "true",
    }
    assert PULUMI is not None
    subprocess.run(
        [PULUMI, "stack", "init", "staging", "--secrets-provider", "passphrase", "--non-interactive"],
        cwd=tmp_path,
        env={**os.environ, **env},
        check=True,
        capture_output=True,
    )
    return AutomationEngine(tmp_path, env=env)


def releases(active: str) -> dict[str, object]:
    return {
        "api": {
            "replicas": 2,
            "activeColor": active,
            "images": {"blue": "r/api@sha256:b", "green": "r/api@sha256:g"},
        }
    }


def test_up_writes_object_config_as_an_object_and_history_gives_it_back(engine: AutomationEngine) -> None:
    assert engine.up("staging", {RELEASES_KEY: ConfigEntry(releases("blue"))}, "first [by test]").succeeded
    assert engine.up("staging", {RELEASES_KEY: ConfigEntry(releases("green"))}, "second [by test]").succeeded
    assert engine.get_config("staging")[RELEASES_KEY].value == releases("green")
    assert engine.outputs("staging")["releases"] == releases("green")
    entries = parse_history(engine.history("staging"), STAGING_RULES)
    assert [entry.version for entry in entries] == [0, 0]  # the file backend numbers nothing
    assert [entry.number for entry in entries] == [2, 1]
    assert entries[1].config[RELEASES_KEY].value == releases("blue")


def test_a_stack_that_does_not_exist_is_a_clear_engine_error(engine: AutomationEngine) -> None:
    with pytest.raises(EngineError, match="pulumi stack init production"):
        engine.get_config("production")


def test_a_release_record_survives_the_backend_round_trip(engine: AutomationEngine) -> None:
    record = ReleaseRecord(Event.VERIFY, "staging", "alice", service="api", image="r/api@sha256:" + "ab" * 32)
    assert engine.up(
        "staging",
        {RELEASES_KEY: ConfigEntry(releases("blue"))},
        record.message("verified", TEST_SIGNER, MONDAY_MORNING),
    ).succeeded
    (entry,) = parse_history(engine.history("staging"), STAGING_RULES)
    assert entry.trust is Trust.SIGNED and entry.record is not None
    assert entry.record == replace(record, time=entry.record.time)


def test_a_refresh_preview_of_an_unchanged_stack_reports_no_drift(engine: AutomationEngine) -> None:
    from release.flows.drift import parse_drift

    assert engine.up("staging", {RELEASES_KEY: ConfigEntry(releases("blue"))}, "first [by test]").succeeded
    assert parse_drift("staging", engine.refresh_preview("staging")).exit_code == 0
