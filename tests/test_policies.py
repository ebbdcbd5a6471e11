"""The policy pack's rules, run on the resources the program registers under the mock runtime.

Each rule is called exactly as pulumi-policy calls it, with its own `ResourceValidationArgs` built
from a registered resource: the program's resources pass in every stack, and each bad case (a
registered resource with one property made wrong) is caught by the rule meant for it.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest
from pulumi_policy import ResourceValidationArgs

from components.routes import preview_route_spec
from policy.platform_policies import (
    RULES,
    Violation,
    stack_policies,
    supply_chain_declared,
    supply_chain_problem,
    violations_of,
)
from release.offline.mock_runtime import RegisteredResource
from release.offline.plan import plan
from tests.conftest import PROJECT, STACKS, baseline

Edit = Callable[[dict[str, Any]], None]


def engine_args(resource: RegisteredResource, edit: Edit | None = None) -> ResourceValidationArgs:
    props = copy.deepcopy(resource.inputs)
    if edit is not None:
        edit(props)
    return ResourceValidationArgs(resource.type, props, resource.urn, resource.name, None, None)  # type: ignore[arg-type]


def rules_broken(stack: str, type_token: str, name: str, edit: Edit) -> set[str]:
    resource = baseline(stack).named(type_token, name)
    return {violation.rule for violation in violations_of(engine_args(resource, edit))}


def container(props: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = props["spec"]["template"]["spec"]["containers"][0]
    return found


DEPLOYMENT, JOB = "kubernetes:apps/v1:Deployment", "kubernetes:batch/v1:Job"
DATABASE, CONFIG_MAP = "aws:rds/instance:Instance", "kubernetes:core/v1:ConfigMap"


@pytest.mark.parametrize("stack", STACKS)
def test_every_resource_the_program_registers_passes_every_rule(stack: str) -> None:
    violations = [
        violation
        for resource in baseline(stack).resources
        for violation in violations_of(engine_args(resource))
    ]
    assert violations == []


def test_the_pack_declares_fifteen_mandatory_rules() -> None:
    assert [rule.name for rule in RULES] == [
        "images-pinned-by-digest",
        "hardened-containers",
        "probes-and-limits",
        "database-private-and-encrypted",
        "deletion-protection",
        "database-settings",
        "no-plaintext-secrets-in-configmaps",
        "tls-on-every-listener",
        "route-attached-with-tls",
        "route-weights-and-protected-preview",
        "no-retired-ingress-annotations",
        "own-service-account",
        "exact-iam-resources",
        "supply-chain-enforced",
        "network-policy-present",
    ]


def test_a_workload_on_the_default_service_account_or_with_an_api_token_is_refused() -> None:
    def default_account(props: dict[str, Any]) -> None:
        del props["spec"]["template"]["spec"]["serviceAccountName"]

    def api_token(props: dict[str, Any]) -> None:
        props["spec"]["template"]["spec"]["automountServiceAccountToken"] = True

    assert rules_broken("production", DEPLOYMENT, "api-blue", default_account) == {"own-service-account"}
    assert rules_broken("staging", JOB, "api-migrate-green", api_token) == {"own-service-account"}


@pytest.mark.parametrize(
    "statement",
    [
        {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": "*"},
        {"Effect": "Allow", "Action": "secretsmanager:*", "Resource": "arn:aws:secretsmanager:r:1:secret:x"},
        {"Effect": "Allow", "Action": "s3:GetObject", "NotResource": "arn:aws:s3:::private/*"},
    ],
)
def test_an_iam_policy_with_a_wildcard_is_refused(statement: dict[str, Any]) -> None:
    def loosen(props: dict[str, Any]) -> None:
        props["policy"] = json.dumps({"Version": "2012-10-17", "Statement": [statement]})

    broken = rules_broken("production", "aws:iam/rolePolicy:RolePolicy", "api-read-database-secret", loosen)
    assert broken == {"exact-iam-resources"}


def tag(props: dict[str, Any]) -> None:
    container(props)["image"] = "registry.example.test/platform/api:latest"


def test_an_image_not_pinned_by_digest_is_refused_in_staging() -> None:
    assert rules_broken("staging", DEPLOYMENT, "api-blue", tag) == {"images-pinned-by-digest"}
    assert rules_broken("staging", JOB, "api-migrate-blue", tag) == {"images-pinned-by-digest"}


def test_an_image_tag_is_allowed_where_the_stack_policy_allows_tags() -> None:
    assert rules_broken("dev", DEPLOYMENT, "api-green", tag) == set()


@pytest.mark.parametrize(
    "setting",
    [("readOnlyRootFilesystem", False), ("allowPrivilegeEscalation", True), ("privileged", True)],
)
def test_a_container_without_its_hardening_is_refused(setting: tuple[str, bool]) -> None:
    key, value = setting

    def weaken(props: dict[str, Any]) -> None:
        container(props)["securityContext"][key] = value

    assert rules_broken("production", DEPLOYMENT, "api-blue", weaken) == {"hardened-containers"}


def test_a_container_running_as_root_is_refused() -> None:
    def as_root(props: dict[str, Any]) -> None:
        container(props)["securityContext"]["runAsNonRoot"] = False
        props["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] = False

    assert rules_broken("production", DEPLOYMENT, "api-blue", as_root) == {"hardened-containers"}


def test_capabilities_not_dropped_are_refused() -> None:
    def keep_capabilities(props: dict[str, Any]) -> None:
        container(props)["securityContext"]["capabilities"] = {"drop": ["NET_RAW"]}

    assert rules_broken("production", DEPLOYMENT, "api-blue", keep_capabilities) == {"hardened-containers"}


def test_a_deployment_without_probes_is_refused() -> None:
    def no_probes(props: dict[str, Any]) -> None:
        del container(props)["readinessProbe"]

    assert rules_broken("production", DEPLOYMENT, "web-green", no_probes) == {"probes-and-limits"}


def test_a_container_without_limits_is_refused() -> None:
    def no_limits(props: dict[str, Any]) -> None:
        del container(props)["resources"]["limits"]

    assert rules_broken("production", DEPLOYMENT, "web-green", no_limits) == {"probes-and-limits"}


def test_an_unencrypted_or_public_database_is_refused() -> None:
    def unencrypted(props: dict[str, Any]) -> None:
        props["storageEncrypted"] = False

    def public(props: dict[str, Any]) -> None:
        props["publiclyAccessible"] = True

    assert rules_broken("dev", DATABASE, "database", unencrypted) == {"database-private-and-encrypted"}
    assert rules_broken("dev", DATABASE, "database", public) == {"database-private-and-encrypted"}


def test_production_without_deletion_protection_is_refused_but_dev_is_not() -> None:
    def unprotected(props: dict[str, Any]) -> None:
        props["deletionProtection"] = False

    assert rules_broken("production", DATABASE, "database", unprotected) == {"deletion-protection"}
    assert rules_broken("dev", DATABASE, "database", unprotected) == set()


@pytest.mark.parametrize(
    "setting",
    [
        {"parameterGroupName": None},
        {"parameterGroupName": "default.postgres16"},
        {"performanceInsightsEnabled": False},
        {"applyImmediately": True},
        {"backupRetentionPeriod": 0},
    ],
    ids=["no parameter group", "default parameter group", "no insights", "applied immediately", "no backups"],
)
def test_a_database_without_its_settings_is_refused(setting: dict[str, Any]) -> None:
    assert rules_broken("dev", DATABASE, "database", lambda props: props.update(setting)) == {
        "database-settings"
    }


def test_production_backups_kept_less_than_its_policy_minimum_are_refused_but_dev_is_not() -> None:
    def one_week(props: dict[str, Any]) -> None:
        props["backupRetentionPeriod"] = 7

    assert rules_broken("production", DATABASE, "database", one_week) == {"database-settings"}
    assert rules_broken("dev", DATABASE, "database", one_week) == set()


def test_a_plaintext_secret_in_a_configmap_is_refused_and_a_secret_reference_is_not() -> None:
    def plaintext(props: dict[str, Any]) -> None:
        props["data"]["PAYMENT_API_TOKEN"] = "test-only-plaintext"

    assert rules_broken("staging", CONFIG_MAP, "api-database", plaintext) == {
        "no-plaintext-secrets-in-configmaps"
    }
    assert (
        rules_broken("staging", CONFIG_MAP, "api-database", lambda props: None) == set()
    )  # holds *_SECRET_ARN


def test_release_plan_applies_the_same_rules_offline() -> None:
    report = plan(PROJECT, ["production"], compare=False, progress=lambda _: None)
    assert report.policy_violation_count == 0 and report.exit_code == 0


def test_a_policy_violation_makes_release_plan_exit_1() -> None:
    report = plan(PROJECT, ["production"], compare=False, progress=lambda _: None)
    report.stacks[0].policy_violations.append(
        Violation("probes-and-limits", "urn:x", "api-blue", "no readinessProbe")
    )
    assert report.exit_code == 1


GATEWAY, ROUTE = (
    "kubernetes:gateway.networking.k8s.io/v1:Gateway",
    "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute",
)
ROLE, POLICY_TYPE = "aws:iam/role:Role", "kubernetes:networking.k8s.io/v1:NetworkPolicy"


def _listener(props: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(item for item in props["spec"]["listeners"] if item["name"] == name)
    return found


def test_a_host_listener_without_https_or_without_a_certificate_is_refused() -> None:
    def plain_http(props: dict[str, Any]) -> None:
        _listener(props, "https-api").update(protocol="HTTP", port=80)

    def no_certificate(props: dict[str, Any]) -> None:
        del _listener(props, "https-web")["tls"]

    assert rules_broken("production", GATEWAY, "platform", plain_http) == {"tls-on-every-listener"}
    assert rules_broken("dev", GATEWAY, "platform", no_certificate) == {"tls-on-every-listener"}


def test_a_route_without_parent_refs_or_reaching_a_backend_over_plain_http_is_refused() -> None:
    def detached(props: dict[str, Any]) -> None:
        props["spec"]["parentRefs"] = []

    def on_plain_http(props: dict[str, Any]) -> None:
        props["spec"]["parentRefs"][0]["sectionName"] = "http"

    assert rules_broken("production", ROUTE, "api", detached) == {"route-attached-with-tls"}
    assert rules_broken("staging", ROUTE, "web", on_plain_http) == {"route-attached-with-tls"}


@pytest.mark.parametrize("weights", [(90, 20), (99.5, 0.5), (110, -10), (100, None)])
def test_route_weights_must_be_whole_percentages_on_every_backend_summing_to_100(weights: Any) -> None:
    def split(props: dict[str, Any]) -> None:
        for ref, weight in zip(props["spec"]["rules"][0]["backendRefs"], weights, strict=True):
            if weight is None:
                del ref["weight"]
            else:
                ref["weight"] = weight

    assert rules_broken("production", ROUTE, "api", split) == {"route-weights-and-protected-preview"}


def _preview_route(stack: str, edit: Edit) -> set[str]:
    """The preview route with a stand-in token (the mock runtime redacts its spec)."""
    resource = baseline(stack).named(ROUTE, "api-preview")
    props = copy.deepcopy(resource.inputs)
    props["spec"] = preview_route_spec("platform", "api", "api.example.test", "stand-in-token")
    edit(props)
    args = ResourceValidationArgs(resource.type, props, resource.urn, resource.name, None, None)  # type: ignore[arg-type]
    return {violation.rule for violation in violations_of(args)}


def test_a_preview_rule_without_the_preview_header_is_refused() -> None:
    def unprotected(props: dict[str, Any]) -> None:
        del props["spec"]["rules"][0]["matches"][0]["headers"]

    def empty_token(props: dict[str, Any]) -> None:
        props["spec"]["rules"][0]["matches"][0]["headers"][0]["value"] = ""

    assert _preview_route("production", lambda props: None) == set()
    assert _preview_route("production", unprotected) == {"route-weights-and-protected-preview"}
    assert _preview_route("dev", empty_token) == {"route-weights-and-protected-preview"}


def test_an_ingress_nginx_annotation_is_refused_on_any_object() -> None:
    def retired(props: dict[str, Any]) -> None:
        props["metadata"]["annotations"] = {"nginx.ingress.kubernetes.io/canary-weight": "10"}

    assert rules_broken("production", ROUTE, "api", retired) == {"no-retired-ingress-annotations"}
    assert rules_broken("dev", "kubernetes:core/v1:Service", "web", retired) == {
        "no-retired-ingress-annotations"
    }


def _trust(props: dict[str, Any]) -> dict[str, Any]:
    trust: dict[str, Any] = json.loads(props["assumeRolePolicy"])
    return trust


def _edit_trust(change: Callable[[dict[str, Any]], None]) -> Edit:
    def edit(props: dict[str, Any]) -> None:
        trust = _trust(props)
        change(trust["Statement"][0]["Condition"])
        props["assumeRolePolicy"] = json.dumps(trust)

    return edit


def _sub_key(condition: dict[str, Any]) -> str:
    return next(key for key in condition["StringEquals"] if key.endswith(":sub"))


def _string_like(condition: dict[str, Any]) -> None:
    key = _sub_key(condition)
    condition["StringLike"] = {key: "system:serviceaccount:platform-production:*"}
    del condition["StringEquals"][key]


def _wildcard_subject(condition: dict[str, Any]) -> None:
    condition["StringEquals"][_sub_key(condition)] = "system:serviceaccount:*:api"


def _no_subject(condition: dict[str, Any]) -> None:
    del condition["StringEquals"][_sub_key(condition)]


@pytest.mark.parametrize("change", [_string_like, _wildcard_subject, _no_subject])
def test_a_role_trusting_more_than_one_exact_service_account_is_refused(
    change: Callable[[dict[str, Any]], None],
) -> None:
    assert rules_broken("production", ROLE, "api-role", _edit_trust(change)) == {"exact-iam-resources"}


def test_a_role_with_an_aws_managed_or_wildcard_inline_policy_is_refused() -> None:
    def managed(props: dict[str, Any]) -> None:
        props["managedPolicyArns"] = ["arn:aws:iam::aws:policy/AdministratorAccess"]

    def inline(props: dict[str, Any]) -> None:
        document = {"Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
        props["inlinePolicies"] = [{"name": "everything", "policy": json.dumps(document)}]

    assert rules_broken("staging", ROLE, "web-role", managed) == {"exact-iam-resources"}
    assert rules_broken("staging", ROLE, "web-role", inline) == {"exact-iam-resources"}


@pytest.mark.parametrize(
    ("arn", "refused"),
    [
        ("arn:aws:iam::aws:policy/AdministratorAccess", True),
        ("arn:aws:iam::aws:policy/ReadOnlyAccess", True),
        ("arn:aws:iam::333333333333:policy/*", True),
        ("arn:aws:iam::333333333333:policy/platform-api-read", False),
    ],
)
def test_a_role_policy_attachment_of_an_aws_managed_policy_is_refused(arn: str, refused: bool) -> None:
    role = baseline("production").named(ROLE, "api-role")
    attachment = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
    urn = role.urn.replace(f"{ROLE}::api-role", f"{attachment}::api-admin")
    props = {"role": "api-role", "policyArn": arn}
    args = ResourceValidationArgs(attachment, props, urn, "api-admin", None, None)  # type: ignore[arg-type]
    broken = {violation.rule for violation in violations_of(args)}
    assert broken == ({"exact-iam-resources"} if refused else set())


def _deny_ingress_only(props: dict[str, Any]) -> None:
    props["spec"]["policyTypes"] = ["Ingress"]
    del props["spec"]["egress"]


def _any_destination(props: dict[str, Any]) -> None:
    props["spec"]["egress"][0]["to"] = []


def _any_port(props: dict[str, Any]) -> None:
    del props["spec"]["egress"][0]["ports"]


def _no_types(props: dict[str, Any]) -> None:
    del props["spec"]["policyTypes"]


@pytest.mark.parametrize(
    ("name", "edit"),
    [
        ("default-deny", _deny_ingress_only),
        ("api-to-database", _any_destination),
        ("allow-https-egress", _any_port),
        ("allow-dns", _no_types),
    ],
)
def test_a_network_policy_that_denies_half_or_allows_everything_is_refused(name: str, edit: Edit) -> None:
    assert rules_broken("production", POLICY_TYPE, name, edit) == {"network-policy-present"}


def test_staging_and_production_must_enforce_the_supply_chain_policy_and_dev_need_not() -> None:
    committed = stack_policies()
    assert supply_chain_declared()
    assert {stack: supply_chain_problem(stack, committed[stack], True) for stack in STACKS} == {
        "dev": "",
        "staging": "",
        "production": "",
    }
    reporting = {**committed["production"], "supplyChain": {"mode": "report"}}
    assert "its supplyChain mode is 'report'" in supply_chain_problem("production", reporting, True)
    undeclared = {key: value for key, value in committed["staging"].items() if key != "supplyChain"}
    assert "does not refuse unverified ones: its supplyChain mode is None" in supply_chain_problem(
        "staging", undeclared, True
    )
    assert "Pulumi.yaml declares no supplyChain policy" in supply_chain_problem(
        "staging", committed["staging"], False
    )
    assert supply_chain_problem("dev", {**committed["dev"], "supplyChain": {"mode": "report"}}, False) == ""
