"""Per-stack network knobs (`platform:network` in Pulumi.<stack>.yaml): who may reach the app's pods
and where the pods may connect. `components.network_policy` turns them into NetworkPolicies; every
other connection in the app namespace is denied."""

from __future__ import annotations

from pydantic import Field

from core.config.base import CidrRanges, ConfigModel, NamespaceName


class NetworkSettings(ConfigModel):
    gateway_namespace: NamespaceName
    """The namespace of the Gateway's data plane (the proxies that carry the stack Gateway's
    traffic), the only one besides monitoring that may reach the services' pods (matched by its
    `kubernetes.io/metadata.name` label, which Kubernetes sets on every namespace). Where the
    implementation runs the proxies beside the Gateway, that is the app namespace itself."""
    gateway_pod_labels: dict[str, str] = Field(default_factory=dict)
    """The data plane pods' labels in that namespace (every pod there when empty)."""
    monitoring_namespace: NamespaceName
    """The namespace of the Prometheus that scrapes the services' `/metrics` (also matched by its
    `kubernetes.io/metadata.name` label): it may reach their pods on the service's port."""
    database_cidrs: CidrRanges
    """The database's subnets: pods of services that declare `readsDatabase` (and their migrations)
    may connect to these on the project's PostgreSQL port."""
    https_egress_cidrs: CidrRanges
    """Where pods may open HTTPS (TCP 443) connections: the AWS APIs they call (STS for their role,
    Secrets Manager), e.g. the subnets of the VPC's interface endpoints."""
