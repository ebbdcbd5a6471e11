"""The data program: what `platform-data/<stack>` declares, run by the release tool as an inline
program of the automation API (its own project, so the main program's resources and parity stay as
they are). The release tool decides the DataPlan; this only turns it into resources."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pulumi
import pulumi_aws as aws

from components.database_snapshots import DatabaseSnapshots
from components.scratch_database import ScratchDatabase
from core.data_plan import SCRATCH_OUTPUT, SCRATCH_PASSWORD_OUTPUT, SNAPSHOTS_OUTPUT, DataPlan


def data_program(
    plan: DataPlan, snapshot_timeout_minutes: int, restore_timeout_minutes: int, region: str
) -> Callable[[], None]:
    """The inline program for `plan`: the stack's manual snapshots (possibly none) and, while a drill
    runs, its one scratch instance. Outputs: SNAPSHOTS_OUTPUT always; SCRATCH_OUTPUT and the secret
    SCRATCH_PASSWORD_OUTPUT only while a scratch instance is declared."""

    def program() -> None:
        provider = aws.Provider("aws", region=region)
        on_aws = pulumi.ResourceOptions(provider=provider)
        snapshots = DatabaseSnapshots(
            "snapshots", plan.snapshots, snapshot_timeout_minutes, tags=plan.tags, opts=on_aws
        )
        pulumi.export(SNAPSHOTS_OUTPUT, snapshots.snapshots)
        if plan.scratch is None:
            return
        scratch = ScratchDatabase(
            "scratch", plan.scratch, restore_timeout_minutes, tags=plan.tags, opts=on_aws
        )
        described: dict[str, Any] = {
            "identifier": scratch.identifier,
            "address": scratch.address,
            "port": scratch.port,
            "databaseName": scratch.database_name,
            "username": scratch.username,
            "restoredFrom": scratch.restored_from,
        }
        pulumi.export(SCRATCH_OUTPUT, described)
        pulumi.export(SCRATCH_PASSWORD_OUTPUT, pulumi.Output.secret(scratch.password))

    return program
