"""Bad input: every rule of the config layer gives one clear error (stack, key, value, fix), all at once."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from components.app_secrets import AppSecrets
from core.config.rules import load_stack_config
from core.config.sources import read_stack_file
from core.errors import ConfigError, MissingSecretsError
from tests.conftest import (
    PROJECT,
    SECRET_NAMES,
    STACKS,
    TEST_SECRETS,
    edit_yaml,
    only,
    problems_of,
    run_program,
)

DIGEST = "registry.example.test/platform/api@sha256:" + "a" * 64


@pytest.mark.parametrize("stack", STACKS)
def test_the_repository_stack_files_are_valid(stack: str) -> None:
    config = load_stack_config(read_stack_file(PROJECT, stack, SECRET_NAMES).raw)
    assert config.stack == stack


@pytest.mark.parametrize("stack", ["staging", "production"])
def test_a_tag_instead_of_a_digest_is_refused_in_staging_and_production(project: Path, stack: str) -> None:
    def tag(config: dict[str, Any]) -> None:
        config["platform:releases"]["api"]["images"]["green"] = "registry.example.test/platform/api:latest"

    problem = only(problems_of(project, stack, tag), "platform:releases.api.images.green")
    assert problem.value == "registry.example.test/platform/api:latest"
    assert "pinned by digest" in problem.problem
    assert "@sha256:" in problem.fix


def test_dev_may_use_a_tag(project: Path) -> None:
    config = load_stack_config(read_stack_file(project, "dev", SECRET_NAMES).raw)
    assert config.settings.releases["api"].images.green.endswith(":main")


def test_one_replica_in_production_is_refused(project: Path) -> None:
    def one_replica(config: dict[str, Any]) -> None:
        config["platform:releases"]["web"]["replicas"] = 1

    problem = only(problems_of(project, "production", one_replica), "platform:releases.web.replicas")
    assert problem.value == 1
    assert "at least 2 replicas" in problem.problem
    assert "pulumi config set --path 'releases.web.replicas' 2 -s production" in problem.fix


def test_production_without_deletion_protection_is_refused(project: Path) -> None:
    def unprotected(config: dict[str, Any]) -> None:
        config["platform:database"]["deletionProtection"] = False

    problem = only(problems_of(project, "production", unprotected), "platform:database.deletionProtection")
    assert "deletion protection" in problem.problem


def test_an_unknown_top_level_key_is_refused(project: Path) -> None:
    def typo(config: dict[str, Any]) -> None:
        config["platform:replica"] = 3

    problem = only(problems_of(project, "staging", typo), "platform:replica")
    assert problem.value == 3
    assert "unknown key" in problem.problem
    assert "releases" in problem.fix  # names the real knobs


def test_an_unknown_nested_key_is_refused_with_the_keys_allowed_there(project: Path) -> None:
    def typo(config: dict[str, Any]) -> None:
        config["platform:releases"]["api"]["replicaCount"] = 3

    problem = only(problems_of(project, "staging", typo), "platform:releases.api.replicaCount")
    assert "unknown key" in problem.problem
    assert "replicas, activeColor, images" in problem.fix


def test_a_key_outside_the_project_namespace_is_refused(project: Path) -> None:
    def foreign(config: dict[str, Any]) -> None:
        config["kubernetes:context"] = "somewhere-else"

    problem = only(problems_of(project, "dev", foreign), "kubernetes:context")
    assert "ignored" in problem.problem


def test_a_stack_file_overriding_a_project_level_value_is_refused(project: Path) -> None:
    def override(config: dict[str, Any]) -> None:
        config["platform:postgres"] = {
            "engineVersion": "13.7",
            "port": 5432,
            "databaseName": "app",
            "masterUsername": "platform_admin",
        }

    problem = only(problems_of(project, "production", override), "platform:postgres")
    assert "project-level value" in problem.problem
    assert '"16.4"' in problem.problem  # says what Pulumi.yaml declares
    assert "Pulumi.production.yaml" in problem.fix
    assert problem.parity


def test_overriding_a_project_level_value_with_the_same_value_is_still_refused(project: Path) -> None:
    def same_value(config: dict[str, Any]) -> None:
        config["platform:gateway"] = {"className": "platform-gateway"}

    problem = only(problems_of(project, "dev", same_value), "platform:gateway")
    assert problem.parity


def test_the_program_itself_refuses_a_stack_that_overrides_a_project_level_value() -> None:
    def override(values: dict[str, Any]) -> None:
        values["platform:postgres"] = {**values["platform:postgres"], "engineVersion": "13.7"}

    with pytest.raises(ConfigError) as raised:
        run_program("staging", edit=override)
    assert [problem.key for problem in raised.value.problems] == ["platform:postgres"]


def test_an_unknown_service_in_releases_is_refused(project: Path) -> None:
    def extra(config: dict[str, Any]) -> None:
        # a copy: the same object twice would be dumped as a YAML alias, which stack files may not hold
        config["platform:releases"]["billing"] = copy.deepcopy(config["platform:releases"]["api"])

    problem = only(problems_of(project, "dev", extra), "platform:releases.billing")
    assert "unknown service" in problem.problem


def test_a_stack_without_a_declared_policy_is_refused(project: Path) -> None:
    (project / "Pulumi.qa.yaml").write_text((project / "Pulumi.staging.yaml").read_text())
    with pytest.raises(ConfigError) as raised:
        load_stack_config(read_stack_file(project, "qa", SECRET_NAMES).raw)
    problem = only(raised.value.problems, "platform:stackPolicies")
    assert "add a 'qa:' entry" in problem.fix


def test_every_problem_is_reported_at_once(project: Path) -> None:
    def many(config: dict[str, Any]) -> None:
        config["platform:releases"]["api"]["replicas"] = 1
        config["platform:releases"]["web"]["images"]["blue"] = "registry.example.test/platform/web:latest"
        config["platform:database"]["deletionProtection"] = False
        config["platform:replica"] = 3

    problems = problems_of(project, "production", many)
    assert {problem.key for problem in problems} == {
        "platform:releases.api.replicas",
        "platform:releases.web.images.blue",
        "platform:database.deletionProtection",
        "platform:replica",
    }


def test_the_error_message_names_stack_key_value_and_fix(project: Path) -> None:
    def one_replica(config: dict[str, Any]) -> None:
        config["platform:releases"]["api"]["replicas"] = 1

    edit_yaml(project / "Pulumi.production.yaml", lambda document: one_replica(document["config"]))
    with pytest.raises(ConfigError) as raised:
        load_stack_config(read_stack_file(project, "production", SECRET_NAMES).raw)
    message = str(raised.value)
    assert message.startswith("stack 'production': 1 configuration problem:")
    assert "platform:releases.api.replicas = 1:" in message
    assert "fix: `pulumi config set --path 'releases.api.replicas' 2 -s production`" in message


def test_a_missing_secret_fails_with_every_missing_name() -> None:
    with pytest.raises(ConfigError) as raised:
        run_program("staging", secrets={})
    problem = only(raised.value.problems, "platform:appSecrets")
    assert "PAYMENT_PROVIDER_API_KEY, SESSION_SIGNING_KEY" in problem.problem
    assert "pulumi config set --secret --path 'appSecrets.SESSION_SIGNING_KEY'" in problem.fix


def test_app_secrets_component_names_every_missing_secret_before_registering_anything() -> None:
    with pytest.raises(MissingSecretsError) as raised:
        AppSecrets("app-secrets", namespace="ns", required=["A_KEY", "B_KEY", "C_KEY"], values={})
    assert raised.value.missing == ["A_KEY", "B_KEY", "C_KEY"]
    assert "A_KEY, B_KEY, C_KEY" in str(raised.value)


def test_secrets_in_plain_text_are_refused_without_printing_them() -> None:
    def plain(values: dict[str, Any]) -> None:
        values["platform:appSecrets"] = dict(TEST_SECRETS)

    with pytest.raises(ConfigError) as raised:
        run_program("dev", edit=plain, secrets={})
    problem = only(raised.value.problems, "platform:appSecrets")
    assert "plain text" in problem.problem
    for value in TEST_SECRETS.values():
        assert value not in str(raised.value)


def test_a_bad_secret_name_is_reported_without_its_value() -> None:
    with pytest.raises(ConfigError) as raised:
        run_program("dev", secrets={**TEST_SECRETS, "lower_case": "test-only-do-not-print"})
    assert "test-only-do-not-print" not in str(raised.value)


def test_a_color_value_for_an_undeclared_flag_or_env_var_is_refused(project: Path) -> None:
    def undeclared(config: dict[str, Any]) -> None:
        config["platform:releases"]["api"]["config"] = {
            "green": {"flags": {"FEATURE_TYPO": "true"}, "env": {"DEBUG": "1"}}
        }

    problems = problems_of(project, "staging", undeclared)
    flag = only(problems, "platform:releases.api.config.green.flags.FEATURE_TYPO")
    assert flag.value == "true" and "featureFlags" in flag.fix
    env = only(problems, "platform:releases.api.config.green.env.DEBUG")
    assert "api declares no env var DEBUG" in env.problem and "env" in env.fix


def test_flags_are_declared_project_level_so_a_stack_file_may_not_declare_its_own(project: Path) -> None:
    def stack_flags(config: dict[str, Any]) -> None:
        config["platform:featureFlags"] = {"FEATURE_NEW_CHECKOUT": "true"}

    problem = only(problems_of(project, "production", stack_flags), "platform:featureFlags")
    assert "project-level value" in problem.problem


def test_yaml_booleans_and_numbers_in_a_colors_config_are_the_text_the_pods_read(project: Path) -> None:
    def typed(config: dict[str, Any]) -> None:
        config["platform:releases"]["api"]["config"] = {"blue": {"flags": {"FEATURE_SEARCH_V2": True}}}

    edit_yaml(project / "Pulumi.staging.yaml", lambda document: typed(document["config"]))
    config = load_stack_config(read_stack_file(project, "staging", SECRET_NAMES).raw)
    assert config.settings.releases["api"].config.blue.flags == {"FEATURE_SEARCH_V2": "true"}


@pytest.mark.parametrize(
    ("labels", "says"),
    [
        ({"severity": "low"}, "set by the alert rules themselves"),
        ({"team-name": "platform"}, "label names must look like team"),
        ({"team": "a\nb"}, "one printable line"),
        ({}, "at least 1 item"),
    ],
    ids=["reserved", "bad name", "two lines", "none"],
)
def test_bad_alert_routing_labels_are_refused(project: Path, labels: dict[str, str], says: str) -> None:
    def route(config: dict[str, Any]) -> None:
        config["platform:alerting"] = {"routingLabels": labels}

    problem = only(problems_of(project, "production", route), "platform:alerting.routingLabels")
    assert says in problem.problem


@pytest.mark.parametrize("value", [0, -1, "2", True])
def test_min_approvals_below_one_or_not_a_whole_number_is_refused(project: Path, value: Any) -> None:
    def set_min(document: dict[str, Any]) -> None:
        document["config"]["stackPolicies"]["value"]["production"]["promotion"]["minApprovals"] = value

    edit_yaml(project / "Pulumi.yaml", set_min)
    with pytest.raises(ConfigError) as raised:
        load_stack_config(read_stack_file(project, "production", SECRET_NAMES).raw)
    assert any("minApprovals" in problem.key for problem in raised.value.problems), raised.value.problems
