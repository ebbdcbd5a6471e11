"""The database's settings: backup retention and windows per stack, under the stack policy's floor.

Under Pulumi's mock runtime (the real program, every stack file): what the RDS instance declares;
and the config that is refused, each problem with its stack, key, value and fix, all at once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from core.config.project import parameter_group_family
from core.config.rules import load_stack_config
from core.config.sources import read_stack_file
from core.config.stack import window_minutes
from core.errors import ConfigError, ConfigProblem
from tests.conftest import PROJECT, SECRET_NAMES, STACKS, baseline, edit_yaml, only, problems_of

RDS = "aws:rds/instance:Instance"
PARAMETER_GROUP = "aws:rds/parameterGroup:ParameterGroup"


def database_knob(stack: str) -> dict[str, Any]:
    knob: dict[str, Any] = read_stack_file(PROJECT, stack).raw.values["platform:database"]
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


@pytest.mark.parametrize("stack", STACKS)
def test_the_parameter_group_has_the_engine_versions_family_and_pulumi_yamls_parameters(stack: str) -> None:
    group = baseline(stack).named(PARAMETER_GROUP, "database-parameters")
    assert group.inputs["family"] == "postgres16"
    assert group.inputs["parameters"] == [
        {"name": "idle_in_transaction_session_timeout", "value": "60000", "applyMethod": "pending-reboot"},
        {"name": "log_min_duration_statement", "value": "1000", "applyMethod": "pending-reboot"},
        {"name": "max_connections", "value": "200", "applyMethod": "pending-reboot"},
        {"name": "rds.force_ssl", "value": "1", "applyMethod": "pending-reboot"},
        {"name": "statement_timeout", "value": "30000", "applyMethod": "pending-reboot"},
    ]


def test_the_parameter_group_is_the_database_components_own_and_named_by_stack_and_family() -> None:
    run = baseline("staging")
    group = run.named(PARAMETER_GROUP, "database-parameters")
    assert run.by_urn()[group.parent].type == "platform:components:Database"
    assert group.provider == "aws"
    assert group.inputs["name"] == "platform-staging-postgres16"


@pytest.mark.parametrize("stack", STACKS)
def test_the_instance_uses_the_parameter_group(stack: str) -> None:
    run = baseline(stack)
    group = run.named(PARAMETER_GROUP, "database-parameters")
    database = run.named(RDS, "database")
    assert database.inputs["parameterGroupName"] == group.inputs["name"]
    assert group.urn in database.dependencies


@pytest.mark.parametrize("stack", STACKS)
def test_performance_insights_are_on_for_7_days_and_logs_go_to_cloudwatch(stack: str) -> None:
    inputs = instance(stack)
    assert inputs["performanceInsightsEnabled"] is True
    assert inputs["performanceInsightsRetentionPeriod"] == 7
    assert inputs["enabledCloudwatchLogsExports"] == ["postgresql"]


@pytest.mark.parametrize("stack", STACKS)
def test_changes_are_never_applied_immediately(stack: str) -> None:
    assert instance(stack)["applyImmediately"] is False


@pytest.mark.parametrize(
    ("version", "family"), [("16.4", "postgres16"), ("15.7", "postgres15"), ("13.12", "postgres13")]
)
def test_the_family_is_postgres_and_the_major_version(version: str, family: str) -> None:
    assert parameter_group_family(version) == family


@pytest.mark.parametrize("version", ["16", "16.4.1", "v16.4", "sixteen", "16.4\n", "9.6"])
def test_a_version_without_a_family_is_refused(version: str) -> None:
    with pytest.raises(ValueError, match="engine version"):
        parameter_group_family(version)


# ----------------------------------------------------------------------------------- bad input


def test_an_engine_version_without_a_family_in_pulumi_yaml_is_refused(project: Path) -> None:
    edit_yaml(
        project / "Pulumi.yaml",
        lambda document: document["config"]["postgres"]["value"].update(engineVersion="9.6"),
    )
    with pytest.raises(ConfigError) as raised:
        load_stack_config(read_stack_file(project, "dev", SECRET_NAMES).raw)
    problem = only(raised.value.problems, "platform:postgres.engineVersion")
    assert problem.value == "9.6"
    assert "RDS supports PostgreSQL 10 and later" in problem.problem
    assert "Pulumi.yaml" in problem.fix


def test_a_parameter_name_that_is_no_setting_is_refused(project: Path) -> None:
    def bad_name(document: dict[str, Any]) -> None:
        document["config"]["postgres"]["value"]["parameters"]["Max Connections"] = "100"

    edit_yaml(project / "Pulumi.yaml", bad_name)
    with pytest.raises(ConfigError) as raised:
        load_stack_config(read_stack_file(project, "dev", SECRET_NAMES).raw)
    problem = only(raised.value.problems, "platform:postgres.parameters")
    assert "['Max Connections']" in problem.problem


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
    config = load_stack_config(read_stack_file(PROJECT, "dev", SECRET_NAMES).raw)
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


@pytest.mark.parametrize("stack", STACKS)
def test_parameters_in_a_stack_file_are_refused_as_project_level(project: Path, stack: str) -> None:
    problems = database_problems(project, stack, parameters={"max_connections": "500"})
    problem = only(problems, "platform:database.parameters")
    assert problem.value == {"max_connections": "500"}
    assert "project-level value is set in the stack" in problem.problem
    assert 'Pulumi.yaml declares postgres.parameters: {"max_connections": "200"' in problem.problem
    assert problem.fix == (
        f"remove it from Pulumi.{stack}.yaml (`pulumi config rm --path 'database.parameters' -s {stack}`) "
        "and change postgres.parameters in Pulumi.yaml if every stack should change"
    )
    assert problem.parity
    assert len(problems) == 1  # not also an unknown key


def test_any_project_level_postgres_key_under_the_database_knob_is_refused(project: Path) -> None:
    problem = only(
        database_problems(project, "staging", engineVersion="13.7"), "platform:database.engineVersion"
    )
    assert problem.value == "13.7"
    assert 'Pulumi.yaml declares postgres.engineVersion: "16.4"' in problem.problem


def test_postgres_parameters_set_in_a_stack_file_are_refused_naming_stack_key_value_and_fix(
    project: Path,
) -> None:
    def override(config: dict[str, Any]) -> None:
        config["platform:postgres"] = {"parameters": {"max_connections": "500"}}

    problem = only(problems_of(project, "production", override), "platform:postgres")
    assert problem.value == {"parameters": {"max_connections": "500"}}
    assert "project-level value is set in the stack" in problem.problem
    assert "Pulumi.yaml declares postgres:" in problem.problem
    assert "remove it from Pulumi.production.yaml (`pulumi config rm postgres -s production`)" in problem.fix


def test_a_misplaced_parameter_is_reported_with_every_other_database_problem(project: Path) -> None:
    problems = database_problems(
        project, "production", parameters={"max_connections": "500"}, backupRetentionDays=7
    )
    assert {problem.key for problem in problems} == {
        "platform:database.parameters",
        "platform:database.backupRetentionDays",
    }
    assert "stack 'production': 2 configuration problems" in str(ConfigError("production", problems))
