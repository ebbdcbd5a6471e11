"""The database's settings: backup retention and windows per stack, under the stack policy's floor.

Under Pulumi's mock runtime (the real program, every stack file): what the RDS instance declares;
and the config that is refused, each problem with its stack, key, value and fix, all at once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from core.config.rules import load_stack_config
from core.config.sources import read_stack_file
from core.config.stack import window_minutes
from core.errors import ConfigProblem
from tests.conftest import ROOT, SECRET_NAMES, STACKS, baseline, only, problems_of

RDS = "aws:rds/instance:Instance"


def database_knob(stack: str) -> dict[str, Any]:
    knob: dict[str, Any] = read_stack_file(ROOT, stack).raw.values["platform:database"]
    return knob


def instance(stack: str) -> dict[str, Any]:
    return baseline(stack).named(RDS, "database").inputs


def database_problems(project: Path, stack: str, **database: Any) -> list[ConfigProblem]:
    """The problems of `stack` with its `platform:database` knob changed as given."""
    return problems_of(project, stack, lambda config: config["platform:database"].update(database))


# ------------------------------------------------------------------------------- what is declared


@pytest.mark.parametrize("stack", STACKS)
def test_backup_retention_and_windows_come_from_the_stacks_database_knob(stack: str) -> None:
    knob, inputs = database_knob(stack), instance(stack)
    assert inputs["backupRetentionPeriod"] == knob["backupRetentionDays"]
    assert inputs["backupWindow"] == knob["backupWindow"]
    assert inputs["maintenanceWindow"] == knob["maintenanceWindow"]


def test_production_keeps_backups_two_weeks_and_is_maintained_on_sunday_night() -> None:
    inputs = instance("production")
    assert inputs["backupRetentionPeriod"] >= 14
    assert inputs["maintenanceWindow"] == "sun:02:00-sun:03:00"


# ----------------------------------------------------------------------------------- bad input


def test_retention_below_the_stack_policys_minimum_is_refused_naming_the_fix(project: Path) -> None:
    problem = only(
        database_problems(project, "production", backupRetentionDays=7),
        "platform:database.backupRetentionDays",
    )
    assert problem.value == 7
    assert "at least 14 days" in problem.problem
    assert "stackPolicies.production in Pulumi.yaml: minBackupRetentionDays" in problem.problem
    assert problem.fix == "`pulumi config set --path 'database.backupRetentionDays' 14 -s production`"


def test_dev_may_keep_backups_one_day_because_its_policy_allows_it() -> None:
    config = load_stack_config(read_stack_file(ROOT, "dev", SECRET_NAMES).raw)
    assert config.settings.database.backup_retention_days == 1 == config.policy.min_backup_retention_days


@pytest.mark.parametrize(
    ("key", "window"),
    [
        ("backupWindow", "3:00-03:30"),
        ("backupWindow", "03:00-24:00"),
        ("backupWindow", "03:00-03:30\n"),
        ("maintenanceWindow", "Sun:02:00-Sun:03:00"),
        ("maintenanceWindow", "sunday:02:00-sunday:03:00"),
        ("maintenanceWindow", "02:00-03:00"),
    ],
)
def test_a_malformed_window_is_refused_with_aws_format(project: Path, key: str, window: str) -> None:
    problem = only(database_problems(project, "staging", **{key: window}), f"platform:database.{key}")
    assert problem.value == window
    expected = "hh24:mi-hh24:mi" if key == "backupWindow" else "ddd:hh24:mi-ddd:hh24:mi"
    assert expected in problem.problem
    assert "Pulumi.staging.yaml" in problem.fix


def test_a_window_shorter_than_30_minutes_is_refused(project: Path) -> None:
    problem = only(
        database_problems(project, "dev", backupWindow="03:00-03:15"), "platform:database.backupWindow"
    )
    assert "at least 30 minutes" in problem.problem
    assert "not 15" in problem.problem


def test_a_maintenance_window_that_overlaps_the_backup_window_is_refused(project: Path) -> None:
    problem = only(
        database_problems(project, "production", maintenanceWindow="sun:01:00-sun:02:00"),
        "platform:database.maintenanceWindow",
    )
    assert problem.value == "sun:01:00-sun:02:00"
    assert "overlaps the daily backup window 00:30-01:30" in problem.problem
    assert "pulumi config set --path 'database.maintenanceWindow'" in problem.fix
    assert "-s production" in problem.fix


def test_both_malformed_windows_are_reported_at_once(project: Path) -> None:
    problems = database_problems(
        project, "production", backupRetentionDays=3, backupWindow="1:00-2:00", maintenanceWindow="Sun"
    )
    assert {problem.key for problem in problems} == {
        "platform:database.backupWindow",
        "platform:database.maintenanceWindow",
    }  # the policy's retention floor is checked once the knob itself is valid, as every policy rule


def test_retention_and_overlap_are_reported_together(project: Path) -> None:
    problems = database_problems(
        project, "production", backupRetentionDays=3, maintenanceWindow="sun:00:00-sun:01:00"
    )
    assert {problem.key for problem in problems} == {
        "platform:database.backupRetentionDays",
        "platform:database.maintenanceWindow",
    }


# ------------------------------------------------------------------------------- window arithmetic


def test_a_daily_window_covers_its_minutes_on_every_day_and_may_wrap_midnight() -> None:
    minutes = window_minutes("23:45-00:15", daily=True)
    assert len(minutes) == 7 * 30
    assert 23 * 60 + 45 in minutes and 0 in minutes and 15 not in minutes


def test_a_weekly_window_may_wrap_around_sunday() -> None:
    minutes = window_minutes("sun:23:30-mon:00:30", daily=False)
    assert len(minutes) == 60
    assert 0 in minutes and 7 * 24 * 60 - 1 in minutes
