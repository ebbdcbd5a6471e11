"""AppSecrets: the application secrets, from Pulumi secret config to one Kubernetes Secret."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s
from pydantic import SecretStr

from components.names import kubernetes_name
from core.errors import MissingSecretsError
from core.naming import APP_SECRETS_TYPE

APP_SECRET_NAME = "app-secrets"
"""The Kubernetes Secret every service reads its declared secrets from."""


class AppSecrets(pulumi.ComponentResource):
    """A Kubernetes Secret `app-secrets` built from secret config.

    Every value is wrapped in `pulumi.Output.secret` before it reaches a resource, so it stays
    encrypted in the state, masked in stack outputs and logs. Only the secret's name is exported.
    """

    secret_name: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        namespace: pulumi.Input[str],
        required: list[str],
        values: dict[str, SecretStr],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        missing = [secret for secret in required if secret not in values]
        if missing:  # checked before anything is registered: a refusal leaves nothing half-created
            raise MissingSecretsError(missing)
        super().__init__(APP_SECRETS_TYPE, name, None, opts)
        secret = k8s.core.v1.Secret(
            name,
            metadata=k8s.meta.v1.ObjectMetaArgs(name=APP_SECRET_NAME, namespace=namespace),
            type="Opaque",
            string_data={
                key: pulumi.Output.secret(values[key].get_secret_value()) for key in sorted(required)
            },
            opts=pulumi.ResourceOptions(parent=self, additional_secret_outputs=["stringData", "data"]),
        )
        self.secret_name = kubernetes_name(secret)
        self.register_outputs({"secret_name": self.secret_name})
