"""Data safety against the engine double and a real PostgreSQL: a snapshot before a migration that
is not expand/contract, and restore drills (order of operations, cleanup on every failure, the
signed record, RTO/RPO against the project's targets)."""

from __future__ import annotations

import copy
import json
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from core.config.sources import project_settings, validated_stack_config
from core.data_plan import SCRATCH_OUTPUT, SnapshotSpec
from core.errors import ReleaseError, RollbackRefusedError
from release.cli import main
from release.context import ReleaseContext
from release.flows.deploy import deploy
from release.flows.drill import DrillRefusedError, DrillRequest, drill
from release.flows.rollback import RollbackRequest, rollback
from release.flows.snapshot import SnapshotFailedError, retained, take_snapshot
from release.notify import Notifier
from release.offline.mocks import DataMocks
from release.report.audit import audit_rows, render_audit
from release.testing.fake_engine import FakeEngine
from tests.conftest import PROJECT, baseline, edit_yaml
from tests.http_servers import healthy, serve
from tests.postgres_server import SUPERUSER, RunningPostgres, postgres_server
from tests.release_doubles import (
    FAST_BLUE_GREEN,
    NEW_API,
    TEST_KEYS,
    TEST_SIGNER,
    cluster,
    history_of,
    signed_project_copy,
)

NEWEST_WRITE = datetime(2026, 11, 23, 8, 50, tzinfo=UTC)
ACCOUNTS = (
    "CREATE TABLE accounts (id serial PRIMARY KEY, updated_at timestamptz NOT NULL)",
    "INSERT INTO accounts (updated_at) VALUES ('2026-11-23 08:00:00+00'), ('2026-11-23 08:50:00+00')",
)


@pytest.fixture(scope="module")
def postgres() -> Iterator[RunningPostgres]:
    """The scratch instance a drill restores: the project's database `app` with two accounts."""
    with postgres_server() as running:
        running.create_database("app", *ACCOUNTS)
        yield running


def contract_project(tmp_path: Path) -> Path:
    project = signed_project_copy(tmp_path)

    def contract(document: dict[str, Any]) -> None:
        document["config"]["services"]["value"][0]["migration"]["expandContract"] = False

    edit_yaml(project / "Pulumi.yaml", contract)
    return project


def staging(project: Path, postgres: RunningPostgres | None = None) -> FakeEngine:
    engine = FakeEngine(project_dir=project)
    engine.add_stack("staging", edit=FAST_BLUE_GREEN)
    if postgres is not None:
        engine.data_mocks = DataMocks(
            scratch_address=postgres.host,
            scratch_port=postgres.port,
            scratch_username=SUPERUSER,
            scratch_password=postgres.password,
        )
    return engine


def snapshot_at(engine: FakeEngine, at: datetime) -> str:
    config = validated_stack_config(
        "staging",
        engine.get_config("staging"),
        ReleaseContext.for_tests(engine, engine.project_dir).project_file,
    )
    return take_snapshot(engine, config, "api", NEW_API, "r-0123456789ab", lambda _: None, now=at).snapshot_id


def drill_request(**changes: Any) -> DrillRequest:
    request = DrillRequest("staging", "alice", signer=TEST_SIGNER, sslmode="disable", **changes)
    return request


# -- snapshots before risky migrations -------------------------------------------------------------


def test_a_release_of_a_non_expand_migration_snapshots_the_database_before_its_first_update(
    tmp_path: Path,
) -> None:
    engine = staging(contract_project(tmp_path))
    with cluster(engine) as api:
        report = deploy(ReleaseContext.for_tests(engine, engine.project_dir), api.request(NEW_API))
    assert report.phase == "Healthy", report.failure
    assert engine.calls.index(("data_up", "staging")) < engine.calls.index(("up", "staging"))
    taken = report.snapshot["snapshot"]
    assert taken.startswith("release-staging-api-abababababab-")
    assert f"snapshot before the migration: {taken}" in report.render()
    stage = next(
        e.record for e in history_of(engine, "staging")[::-1] if e.record and e.record.event == "stage"
    )
    assert stage.data["snapshot"]["snapshot"] == taken  # signed with the release
    rows = render_audit(audit_rows("staging", history_of(engine, "staging")), [], markdown=False)
    assert f"snapshot {taken}" in rows


def test_a_snapshot_that_fails_stops_the_release_before_anything_changes(tmp_path: Path) -> None:
    engine = staging(contract_project(tmp_path))
    engine.fail_data_up(1, "timeout while waiting for state to become 'available'")
    with cluster(engine) as api, pytest.raises(SnapshotFailedError, match="nothing changed"):
        deploy(ReleaseContext.for_tests(engine, engine.project_dir), api.request(NEW_API))
    assert ("up", "staging") not in engine.calls


def test_an_expand_contract_release_takes_no_snapshot(tmp_path: Path) -> None:
    engine = staging(signed_project_copy(tmp_path))
    with cluster(engine) as api:
        assert (
            deploy(ReleaseContext.for_tests(engine, engine.project_dir), api.request(NEW_API)).phase
            == "Healthy"
        )
    assert not engine.data_ups


def test_a_forced_rollback_past_a_non_expand_migration_snapshots_the_database_first(tmp_path: Path) -> None:
    engine = staging(contract_project(tmp_path))
    with cluster(engine) as api:
        assert (
            deploy(ReleaseContext.for_tests(engine, engine.project_dir), api.request(NEW_API)).phase
            == "Healthy"
        )
        engine.calls.clear()
        request = RollbackRequest(
            "staging", "bob", force=True, reason="INC-42: schema checked", stable_urls=[api.stable_url]
        )
        request.signer = TEST_SIGNER
        report = rollback(ReleaseContext.for_tests(engine, engine.project_dir), request)
    assert engine.calls.index(("data_up", "staging")) < engine.calls.index(("up", "staging"))
    taken = report.snapshot["snapshot"]
    assert taken.startswith("release-staging-api-abababababab-")
    written = history_of(engine, "staging")[0].record
    assert (
        written is not None and written.event == "rollback" and written.data["snapshot"]["snapshot"] == taken
    )


def test_a_refused_rollback_past_a_non_expand_migration_takes_no_snapshot(tmp_path: Path) -> None:
    engine = staging(contract_project(tmp_path))
    with cluster(engine) as api:
        deploy(ReleaseContext.for_tests(engine, engine.project_dir), api.request(NEW_API))
        snapshots_before = len(engine.data_ups)
        request = RollbackRequest("staging", "bob", stable_urls=[api.stable_url], signer=TEST_SIGNER)
        with pytest.raises(RollbackRefusedError):
            rollback(ReleaseContext.for_tests(engine, engine.project_dir), request)
    assert len(engine.data_ups) == snapshots_before


# -- restore drills -------------------------------------------------------------------------------


def test_a_drill_restores_the_newest_snapshot_verifies_it_measures_rto_and_rpo_and_removes_it(
    tmp_path: Path, postgres: RunningPostgres
) -> None:
    engine = staging(signed_project_copy(tmp_path), postgres)
    snapshot = snapshot_at(engine, NEWEST_WRITE + timedelta(minutes=5))
    report = drill(ReleaseContext.for_tests(engine, engine.project_dir), drill_request())
    assert report.passed, report.render()
    assert [step.name for step in report.steps] == ["cleanup", "restore", "verify", "destroy", "record"]
    assert report.restored_from == f"snapshot {snapshot}"
    assert report.figures is not None and report.figures.rpo.seconds == 300  # 5 min of writes at risk
    restore = engine.data_ups[-2].plan.scratch
    assert restore is not None and restore.snapshot_id == snapshot
    assert SCRATCH_OUTPUT not in engine.data_outputs("staging", drill=True)  # destroyed
    record = history_of(engine, "staging")[0].record
    assert record is not None and record.event == "drill" and record.data["drill"]["verdict"] == "Passed"
    shown = json.dumps(report.to_json()) + report.render() + json.dumps(record.to_json())
    assert postgres.password not in shown


def test_a_drill_that_misses_its_rpo_fails_and_says_by_how_much(
    tmp_path: Path, postgres: RunningPostgres
) -> None:
    engine = staging(signed_project_copy(tmp_path), postgres)
    snapshot_at(engine, NEWEST_WRITE + timedelta(minutes=60))  # the newest write is an hour old
    report = drill(ReleaseContext.for_tests(engine, engine.project_dir), drill_request())
    assert not report.passed and report.exit_code == 1
    assert report.figures is not None and report.figures.rpo.missed_by_seconds == 45 * 60
    assert history_of(engine, "staging")[0].record.data["drill"]["verdict"] == "Failed"  # type: ignore[union-attr]


def test_a_drill_with_no_snapshot_is_refused_before_anything_is_created(tmp_path: Path) -> None:
    engine = staging(signed_project_copy(tmp_path))
    with pytest.raises(DrillRefusedError, match="no snapshot exists yet"):
        drill(ReleaseContext.for_tests(engine, engine.project_dir), drill_request())
    assert not engine.data_ups and ("up", "staging") not in engine.calls


def test_a_restore_that_never_becomes_available_still_removes_the_instance_and_records_the_failure(
    tmp_path: Path,
) -> None:
    engine = staging(signed_project_copy(tmp_path))
    snapshot_at(engine, NEWEST_WRITE)
    engine.fail_data_up(1, "timeout while waiting for state to become 'available' (60m0s)")
    report = drill(ReleaseContext.for_tests(engine, engine.project_dir), drill_request())
    assert [(step.name, step.succeeded) for step in report.steps] == [
        ("cleanup", True),
        ("restore", False),
        ("destroy", True),
        ("record", True),
    ]
    assert engine.data_ups[-1].plan.scratch is None
    assert history_of(engine, "staging")[0].record.data["drill"]["failedStep"] == "restore"  # type: ignore[union-attr]


def test_a_kept_scratch_instance_is_removed_first_by_the_next_drill(
    tmp_path: Path, postgres: RunningPostgres
) -> None:
    engine = staging(signed_project_copy(tmp_path), postgres)
    snapshot_at(engine, NEWEST_WRITE + timedelta(minutes=5))
    kept = drill(ReleaseContext.for_tests(engine, engine.project_dir), drill_request(keep=True))
    assert kept.kept == "drill-staging" and "release drill staging" in " ".join(kept.notes)
    assert engine.data_outputs("staging", drill=True).get(SCRATCH_OUTPUT)
    again = drill(ReleaseContext.for_tests(engine, engine.project_dir), drill_request())
    assert again.steps[0].detail == "removed the leftover drill-staging"
    assert again.passed


def test_a_point_in_time_in_the_future_is_refused(tmp_path: Path) -> None:
    engine = staging(signed_project_copy(tmp_path))
    with pytest.raises(DrillRefusedError, match="in the future"):
        drill(
            ReleaseContext.for_tests(engine, engine.project_dir),
            drill_request(at=engine.clock() + timedelta(hours=1)),
        )
    assert not engine.data_ups


def test_drill_errors_are_release_errors() -> None:
    assert issubclass(DrillRefusedError, ReleaseError) and issubclass(SnapshotFailedError, ReleaseError)


def test_release_drill_prints_the_report_exits_0_and_release_status_shows_the_drill(
    tmp_path: Path,
    postgres: RunningPostgres,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RELEASE_SIGNING_KEY", TEST_KEYS.private_key)
    engine = staging(signed_project_copy(tmp_path), postgres)
    engine.add_stack("dev", edit=FAST_BLUE_GREEN)
    engine.add_stack("production", edit=FAST_BLUE_GREEN)
    snapshot_at(engine, NEWEST_WRITE + timedelta(minutes=5))
    project = ["--project-dir", str(engine.project_dir)]
    argv = ["drill", "staging", "--actor", "alice", "--json", "--sslmode", "disable", *project]  # no TLS here
    assert main(argv, engine_factory=lambda _: engine, clock=engine.clock) == 0
    shown = capsys.readouterr()
    report = json.loads(shown.out)
    assert report["verdict"] == "Passed" and report["figures"]["rpo"]["seconds"] == 300
    assert postgres.password not in shown.out + shown.err
    assert main(["status", "--json", *project], engine_factory=lambda _: engine, clock=engine.clock) == 0
    rows = json.loads(capsys.readouterr().out)
    staging_drill = next(row["lastDrill"] for row in rows if row["stack"] == "staging")
    assert staging_drill["verdict"] == "Passed" and staging_drill["rpo"] == "5.0 min"
    assert main(["status", *project], engine_factory=lambda _: engine, clock=engine.clock) == 0
    assert "production  never" in capsys.readouterr().out


def test_a_drill_posts_its_verdict_and_figures_to_the_webhook(
    tmp_path: Path, postgres: RunningPostgres
) -> None:
    engine = staging(signed_project_copy(tmp_path), postgres)
    snapshot_at(engine, NEWEST_WRITE + timedelta(minutes=60))
    posted: list[Any] = []
    with serve(healthy(), posted) as webhook:
        context = ReleaseContext.for_tests(engine, engine.project_dir, notifier=Notifier(webhook))
        report = drill(context, drill_request())
    assert report.notification is not None and report.notification.sent
    text = json.dumps(posted)
    assert "restore drill Failed" in text and "RPO 60.0 min (target 15 min, MISSED by 45.0 min)" in text


def test_release_drill_with_a_garbage_time_exits_2_before_any_engine_call(
    capsys: pytest.CaptureFixture[str],
) -> None:
    engine = FakeEngine()
    with pytest.raises(SystemExit) as exited:
        main(["drill", "staging", "--at", "yesterday"], engine_factory=lambda _: engine, clock=engine.clock)
    assert exited.value.code == 2 and "not an ISO 8601 time" in capsys.readouterr().err
    assert engine.calls == []


def test_a_snapshot_is_refused_while_the_data_stack_holds_an_entry_the_tool_cannot_read(
    tmp_path: Path,
) -> None:
    engine = staging(signed_project_copy(tmp_path))
    odd = {
        "id": "release-staging-api-old",
        "sourceInstance": "platform-staging",
        "createdAt": "2026-01-01T00:00:00Z",
    }
    real = engine.data_outputs
    engine.data_outputs = lambda stack, drill=False: real(stack, drill) if drill else {"snapshots": [odd]}  # type: ignore[method-assign]
    with pytest.raises(SnapshotFailedError, match=r"release-staging-api-old.*would delete them"):
        snapshot_at(engine, NEWEST_WRITE)
    assert not engine.data_ups  # nothing deleted, nothing taken


def test_a_drill_interrupted_while_it_verifies_removes_the_instance_records_and_stops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = staging(signed_project_copy(tmp_path))
    snapshot_at(engine, NEWEST_WRITE)

    def interrupted(*_: Any, **__: Any) -> Any:
        raise KeyboardInterrupt  # Ctrl-C, or SIGTERM through release.interrupts

    monkeypatch.setattr("release.flows.drill.verify_database", interrupted)
    with pytest.raises(KeyboardInterrupt):
        drill(ReleaseContext.for_tests(engine, engine.project_dir), drill_request())
    assert engine.data_ups[-1].plan.scratch is None  # destroyed
    record = history_of(engine, "staging")[0].record
    assert record is not None and record.event == "drill"
    assert record.data["drill"]["verdict"] == "Failed" and record.data["drill"]["failedStep"] == "verify"


def test_a_stack_name_rds_would_refuse_still_gets_a_snapshot(tmp_path: Path) -> None:
    project = contract_project(tmp_path)
    shutil.copy(project / "Pulumi.staging.yaml", project / "Pulumi.eu_staging.yaml")

    def policy(document: dict[str, Any]) -> None:
        policies = document["config"]["stackPolicies"]["value"]
        policies["eu_staging"] = copy.deepcopy(policies["staging"])

    edit_yaml(project / "Pulumi.yaml", policy)
    engine = FakeEngine(project_dir=project)
    engine.add_stack("eu_staging", edit=FAST_BLUE_GREEN)
    with cluster(engine, "eu_staging") as api:
        report = deploy(ReleaseContext.for_tests(engine, engine.project_dir), api.request(NEW_API))
    assert report.phase == "Healthy", report.failure
    assert report.snapshot["snapshot"].startswith("release-eu-staging-")


# -- retention ----------------------------------------------------------------------------------------

RETENTION_NOW = datetime(2026, 11, 30, tzinfo=UTC)


def taken(
    days_ago: int, image: str = "registry.example.test/platform/api@sha256:" + "01" * 32
) -> SnapshotSpec:
    at = RETENTION_NOW - timedelta(days=days_ago)
    return SnapshotSpec(f"release-staging-api-{days_ago:012d}-x", "platform-staging", "api", image, "r-1", at)


def test_retention_keeps_the_newest_ones_and_the_young_ones_and_prunes_the_rest() -> None:
    safety = project_settings(PROJECT).data_safety
    assert safety is not None  # keep 10, maxAgeDays 35
    snapshots = [taken(days) for days in range(36, 60)]  # all older than 35 days
    kept = retained(snapshots, safety, set(), RETENTION_NOW)
    newest_ten = sorted(snapshots, key=lambda spec: spec.created_at)[-10:]
    assert kept == newest_ten
    young = [taken(days) for days in range(0, 20)]
    assert len(retained(young, safety, set(), RETENTION_NOW)) == 20  # all younger than 35 days


def test_retention_never_prunes_the_newest_snapshot_before_a_live_digest() -> None:
    safety = project_settings(PROJECT).data_safety
    assert safety is not None
    live = "registry.example.test/platform/api@sha256:" + "02" * 32
    guarding = [taken(400, live), taken(300, live)]  # the newer one guards the live digest
    others = [taken(days) for days in range(36, 60)]
    kept = retained([*guarding, *others], safety, {live}, RETENTION_NOW)
    assert guarding[1] in kept and guarding[0] not in kept


@pytest.mark.parametrize("stack", ["staging", "production"])
def test_a_drill_restores_into_an_instance_that_mirrors_the_database_the_program_declares(
    tmp_path: Path, stack: str
) -> None:
    engine = FakeEngine(project_dir=signed_project_copy(tmp_path))
    engine.add_stack(stack, edit=FAST_BLUE_GREEN)
    project_file = ReleaseContext.for_tests(engine, engine.project_dir).project_file
    config = validated_stack_config(stack, engine.get_config(stack), project_file)
    take_snapshot(engine, config, "api", NEW_API, "r-0123456789ab", lambda _: None, now=NEWEST_WRITE)
    request = DrillRequest(stack, "alice", signer=TEST_SIGNER, sslmode="disable")
    drill(ReleaseContext.for_tests(engine, engine.project_dir), request)  # verify fails: no server; fine
    scratch = next(call.plan.scratch for call in engine.data_ups if call.plan.scratch is not None)
    source = baseline(stack).of_type("aws:rds/instance:Instance")[0].inputs
    assert scratch.source_instance == source["identifier"]
    assert scratch.engine_version == source["engineVersion"]
    assert scratch.parameter_group_name == source["parameterGroupName"]
    assert scratch.subnet_group_name == source["dbSubnetGroupName"]
    assert list(scratch.security_group_ids) == source["vpcSecurityGroupIds"]
    assert (scratch.port, scratch.database_name) == (source["port"], source["dbName"])
    assert scratch.instance_class == source["instanceClass"]  # no drillInstanceClass set
    assert engine.data_ups[-1].plan.scratch is None  # and it was removed
