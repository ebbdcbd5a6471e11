"""BlueGreenService: two colors of a service; a stable Service on the active one, a preview on the
other, and the HTTPRoute that sends the stable host's traffic to them."""

from __future__ import annotations

import dataclasses

import pulumi
import pulumi_kubernetes as k8s

from components.health_hook import post_deploy_health_hook
from components.migration_job import MigrationJob
from components.names import kubernetes_name
from components.pod import (
    PodSources,
    app_container,
    config_map_name,
    database_config_name,
    pod_security_context,
    pod_volumes,
    selector_labels,
)
from components.routes import SERVICE_PORT, service_routes
from components.workload_identity import WorkloadIdentity
from core.config.base import Color
from core.config.stack import HealthCheckSettings, ServiceConfig
from core.naming import BLUE_GREEN_SERVICE_TYPE, CONFIG_FINGERPRINT_ANNOTATION, preview_service_name

DEPLOYMENT_TIMEOUT_SECONDS = 600
SERVICE_TIMEOUT_SECONDS = 300


class BlueGreenService(pulumi.ComponentResource):
    """Deployments `<svc>-blue` and `<svc>-green`, each pinned to its own image, and two Services.

    The stable Service `<svc>` selects the active color; `<svc>-preview` selects the other. Both
    colors keep running, so switching back is instant. Switching the active color changes the two
    Services' selectors and nothing else: the Deployments, Jobs, HTTPRoute and ConfigMap do not read
    the active color, so a switch costs the same whatever the size of the stack.

    Each color's Deployment depends on that color's MigrationJob (when the service declares a
    migration). Both Services depend on both Deployments, so a `pulumi up` that changes an image
    and the active color together never moves traffic before the new color's migration and
    rollout succeeded; the dependency edges are the same whichever color is active.

    The stable Service carries the post-deploy health hook (`health_url`, `health_check`): once it
    is created or switched, the active color must answer healthy (with its own image, when
    `health_check.version_field` is set) or the update fails.
    """

    stable_service_name: pulumi.Output[str]
    preview_service_name: pulumi.Output[str]
    active_color: pulumi.Output[str]
    images: pulumi.Output[dict[str, str]]
    config_fingerprints: pulumi.Output[dict[str, str]]
    stable_hostname: pulumi.Output[str]
    preview_hostname: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        namespace: pulumi.Input[str],
        service: ServiceConfig,
        stable_hostname: str,
        gateway_name: str,
        preview_token: pulumi.Input[str],
        health_url: str,
        health_check: HealthCheckSettings,
        database_config: dict[str, pulumi.Input[str]],
        secret_name: pulumi.Input[str],
        identity: WorkloadIdentity,
        aws_region: str,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(BLUE_GREEN_SERVICE_TYPE, name, None, opts)
        spec, release = service.spec, service.release
        child = pulumi.ResourceOptions(parent=self)

        database: k8s.core.v1.ConfigMap | None = None
        if database_config:
            database = k8s.core.v1.ConfigMap(
                f"{name}-database",
                metadata=k8s.meta.v1.ObjectMetaArgs(
                    name=database_config_name(spec.name), namespace=namespace
                ),
                data=database_config,
                opts=child,
            )
        sources = PodSources(
            config_map="",  # each color's own, set in _color
            database_config=kubernetes_name(database) if database is not None else None,
            secret=secret_name,
            service_account=identity.service_account_name,
            role_arn=identity.role_arn,
            aws_region=aws_region,
        )
        deployments = [self._color(name, namespace, service, color, sources) for color in Color]

        after_both_colors = pulumi.ResourceOptions(parent=self, depends_on=deployments)
        active_image = release.images.of(release.active_color)
        expect_version = {health_check.version_field: active_image} if health_check.version_field else {}
        stable = self._service(
            name,
            spec.name,
            namespace,
            spec.name,
            release.active_color,
            pulumi.ResourceOptions.merge(
                after_both_colors,
                pulumi.ResourceOptions(
                    hooks=post_deploy_health_hook(
                        f"{name}-post-deploy-health", [health_url], health_check, expect_version
                    )
                ),
            ),
        )
        preview = self._service(
            preview_service_name(name),
            preview_service_name(spec.name),
            namespace,
            spec.name,
            release.idle_color,
            after_both_colors,
        )
        service_routes(
            name,
            namespace,
            gateway_name,
            stable_hostname,
            release.canary_weight,
            preview_token,
            pulumi.ResourceOptions(parent=self, depends_on=[stable, preview]),
        )

        self.stable_service_name = kubernetes_name(stable)
        self.preview_service_name = kubernetes_name(preview)
        self.active_color = pulumi.Output.from_input(release.active_color.value)
        self.images = pulumi.Output.from_input({color.value: release.images.of(color) for color in Color})
        self.config_fingerprints = pulumi.Output.from_input(
            {color.value: service.pod_config(color).fingerprint for color in Color}
        )
        self.stable_hostname = pulumi.Output.from_input(stable_hostname)
        # The preview shares the stable host (header-matched rule); kept as an output for the tool.
        self.preview_hostname = pulumi.Output.from_input(stable_hostname)
        self.register_outputs(
            {
                "stable_service_name": self.stable_service_name,
                "preview_service_name": self.preview_service_name,
                "active_color": self.active_color,
                "images": self.images,
                "config_fingerprints": self.config_fingerprints,
                "stable_hostname": self.stable_hostname,
                "preview_hostname": self.preview_hostname,
            }
        )

    def _color(
        self,
        name: str,
        namespace: pulumi.Input[str],
        service: ServiceConfig,
        color: Color,
        sources: PodSources,
    ) -> k8s.apps.v1.Deployment:
        """One color: its config object, its migration Job (if any), its Deployment after it, its
        autoscaler and its disruption budget.

        A full-size color runs `replicas` pods, and its autoscaler may add up to `maxReplicas` on CPU
        load (metrics-server). The scaled-down idle color runs `idleReplicas`, its autoscaler pinned
        there. The Deployment declares its size, so an `up` that changes it (staging a release on
        the color) starts it at its floor; the live color is never updated by a release, so its
        autoscaled size stands."""
        spec, release = service.spec, service.release
        image = release.images.of(color)
        labels = selector_labels(spec.name, color.value)
        config = service.pod_config(color)
        config_map = k8s.core.v1.ConfigMap(
            f"{name}-config-{color.value}",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=config_map_name(spec.name, color.value, config.fingerprint),
                namespace=namespace,
                labels=labels,
            ),
            immutable=True,
            data=config.data,
            opts=pulumi.ResourceOptions(parent=self),
        )
        sources = dataclasses.replace(sources, config_map=kubernetes_name(config_map))
        waits_for: list[pulumi.Resource] = []
        if spec.migration is not None:
            waits_for.append(
                MigrationJob(
                    f"{name}-migrate-{color.value}",
                    namespace=namespace,
                    service=spec,
                    migration=spec.migration,
                    color=color.value,
                    image=image,
                    config_fingerprint=config.fingerprint,
                    sources=sources,
                    opts=pulumi.ResourceOptions(parent=self),
                )
            )
        deployment = k8s.apps.v1.Deployment(
            f"{name}-{color.value}",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=f"{spec.name}-{color.value}",
                namespace=namespace,
                labels=labels,
                annotations={"pulumi.com/timeoutSeconds": str(DEPLOYMENT_TIMEOUT_SECONDS)},
            ),
            spec=k8s.apps.v1.DeploymentSpecArgs(
                replicas=release.replicas_of(color),
                selector=k8s.meta.v1.LabelSelectorArgs(match_labels=labels),
                strategy=k8s.apps.v1.DeploymentStrategyArgs(
                    type="RollingUpdate",
                    rolling_update=k8s.apps.v1.RollingUpdateDeploymentArgs(max_unavailable=0, max_surge=1),
                ),
                template=k8s.core.v1.PodTemplateSpecArgs(
                    metadata=k8s.meta.v1.ObjectMetaArgs(
                        labels=labels, annotations={CONFIG_FINGERPRINT_ANNOTATION: config.fingerprint}
                    ),
                    spec=k8s.core.v1.PodSpecArgs(
                        automount_service_account_token=False,
                        service_account_name=sources.service_account,
                        security_context=pod_security_context(),
                        containers=[app_container(spec, image, color.value, sources)],
                        volumes=pod_volumes(spec, sources),
                    ),
                ),
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=waits_for),
        )
        minimum, maximum = release.autoscaling_of(color)
        k8s.autoscaling.v2.HorizontalPodAutoscaler(
            f"{name}-{color.value}",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=f"{spec.name}-{color.value}", namespace=namespace, labels=labels
            ),
            spec=k8s.autoscaling.v2.HorizontalPodAutoscalerSpecArgs(
                scale_target_ref=k8s.autoscaling.v2.CrossVersionObjectReferenceArgs(
                    api_version="apps/v1", kind="Deployment", name=kubernetes_name(deployment)
                ),
                min_replicas=minimum,
                max_replicas=maximum,
                metrics=[
                    k8s.autoscaling.v2.MetricSpecArgs(
                        type="Resource",
                        resource=k8s.autoscaling.v2.ResourceMetricSourceArgs(
                            name="cpu",
                            target=k8s.autoscaling.v2.MetricTargetArgs(
                                type="Utilization", average_utilization=release.target_cpu_percent
                            ),
                        ),
                    )
                ],
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        k8s.policy.v1.PodDisruptionBudget(
            f"{name}-{color.value}",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=f"{spec.name}-{color.value}", namespace=namespace),
            spec=k8s.policy.v1.PodDisruptionBudgetSpecArgs(
                max_unavailable=1,
                selector=k8s.meta.v1.LabelSelectorArgs(match_labels=labels),
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        return deployment

    @staticmethod
    def _service(
        resource_name: str,
        kubernetes_name: str,
        namespace: pulumi.Input[str],
        app: str,
        color: Color,
        opts: pulumi.ResourceOptions,
    ) -> k8s.core.v1.Service:
        """A Service selecting one color's pods; the selector is the only thing a switch changes."""
        return k8s.core.v1.Service(
            resource_name,
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=kubernetes_name,
                namespace=namespace,
                labels={"app.kubernetes.io/name": app},
                annotations={"pulumi.com/timeoutSeconds": str(SERVICE_TIMEOUT_SECONDS)},
            ),
            spec=k8s.core.v1.ServiceSpecArgs(
                type="ClusterIP",
                selector=selector_labels(app, color.value),
                ports=[
                    k8s.core.v1.ServicePortArgs(
                        name="http", port=SERVICE_PORT, target_port="http", protocol="TCP"
                    )
                ],
            ),
            opts=opts,
        )
