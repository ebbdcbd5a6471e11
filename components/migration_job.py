"""MigrationJob: a schema migration run with one color's image before that color's pods start."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from components.names import kubernetes_name
from components.pod import PodSources, app_container, pod_security_context, pod_volumes
from core.config.project import MigrationSpec, ServiceSpec
from core.images import fingerprint_of
from core.naming import MIGRATION_JOB_TYPE

TIMEOUT_MARGIN_SECONDS = 60


def migration_pod_labels(service: str) -> dict[str, str]:
    """The labels a service's migration pods carry: not the Deployments' (no Service or
    PodDisruptionBudget selects a migration), so a NetworkPolicy selects them on their own."""
    return {"app.kubernetes.io/name": f"{service}-migrate"}


class MigrationJob(pulumi.ComponentResource):
    """A Kubernetes Job that runs the service's migration command with one color's image.

    - The Pulumi name (`<svc>-migrate-<color>`) is the same in every stack; the Kubernetes name ends
      in the image's digest and the color's config fingerprint, so a new digest or new config
      replaces the Job (the migration runs again, with exactly what the color's pods will read),
      the same pair never migrates twice, and switching colors (which changes neither) never
      migrates. Migrations are idempotent (`--to head`), so a config-only release re-runs one as a
      no-op.
    - The color's Deployment depends on this Job; pulumi-kubernetes waits for a Job to complete and
      fails at once when it fails, so new code never starts before its migration succeeded.
    - Retries (`backoffLimit`) and the deadline (`activeDeadlineSeconds`) are bounded; the Pulumi
      wait is the deadline plus a margin. The Job is not deleted after it finishes (no TTL): a
      vanished Job would be re-created, and so re-run, by the next `pulumi up --refresh`.
    - Migrations must be expand/contract: the other color keeps serving against the new schema.
    """

    job_name: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        namespace: pulumi.Input[str],
        service: ServiceSpec,
        migration: MigrationSpec,
        color: str,
        image: str,
        config_fingerprint: str,
        sources: PodSources,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(MIGRATION_JOB_TYPE, name, None, opts)
        job = k8s.batch.v1.Job(
            name,
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=f"{name}-{fingerprint_of(image)}-{config_fingerprint}",
                namespace=namespace,
                labels={"app.kubernetes.io/name": service.name, "platform.example.test/color": color},
                annotations={
                    "pulumi.com/timeoutSeconds": str(
                        migration.active_deadline_seconds + TIMEOUT_MARGIN_SECONDS
                    ),
                    "platform.example.test/image": image,
                    "platform.example.test/expand-contract": str(migration.expand_contract).lower(),
                },
            ),
            spec=k8s.batch.v1.JobSpecArgs(
                backoff_limit=migration.backoff_limit,
                active_deadline_seconds=migration.active_deadline_seconds,
                template=k8s.core.v1.PodTemplateSpecArgs(
                    metadata=k8s.meta.v1.ObjectMetaArgs(labels=migration_pod_labels(service.name)),
                    spec=k8s.core.v1.PodSpecArgs(
                        restart_policy="Never",
                        automount_service_account_token=False,
                        service_account_name=sources.service_account,
                        security_context=pod_security_context(),
                        containers=[
                            app_container(
                                service,
                                image,
                                color,
                                sources,
                                command=migration.command,
                                probes=False,
                            )
                        ],
                        volumes=pod_volumes(service, sources),
                    ),
                ),
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.job_name = kubernetes_name(job)
        self.register_outputs({"job_name": self.job_name})
