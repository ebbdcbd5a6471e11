"""Per-stack knobs, in `Pulumi.<stack>.yaml` under the `platform:` namespace (replica counts, sizes,
namespace and kube context, hostnames, feature flags, the image of each colour, the active colour),
and the validated whole a program run or a release works with (`StackConfig`).

`core.config.rules.load_stack_config` validates both layers and raises one ConfigError naming every
problem at once. The runtime reader (`core.config.sources.raw_config_from_runtime`) is what
`__main__.py` uses under the real engine and under Pulumi's mock runtime alike; the same module
builds the same `RawConfig` from the files.
"""

from __future__ import annotations

import copy
import ssl
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from pydantic import (
    Field,
    SecretStr,
    field_validator,
)

from core.config.base import (
    DNS_LABEL,
    FEATURE_FLAG,
    SECRET_NAME,
    AwsRegion,
    CidrRanges,
    Color,
    ConfigModel,
    Domain,
    HttpScheme,
    InstanceClass,
    KmsKeyArn,
    KubernetesName,
    OidcProviderArn,
    public_ranges,
    require_names,
)
from core.config.network import NetworkSettings
from core.config.project import ProjectSettings, ServiceSpec, StackPolicy

# --------------------------------------------------------------------------------------------------
# Per-stack knobs (Pulumi.<stack>.yaml)
# --------------------------------------------------------------------------------------------------


class ColorImages(ConfigModel):
    blue: str
    green: str

    def of(self, color: Color) -> str:
        return self.blue if color is Color.BLUE else self.green

    def values(self) -> tuple[str, str]:
        return self.blue, self.green


class ServiceRelease(ConfigModel):
    """The release state of one service in one stack: what each colour runs, and which is live.

    The one way code reads or changes a service's release (`releases.<svc>` in config, in history,
    in a restore): a release is staged with `with_image(idle_color, image)` and switched with
    `switched()`; both return a new value, written back with `to_config()`.
    """

    replicas: int = Field(ge=1, le=100, strict=True)
    active_color: Color
    images: ColorImages

    @property
    def idle_color(self) -> Color:
        """The colour the preview Service selects: where the next release is staged."""
        return self.active_color.other

    @property
    def active_image(self) -> str:
        return self.images.of(self.active_color)

    @property
    def idle_image(self) -> str:
        return self.images.of(self.idle_color)

    def with_image(self, color: Color, image: str) -> ServiceRelease:
        return self.model_copy(update={"images": self.images.model_copy(update={color.value: image})})

    def switched(self) -> ServiceRelease:
        """Traffic on the other colour; the images stay where they are."""
        return self.model_copy(update={"active_color": self.idle_color})

    def to_config(self) -> dict[str, Any]:
        """As `Pulumi.<stack>.yaml` and the engine hold it (camelCase keys)."""
        return self.model_dump(mode="json", by_alias=True)

    @classmethod
    def from_config(cls, value: Any) -> ServiceRelease | None:
        """`releases.<svc>` as config, history or a restore holds it; None when it is not a valid one."""
        try:
            return cls.model_validate(value)
        except ValueError:
            return None


def releases_of(value: Any) -> dict[str, ServiceRelease]:
    """The valid service releases in a `releases` knob value (anything else in it is left out)."""
    if not isinstance(value, dict):
        return {}
    parsed = {str(name): ServiceRelease.from_config(release) for name, release in value.items()}
    return {name: release for name, release in parsed.items() if release is not None}


def invalid_releases(value: Any) -> list[str]:
    """The services in a `releases` knob value whose release is not a valid one."""
    if not isinstance(value, dict):
        return []
    return sorted(str(name) for name, release in value.items() if ServiceRelease.from_config(release) is None)


def with_release(releases: Any, service: str, release: ServiceRelease) -> dict[str, Any]:
    """A `releases` knob value with `service`'s release replaced; every other service as it is."""
    value = copy.deepcopy(releases) if isinstance(releases, dict) else {}
    value[service] = release.to_config()
    return value


class HealthCheckSettings(ConfigModel):
    """How a post-deploy health check probes a service (Flagger's analysis: interval x threshold).

    Healthy after `successes` consecutive good probes of every URL; unhealthy after `failures`
    consecutive bad probes of any URL, or when `window_seconds` ends first. A probe is bad on a
    timeout, a connection error, an unexpected status (5xx, or a redirect unless followed), a body
    that does not match, or a latency over `max_latency_ms`. The worst-case time from the first bad
    probe to a rollback decision is `failures x interval_seconds + timeout_seconds`.
    """

    scheme: HttpScheme = "https"
    expect_status: int = Field(default=200, ge=100, le=599, strict=True)
    expect_json: dict[str, str] = Field(default_factory=dict)
    version_field: str | None = Field(
        default=None,
        description="JSON field in which the service reports the image it runs (from APP_IMAGE); "
        "deploy then also expects the new image there.",
    )
    timeout_seconds: float = Field(default=2.0, gt=0, le=60)
    interval_seconds: float = Field(default=2.0, gt=0, le=300)
    window_seconds: float = Field(default=60.0, gt=0, le=3600)
    successes: int = Field(default=3, ge=1, le=100, strict=True)
    failures: int = Field(default=3, ge=1, le=100, strict=True)
    max_latency_ms: int = Field(default=1000, ge=1, le=60000, strict=True)
    follow_redirects: bool = Field(default=False, strict=True)
    ca_bundle: str | None = None
    """PEM certificates of the private CA that signs the hosts' certificates; when set, only these
    are trusted (else the system's). Certificates are always verified: there is no insecure mode."""

    @field_validator("ca_bundle")
    @classmethod
    def _loadable_pem(cls, pem: str | None) -> str | None:
        if pem is None:
            return None
        if "-----BEGIN CERTIFICATE-----" not in pem:
            raise ValueError("must be PEM certificates (-----BEGIN CERTIFICATE----- ...)")
        try:
            ssl.create_default_context(cadata=pem)
        except (ssl.SSLError, ValueError) as error:
            raise ValueError(f"the PEM does not load as CA certificates: {error}") from None
        return pem

    @property
    def decision_budget_seconds(self) -> float:
        """The longest a check may take from its first bad probe to an unhealthy verdict."""
        return self.failures * self.interval_seconds + self.timeout_seconds


class DatabaseSize(ConfigModel):
    instance_class: InstanceClass
    allocated_storage_gb: int = Field(ge=20, le=65536, strict=True)
    multi_az: bool = Field(strict=True)
    deletion_protection: bool = Field(strict=True)
    subnet_group_name: str
    security_group_ids: list[str] = Field(min_length=1)
    secret_kms_key_arn: KmsKeyArn | None = None
    """The customer-managed KMS key that encrypts the database's master secret (AWS's default key
    when unset); the identities that read the secret may decrypt with exactly this key."""


class TlsMode(StrEnum):
    """Who terminates TLS for the stack's hosts (components.ingress_tls)."""

    CERT_MANAGER = "certManager"
    """ingress-nginx, with certificates cert-manager issues from `clusterIssuer`."""
    UPSTREAM = "upstream"
    """A load balancer in front of ingress-nginx, with its own certificate."""


class TlsSettings(ConfigModel):
    """TLS on every host a user connects to: terminated by ingress-nginx with certificates from
    cert-manager's `cluster_issuer` (mode certManager) or by a load balancer in front (mode upstream),
    HTTP redirected to HTTPS, and preview hosts reachable only from `preview_source_ranges`."""

    mode: TlsMode
    cluster_issuer: KubernetesName | None = None
    """Required in mode certManager, refused in mode upstream (core.config.rules)."""
    preview_source_ranges: CidrRanges

    @property
    def open_ranges(self) -> list[str]:
        """The ranges that reach beyond private networks (the whole internet, or any public part of it)."""
        return public_ranges(self.preview_source_ranges)


class WorkloadIdentity(ConfigModel):
    """How pods get AWS credentials: IAM roles for service accounts (IRSA) on the cluster's OIDC
    provider. Each service's role trusts exactly `system:serviceaccount:<namespace>:<service>`."""

    oidc_provider_arn: OidcProviderArn

    @property
    def issuer(self) -> str:
        """The provider's issuer host and path, the prefix of its condition keys (`<issuer>:sub`)."""
        return self.oidc_provider_arn.split(":oidc-provider/", 1)[1]


class StackSettings(ConfigModel):
    namespace: str
    kube_context: str
    aws_region: AwsRegion
    domain: Domain
    releases: dict[str, ServiceRelease]
    database: DatabaseSize
    identity: WorkloadIdentity
    tls: TlsSettings
    network: NetworkSettings
    feature_flags: dict[str, str] = Field(default_factory=dict)
    health_check: HealthCheckSettings = Field(default_factory=HealthCheckSettings)
    app_secrets: dict[str, SecretStr] = Field(default_factory=dict)

    @field_validator("namespace")
    @classmethod
    def _namespace_label(cls, namespace: str) -> str:
        if not DNS_LABEL.fullmatch(namespace):
            raise ValueError("must be a lower-case DNS label")
        return namespace

    @field_validator("feature_flags", mode="before")
    @classmethod
    def _flags_as_strings(cls, flags: Any) -> Any:
        if isinstance(flags, dict):
            return {name: _flag_text(value) for name, value in flags.items()}
        return flags

    @field_validator("feature_flags")
    @classmethod
    def _flag_names(cls, flags: dict[str, str]) -> dict[str, str]:
        require_names(flags, FEATURE_FLAG, "feature flag names must look like FEATURE_NAME")
        return flags

    @field_validator("app_secrets")
    @classmethod
    def _secret_names(cls, secrets: dict[str, SecretStr]) -> dict[str, SecretStr]:
        require_names(secrets, SECRET_NAME, "appSecrets names must be UPPER_SNAKE_CASE")
        return secrets


def _flag_text(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value


STACK_KNOBS: tuple[str, ...] = tuple(
    (info.alias or name) for name, info in StackSettings.model_fields.items()
)
"""Every key a stack file may set (without the `platform:` prefix)."""

PROJECT_KEYS: tuple[str, ...] = tuple(
    (info.alias or name) for name, info in ProjectSettings.model_fields.items()
)
"""Every key that lives in Pulumi.yaml only."""


# --------------------------------------------------------------------------------------------------
# The validated whole
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServiceConfig:
    """Everything one BlueGreenService needs: its project-level spec and its release in this stack."""

    spec: ServiceSpec
    release: ServiceRelease

    @property
    def name(self) -> str:
        return self.spec.name


@dataclass(frozen=True)
class StackConfig:
    stack: str
    project: ProjectSettings
    settings: StackSettings
    policy: StackPolicy

    @property
    def services(self) -> list[ServiceConfig]:
        return [
            ServiceConfig(spec=spec, release=self.settings.releases[spec.name])
            for spec in self.project.services
        ]

    def hostname(self, service: str, preview: bool) -> str:
        return f"{service}{'-preview' if preview else ''}.{self.settings.domain}"

    def health_url(self, service: str, preview: bool, hostname: str | None = None) -> str:
        """The URL a post-deploy health check probes: the service's readiness path on its hostname
        (the one the config derives, unless the stack's outputs name another)."""
        spec = next(spec for spec in self.project.services if spec.name == service)
        scheme = self.settings.health_check.scheme
        return f"{scheme}://{hostname or self.hostname(service, preview)}{spec.readiness_path}"


@dataclass
class RawConfig:
    """Config as the engine (or the stack files) hand it over, before validation.

    `values` maps full keys (`platform:releases`, `aws:region`) to parsed values, project-level values
    already merged in as the engine does. `project_values` holds Pulumi.yaml's values (short keys);
    `overridden` lists the project-level keys the stack itself sets.
    """

    stack: str
    values: dict[str, Any]
    project_values: dict[str, Any]
    secret_keys: set[str] = field(default_factory=set)
    overridden: set[str] = field(default_factory=set)
