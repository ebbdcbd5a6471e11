"""Network policy, as the program declares it under the mock runtime: default deny in the app
namespace, and each allow rule selects exactly the pods it is meant for.

The pods are the ones the program renders (every Deployment's and migration Job's pod template), and
each policy's podSelector is evaluated against their labels, so a label that changes on either side
fails here instead of silently opening or closing traffic in a cluster.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from core.config.sources import read_stack_file
from core.errors import ConfigError
from release.offline.mock_runtime import ProgramRun
from tests.conftest import PROJECT, STACKS, baseline, copy_project, edit_yaml, run_program, with_knob

POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
DEPLOYMENT, JOB = "kubernetes:apps/v1:Deployment", "kubernetes:batch/v1:Job"
EVERY_POD = {"api-blue", "api-green", "web-blue", "web-green", "api-migrate-blue", "api-migrate-green"}


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A label selector with matchLabels only (all this program uses); `{}` selects every pod."""
    assert set(selector) <= {"matchLabels"}, f"unexpected selector fields: {selector}"
    return all(labels.get(key) == value for key, value in (selector.get("matchLabels") or {}).items())


def pods(run: ProgramRun) -> dict[str, dict[str, str]]:
    """Every pod template the stack renders, by workload (Pulumi) name, with its labels."""
    return {
        workload.name: workload.inputs["spec"]["template"]["metadata"]["labels"]
        for workload in [*run.of_type(DEPLOYMENT), *run.of_type(JOB)]
    }


def selected(run: ProgramRun, policy: str) -> set[str]:
    selector = run.named(POLICY, policy).inputs["spec"]["podSelector"]
    return {name for name, labels in pods(run).items() if selects(selector, labels)}


def spec(run: ProgramRun, policy: str) -> dict[str, Any]:
    found: dict[str, Any] = run.named(POLICY, policy).inputs["spec"]
    return found


def knobs(stack: str) -> dict[str, Any]:
    value: dict[str, Any] = read_stack_file(PROJECT, stack).raw.values["platform:network"]
    return value


@pytest.mark.parametrize("stack", STACKS)
def test_the_stack_renders_the_pods_these_tests_reason_about(stack: str) -> None:
    assert set(pods(baseline(stack))) == EVERY_POD


@pytest.mark.parametrize("stack", STACKS)
def test_everything_in_the_namespace_is_denied_by_default(stack: str) -> None:
    run = baseline(stack)
    assert selected(run, "default-deny") == EVERY_POD
    assert spec(run, "default-deny") == {
        "podSelector": {},
        "policyTypes": ["Ingress", "Egress"],
        "ingress": [],
        "egress": [],
    }
    namespaces = {policy.inputs["metadata"]["namespace"] for policy in run.of_type(POLICY)}
    assert namespaces == {f"platform-{stack}"}


@pytest.mark.parametrize("stack", STACKS)
def test_only_the_gateways_data_plane_and_prometheus_namespaces_reach_each_services_pods_on_its_port(
    stack: str,
) -> None:
    run = baseline(stack)
    for service, port in (("api", 8080), ("web", 3000)):
        for source, namespace in (("gateway", "gateway-system"), ("monitoring", "monitoring")):
            policy = f"{service}-from-{source}"
            assert selected(run, policy) == {f"{service}-blue", f"{service}-green"}  # not its migrations
            assert spec(run, policy)["policyTypes"] == ["Ingress"]
            assert spec(run, policy)["ingress"] == [
                {
                    "from": [
                        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}}
                    ],
                    "ports": [{"protocol": "TCP", "port": port}],
                }
            ]


@pytest.mark.parametrize("stack", STACKS)
def test_every_pod_may_ask_the_cluster_dns_and_nothing_else_in_kube_system(stack: str) -> None:
    run = baseline(stack)
    assert selected(run, "allow-dns") == EVERY_POD
    assert spec(run, "allow-dns")["egress"] == [
        {
            "to": [
                {
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                    "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
                }
            ],
            "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
        }
    ]


@pytest.mark.parametrize("stack", STACKS)
def test_only_the_database_readers_and_their_migrations_reach_the_database(stack: str) -> None:
    run = baseline(stack)
    database_policies = [
        policy.name for policy in run.of_type(POLICY) if policy.name.endswith("-to-database")
    ]
    assert sorted(database_policies) == ["api-migrate-to-database", "api-to-database"]
    assert selected(run, "api-to-database") == {"api-blue", "api-green"}
    assert selected(run, "api-migrate-to-database") == {"api-migrate-blue", "api-migrate-green"}
    for policy in database_policies:
        assert spec(run, policy)["policyTypes"] == ["Egress"]
        assert spec(run, policy)["egress"] == [
            {
                "to": [{"ipBlock": {"cidr": cidr}} for cidr in knobs(stack)["databaseCidrs"]],
                "ports": [{"protocol": "TCP", "port": 5432}],
            }
        ]


@pytest.mark.parametrize("stack", STACKS)
def test_https_egress_goes_only_to_the_stacks_ranges(stack: str) -> None:
    run = baseline(stack)
    assert selected(run, "allow-https-egress") == EVERY_POD
    assert spec(run, "allow-https-egress")["egress"] == [
        {
            "to": [{"ipBlock": {"cidr": cidr}} for cidr in knobs(stack)["httpsEgressCidrs"]],
            "ports": [{"protocol": "TCP", "port": 443}],
        }
    ]


def test_every_allow_rule_exists_before_the_default_deny() -> None:
    run = baseline("production")
    deny = run.named(POLICY, "default-deny")
    allows = {policy.urn for policy in run.of_type(POLICY)} - {deny.urn}
    assert allows <= set(deny.dependencies)


def test_a_service_that_stops_reading_the_database_loses_its_database_policies(tmp_path: Path) -> None:
    project = copy_project(tmp_path)

    def no_database(document: dict[str, Any]) -> None:
        for service in document["config"]["services"]["value"]:
            service.pop("readsDatabase", None)

    edit_yaml(project / "Pulumi.yaml", no_database)
    run = run_program("staging", project_dir=project)
    assert not [policy.name for policy in run.of_type(POLICY) if policy.name.endswith("-to-database")]


def test_the_gateway_pod_labels_narrow_the_data_plane_to_its_proxies() -> None:
    proxies = {"gateway.networking.k8s.io/gateway-name": "platform"}
    run = run_program("staging", edit=with_knob("network", gatewayPodLabels=proxies))
    assert spec(run, "api-from-gateway")["ingress"][0]["from"] == [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "gateway-system"}},
            "podSelector": {"matchLabels": proxies},
        }
    ]


def test_every_network_problem_is_reported_at_once_with_key_value_and_fix() -> None:
    edit = with_knob(
        "network", gatewayNamespace=None, databaseCidrs=["10.20.20.0/33"], httpsEgressCidrs=["vpce"]
    )
    with pytest.raises(ConfigError) as raised:
        run_program("production", edit=edit)
    problems = {problem.key: problem for problem in raised.value.problems}
    assert set(problems) == {
        "platform:network.gatewayNamespace",
        "platform:network.databaseCidrs",
        "platform:network.httpsEgressCidrs",
    }
    assert problems["platform:network.databaseCidrs"].value == ["10.20.20.0/33"]
    assert "10.20.0.0/16" in problems["platform:network.httpsEgressCidrs"].problem
    assert (
        "pulumi config set --path 'network.gatewayNamespace'"
        in problems["platform:network.gatewayNamespace"].fix
    )
    assert all(problem.stack == "production" for problem in raised.value.problems)


def test_a_stack_without_the_network_knob_is_told_every_key_it_needs() -> None:
    def drop(values: dict[str, Any]) -> None:
        del values["platform:network"]

    with pytest.raises(ConfigError) as raised:
        run_program("dev", edit=drop)
    [problem] = raised.value.problems
    assert problem.key == "platform:network"
    for key in ("gatewayNamespace", "databaseCidrs", "httpsEgressCidrs"):
        assert f"network.{key}" in problem.fix


@pytest.mark.parametrize("namespace", ["Gateway-System", "gateway.system", ""])
def test_the_gateway_namespace_must_be_a_namespace_name(namespace: str) -> None:
    with pytest.raises(ConfigError) as raised:
        run_program("staging", edit=with_knob("network", gatewayNamespace=namespace))
    assert [problem.key for problem in raised.value.problems] == ["platform:network.gatewayNamespace"]
