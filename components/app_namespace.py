"""AppNamespace: the stack's Kubernetes provider (explicit kube context) and the namespace it creates."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from components.names import kubernetes_name
from core.naming import APP_NAMESPACE_TYPE


class AppNamespace(pulumi.ComponentResource):
    """An explicit Kubernetes provider for the stack's kube context, and the namespace the program owns.

    Every Kubernetes resource of the stack is created through `provider` into `name`, so nothing
    depends on whatever kube context happens to be current on the machine running `pulumi up`.
    """

    name: pulumi.Output[str]
    provider: k8s.Provider

    def __init__(
        self,
        name: str,
        namespace: str,
        kube_context: str,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(APP_NAMESPACE_TYPE, name, None, opts)
        self.provider = k8s.Provider(
            f"{name}-kubernetes",
            context=kube_context,
            namespace=namespace,
            enable_server_side_apply=True,
            opts=pulumi.ResourceOptions(parent=self),
        )
        created = k8s.core.v1.Namespace(
            name,
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=namespace,
                labels={
                    "app.kubernetes.io/part-of": "platform",
                    "pod-security.kubernetes.io/enforce": "restricted",
                },
            ),
            opts=pulumi.ResourceOptions(parent=self, provider=self.provider),
        )
        self.name = kubernetes_name(created)
        self.register_outputs({"name": self.name})
