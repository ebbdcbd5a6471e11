"""Audit rows and status, from data shaped exactly like `pulumi stack history --json`."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from core.config.sources import project_settings
from core.naming import CONFIG_FINGERPRINT_ANNOTATION
from release.cli import main
from release.report.audit import audit_rows, render_audit, stack_status, unreviewed_break_glass
from release.testing.fake_engine import FakeEngine
from tests.conftest import PROJECT
from tests.history_data import BAD, GOOD, OLD, history, record, releases, update
from tests.release_doubles import NEW_API, TEST_KEYS, cluster, fake_engine

FOREIGN = update(
    "2026-11-24T08:00", message="Merge pull request #12 (plain pulumi up)", config=releases("green")
)


def test_one_row_per_update_with_actor_digests_and_duration() -> None:
    entries = history(
        FOREIGN,
        update("2026-11-24T09:00", record("stage", previous=OLD, run="https://ci.example.test/runs/5")),
        update("2026-11-24T09:10", record("verify")),
    )
    rows = audit_rows("staging", entries)
    assert [row.event for row in rows] == ["verification", "release", "update (foreign)"]
    release = rows[1]
    assert (release.actor, release.before, release.after) == ("alice", OLD, GOOD)
    assert release.run == "https://ci.example.test/runs/5" and release.seconds == 0.0
    assert rows[2].actor == "-" and rows[2].approval_or_reason.startswith("Merge pull request")


def test_a_promotion_row_names_its_source_and_approval() -> None:
    promoted = record(
        "stage",
        promoted_from="staging",
        approval={"source": "asserted", "ref": "CHG-9", "approvers": ["bob"]},
    )
    (row,) = audit_rows("production", history(update("2026-11-24T09:00", promoted)))
    assert row.event == "promotion from staging"
    assert row.approval_or_reason == "approved CHG-9 by bob (ASSERTED)"


def test_a_rollback_row_shows_the_digest_before_and_after() -> None:
    entries = history(
        update("2026-11-24T09:00", record("verify"), config=releases("blue", blue=GOOD)),
        update("2026-11-24T09:20", record("switch", image=BAD), config=releases("green", green=BAD)),
        update(
            "2026-11-24T09:21",
            record("rollback", image="", revokes=(BAD,), reason="release of BAD failed at verify"),
            config=releases("blue", blue=GOOD, green=BAD),
        ),
    )
    rollback = audit_rows("staging", entries)[0]
    assert (rollback.event, rollback.before, rollback.after) == ("rollback", BAD, GOOD)
    assert "failed at verify" in rollback.approval_or_reason


def test_since_keeps_only_newer_entries() -> None:
    entries = history(FOREIGN, update("2026-11-25T09:00", record("verify")))
    rows = audit_rows("staging", entries, since=datetime(2026, 11, 25, tzinfo=UTC))
    assert [row.event for row in rows] == ["verification"]


def test_break_glass_releases_wait_for_review_until_someone_reviews_them() -> None:
    glass = record("stage", break_glass={"reason": "checkout is down", "skipped": ["verified"]})
    entries = history(update("2026-11-24T09:00", glass))
    assert [row.number for row in unreviewed_break_glass("production", entries)] == [1]
    reviewed = history(
        update("2026-11-24T09:00", glass),
        update("2026-11-24T10:00", record("review", actor="bob", reviews=1)),
    )
    assert unreviewed_break_glass("production", reviewed) == []
    rows = audit_rows("production", entries)
    assert (
        rows[0].break_glass
        and "BREAK-GLASS: checkout is down (skipped verified)" in rows[0].approval_or_reason
    )


def test_an_asserted_review_does_not_close_a_break_glass_where_the_policy_refuses_it() -> None:
    glass = record("stage", break_glass={"reason": "checkout is down", "skipped": ["verified"]})
    typed = record("review", actor="bob", reviews=1, approval={"source": "asserted"})
    in_ci = record("review", actor="bob", reviews=1, approval={"source": "github-run"})
    asserted = history(update("2026-11-24T09:00", glass), update("2026-11-24T10:00", typed))
    proven = history(update("2026-11-24T09:00", glass), update("2026-11-24T10:00", in_ci))
    waiting = unreviewed_break_glass("production", asserted, asserted_counts=False)
    assert [row.number for row in waiting] == [1]
    assert unreviewed_break_glass("production", asserted, asserted_counts=True) == []
    assert unreviewed_break_glass("production", proven, asserted_counts=False) == []


def test_the_markdown_audit_is_a_table_with_the_review_queue() -> None:
    glass = record("stage", break_glass={"reason": "checkout is down", "skipped": ["verified"]})
    entries = history(update("2026-11-24T09:00", glass))
    text = render_audit(
        audit_rows("production", entries), unreviewed_break_glass("production", entries), True
    )
    assert text.startswith("| time | stack | # | event |")
    assert "## break-glass releases awaiting review" in text and "BREAK-GLASS release" in text


def test_status_shows_what_waits_for_promotion() -> None:
    settings = project_settings(PROJECT)
    histories = {
        "staging": history(
            update("2026-11-24T09:10", record("verify", image=BAD), config=releases("blue", blue=BAD))
        ),
        "production": history(),
    }
    rows = stack_status(
        settings,
        histories,
        {"staging": releases("blue", blue=BAD), "production": releases("blue", blue=GOOD)},
    )
    staging, production = rows
    assert staging.verified and staging.waiting == ""
    assert not production.verified and production.waiting == BAD


def deployed_in_dev(tmp_path: Path) -> FakeEngine:
    """dev, staging and production; `release deploy dev` of NEW_API, healthy, through the CLI."""
    engine = fake_engine("dev")
    engine.add_stack("staging")
    engine.add_stack("production")
    with cluster(engine, "dev") as api:
        argv = ["deploy", "dev", "--service", "api", "--image", NEW_API, "--actor", "alice"]
        argv += ["--preview-url", api.preview_url, "--stable-url", api.stable_url]
        argv += ["--report", str(tmp_path / "report.md"), "--project-dir", str(engine.project_dir)]
        assert main(argv, engine_factory=lambda _: engine, clock=engine.clock) == 0
    assert (tmp_path / "report.md").read_text().startswith("## release deploy api on `dev`: **Healthy**")
    return engine


def cli_json(engine: FakeEngine, capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    capsys.readouterr()
    code = main(
        [*argv, "--json", "--project-dir", str(engine.project_dir)],
        engine_factory=lambda _: engine,
        clock=engine.clock,
    )
    assert code == 0
    return json.loads(capsys.readouterr().out)


def test_release_audit_and_status_from_the_cli(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RELEASE_SIGNING_KEY", TEST_KEYS.private_key)
    engine = deployed_in_dev(tmp_path)
    rows = cli_json(engine, capsys, "audit")["rows"]
    assert [row["event"] for row in rows[:4]] == ["idle scaled down", "verification", "switch", "release"]
    assert rows[1]["actor"] == "alice" and rows[1]["stack"] == "dev" and rows[1]["record"] == "signed"
    status = {(row["stack"], row["service"]): row for row in cli_json(engine, capsys, "status")}
    assert status[("dev", "api")]["activeVerified"] is True
    assert status[("staging", "api")]["waitingForPromotion"] == NEW_API


def test_release_audit_shows_one_short_line_per_entry_and_every_field_with_wide(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RELEASE_SIGNING_KEY", TEST_KEYS.private_key)
    engine = deployed_in_dev(tmp_path)
    capsys.readouterr()
    argv = ["audit", "dev", "--project-dir", str(engine.project_dir)]
    assert main(argv, lambda _: engine, engine.clock) == 0
    short = capsys.readouterr().out.splitlines()
    assert main([*argv, "--wide"], lambda _: engine, engine.clock) == 0
    wide = capsys.readouterr().out.splitlines()
    assert short[0].split() == [
        "time",
        "stack",
        "#",
        "event",
        "record",
        "actor",
        "service",
        "image",
        "result",
        "why",
    ]
    verification = next(line for line in short if " verification " in line)
    assert " signed " in verification and f"sha256:{NEW_API.split(':')[-1][:12]}" in verification
    assert max(map(len, short)) <= 140
    assert "before -> after" in wide[0] and any(" -> " in line for line in wide[1:])


def test_an_unsigned_verification_in_dev_is_not_waiting_for_promotion_into_staging(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RELEASE_SIGNING_KEY", raising=False)
    engine = deployed_in_dev(tmp_path)
    status = {(row["stack"], row["service"]): row for row in cli_json(engine, capsys, "status")}
    assert status[("dev", "api")]["activeVerified"] is True  # dev counts its unsigned records
    assert status[("staging", "api")]["waitingForPromotion"] is None  # staging's gate needs signed ones


def test_release_diff_exits_1_on_an_engine_version_that_differs(
    capsys: pytest.CaptureFixture[str], project: Path
) -> None:
    text = (project / "Pulumi.production.yaml").read_text()
    (project / "Pulumi.production.yaml").write_text(
        text + '  platform:postgres:\n    engineVersion: "14.9"\n'
    )
    assert main(["diff", "staging", "production", "--project-dir", str(project)]) == 1
    assert "VIOLATION [config] postgres  platform:postgres.engineVersion" in capsys.readouterr().out


def test_release_diff_exits_0_when_every_difference_is_a_knob() -> None:
    assert main(["diff", "staging", "production", "--project-dir", str(PROJECT)]) == 0


def test_status_shows_each_colors_config_fingerprint_as_the_pods_are_labelled(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RELEASE_SIGNING_KEY", TEST_KEYS.private_key)
    engine = deployed_in_dev(tmp_path)
    status = {(row["stack"], row["service"]): row for row in cli_json(engine, capsys, "status")}
    for color in ("blue", "green"):
        labelled = baseline_annotation(engine, "staging", f"api-{color}")
        assert status[("staging", "api")]["configFingerprints"][color] == labelled


def baseline_annotation(engine: FakeEngine, stack: str, deployment: str) -> str:
    for urn, inputs in engine.stacks[stack].deployed.items():
        if urn.endswith(f"kubernetes:apps/v1:Deployment::{deployment}"):
            return str(inputs["spec"]["template"]["metadata"]["annotations"][CONFIG_FINGERPRINT_ANNOTATION])
    raise KeyError(deployment)
