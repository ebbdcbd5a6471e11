"""DatabaseAlarms: CloudWatch alarms on the RDS instance, notifying the stack's SNS topic."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from core.config.stack import CPU_ALARM_PERCENT, connections_alarm_threshold, free_storage_alarm_bytes
from core.naming import DATABASE_ALARMS_TYPE

PERIOD_SECONDS = 300


class DatabaseAlarms(pulumi.ComponentResource):
    """Three alarms on one instance, each after three 5-minute periods in breach, with OK notices too:

    - `cpu`: average CPU above 80%;
    - `free-storage`: free storage below 10% of the allocated storage;
    - `connections`: connections above 80% of the parameter group's `max_connections`.

    Replica lag has no alarm: a Multi-AZ *instance* (what the program declares) replicates
    synchronously and publishes no `ReplicaLag`; only read replicas and Multi-AZ DB clusters do.
    """

    alarm_names: pulumi.Output[list[str]]

    def __init__(
        self,
        name: str,
        instance_id: pulumi.Input[str],
        allocated_storage_gb: int,
        max_connections: int | None,
        topic_arn: str,
        tags: dict[str, str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(DATABASE_ALARMS_TYPE, name, None, opts)
        thresholds = {
            "cpu": (
                "CPUUtilization",
                "GreaterThanThreshold",
                float(CPU_ALARM_PERCENT),
                f"average CPU above {CPU_ALARM_PERCENT}%",
            ),
            "free-storage": (
                "FreeStorageSpace",
                "LessThanThreshold",
                float(free_storage_alarm_bytes(allocated_storage_gb)),
                "free storage below 10% of the allocated storage",
            ),
        }
        if max_connections is not None:
            thresholds["connections"] = (
                "DatabaseConnections",
                "GreaterThanThreshold",
                float(connections_alarm_threshold(max_connections)),
                "connections above 80% of max_connections",
            )
        alarms = [
            aws.cloudwatch.MetricAlarm(
                f"{name}-{key}",
                alarm_description=f"{name}: {says}",
                namespace="AWS/RDS",
                metric_name=metric,
                dimensions={"DBInstanceIdentifier": instance_id},
                statistic="Average",
                period=PERIOD_SECONDS,
                evaluation_periods=3,
                comparison_operator=comparison,
                threshold=threshold,
                treat_missing_data="breaching" if key == "free-storage" else "missing",
                alarm_actions=[topic_arn],
                ok_actions=[topic_arn],
                tags=tags,
                opts=pulumi.ResourceOptions(parent=self),
            )
            for key, (metric, comparison, threshold, says) in thresholds.items()
        ]
        self.alarm_names = pulumi.Output.all(*[alarm.name for alarm in alarms])
        self.register_outputs({"alarm_names": self.alarm_names})
