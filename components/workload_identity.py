"""WorkloadIdentity: one Kubernetes ServiceAccount per service and the one IAM role it assumes (IRSA)."""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from components.names import kubernetes_name
from core.config.stack import WorkloadIdentity as IdentitySettings
from core.naming import WORKLOAD_IDENTITY_TYPE

STS_AUDIENCE = "sts.amazonaws.com"
SECRET_READ_ACTIONS = ["secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue"]


def trust_policy(identity: IdentitySettings, namespace: str, service: str) -> dict[str, Any]:
    """Who may assume the role: the service's ServiceAccount in this stack's namespace, through the
    cluster's OIDC provider, for STS, and nobody else (no wildcard in the subject)."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Federated": identity.oidc_provider_arn},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {
                    "StringEquals": {
                        f"{identity.issuer}:sub": f"system:serviceaccount:{namespace}:{service}",
                        f"{identity.issuer}:aud": STS_AUDIENCE,
                    }
                },
            }
        ],
    }


def database_read_policy(secret_arn: str, kms_key_arn: str | None) -> dict[str, Any]:
    """Read exactly this stack's database secret (and decrypt with exactly its key, when it has one).

    A ValueError for a resource that is not one exact ARN: the policy never grants `*`."""
    resources = [secret_arn, *([kms_key_arn] if kms_key_arn else [])]
    loose = [resource for resource in resources if not resource.startswith("arn:aws:") or "*" in resource]
    if loose:
        raise ValueError(f"an IAM policy names exact ARNs only, not {loose}")
    statements: list[dict[str, Any]] = [
        {
            "Sid": "ReadDatabaseSecret",
            "Effect": "Allow",
            "Action": SECRET_READ_ACTIONS,
            "Resource": secret_arn,
        }
    ]
    if kms_key_arn:
        statements.append(
            {
                "Sid": "DecryptDatabaseSecret",
                "Effect": "Allow",
                "Action": "kms:Decrypt",
                "Resource": kms_key_arn,
                # Only through Secrets Manager in the key's region, and only for this one secret.
                "Condition": {
                    "StringEquals": {
                        "kms:ViaService": f"secretsmanager.{kms_key_arn.split(':')[3]}.amazonaws.com",
                        "kms:EncryptionContext:SecretARN": secret_arn,
                    }
                },
            }
        )
    return {"Version": "2012-10-17", "Statement": statements}


class WorkloadIdentity(pulumi.ComponentResource):
    """The identity of one service's pods (both colors) and of its migration Jobs.

    - A ServiceAccount named after the service. Its pods carry their own web-identity token (a
      projected token for STS, `components.pod.pod_volumes`) and the role's ARN, so no mutating
      webhook is involved and the ServiceAccount has no `eks.amazonaws.com/role-arn` annotation (the
      EKS pod identity webhook would inject a second token). Kubernetes API tokens stay unmounted
      (`automountServiceAccountToken: false`): the app never talks to the Kubernetes API.
    - One IAM role per service and stack, assumable only by that ServiceAccount (`trust_policy`).
    - Only for a service that reads the database: an inline policy that reads exactly this stack's
      database secret (`database_read_policy`). Any other service's role can do nothing.
    """

    service_account_name: pulumi.Output[str]
    role_arn: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        namespace: str,
        identity: IdentitySettings,
        database_secret_arn: pulumi.Input[str] | None,
        kms_key_arn: str | None,
        tags: dict[str, str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(WORKLOAD_IDENTITY_TYPE, name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        role = aws.iam.Role(
            f"{name}-role",
            assume_role_policy=json.dumps(trust_policy(identity, namespace, name), sort_keys=True),
            description=f"the pods and migrations of {name} in {namespace} (IRSA)",
            max_session_duration=3600,
            tags={**tags, "service": name},
            opts=child,
        )
        if database_secret_arn is not None:
            aws.iam.RolePolicy(
                f"{name}-read-database-secret",
                role=role.id,
                policy=pulumi.Output.from_input(database_secret_arn).apply(
                    lambda arn: json.dumps(database_read_policy(arn, kms_key_arn), sort_keys=True)
                ),
                opts=child,
            )
        account = k8s.core.v1.ServiceAccount(
            name,
            metadata=k8s.meta.v1.ObjectMetaArgs(name=name, namespace=namespace),
            automount_service_account_token=False,
            opts=child,
        )
        self.service_account_name = kubernetes_name(account)
        self.role_arn = role.arn
        self.register_outputs({"service_account_name": self.service_account_name, "role_arn": self.role_arn})
