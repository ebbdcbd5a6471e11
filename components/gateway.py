"""StackGateway: the stack's Gateway (Gateway API) and the route that redirects plain HTTP to HTTPS.

By `tls.mode` (core.config.stack.TlsSettings):

- `certManager`: one HTTPS listener per service host (`https-<service>`, TLS terminated with the
  certificate in Secret `<service>-tls`, which cert-manager issues because the Gateway carries its
  `cert-manager.io/cluster-issuer` annotation), and one HTTP listener (`http`) to which only the
  redirect route attaches: it answers 301 to `https://` and has no backend.
- `upstream`: a load balancer in front terminates TLS with its own certificate (and redirects
  HTTP itself) and forwards plain HTTP: one HTTP listener per service host (`https-<service>` still,
  the name routes attach to, whoever terminates TLS), no certificate, no redirect route.

Listeners admit routes from the Gateway's own namespace only (the app namespace).
"""

from __future__ import annotations

from collections.abc import Mapping

import pulumi
import pulumi_kubernetes as k8s

from core.config.stack import TlsMode, TlsSettings
from core.gateway import (
    CLUSTER_ISSUER,
    GATEWAY_API_VERSION,
    HTTP_LISTENER,
    TLS_TERMINATION,
    UPSTREAM,
    https_listener,
)
from core.naming import STACK_GATEWAY_TYPE

HTTPS_PORT = 443
HTTP_PORT = 80
SAME_NAMESPACE = {"namespaces": {"from": "Same"}}


def gateway_annotations(tls: TlsSettings) -> dict[str, str]:
    if tls.mode is TlsMode.UPSTREAM:
        return {TLS_TERMINATION: UPSTREAM}
    return {CLUSTER_ISSUER: str(tls.cluster_issuer)}


def listeners(hosts: Mapping[str, str], tls: TlsSettings) -> list[dict[str, object]]:
    """The Gateway's listeners for `hosts` (service -> stable hostname), by TLS mode."""
    if tls.mode is TlsMode.UPSTREAM:
        return [
            {
                "name": https_listener(service),
                "hostname": host,
                "port": HTTP_PORT,
                "protocol": "HTTP",
                "allowedRoutes": SAME_NAMESPACE,
            }
            for service, host in sorted(hosts.items())
        ]
    secure: list[dict[str, object]] = [
        {
            "name": https_listener(service),
            "hostname": host,
            "port": HTTPS_PORT,
            "protocol": "HTTPS",
            "tls": {"mode": "Terminate", "certificateRefs": [{"kind": "Secret", "name": f"{service}-tls"}]},
            "allowedRoutes": SAME_NAMESPACE,
        }
        for service, host in sorted(hosts.items())
    ]
    return [
        *secure,
        {"name": HTTP_LISTENER, "port": HTTP_PORT, "protocol": "HTTP", "allowedRoutes": SAME_NAMESPACE},
    ]


class StackGateway(pulumi.ComponentResource):
    """The Gateway `<name>` in the app namespace, of class `class_name`, and (mode certManager) the
    redirect route `<name>-redirect-to-https` on its HTTP listener."""

    gateway_name: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        namespace: pulumi.Input[str],
        class_name: str,
        hosts: Mapping[str, str],
        tls: TlsSettings,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(STACK_GATEWAY_TYPE, name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        gateway = k8s.apiextensions.CustomResource(
            name,
            api_version=GATEWAY_API_VERSION,
            kind="Gateway",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=name, namespace=namespace, annotations=gateway_annotations(tls)
            ),
            spec={"gatewayClassName": class_name, "listeners": listeners(hosts, tls)},
            opts=child,
        )
        if tls.mode is TlsMode.CERT_MANAGER:
            k8s.apiextensions.CustomResource(
                f"{name}-redirect-to-https",
                api_version=GATEWAY_API_VERSION,
                kind="HTTPRoute",
                metadata=k8s.meta.v1.ObjectMetaArgs(name=f"{name}-redirect-to-https", namespace=namespace),
                spec={
                    "parentRefs": [{"name": name, "sectionName": HTTP_LISTENER}],
                    "rules": [
                        {
                            "filters": [
                                {
                                    "type": "RequestRedirect",
                                    "requestRedirect": {"scheme": "https", "statusCode": 301},
                                }
                            ]
                        }
                    ],
                },
                opts=pulumi.ResourceOptions(parent=self, depends_on=[gateway]),
            )
        self.gateway_name = pulumi.Output.from_input(name)
        self.register_outputs({"gateway_name": self.gateway_name})
