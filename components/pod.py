"""The pod template shared by a service's Deployments and its migration Jobs.

Not a component: a helper that builds one hardened container spec, so a Deployment and the Job that
migrates for it run the same image with the same config, secrets and security settings.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from core.config.project import ServiceSpec


@dataclass(frozen=True)
class PodSources:
    """Where a pod's config comes from, as Outputs of the resources that hold it.

    Passing Outputs (not plain names) gives every Deployment and Job an implicit dependency on its
    ConfigMaps and Secret, so none is created before the config it reads.
    """

    config_map: pulumi.Input[str]
    feature_flags: pulumi.Input[str]
    secret: pulumi.Input[str]
    service_account: pulumi.Input[str]
    """The service's ServiceAccount (components.workload_identity): who the pod is."""
    role_arn: pulumi.Input[str]
    """The IAM role the pod assumes with its web-identity token."""
    aws_region: str


WEB_IDENTITY_VOLUME = "aws-web-identity-token"
WEB_IDENTITY_DIRECTORY = "/var/run/secrets/platform/aws"
WEB_IDENTITY_SECONDS = 3600


RUN_AS_USER = 10001


def config_map_name(service: str) -> str:
    return f"{service}-config"


def selector_labels(service: str, color: str) -> dict[str, str]:
    """The labels a colour's pods carry and its Services select on."""
    return {"app.kubernetes.io/name": service, "platform.example.test/color": color}


def pod_security_context() -> k8s.core.v1.PodSecurityContextArgs:
    return k8s.core.v1.PodSecurityContextArgs(
        run_as_non_root=True,
        run_as_user=RUN_AS_USER,
        run_as_group=RUN_AS_USER,
        fs_group=RUN_AS_USER,
        seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault"),
    )


def app_container(
    spec: ServiceSpec,
    image: str,
    color: str,
    sources: PodSources,
    command: Sequence[str] | None = None,
    probes: bool = True,
) -> k8s.core.v1.ContainerArgs:
    """The service's container: non-root, read-only root filesystem, no privilege escalation."""
    http_port = k8s.core.v1.ContainerPortArgs(name="http", container_port=spec.port)
    return k8s.core.v1.ContainerArgs(
        name=spec.name,
        image=image,
        command=list(command) if command else None,
        ports=[http_port] if probes else None,
        env_from=[
            k8s.core.v1.EnvFromSourceArgs(
                config_map_ref=k8s.core.v1.ConfigMapEnvSourceArgs(name=sources.config_map)
            ),
            k8s.core.v1.EnvFromSourceArgs(
                config_map_ref=k8s.core.v1.ConfigMapEnvSourceArgs(name=sources.feature_flags)
            ),
        ],
        # The app reports APP_IMAGE on its readiness endpoint, so a health check can tell which
        # image answered (healthCheck.versionField): a wrong version fails the check.
        env=[
            k8s.core.v1.EnvVarArgs(name="APP_COLOR", value=color),
            k8s.core.v1.EnvVarArgs(name="APP_IMAGE", value=image),
            # The AWS SDKs' web-identity provider: this role, with the token projected below.
            k8s.core.v1.EnvVarArgs(name="AWS_ROLE_ARN", value=sources.role_arn),
            k8s.core.v1.EnvVarArgs(
                name="AWS_WEB_IDENTITY_TOKEN_FILE", value=f"{WEB_IDENTITY_DIRECTORY}/token"
            ),
            k8s.core.v1.EnvVarArgs(name="AWS_REGION", value=sources.aws_region),
            k8s.core.v1.EnvVarArgs(name="AWS_STS_REGIONAL_ENDPOINTS", value="regional"),
        ]
        + [
            k8s.core.v1.EnvVarArgs(
                name=secret,
                value_from=k8s.core.v1.EnvVarSourceArgs(
                    secret_key_ref=k8s.core.v1.SecretKeySelectorArgs(name=sources.secret, key=secret)
                ),
            )
            for secret in spec.secrets
        ],
        resources=k8s.core.v1.ResourceRequirementsArgs(
            requests={"cpu": spec.resources.cpu_request, "memory": spec.resources.memory_request},
            limits={"cpu": spec.resources.cpu_limit, "memory": spec.resources.memory_limit},
        ),
        readiness_probe=_http_probe(spec.readiness_path, period=5) if probes else None,
        liveness_probe=_http_probe(spec.liveness_path, period=10) if probes else None,
        security_context=k8s.core.v1.SecurityContextArgs(
            allow_privilege_escalation=False,
            read_only_root_filesystem=True,
            run_as_non_root=True,
            privileged=False,
            capabilities=k8s.core.v1.CapabilitiesArgs(drop=["ALL"]),
        ),
        volume_mounts=[
            k8s.core.v1.VolumeMountArgs(name="tmp", mount_path="/tmp"),
            k8s.core.v1.VolumeMountArgs(
                name=WEB_IDENTITY_VOLUME, mount_path=WEB_IDENTITY_DIRECTORY, read_only=True
            ),
        ],
    )


def pod_volumes() -> list[k8s.core.v1.VolumeArgs]:
    """The one writable directory a read-only root filesystem leaves the app, and the pod's
    web-identity token: a projected ServiceAccount token for STS only (audience sts.amazonaws.com),
    rotated by the kubelet. The Kubernetes API token is never mounted."""
    token = k8s.core.v1.ServiceAccountTokenProjectionArgs(
        audience="sts.amazonaws.com", expiration_seconds=WEB_IDENTITY_SECONDS, path="token"
    )
    return [
        k8s.core.v1.VolumeArgs(name="tmp", empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs()),
        k8s.core.v1.VolumeArgs(
            name=WEB_IDENTITY_VOLUME,
            projected=k8s.core.v1.ProjectedVolumeSourceArgs(
                sources=[k8s.core.v1.VolumeProjectionArgs(service_account_token=token)]
            ),
        ),
    ]


def _http_probe(path: str, period: int) -> k8s.core.v1.ProbeArgs:
    return k8s.core.v1.ProbeArgs(
        http_get=k8s.core.v1.HTTPGetActionArgs(path=path, port="http"),
        period_seconds=period,
        timeout_seconds=2,
        failure_threshold=3,
    )
