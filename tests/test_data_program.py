"""The data program (`platform-data/<stack>`): the manual snapshots and the one scratch instance of a
restore drill, as the inline program declares them under Pulumi's mock runtime.

A scratch instance is built from the main database exactly as the main program declares it for each
stack, so "mirrors the source" is checked against the real thing, not a copy of it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pulumi
import pytest

from components.data_program import data_program
from components.scratch_database import ScratchDatabase
from core.config.base import SECRET_MARKER
from core.config.rules import load_stack_config
from core.config.sources import read_stack_file
from core.data_plan import (
    DATA_PROJECT,
    RDS_INSTANCE_TYPE,
    RDS_SNAPSHOT_TYPE,
    SCRATCH_DATABASE_TYPE,
    SCRATCH_OUTPUT,
    SCRATCH_PASSWORD_OUTPUT,
    SNAPSHOT_ID,
    SNAPSHOTS_OUTPUT,
    SNAPSHOTS_TYPE,
    DataPlan,
    ScratchSpec,
    SnapshotSpec,
    scratch_identifier,
    snapshot_id,
)
from release.offline.mock_runtime import ProgramRun, RegisteredResource, evaluate_inline
from release.offline.mocks import MOCK_SCRATCH_PASSWORD, MOCK_SECRET_ARN, SECRET_VERSION_TOKEN, DataMocks
from tests.conftest import PROJECT, SECRET_NAMES, STACKS, baseline

REGION = "eu-west-1"
FINGERPRINT = "0123456789ab"
IMAGE = f"registry.example.test/api@sha256:{FINGERPRINT}{'0' * 52}"
TAKEN = datetime(2025, 1, 31, 9, 30, tzinfo=UTC)
SNAPSHOT_MINUTES = 40
RESTORE_MINUTES = 25


def source(stack: str) -> dict[str, Any]:
    """The main database's inputs, as the main program declares them for `stack`."""
    return baseline(stack).named(RDS_INSTANCE_TYPE, "database").inputs


def snapshot(stack: str, at: datetime = TAKEN, service: str = "api") -> SnapshotSpec:
    return SnapshotSpec(
        snapshot_id=snapshot_id(stack, service, FINGERPRINT, at),
        source_instance=source(stack)["identifier"],
        service=service,
        image=IMAGE,
        release_id=f"release-{at:%H%M}",
        created_at=at,
    )


def scratch(stack: str, **restore: Any) -> ScratchSpec:
    """A scratch spec mirroring `stack`'s main database; `restore` picks snapshot_id or restore_time."""
    main = source(stack)
    return ScratchSpec(
        identifier=scratch_identifier(stack),
        source_instance=main["identifier"],
        engine_version=main["engineVersion"],
        parameter_group_name=main["parameterGroupName"],
        subnet_group_name=main["dbSubnetGroupName"],
        security_group_ids=tuple(main["vpcSecurityGroupIds"]),
        instance_class=main["instanceClass"],
        port=main["port"],
        database_name=main["dbName"],
        **(restore or {"snapshot_id": snapshot(stack).snapshot_id}),
    )


def run(plan: DataPlan, mocks: DataMocks | None = None) -> ProgramRun:
    program = data_program(plan, SNAPSHOT_MINUTES, RESTORE_MINUTES, REGION)
    return evaluate_inline(program, DATA_PROJECT, plan.stack, mocks)


def drill(stack: str, mocks: DataMocks | None = None, **restore: Any) -> ProgramRun:
    return run(DataPlan(stack, scratch=scratch(stack, **restore)), mocks)


def parent(run: ProgramRun, resource: RegisteredResource) -> RegisteredResource:
    return run.by_urn()[resource.parent]


# ------------------------------------------------------------------------------------ snapshots


def test_an_empty_plan_declares_no_snapshot_and_no_scratch_instance() -> None:
    result = run(DataPlan("staging"))
    assert result.of_type(RDS_SNAPSHOT_TYPE) == []
    assert result.of_type(RDS_INSTANCE_TYPE) == []
    assert result.of_type(SCRATCH_DATABASE_TYPE) == []
    assert result.outputs == {SNAPSHOTS_OUTPUT: []}


@pytest.mark.parametrize("stack", STACKS)
def test_each_snapshot_spec_is_one_snapshot_of_the_source_with_its_identifier_and_tags(stack: str) -> None:
    specs = (snapshot(stack), snapshot(stack, TAKEN + timedelta(hours=1), service="web"))
    result = run(DataPlan(stack, snapshots=specs))
    declared = result.of_type(RDS_SNAPSHOT_TYPE)
    assert sorted(resource.name for resource in declared) == sorted(spec.snapshot_id for spec in specs)
    for spec in specs:
        taken = result.named(RDS_SNAPSHOT_TYPE, spec.snapshot_id)
        assert taken.inputs == {
            "dbInstanceIdentifier": f"platform-{stack}",
            "dbSnapshotIdentifier": spec.snapshot_id,
            "tags": spec.tags(),
        }


def test_a_snapshot_may_take_at_most_the_snapshot_timeout_to_create() -> None:
    taken = run(DataPlan("production", snapshots=(snapshot("production"),))).of_type(RDS_SNAPSHOT_TYPE)[0]
    assert taken.timeouts == (("create", f"{SNAPSHOT_MINUTES}m"),)


def test_the_plans_tags_are_on_every_snapshot_under_the_snapshots_own() -> None:
    spec = snapshot("staging")
    plan = DataPlan("staging", snapshots=(spec,), tags={"app": "other", "owner": "platform-team"})
    taken = run(plan).named(RDS_SNAPSHOT_TYPE, spec.snapshot_id)
    assert taken.inputs["tags"] == {"owner": "platform-team", **spec.tags()}


def test_the_snapshots_output_lists_them_oldest_first() -> None:
    newer = snapshot("staging", TAKEN + timedelta(days=1), service="web")
    older = snapshot("staging")
    result = run(DataPlan("staging", snapshots=(newer, older)))
    assert result.outputs[SNAPSHOTS_OUTPUT] == [
        {
            "id": spec.snapshot_id,
            "sourceInstance": "platform-staging",
            "createdAt": spec.created_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "service": spec.service,
            "image": IMAGE,
            "releaseId": spec.release_id,
        }
        for spec in (older, newer)
    ]


def test_snapshots_are_children_of_the_snapshots_component_on_the_regions_provider() -> None:
    result = run(DataPlan("staging", snapshots=(snapshot("staging"),)))
    (taken,) = result.of_type(RDS_SNAPSHOT_TYPE)
    assert parent(result, taken).type == SNAPSHOTS_TYPE
    assert taken.provider == "aws"
    assert result.named("pulumi:providers:aws", "aws").inputs["region"] == REGION


def test_a_snapshot_declared_twice_is_refused() -> None:
    spec = snapshot("staging")
    with pytest.raises(Exception, match="each snapshot is declared once"):
        run(DataPlan("staging", snapshots=(spec, spec)))


# ------------------------------------------------------------------------------ scratch instance


@pytest.mark.parametrize("stack", STACKS)
def test_a_scratch_restored_from_a_snapshot_mirrors_the_source(stack: str) -> None:
    main = source(stack)
    inputs = drill(stack).named(RDS_INSTANCE_TYPE, "scratch").inputs
    mirrored = (
        "engineVersion",
        "parameterGroupName",
        "dbSubnetGroupName",
        "vpcSecurityGroupIds",
        "port",
        "dbName",
        "instanceClass",
    )
    assert {key: inputs[key] for key in mirrored} == {key: main[key] for key in mirrored}
    assert inputs["engine"] == main["engine"] == "postgres"
    assert inputs["identifier"] == f"drill-{stack}"
    assert inputs["snapshotIdentifier"] == snapshot(stack).snapshot_id
    assert "restoreToPointInTime" not in inputs


def test_a_scratch_instance_is_throwaway_private_and_encrypted() -> None:
    inputs = drill("production").named(RDS_INSTANCE_TYPE, "scratch").inputs
    assert inputs["deletionProtection"] is False
    assert inputs["skipFinalSnapshot"] is True
    assert inputs["publiclyAccessible"] is False
    assert inputs["backupRetentionPeriod"] == 0
    assert inputs["applyImmediately"] is True
    assert inputs["manageMasterUserPassword"] is True
    assert inputs["storageEncrypted"] is True
    assert "finalSnapshotIdentifier" not in inputs
    assert inputs["tags"]["purpose"] == "restore-drill"


def test_a_scratch_instance_is_not_protected_from_pulumi_either() -> None:
    assert drill("production").named(RDS_INSTANCE_TYPE, "scratch").protect is False


def test_a_scratch_instance_is_created_within_the_restore_timeout_and_its_removal_is_bounded() -> None:
    timeouts = dict(drill("staging").named(RDS_INSTANCE_TYPE, "scratch").timeouts)
    assert timeouts["create"] == f"{RESTORE_MINUTES}m"
    assert timeouts["delete"] == "30m"


def test_a_point_in_time_scratch_restores_the_source_at_an_rfc3339_utc_time() -> None:
    at = datetime(2025, 1, 31, 11, 15, 5, tzinfo=timezone(timedelta(hours=2)))
    inputs = drill("staging", restore_time=at).named(RDS_INSTANCE_TYPE, "scratch").inputs
    assert inputs["restoreToPointInTime"] == {
        "sourceDbInstanceIdentifier": "platform-staging",
        "restoreTime": "2025-01-31T09:15:05Z",
    }
    assert "snapshotIdentifier" not in inputs


def test_the_scratch_instance_is_a_child_of_the_scratch_component_on_the_regions_provider() -> None:
    result = drill("staging")
    instance = result.named(RDS_INSTANCE_TYPE, "scratch")
    assert parent(result, instance).type == SCRATCH_DATABASE_TYPE
    assert instance.provider == "aws"


def test_the_scratch_output_says_where_to_connect_and_what_it_holds() -> None:
    result = drill("staging", restore_time=TAKEN)
    assert result.outputs[SCRATCH_OUTPUT] == {
        "identifier": "drill-staging",
        "address": "drill-staging.db.example.test",
        "port": 5432,
        "databaseName": "app",
        "username": "platform_admin",
        "restoredFrom": "platform-staging@2025-01-31T09:30:00Z",
    }


def test_the_mocks_can_point_the_scratch_instance_at_a_local_database() -> None:
    mocks = DataMocks(scratch_address="127.0.0.1", scratch_port=54329, scratch_password="test-only-local")
    described = drill("dev", mocks).outputs[SCRATCH_OUTPUT]
    assert (described["address"], described["port"]) == ("127.0.0.1", 54329)


# -------------------------------------------------------------------------------------- password


def test_the_password_output_is_secret_and_no_plain_output_or_input_holds_it() -> None:
    result = drill("staging")
    assert result.outputs[SCRATCH_PASSWORD_OUTPUT] == SECRET_MARKER
    recorded = json.dumps([result.outputs, [resource.inputs for resource in result.resources]])
    assert MOCK_SCRATCH_PASSWORD not in recorded
    assert "password" not in json.dumps(result.outputs[SCRATCH_OUTPUT]).lower()


class RecordingDataMocks(DataMocks):
    def __init__(self, **overrides: Any) -> None:
        super().__init__(**overrides)
        self.secret_ids: list[str] = []

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        if args.token == SECRET_VERSION_TOKEN:
            self.secret_ids.append(args.args["secretId"])
        return super().call(args)


def test_the_password_is_read_from_the_scratch_instances_managed_secret() -> None:
    password = "test-only-other-password"
    mocks = RecordingDataMocks(scratch_password=password)

    def program() -> None:
        database = ScratchDatabase("scratch", scratch("dev"), RESTORE_MINUTES)
        # Unsecret only here, to compare: the component itself never hands the password out plain.
        pulumi.export("matches", pulumi.Output.unsecret(database.password.apply(lambda p: p == password)))
        pulumi.export("password", database.password)

    result = evaluate_inline(program, DATA_PROJECT, "dev", mocks)
    assert result.outputs == {"matches": True, "password": SECRET_MARKER}
    assert mocks.secret_ids == [MOCK_SECRET_ARN]


# ---------------------------------------------------------------------------------- the plan's rules


def test_a_scratch_spec_refuses_both_a_snapshot_and_a_point_in_time() -> None:
    with pytest.raises(ValueError, match="either a snapshot or a point in time"):
        scratch("staging", snapshot_id=snapshot("staging").snapshot_id, restore_time=TAKEN)


def test_a_scratch_spec_refuses_neither_a_snapshot_nor_a_point_in_time() -> None:
    with pytest.raises(ValueError, match="either a snapshot or a point in time"):
        scratch("staging", snapshot_id=None, restore_time=None)


def test_a_restore_time_without_a_time_zone_is_refused() -> None:
    with pytest.raises(Exception, match="without a time zone"):
        drill("staging", restore_time=datetime(2025, 1, 31, 9, 30))


@pytest.mark.parametrize("stack", STACKS)
def test_snapshot_ids_of_every_real_stack_and_service_are_valid_rds_identifiers(stack: str) -> None:
    services = load_stack_config(read_stack_file(PROJECT, stack, SECRET_NAMES).raw).services
    assert services
    for service in services:
        identifier = snapshot_id(stack, service.spec.name, FINGERPRINT, TAKEN)
        assert identifier == f"release-{stack}-{service.spec.name}-{FINGERPRINT}-20250131093000"
        assert len(identifier) <= 255
        assert identifier[0].isalpha() and not identifier.endswith("-") and "--" not in identifier


def test_a_snapshot_id_is_stamped_in_utc() -> None:
    at = datetime(2025, 1, 31, 11, 30, tzinfo=timezone(timedelta(hours=2)))
    assert snapshot_id("dev", "api", FINGERPRINT, at).endswith("-20250131093000")


@pytest.mark.parametrize(
    ("stack", "service"),
    [
        ("staging", "../x"),
        ("staging", "a/b"),
        ("staging", "API"),
        ("staging", "api--v2"),
        ("staging", "api_v2"),
        ("staging", "api\n"),
        ("staging", "x" * 250),
    ],
)
def test_a_snapshot_id_from_a_bad_name_is_refused(stack: str, service: str) -> None:
    with pytest.raises(ValueError, match="not a valid RDS snapshot identifier"):
        snapshot_id(stack, service, FINGERPRINT, TAKEN)


def test_a_snapshot_id_without_a_time_zone_is_refused() -> None:
    with pytest.raises(ValueError, match="without a time zone"):
        snapshot_id("staging", "api", FINGERPRINT, datetime(2025, 1, 31, 9, 30))


@pytest.mark.parametrize("stack", ["eu_prod", "Prod", "team.prod", "prod-", "a" * 80])
def test_a_stack_name_pulumi_allows_but_rds_does_not_is_mapped_to_valid_distinct_names(stack: str) -> None:
    identifier = snapshot_id(stack, "api", FINGERPRINT, TAKEN)
    assert SNAPSHOT_ID.fullmatch(identifier) and "--" not in identifier
    scratch = scratch_identifier(stack)
    assert len(scratch) <= 63 and SNAPSHOT_ID.fullmatch(scratch) and "--" not in scratch
    assert not scratch.endswith("-")
    assert scratch_identifier(stack) != scratch_identifier(stack.swapcase() + "x")
