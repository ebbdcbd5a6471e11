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
from core.images import image_pull_policy


@dataclass(frozen=True)
class PodSources:
    """Where a pod's config comes from, as Outputs of the resources that hold it.

    Passing Outputs (not plain names) gives every Deployment and Job an implicit dependency on its
    ConfigMaps and Secret, so none is created before the config it reads.
    """

    config_map: pulumi.Input[str]
    """The color's own config object (env vars and feature flags), named by its fingerprint."""
    database_config: pulumi.Input[str] | None
    """The service's DATABASE_* settings (None when it reads no database)."""
    secret: pulumi.Input[str]
    """The Secret holding the app secrets; the pod mounts the ones its service declares as files."""
    service_account: pulumi.Input[str]
    """The service's ServiceAccount (components.workload_identity): who the pod is."""
    role_arn: pulumi.Input[str]
    """The IAM role the pod assumes with its web-identity token."""
    aws_region: str


WEB_IDENTITY_VOLUME = "aws-web-identity-token"
WEB_IDENTITY_DIRECTORY = "/var/run/secrets/platform/aws"
WEB_IDENTITY_SECONDS = 3600


SECRETS_VOLUME = "app-secrets"
SECRETS_DIRECTORY = "/var/run/secrets/platform/app"
SECRET_FILE_MODE = 0o440
"""Read-only for the owner and the pod's group (fsGroup), nobody else."""


RUN_AS_USER = 10001


def config_map_name(service: str, color: str, fingerprint: str) -> str:
    """A color's config object: a new name for new content, so a change reaches that color's pods."""
    return f"{service}-{color}-config-{fingerprint}"


def database_config_name(service: str) -> str:
    return f"{service}-database"


def selector_labels(service: str, color: str) -> dict[str, str]:
    """The labels a color's pods carry and its Services select on."""
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
    config_maps = [sources.config_map]
    if sources.database_config is not None:
        config_maps.append(sources.database_config)
    return k8s.core.v1.ContainerArgs(
        name=spec.name,
        image=image,
        image_pull_policy=image_pull_policy(image),
        command=list(command) if command else None,
        ports=[http_port] if probes else None,
        env_from=[
            k8s.core.v1.EnvFromSourceArgs(config_map_ref=k8s.core.v1.ConfigMapEnvSourceArgs(name=name))
            for name in config_maps
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
        # Secrets arrive as files, never as env values (a crash dump or `env` would show those):
        # the app reads <NAME> from the file <NAME>_FILE names.
        + [
            k8s.core.v1.EnvVarArgs(name=f"{secret}_FILE", value=f"{SECRETS_DIRECTORY}/{secret}")
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
        ]
        + (
            [k8s.core.v1.VolumeMountArgs(name=SECRETS_VOLUME, mount_path=SECRETS_DIRECTORY, read_only=True)]
            if spec.secrets
            else []
        ),
    )


def pod_volumes(spec: ServiceSpec, sources: PodSources) -> list[k8s.core.v1.VolumeArgs]:
    """The one writable directory a read-only root filesystem leaves the app; the pod's web-identity
    token: a projected ServiceAccount token for STS only (audience sts.amazonaws.com), rotated by the
    kubelet (the Kubernetes API token is never mounted); and the secrets the service declares, one
    file each, and no other key of the Secret."""
    token = k8s.core.v1.ServiceAccountTokenProjectionArgs(
        audience="sts.amazonaws.com", expiration_seconds=WEB_IDENTITY_SECONDS, path="token"
    )
    volumes = [
        k8s.core.v1.VolumeArgs(name="tmp", empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs()),
        k8s.core.v1.VolumeArgs(
            name=WEB_IDENTITY_VOLUME,
            projected=k8s.core.v1.ProjectedVolumeSourceArgs(
                sources=[k8s.core.v1.VolumeProjectionArgs(service_account_token=token)]
            ),
        ),
    ]
    if spec.secrets:
        volumes.append(
            k8s.core.v1.VolumeArgs(
                name=SECRETS_VOLUME,
                secret=k8s.core.v1.SecretVolumeSourceArgs(
                    secret_name=sources.secret,
                    default_mode=SECRET_FILE_MODE,
                    items=[k8s.core.v1.KeyToPathArgs(key=name, path=name) for name in spec.secrets],
                ),
            )
        )
    return volumes


def _http_probe(path: str, period: int) -> k8s.core.v1.ProbeArgs:
    return k8s.core.v1.ProbeArgs(
        http_get=k8s.core.v1.HTTPGetActionArgs(path=path, port="http"),
        period_seconds=period,
        timeout_seconds=2,
        failure_threshold=3,
    )
