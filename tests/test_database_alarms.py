"""The database's CloudWatch alarms (under the mock runtime): what they watch and where they notify."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import STACKS, baseline
from tests.test_config import only, problems_of

ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"


def alarms(stack: str) -> dict[str, dict[str, Any]]:
    return {alarm.name: alarm.inputs for alarm in baseline(stack).of_type(ALARM)}


@pytest.mark.parametrize("stack", STACKS)
def test_the_database_has_cpu_storage_and_connection_alarms_to_the_stacks_topic(stack: str) -> None:
    found = alarms(stack)
    assert sorted(found) == [
        "database-alarms-connections",
        "database-alarms-cpu",
        "database-alarms-free-storage",
    ]
    for alarm in found.values():
        assert alarm["namespace"] == "AWS/RDS"
        assert alarm["dimensions"] == {"DBInstanceIdentifier": f"platform-{stack}"}
        assert (
            alarm["alarmActions"]
            == alarm["okActions"]
            == [f"arn:aws:sns:eu-west-1:{ACCOUNTS[stack]}:platform-{stack}-alarms"]
        )
        assert (alarm["period"], alarm["evaluationPeriods"]) == (300, 3)


ACCOUNTS = {"dev": "111111111111", "staging": "222222222222", "production": "333333333333"}


def test_thresholds_follow_the_declared_sizes() -> None:
    found = alarms("production")  # 200 GiB allocated; max_connections 200 in Pulumi.yaml
    assert found["database-alarms-cpu"]["threshold"] == 80
    assert found["database-alarms-free-storage"]["threshold"] == 20 * 1024**3
    assert found["database-alarms-free-storage"]["comparisonOperator"] == "LessThanThreshold"
    assert found["database-alarms-connections"]["threshold"] == 160


def test_a_topic_that_is_not_an_sns_arn_is_refused(project: Path) -> None:
    def bad_topic(config: dict[str, Any]) -> None:
        config["platform:alerting"]["snsTopicArn"] = "arn:aws:sns:*:333333333333:*"

    problem = only(problems_of(project, "production", bad_topic), "platform:alerting.snsTopicArn")
    assert "SNS topic's ARN" in problem.problem
