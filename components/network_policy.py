"""NetworkPolicies: in the app namespace every connection is denied but those the services need."""

from __future__ import annotations

from collections.abc import Sequence

import pulumi
import pulumi_kubernetes as k8s

from components.migration_job import migration_pod_labels
from components.pod import selector_labels
from core.config.base import Color
from core.config.network import NetworkSettings
from core.config.project import ServiceSpec
from core.naming import NETWORK_POLICIES_TYPE

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
"""Set by Kubernetes on every namespace (1.22+), to its name: a namespace selector nobody can forge."""
DNS_NAMESPACE = "kube-system"
DNS_POD_LABELS = {"k8s-app": "kube-dns"}
"""CoreDNS's pods on EKS and kubeadm clusters (the label kept from kube-dns)."""
DNS_PORT = 53
HTTPS_PORT = 443


def service_pod_labels(service: str) -> dict[str, str]:
    """The labels the pods of every color of `service` carry: selects both colors, whichever is live."""
    blue, green = (selector_labels(service, color.value).items() for color in Color)
    return dict(blue & green)


def _selector(labels: dict[str, str]) -> k8s.meta.v1.LabelSelectorArgs:
    """Pods carrying every label in `labels`; no labels: `{}`, every pod."""
    return k8s.meta.v1.LabelSelectorArgs(match_labels=labels or None)


def _ports(protocols: Sequence[str], port: int) -> list[k8s.networking.v1.NetworkPolicyPortArgs]:
    return [k8s.networking.v1.NetworkPolicyPortArgs(protocol=protocol, port=port) for protocol in protocols]


def _to_cidrs(cidrs: Sequence[str], port: int) -> k8s.networking.v1.NetworkPolicyEgressRuleArgs:
    return k8s.networking.v1.NetworkPolicyEgressRuleArgs(
        to=[
            k8s.networking.v1.NetworkPolicyPeerArgs(ip_block=k8s.networking.v1.IPBlockArgs(cidr=cidr))
            for cidr in cidrs
        ],
        ports=_ports(["TCP"], port),
    )


class NetworkPolicies(pulumi.ComponentResource):
    """Default deny in the app namespace, then one allow rule per need (rules are additive):

    - `default-deny`: every pod, ingress and egress, nothing allowed.
    - `<svc>-from-gateway`: the Gateway's data plane (`network.gatewayNamespace`, and in it the pods
      carrying `network.gatewayPodLabels` when set) may reach the service's pods (both colors, not
      its migrations) on the service's port.
    - `<svc>-from-monitoring`: so may Prometheus' namespace (`network.monitoringNamespace`), which
      scrapes `/metrics` there (components.service_monitoring).
    - `allow-dns`: every pod may ask the cluster DNS (kube-system's kube-dns pods, UDP and TCP 53).
    - `allow-https-egress`: every pod may open HTTPS to `network.httpsEgressCidrs` (the AWS APIs its
      role needs: STS, Secrets Manager).
    - `<svc>-to-database` and `<svc>-migrate-to-database`, only for a service that declares
      `readsDatabase`: its pods and its migration pods may reach `network.databaseCidrs` on the
      PostgreSQL port. A Deployment's pods and a migration's carry different labels
      (`selector_labels`, `migration_pod_labels`), so each has its own policy.

    Every allow rule is created before `default-deny`, so no update ever denies what it allows.
    Service-to-service traffic inside the namespace is denied: a service that calls another needs
    its own allow rule here.
    """

    def __init__(
        self,
        name: str,
        namespace: pulumi.Input[str],
        services: Sequence[ServiceSpec],
        network: NetworkSettings,
        database_port: int,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(NETWORK_POLICIES_TYPE, name, None, opts)
        self._namespace = namespace
        allows = [
            self._policy(
                f"{service.name}-from-{source}",
                service_pod_labels(service.name),
                ingress=[
                    k8s.networking.v1.NetworkPolicyIngressRuleArgs(
                        from_=[
                            k8s.networking.v1.NetworkPolicyPeerArgs(
                                namespace_selector=_selector({NAMESPACE_NAME_LABEL: peer}),
                                pod_selector=_selector(peer_pods) if peer_pods else None,
                            )
                        ],
                        ports=_ports(["TCP"], service.port),
                    )
                ],
            )
            for service in services
            for source, peer, peer_pods in (
                ("gateway", network.gateway_namespace, network.gateway_pod_labels),
                ("monitoring", network.monitoring_namespace, {}),
            )
        ]
        allows.append(
            self._policy(
                "allow-dns",
                {},
                egress=[
                    k8s.networking.v1.NetworkPolicyEgressRuleArgs(
                        to=[
                            k8s.networking.v1.NetworkPolicyPeerArgs(
                                namespace_selector=_selector({NAMESPACE_NAME_LABEL: DNS_NAMESPACE}),
                                pod_selector=_selector(DNS_POD_LABELS),
                            )
                        ],
                        ports=_ports(["UDP", "TCP"], DNS_PORT),
                    )
                ],
            )
        )
        allows.append(
            self._policy("allow-https-egress", {}, egress=[_to_cidrs(network.https_egress_cidrs, HTTPS_PORT)])
        )
        to_database = [_to_cidrs(network.database_cidrs, database_port)]
        for service in services:
            if not service.reads_database:
                continue
            allows.append(
                self._policy(
                    f"{service.name}-to-database", service_pod_labels(service.name), egress=to_database
                )
            )
            if service.migration is not None:
                allows.append(
                    self._policy(
                        f"{service.name}-migrate-to-database",
                        migration_pod_labels(service.name),
                        egress=to_database,
                    )
                )
        self._policy("default-deny", {}, ingress=[], egress=[], depends_on=allows)
        self.register_outputs({})

    def _policy(
        self,
        name: str,
        pods: dict[str, str],
        ingress: list[k8s.networking.v1.NetworkPolicyIngressRuleArgs] | None = None,
        egress: list[k8s.networking.v1.NetworkPolicyEgressRuleArgs] | None = None,
        depends_on: Sequence[pulumi.Resource] = (),
    ) -> k8s.networking.v1.NetworkPolicy:
        """A NetworkPolicy for the pods carrying `pods` (every pod when empty); `policyTypes` names
        exactly the directions given (an empty list of rules denies that direction)."""
        policy_types = [
            kind for kind, rules in (("Ingress", ingress), ("Egress", egress)) if rules is not None
        ]
        return k8s.networking.v1.NetworkPolicy(
            name,
            metadata=k8s.meta.v1.ObjectMetaArgs(name=name, namespace=self._namespace),
            spec=k8s.networking.v1.NetworkPolicySpecArgs(
                pod_selector=_selector(pods),
                policy_types=policy_types,
                ingress=ingress,
                egress=egress,
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(depends_on)),
        )
