"""ServiceMonitoring: how Prometheus scrapes one service, and its SLO rules (Prometheus Operator CRDs)."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from core.config.project import ServiceSpec, SloSpec
from core.naming import SERVICE_MONITORING_TYPE
from core.slo import rule_groups

MONITORING_API = "monitoring.coreos.com/v1"
PART_OF = {"app.kubernetes.io/part-of": "platform"}
"""The label the Prometheus Operator's serviceMonitorSelector and ruleSelector must match."""
COLOR_LABEL_META = "__meta_kubernetes_pod_label_platform_example_test_color"
NAME_LABEL_META = "__meta_kubernetes_pod_label_app_kubernetes_io_name"
SCRAPE_INTERVAL = "15s"


class ServiceMonitoring(pulumi.ComponentResource):
    """A ServiceMonitor that scrapes `/metrics` on both colors of a service (through its stable and
    preview Services, which carry `app.kubernetes.io/name: <svc>`), labelling every series with the
    `service` and the `color` that answered; and a PrometheusRule with the service's recording
    rules and multi-window burn-rate alerts for the project's SLOs (core.slo), each alert carrying
    the stack's routing labels."""

    rule_name: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        namespace: pulumi.Input[str],
        service: ServiceSpec,
        slos: SloSpec,
        routing_labels: dict[str, str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(SERVICE_MONITORING_TYPE, name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        relabel = [
            {"sourceLabels": [NAME_LABEL_META], "targetLabel": "service"},
            {"sourceLabels": [COLOR_LABEL_META], "targetLabel": "color"},
        ]
        k8s.apiextensions.CustomResource(
            f"{name}-monitor",
            api_version=MONITORING_API,
            kind="ServiceMonitor",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=service.name, namespace=namespace, labels=PART_OF),
            spec={
                "selector": {"matchLabels": {"app.kubernetes.io/name": service.name}},
                "endpoints": [
                    {"port": "http", "path": "/metrics", "interval": SCRAPE_INTERVAL, "relabelings": relabel}
                ],
            },
            opts=child,
        )
        k8s.apiextensions.CustomResource(
            f"{name}-slo",
            api_version=MONITORING_API,
            kind="PrometheusRule",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=f"{service.name}-slo", namespace=namespace, labels=PART_OF
            ),
            spec={
                "groups": rule_groups(
                    service.name,
                    slos.availability,
                    slos.latency_target,
                    slos.latency_threshold_seconds,
                    routing_labels,
                )
            },
            opts=child,
        )
        self.rule_name = pulumi.Output.from_input(f"{service.name}-slo")
        self.register_outputs({"rule_name": self.rule_name})
