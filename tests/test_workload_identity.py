"""Workload identity: one ServiceAccount and one IAM role per service and stack, least privilege.

Under Pulumi's mock runtime (the real program, every stack file): the trust and permission
documents the program declares, the pods that use them, and the config that is refused.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from components.workload_identity import database_read_policy
from core.config.sources import read_stack_file
from core.errors import ConfigError
from release.offline.mock_runtime import ProgramRun, RegisteredResource
from release.offline.mocks import MOCK_ACCOUNT
from tests.conftest import PROJECT, baseline, run_program

STACKS = ["dev", "staging", "production"]
SECRET_ARN = f"arn:aws:secretsmanager:mock-region:{MOCK_ACCOUNT}:secret:rds!db-{{namespace}}"
KMS_KEY = "arn:aws:kms:eu-west-1:333333333333:key/0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d"
ROLE = "aws:iam/role:Role"
POLICY = "aws:iam/rolePolicy:RolePolicy"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"


def _one(run: ProgramRun, type_token: str, name: str) -> RegisteredResource:
    return run.named(type_token, name)


def run_program_config(stack: str) -> dict[str, Any]:
    return read_stack_file(PROJECT, stack).raw.values


def _database_policy(run: ProgramRun) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(_one(run, POLICY, "api-read-database-secret").inputs["policy"])
    return document


def _pod_specs(run: ProgramRun, service: str) -> list[dict[str, Any]]:
    colors = [_one(run, "kubernetes:apps/v1:Deployment", f"{service}-{color}") for color in ("blue", "green")]
    jobs = [job for job in run.of_type("kubernetes:batch/v1:Job") if job.name.startswith(f"{service}-")]
    return [resource.inputs["spec"]["template"]["spec"] for resource in [*colors, *jobs]]


@pytest.mark.parametrize("stack", STACKS)
def test_each_role_trusts_exactly_its_services_account_in_this_stacks_namespace(stack: str) -> None:
    run = baseline(stack)
    identity = run_program_config(stack)["platform:identity"]["oidcProviderArn"]
    issuer = identity.split(":oidc-provider/", 1)[1]
    namespace = run_program_config(stack)["platform:namespace"]
    for service in ("api", "web"):
        trust = json.loads(_one(run, ROLE, f"{service}-role").inputs["assumeRolePolicy"])
        assert trust == {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Federated": identity},
                    "Action": "sts:AssumeRoleWithWebIdentity",
                    "Condition": {
                        "StringEquals": {
                            f"{issuer}:sub": f"system:serviceaccount:{namespace}:{service}",
                            f"{issuer}:aud": "sts.amazonaws.com",
                        }
                    },
                }
            ],
        }


@pytest.mark.parametrize("stack", STACKS)
def test_a_service_that_reads_the_database_may_read_exactly_this_stacks_secret_and_nothing_else(
    stack: str,
) -> None:
    run = baseline(stack)
    namespace = run_program_config(stack)["platform:namespace"]
    policy = _database_policy(run)
    assert policy == {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ReadDatabaseSecret",
                "Effect": "Allow",
                "Action": ["secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue"],
                "Resource": SECRET_ARN.format(namespace=namespace),
            }
        ],
    }
    assert "*" not in json.dumps(policy)


@pytest.mark.parametrize("stack", STACKS)
def test_a_service_that_reads_no_database_gets_no_permission_and_no_database_settings(stack: str) -> None:
    run = baseline(stack)
    policies = [policy.name for policy in run.of_type(POLICY)]
    assert policies == ["api-read-database-secret"]
    web_configs = [
        config.inputs["data"] for config in run.of_type(CONFIG_MAP) if config.name.startswith("web-config")
    ]
    assert len(web_configs) == 2  # one per color, and no database settings
    assert not any(key.startswith("DATABASE_") for data in web_configs for key in data)
    assert "DATABASE_PASSWORD_SECRET_ARN" in _one(run, CONFIG_MAP, "api-database").inputs["data"]


@pytest.mark.parametrize("stack", STACKS)
def test_both_colors_and_the_migrations_run_as_the_services_account_with_a_token_for_sts_only(
    stack: str,
) -> None:
    run = baseline(stack)
    for service in ("api", "web"):
        account = _one(run, "kubernetes:core/v1:ServiceAccount", service)
        assert (
            account.inputs["metadata"]["name"] == service
            and account.inputs["automountServiceAccountToken"] is False
        )
        assert "annotations" not in account.inputs["metadata"]  # no webhook injects a second token
        role_arn = f"arn:aws:iam::{MOCK_ACCOUNT}:role/{service}-role-mock"
        for pod in _pod_specs(run, service):
            assert pod["serviceAccountName"] == service and pod["automountServiceAccountToken"] is False
            token = next(volume for volume in pod["volumes"] if "projected" in volume)
            assert token["projected"]["sources"] == [
                {
                    "serviceAccountToken": {
                        "audience": "sts.amazonaws.com",
                        "expirationSeconds": 3600,
                        "path": "token",
                    }
                }
            ]
            env = {item["name"]: item.get("value") for item in pod["containers"][0]["env"]}
            assert env["AWS_ROLE_ARN"] == role_arn
            assert env["AWS_WEB_IDENTITY_TOKEN_FILE"] == "/var/run/secrets/platform/aws/token"


def test_a_customer_managed_key_is_used_for_the_secret_and_granted_for_decrypt_only() -> None:
    def with_key(values: dict[str, Any]) -> None:
        values["platform:database"] = {**values["platform:database"], "secretKmsKeyArn": KMS_KEY}

    run = run_program("production", edit=with_key)
    assert _one(run, "aws:rds/instance:Instance", "database").inputs["masterUserSecretKmsKeyId"] == KMS_KEY
    policy = _database_policy(run)
    assert policy["Statement"][1] == {
        "Sid": "DecryptDatabaseSecret",
        "Effect": "Allow",
        "Action": "kms:Decrypt",
        "Resource": KMS_KEY,
        "Condition": {
            "StringEquals": {
                "kms:ViaService": "secretsmanager.eu-west-1.amazonaws.com",
                "kms:EncryptionContext:SecretARN": SECRET_ARN.format(namespace="platform-production"),
            }
        },
    }


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("identity", {"oidcProviderArn": "arn:aws:iam::*:oidc-provider/oidc.eks.example.test/id/X"}),
        ("identity", {"oidcProviderArn": "oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLE"}),
        ("identity", {}),
    ],
)
def test_an_oidc_provider_that_is_not_one_exact_arn_is_refused_naming_stack_key_and_fix(
    key: str, value: dict[str, Any]
) -> None:
    def edit(values: dict[str, Any]) -> None:
        values[f"platform:{key}"] = value

    with pytest.raises(ConfigError) as raised:
        run_program("staging", edit=edit)
    problems = raised.value.problems
    assert [problem.key for problem in problems] == ["platform:identity.oidcProviderArn"]
    assert problems[0].stack == "staging" and problems[0].fix


@pytest.mark.parametrize(
    "key_arn", ["*", "arn:aws:kms:eu-west-1:333333333333:alias/db", "arn:aws:kms:*:*:key/*"]
)
def test_a_kms_key_that_is_not_one_exact_key_is_refused(key_arn: str) -> None:
    def edit(values: dict[str, Any]) -> None:
        values["platform:database"] = {**values["platform:database"], "secretKmsKeyArn": key_arn}

    with pytest.raises(ConfigError) as raised:
        run_program("production", edit=edit)
    assert [problem.key for problem in raised.value.problems] == ["platform:database.secretKmsKeyArn"]


@pytest.mark.parametrize("resource", ["*", "arn:aws:secretsmanager:eu-west-1:1:secret:*", "secret-name"])
def test_the_policy_builder_never_grants_a_wildcard_or_a_name_that_is_not_an_arn(resource: str) -> None:
    with pytest.raises(ValueError, match="exact ARNs only"):
        database_read_policy(resource, None)
