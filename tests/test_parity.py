"""Parity: the three stacks register the same resources and edges; every difference is a declared knob."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from core.config.sources import read_stack_file
from release.cli import main
from release.offline.explain import STACK_NAME_KNOB, KnobIndex, explain
from release.offline.parity import RESOURCE_PRESENCE, Difference, knob_leaves, resource_differences
from release.offline.plan import plan, redacted_config
from tests.conftest import ANOTHER_CODE_PATH, PROJECT, STACKS, baseline, edit_yaml


def quiet(_: str) -> None:
    return None


@pytest.fixture(scope="module")
def repository_plan() -> Any:
    return plan(PROJECT, list(STACKS), compare=True, progress=quiet)


def test_the_three_stacks_register_the_same_resources_with_the_same_edges() -> None:
    runs = {stack: baseline(stack) for stack in STACKS}
    keys = {stack: sorted(run.by_key()) for stack, run in runs.items()}
    assert keys["dev"] == keys["staging"] == keys["production"]
    structural = [
        difference
        for difference in resource_differences(runs, {stack: {} for stack in STACKS})
        if difference.path in (RESOURCE_PRESENCE, "(parent)", "(provider)", "(dependsOn)")
    ]
    assert structural == []


def test_every_difference_between_the_repository_stacks_is_a_declared_knob(repository_plan: Any) -> None:
    assert repository_plan.differences, "the stacks differ in their knobs, so there must be differences"
    assert [d for d in repository_plan.differences if d.is_violation] == []
    assert repository_plan.exit_code == 0


def find(differences: list[Difference], where: str, path: str) -> Difference:
    for difference in differences:
        if difference.where == where and difference.path == path:
            return difference
    raise AssertionError(f"no difference at {where} {path}")


@pytest.mark.parametrize(
    ("where", "path", "knob"),
    [
        ("kubernetes:apps/v1:Deployment api-blue", "spec.replicas", "releases.api.replicas"),
        (
            "kubernetes:apps/v1:Deployment web-green",
            "spec.template.spec.containers[0].image",
            "releases.web.images.green",
        ),
        (
            "kubernetes:core/v1:Service api-preview",
            "spec.selector.platform.example.test/color",
            "releases.api.activeColor",
        ),
        (
            "kubernetes:core/v1:ConfigMap web-config-blue",
            "data.FEATURE_SEARCH_V2",
            "releases.web.config.blue.flags.FEATURE_SEARCH_V2",
        ),
        ("kubernetes:gateway.networking.k8s.io/v1:HTTPRoute web", "spec.hostnames[0]", "domain"),
        ("kubernetes:gateway.networking.k8s.io/v1:Gateway platform", "spec.listeners[0].hostname", "domain"),
        ("aws:rds/instance:Instance database", "instanceClass", "database.instanceClass"),
        ("aws:rds/instance:Instance database", "backupRetentionPeriod", "database.backupRetentionDays"),
        ("aws:rds/instance:Instance database", "backupWindow", "database.backupWindow"),
        ("aws:rds/instance:Instance database", "maintenanceWindow", "database.maintenanceWindow"),
        ("pulumi:providers:kubernetes app-kubernetes", "context", "kubeContext"),
        (
            "kubernetes:networking.k8s.io/v1:NetworkPolicy api-to-database",
            "spec.egress[0].to[2].ipBlock.cidr",  # production lists three ranges, the others two
            "network.databaseCidrs[2]",
        ),
    ],
)
def test_a_difference_is_attributed_to_the_knob_that_causes_it(
    repository_plan: Any, where: str, path: str, knob: str
) -> None:
    assert find(repository_plan.differences, where, path).knobs == (knob,)


def test_a_migration_jobs_name_is_explained_by_its_colors_image_and_config_together(
    repository_plan: Any,
) -> None:
    job_name = find(repository_plan.differences, "kubernetes:batch/v1:Job api-migrate-green", "metadata.name")
    assert job_name.knobs == ("releases.api.config.green (fingerprint)", "releases.api.images.green")


def test_the_engine_version_does_not_differ_between_stacks(repository_plan: Any) -> None:
    assert not [d for d in repository_plan.differences if "engineVersion" in d.path]


def test_an_engine_version_override_in_one_stack_file_is_a_parity_violation(project: Path) -> None:
    def postgres_13(document: dict[str, Any]) -> None:
        document["config"]["platform:postgres"] = {
            "engineVersion": "13.7",
            "port": 5432,
            "databaseName": "app",
            "masterUsername": "platform_admin",
            "storageType": "gp3",
        }

    edit_yaml(project / "Pulumi.staging.yaml", postgres_13)
    report = plan(project, list(STACKS), compare=True, progress=quiet)
    violation = find(report.differences, "postgres", "platform:postgres.engineVersion")
    assert violation.is_violation
    assert violation.values == {"dev": "16.4", "staging": "13.7", "production": "16.4"}
    assert report.exit_code == 1


def test_a_parameter_set_under_a_stacks_database_knob_is_a_parity_violation_not_a_knob(project: Path) -> None:
    edit_yaml(
        project / "Pulumi.production.yaml",
        lambda document: document["config"]["platform:database"].update(
            parameters={"max_connections": "500"}
        ),
    )
    report = plan(project, list(STACKS), compare=True, progress=quiet)
    violation = find(report.differences, "database", "platform:database.parameters.max_connections")
    assert violation.is_violation
    assert "postgres.parameters in Pulumi.yaml" in violation.reason
    assert report.exit_code == 1


def test_an_extra_key_in_one_stack_file_is_a_parity_violation(project: Path) -> None:
    edit_yaml(
        project / "Pulumi.production.yaml",
        lambda document: document["config"].__setitem__("platform:postgresVersion", "14"),
    )
    report = plan(project, list(STACKS), compare=True, progress=quiet)
    violation = find(report.differences, "postgresVersion", "platform:postgresVersion")
    assert violation.is_violation
    assert violation.values["production"] == "14"
    assert report.exit_code == 1


def test_a_program_that_takes_another_code_path_in_one_stack_is_caught(project: Path) -> None:
    program = project / "__main__.py"
    program.write_text(
        program.read_text()
        + ANOTHER_CODE_PATH
        + "k8s.core.v1.ConfigMap('pool', data={'SIZE': '50' if pulumi.get_stack() == 'production' else '5'},"
        + " opts=on_cluster)\n"
    )
    report = plan(project, list(STACKS), compare=True, progress=quiet)
    presence = find(report.differences, "kubernetes:core/v1:ConfigMap debug", RESOURCE_PRESENCE)
    hard_coded = find(report.differences, "kubernetes:core/v1:ConfigMap pool", "data.SIZE")
    assert presence.is_violation and hard_coded.is_violation
    assert report.exit_code == 1


def test_release_plan_all_exits_0_and_says_it_shows_declarations_not_the_cloud(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["plan", "--all", "--project-dir", str(PROJECT)]) == 0
    out = capsys.readouterr().out
    assert "not what the cloud holds" in out
    assert "parity: OK" in out


def test_release_plan_one_stack_prints_the_key_settings(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "production", "--resources", "--project-dir", str(PROJECT)]) == 0
    out = capsys.readouterr().out
    assert "engine=postgres 16.4" in out
    assert "instance size=db.r6g.large" in out
    assert "replicas=4" in out
    assert "selects color=blue" in out
    assert "differences between" not in out


def test_release_plan_json_is_machine_readable(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--all", "--json", "--project-dir", str(PROJECT)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["violations"] == []
    assert set(result["stacks"]) == set(STACKS)
    assert {d["classification"] for d in result["differences"]} == {"knob"}
    deployment = next(
        r
        for r in result["stacks"]["staging"]["resources"]
        if r["name"] == "api-green" and r["type"] == "kubernetes:apps/v1:Deployment"
    )
    assert deployment["component"] == "api"
    assert deployment["settings"]["replicas"] == 2


def test_release_plan_all_exits_1_on_a_violation(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    edit_yaml(
        project / "Pulumi.dev.yaml",
        lambda document: document["config"].__setitem__("platform:gateway", {"className": "other"}),
    )
    assert main(["plan", "--all", "--resources", "--project-dir", str(project)]) == 1
    out = capsys.readouterr().out
    assert "VIOLATION [config] gateway  platform:gateway.className" in out
    assert "REFUSED by the program" in out


def test_a_config_error_exits_2_with_the_programs_message(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    edit_yaml(
        project / "Pulumi.production.yaml",
        lambda document: document["config"]["platform:releases"]["api"].__setitem__("replicas", 1),
    )
    assert main(["plan", "production", "--project-dir", str(project)]) == 2
    err = capsys.readouterr().err
    assert "stack 'production': 1 configuration problem:" in err
    assert "platform:releases.api.replicas = 1" in err


def _trust(namespace: str, provider: str) -> str:
    issuer = provider.split(":oidc-provider/", 1)[1]
    return f'{{"Federated": "{provider}", "{issuer}:sub": "system:serviceaccount:{namespace}:api"}}'


TWO_STACK_KNOBS = {
    stack: {
        "namespace": f"platform-{stack}",
        "identity.oidcProviderArn": f"arn:aws:iam::{account}:oidc-provider/oidc.example.test/id/{stack}",
        STACK_NAME_KNOB: stack,
    }
    for stack, account in (("dev", "111111111111"), ("staging", "222222222222"))
}


def test_one_text_holding_two_knobs_is_explained_by_both_together() -> None:
    values = {
        stack: _trust(knobs["namespace"], knobs["identity.oidcProviderArn"])
        for stack, knobs in TWO_STACK_KNOBS.items()
    }
    assert explain(values, TWO_STACK_KNOBS) == ("identity.oidcProviderArn", "namespace")


def test_a_text_that_differs_beyond_its_knobs_is_not_explained() -> None:
    values = {
        stack: _trust(knobs["namespace"], knobs["identity.oidcProviderArn"])
        + (" *" if stack == "dev" else "")
        for stack, knobs in TWO_STACK_KNOBS.items()
    }
    assert explain(values, TWO_STACK_KNOBS) == ()


def test_a_flags_true_never_explains_another_true_that_differs_between_stacks() -> None:
    knobs = {
        stack: {**TWO_STACK_KNOBS[stack], "featureFlags.FEATURE_X": value}
        for stack, value in (("dev", "true"), ("staging", "false"))
    }
    values = {"dev": '{"deletionProtection": "true"}', "staging": '{"deletionProtection": "false"}'}
    assert explain(values, knobs) == ()


def test_an_item_missing_where_the_list_knob_is_shorter_is_explained_but_not_another_missing_one() -> None:
    knobs: dict[str, dict[str, Any]] = {
        "dev": {"network.databaseCidrs[1]": None, "namespace": "platform-dev"},
        "staging": {"network.databaseCidrs[1]": "10.30.21.0/24", "namespace": "platform-staging"},
    }
    assert explain({"dev": None, "staging": "10.30.21.0/24"}, knobs) == ("network.databaseCidrs[1]",)
    assert explain({"dev": None, "staging": "10.30.99.0/24"}, knobs) == ()


def test_the_knob_index_only_skips_knobs_that_cannot_explain_a_value(monkeypatch: pytest.MonkeyPatch) -> None:
    """`KnobIndex.changing` narrows the knobs `explain` tries (it keeps plans of many services from
    growing with the square of their size); trying every knob gives the same differences."""
    runs = {stack: baseline(stack) for stack in STACKS}
    knobs = knob_leaves({stack: redacted_config(read_stack_file(PROJECT, stack)) for stack in STACKS})
    narrowed = resource_differences(runs, knobs)
    monkeypatch.setattr(KnobIndex, "changing", lambda self, values: None)
    assert resource_differences(runs, knobs) == narrowed
    assert any(difference.knobs for difference in narrowed)


def test_a_value_that_holds_a_knobs_token_text_is_still_compared_as_before() -> None:
    knobs = {stack: {"namespace": f"platform-{stack}"} for stack in ("dev", "staging")}
    assert explain({"dev": "x-{namespace}", "staging": "x-platform-staging"}, knobs) == ("namespace",)


def test_a_knob_whose_text_shows_only_once_another_is_replaced_is_still_weighed_together() -> None:
    """`_explained_together` replaces the longest texts first; a knob's text ("alpha") may then show
    inside another's token (`{alpha}`): every knob is weighed there, as before the index."""
    knobs = {
        "a": {"alpha": "LONGVALUE1", "beta": "alpha", "gamma": "x1x1"},
        "b": {"alpha": "LONGVALUE2", "beta": "omega", "gamma": "y2y2"},
    }
    assert explain({"a": "LONGVALUE1-x1x1", "b": "LONGVALUE2-y2y2"}, knobs) == ()


def test_values_that_are_the_same_are_explained_by_every_knob_that_differs() -> None:
    assert explain({"a": 5, "b": 5}, {"a": {"k": 1}, "b": {"k": 2}}) == ("k",)
