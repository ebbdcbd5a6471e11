"""ScratchDatabase: a throwaway RDS instance a restore drill restores the stack's database into."""

from __future__ import annotations

import json
from collections.abc import Sequence

import pulumi
import pulumi_aws as aws

from core.data_plan import SCRATCH_DATABASE_TYPE, ScratchSpec, utc_text

PURPOSE_TAG = {"purpose": "restore-drill"}
DELETE_TIMEOUT_MINUTES = 30
"""How long removing the scratch instance may take (no final snapshot, so minutes, not hours)."""


def restored_from(spec: ScratchSpec) -> str:
    """What the scratch instance holds: the snapshot's identifier, or `<source>@<RFC 3339 time>`."""
    if spec.snapshot_id is not None:
        return spec.snapshot_id
    assert spec.restore_time is not None  # ScratchSpec holds exactly one of the two
    return f"{spec.source_instance}@{utc_text(spec.restore_time)}"


def _password(secret_string: str) -> str:
    """The `password` of an RDS-managed master secret. Errors never quote the secret's text."""
    try:
        document = json.loads(secret_string)
    except ValueError:
        raise ValueError("the scratch instance's master secret is not JSON") from None
    password = document.get("password") if isinstance(document, dict) else None
    if not isinstance(password, str) or not password:
        raise ValueError("the scratch instance's master secret holds no password")
    return password


def _secret_arn(secrets: Sequence[aws.rds.outputs.InstanceMasterUserSecret]) -> str:
    arn = secrets[0].secret_arn if secrets else None
    if not arn:
        raise ValueError("the scratch instance has no managed master secret (manage_master_user_password)")
    return arn


class ScratchDatabase(pulumi.ComponentResource):
    """One RDS PostgreSQL instance restored from a manual snapshot or to a point in time of the
    source instance, for a restore drill to verify and then destroy.

    - It mirrors the source where that decides whether the data is usable the same way: engine
      version, parameter group (the same settings, e.g. `rds.force_ssl`), subnet group, security
      groups, port, database name. So a drill proves the restore the way an incident would use it.
    - It is built to be thrown away: no deletion protection, no final snapshot, no backups of its
      own, changes applied immediately; never publicly accessible, storage encrypted, tagged
      `purpose: restore-drill`.
    - Creating it waits at most `timeout_minutes` (the drill's restore budget); removing it is bounded
      too, so a drill never hangs on the provider's defaults.
    - The master password is generated and kept by AWS (`manage_master_user_password`); the drill reads
      it from that secret, and it leaves this component only as a secret Output.
    """

    identifier: pulumi.Output[str]
    address: pulumi.Output[str]
    port: pulumi.Output[int]
    database_name: pulumi.Output[str]
    username: pulumi.Output[str]
    restored_from: pulumi.Output[str]
    password: pulumi.Output[str]
    """Secret: the master password, read from the instance's managed secret."""

    def __init__(
        self,
        name: str,
        spec: ScratchSpec,
        timeout_minutes: int,
        tags: dict[str, str] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(SCRATCH_DATABASE_TYPE, name, None, opts)
        if timeout_minutes < 1:
            raise ValueError(f"a restore's timeout is at least 1 minute, not {timeout_minutes}")
        point_in_time = (
            aws.rds.InstanceRestoreToPointInTimeArgs(
                source_db_instance_identifier=spec.source_instance,
                restore_time=utc_text(spec.restore_time),
            )
            if spec.restore_time is not None
            else None
        )
        instance = aws.rds.Instance(
            name,
            identifier=spec.identifier,
            snapshot_identifier=spec.snapshot_id,
            restore_to_point_in_time=point_in_time,
            engine="postgres",
            engine_version=spec.engine_version,
            auto_minor_version_upgrade=False,
            parameter_group_name=spec.parameter_group_name,
            instance_class=spec.instance_class,
            db_subnet_group_name=spec.subnet_group_name,
            vpc_security_group_ids=list(spec.security_group_ids),
            port=spec.port,
            db_name=spec.database_name,
            manage_master_user_password=True,
            storage_encrypted=True,
            multi_az=False,
            publicly_accessible=False,
            backup_retention_period=0,
            deletion_protection=False,
            skip_final_snapshot=True,
            apply_immediately=True,
            tags={**(tags or {}), **PURPOSE_TAG, "source-instance": spec.source_instance},
            opts=pulumi.ResourceOptions(
                parent=self,
                custom_timeouts=pulumi.CustomTimeouts(
                    create=f"{timeout_minutes}m",
                    update=f"{timeout_minutes}m",
                    delete=f"{DELETE_TIMEOUT_MINUTES}m",
                ),
            ),
        )
        secret = aws.secretsmanager.get_secret_version_output(
            secret_id=instance.master_user_secrets.apply(_secret_arn),
            opts=pulumi.InvokeOutputOptions(parent=self),
        )
        self.identifier = instance.identifier
        self.address = instance.address
        self.port = instance.port
        self.database_name = instance.db_name
        self.username = instance.username
        self.restored_from = pulumi.Output.from_input(restored_from(spec))
        self.password = pulumi.Output.secret(secret.secret_string.apply(_password))
        self.register_outputs(
            {
                "identifier": self.identifier,
                "address": self.address,
                "port": self.port,
                "database_name": self.database_name,
                "username": self.username,
                "restored_from": self.restored_from,
                "password": self.password,
            }
        )
