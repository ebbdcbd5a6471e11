"""Database: PostgreSQL on AWS RDS, the engine version from project-level config only."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from core.config.project import PostgresSpec
from core.config.stack import DatabaseSize
from core.naming import DATABASE_TYPE

APPLY_METHOD = "pending-reboot"
"""How every parameter is applied: at the instance's next reboot, never to a running database. Static
parameters (max_connections) allow nothing else; for the dynamic ones (statement_timeout) it is the
same choice as `apply_immediately=False`: a change lands when an operator reboots in the maintenance
window, not in the middle of a release with both colors connected."""
PERFORMANCE_INSIGHTS_DAYS = 7
"""Performance Insights' free retention; longer is 31-day multiples at a price."""


class Database(pulumi.ComponentResource):
    """One RDS PostgreSQL instance and its own parameter group.

    - The engine version comes from Pulumi.yaml (project-level), and minor upgrades are off, so no two
      stacks can drift apart on their own (the PostgreSQL 13-vs-14 incident).
    - Its parameter group (family from the engine version: postgres16) holds `postgres.parameters`
      from Pulumi.yaml, so every stack runs with the same settings (max_connections, timeouts).
    - Performance Insights is on (7 days), PostgreSQL's log goes to CloudWatch Logs, and changes are
      never applied immediately: they wait for the stack's maintenance window.
    - Storage is encrypted; the master password is generated and kept by AWS in Secrets Manager
      (`manage_master_user_password`), so no password exists in config or in Pulumi state. The app
      reads it through the secret ARN exported here.
    - Backups are kept the stack's `backupRetentionDays` (at least its policy's
      `minBackupRetentionDays`) and taken in its daily `backupWindow`; AWS maintains the instance in
      its weekly `maintenanceWindow` (both UTC, never overlapping). A final snapshot is always taken
      on deletion, and deletion protection (also Pulumi's `protect`) is a per-stack knob that
      production's policy requires.
    """

    identifier: pulumi.Output[str]
    address: pulumi.Output[str]
    port: pulumi.Output[int]
    endpoint: pulumi.Output[str]
    master_user_secret_arn: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        identifier: str,
        postgres: PostgresSpec,
        size: DatabaseSize,
        tags: dict[str, str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(DATABASE_TYPE, name, None, opts)
        family = postgres.parameter_group_family
        parameter_group = aws.rds.ParameterGroup(
            f"{name}-parameters",
            # The family is in the name: a major upgrade (a new family) creates the new group before the
            # instance moves to it, and deletes the old one after.
            name=f"{identifier}-{family}",
            family=family,
            description=f"{identifier}: the settings every stack shares (postgres.parameters in Pulumi.yaml)",
            parameters=[
                aws.rds.ParameterGroupParameterArgs(name=key, value=value, apply_method=APPLY_METHOD)
                for key, value in sorted(postgres.parameters.items())
            ],
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self),
        )
        instance = aws.rds.Instance(
            name,
            identifier=identifier,
            engine="postgres",
            engine_version=postgres.engine_version,
            auto_minor_version_upgrade=False,
            parameter_group_name=parameter_group.name,
            instance_class=size.instance_class,
            allocated_storage=size.allocated_storage_gb,
            storage_type=postgres.storage_type,
            storage_encrypted=True,
            db_name=postgres.database_name,
            port=postgres.port,
            username=postgres.master_username,
            manage_master_user_password=True,
            master_user_secret_kms_key_id=size.secret_kms_key_arn,
            multi_az=size.multi_az,
            db_subnet_group_name=size.subnet_group_name,
            vpc_security_group_ids=size.security_group_ids,
            publicly_accessible=False,
            backup_retention_period=size.backup_retention_days,
            backup_window=size.backup_window,
            maintenance_window=size.maintenance_window,
            copy_tags_to_snapshot=True,
            skip_final_snapshot=False,
            final_snapshot_identifier=f"{identifier}-final",
            deletion_protection=size.deletion_protection,
            # Changes wait for the maintenance window instead of restarting the database mid-release.
            apply_immediately=False,
            performance_insights_enabled=True,
            performance_insights_retention_period=PERFORMANCE_INSIGHTS_DAYS,
            # PostgreSQL's log (slow statements: log_min_duration_statement) in CloudWatch Logs.
            enabled_cloudwatch_logs_exports=["postgresql"],
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self, protect=size.deletion_protection),
        )
        self.identifier = instance.identifier
        self.address = instance.address
        self.port = instance.port
        self.endpoint = instance.endpoint
        self.master_user_secret_arn = instance.master_user_secrets.apply(
            lambda secrets: (secrets[0].secret_arn or "") if secrets else ""
        )
        self.register_outputs(
            {
                "identifier": self.identifier,
                "address": self.address,
                "port": self.port,
                "endpoint": self.endpoint,
                "master_user_secret_arn": self.master_user_secret_arn,
            }
        )
