"""FeatureFlags: the stack's FEATURE_* values as a ConfigMap every service reads."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from components.names import kubernetes_name
from core.naming import FEATURE_FLAGS_TYPE

FEATURE_FLAGS_NAME = "feature-flags"
"""The ConfigMap every service reads FEATURE_* from."""


class FeatureFlags(pulumi.ComponentResource):
    """A ConfigMap `feature-flags` holding the stack's FEATURE_* flags (values differ per stack)."""

    config_map_name: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        namespace: pulumi.Input[str],
        flags: dict[str, str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(FEATURE_FLAGS_TYPE, name, None, opts)
        config_map = k8s.core.v1.ConfigMap(
            name,
            metadata=k8s.meta.v1.ObjectMetaArgs(name=FEATURE_FLAGS_NAME, namespace=namespace),
            data=dict(sorted(flags.items())),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.config_map_name = kubernetes_name(config_map)
        self.register_outputs({"config_map_name": self.config_map_name})
