"""Per-stack knobs, in `Pulumi.<stack>.yaml` under the `platform:` namespace (replica counts, sizes,
namespace and kube context, hostnames, feature flags, the image of each color, the active color),
and the validated whole a program run or a release works with (`StackConfig`).

`core.config.rules.load_stack_config` validates both layers and raises one ConfigError naming every
problem at once. The runtime reader (`core.config.sources.raw_config_from_runtime`) is what
`__main__.py` uses under the real engine and under Pulumi's mock runtime alike; the same module
builds the same `RawConfig` from the files.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from pydantic import (
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from core.config.base import (
    CONFIG_VALUE_RULE,
    DNS_LABEL,
    ENV_NAME,
    SECRET_NAME,
    AwsRegion,
    BackupWindow,
    Color,
    ConfigModel,
    Domain,
    GrafanaUid,
    HttpScheme,
    HttpUrlText,
    InstanceClass,
    KmsKeyArn,
    KubernetesLabelKey,
    KubernetesLabelValue,
    KubernetesName,
    MaintenanceWindow,
    OidcProviderArn,
    SnsTopicArn,
    config_texts,
    config_value_problem,
    require_names,
)
from core.config.network import NetworkSettings
from core.config.project import PostgresSpec, ProjectSettings, ServiceSpec, StackPolicy

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


class ColorConfig(ConfigModel):
    """What a color runs besides its image: its own values for flags and env vars that Pulumi.yaml
    declares, where they differ from the declared defaults. Released with the color like its image
    (staged on the idle color, switched, undone by switching back); never shared by the colors."""

    flags: dict[str, str] = Field(default_factory=dict)
    env: dict[str, str] = Field(default_factory=dict)

    @field_validator("flags", "env", mode="before")
    @classmethod
    def _as_texts(cls, values: Any) -> Any:
        return config_texts(values)

    @field_validator("flags", "env")
    @classmethod
    def _one_line_values(cls, values: dict[str, str]) -> dict[str, str]:
        require_names(values, ENV_NAME, "names must be UPPER_SNAKE_CASE of at most 100 characters")
        bad = sorted(name for name, value in values.items() if config_value_problem(value))
        if bad:
            raise ValueError(f"the values of {bad} {CONFIG_VALUE_RULE}")
        return values

    def changed(self, flags: dict[str, str], env: dict[str, str]) -> ColorConfig:
        """These values set on top of this color's own (the rest kept)."""
        return ColorConfig(flags={**self.flags, **flags}, env={**self.env, **env})


class ColorConfigs(ConfigModel):
    blue: ColorConfig = Field(default_factory=ColorConfig)
    green: ColorConfig = Field(default_factory=ColorConfig)

    def of(self, color: Color) -> ColorConfig:
        return self.blue if color is Color.BLUE else self.green


@dataclass(frozen=True)
class ColorRun:
    """What one color runs: its image and its own config. Two colors that run equal ColorRuns run
    the same pods."""

    image: str
    config: ColorConfig

    def describe(self) -> str:
        own = [f"{name}={value}" for name, value in sorted({**self.config.flags, **self.config.env}.items())]
        return f"{self.image}" + (f" with {', '.join(own)}" if own else "")

    def describe_change(self, changes: Mapping[str, str]) -> str:
        """The image and only the values a release sets (`--set-flag`, `--set-env`), not every value
        the color carries."""
        changed = [f"{name}={value}" for name, value in sorted(changes.items())]
        return f"{self.image}" + (f" setting {', '.join(changed)}" if changed else "")


class ServiceRelease(ConfigModel):
    """The release state of one service in one stack: what each color runs, and which is live.

    The one way code reads or changes a service's release (`releases.<svc>` in config, in history,
    in a restore): a release is staged with `staged(run)` on the idle color and switched with
    `switched()`; both return a new value, written back with `to_config()`.
    """

    replicas: int = Field(ge=1, le=100, strict=True)
    """The size of a color that takes (or may take) traffic, and its autoscaler's floor."""
    active_color: Color
    images: ColorImages
    config: ColorConfigs = Field(default_factory=ColorConfigs)
    max_replicas: int | None = Field(default=None, ge=1, le=200, strict=True)
    """The autoscaler's ceiling for a full-size color (default: `replicas`, no scaling)."""
    target_cpu_percent: int = Field(default=70, ge=10, le=95, strict=True)
    """The autoscaler's CPU utilisation target, of the pods' CPU requests."""
    idle_replicas: int | None = Field(default=None, ge=0, le=100, strict=True)
    """The idle color's size once a release is verified (Argo Rollouts' scaleDownDelay, declared).
    Unset: full size, so a rollback is a switch of two Services; lower: cheaper, and a rollback
    first scales the color back up and waits for it."""
    canary_weight: int = Field(default=0, ge=0, le=100, strict=True)
    """Kept by the release tool: the percentage of the stable host's traffic the service's HTTPRoute
    sends to the idle color during a canary release (0 otherwise; core.gateway.canary_weights)."""
    idle_scaled_down: bool = Field(default=False, strict=True)
    """Kept by the release tool: whether the idle color runs `idle_replicas` now (set after a verified
    release; cleared when a release stages on it or traffic moves to it)."""

    @property
    def idle_color(self) -> Color:
        """The color the preview Service selects: where the next release is staged."""
        return self.active_color.other

    @property
    def active_image(self) -> str:
        return self.images.of(self.active_color)

    @property
    def idle_image(self) -> str:
        return self.images.of(self.idle_color)

    def run_of(self, color: Color) -> ColorRun:
        return ColorRun(self.images.of(color), self.config.of(color))

    @property
    def active_run(self) -> ColorRun:
        return self.run_of(self.active_color)

    @property
    def idle_run(self) -> ColorRun:
        return self.run_of(self.idle_color)

    def with_image(self, color: Color, image: str) -> ServiceRelease:
        return self.model_copy(update={"images": self.images.model_copy(update={color.value: image})})

    def with_run(self, color: Color, run: ColorRun) -> ServiceRelease:
        """`color` runs `run` (its image and its config); the other color as it is."""
        configs = self.config.model_copy(update={color.value: run.config})
        return self.with_image(color, run.image).model_copy(update={"config": configs})

    def switched(self) -> ServiceRelease:
        """Traffic on the other color; the images stay where they are, the color traffic leaves
        keeps its full size (a switch back stays instant until the release is verified), and no
        canary weight is left (all traffic is on the new color)."""
        return self.model_copy(
            update={"active_color": self.idle_color, "idle_scaled_down": False, "canary_weight": 0}
        )

    def weighted(self, percent: int) -> ServiceRelease:
        """A canary step: `percent` of the stable host's traffic to the idle color."""
        return self.model_copy(update={"canary_weight": percent})

    @property
    def sizing(self) -> tuple[Any, ...]:
        """The knobs that size a color's Deployment and autoscaler (SIZING_FIELDS and `replicas`)."""
        return (self.replicas, *(getattr(self, name) for name in SIZING_FIELDS))

    def replicas_of(self, color: Color) -> int:
        """How many pods `color` runs: `idle_replicas` while it is the scaled-down idle color."""
        if color is self.idle_color and self.idle_scaled_down and self.idle_replicas is not None:
            return self.idle_replicas
        return self.replicas

    def autoscaling_of(self, color: Color) -> tuple[int, int]:
        """The autoscaler's (min, max) for `color`: pinned at its size while scaled down (at least 1,
        Kubernetes' floor; an autoscaler leaves a Deployment of 0 replicas at 0)."""
        if self.replicas_of(color) != self.replicas:
            pinned = max(1, self.replicas_of(color))
            return pinned, pinned
        return self.replicas, self.max_replicas or self.replicas

    @property
    def scales_idle_down(self) -> bool:
        """Whether a verified release shrinks the color traffic left."""
        return self.idle_replicas is not None and self.idle_replicas < self.replicas

    def at_full_size(self) -> ServiceRelease:
        return self.model_copy(update={"idle_scaled_down": False})

    def idle_scaled_to_declared_size(self) -> ServiceRelease:
        return self.model_copy(update={"idle_scaled_down": self.scales_idle_down})

    def to_config(self) -> dict[str, Any]:
        """As `Pulumi.<stack>.yaml` and the engine hold it (camelCase keys; a color with no values of
        its own, and `config` when neither has any, left out)."""
        return self.model_dump(mode="json", by_alias=True, exclude_defaults=True)

    @classmethod
    def from_config(cls, value: Any) -> ServiceRelease | None:
        """`releases.<svc>` as config, history or a restore holds it; None when it is not a valid one."""
        try:
            return cls.model_validate(value)
        except ValueError:
            return None


SIZING_FIELDS = ("max_replicas", "target_cpu_percent", "idle_replicas")
"""A release's autoscaling knobs (besides `replicas`): they change Deployments, never traffic."""

IDLE_SCALED_DOWN = "idleScaledDown"
"""`releases.<svc>.idleScaledDown`: state the release tool keeps, not a knob anyone sets."""


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


MINUTES_PER_DAY = 24 * 60
MINUTES_PER_WEEK = 7 * MINUTES_PER_DAY
MIN_WINDOW_MINUTES = 30
"""RDS refuses a backup or maintenance window shorter than this."""
WINDOW_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _minute_of(text: str) -> int:
    """'hh:mi' -> minutes since 00:00, or 'ddd:hh:mi' -> minutes since Monday 00:00 (validated texts)."""
    *day, hour, minute = text.split(":")
    days = WINDOW_DAYS.index(day[0]) if day else 0
    return days * MINUTES_PER_DAY + int(hour) * 60 + int(minute)


def _span(window: str, period: int) -> tuple[int, int]:
    """A window's start minute and its length in minutes; a window may wrap around the period."""
    starts, ends = (_minute_of(part) for part in window.split("-"))
    return starts, (ends - starts) % period


def window_minutes(window: str, daily: bool) -> set[int]:
    """The minutes of the week (since Monday 00:00 UTC) a window covers: a daily window
    (`hh24:mi-hh24:mi`) on every day, a weekly one (`ddd:hh24:mi-ddd:hh24:mi`) once."""
    period = MINUTES_PER_DAY if daily else MINUTES_PER_WEEK
    starts, length = _span(window, period)
    return {
        (day * MINUTES_PER_DAY + (starts + offset) % period) % MINUTES_PER_WEEK
        for day in range(7 if daily else 1)
        for offset in range(length)
    }


class DatabaseSize(ConfigModel):
    """The per-stack knobs of the database: its size, network, protection, and when AWS may take
    backups (`backup_window`, daily) and do maintenance (`maintenance_window`, weekly), both UTC."""

    instance_class: InstanceClass
    allocated_storage_gb: int = Field(ge=20, le=65536, strict=True)
    multi_az: bool = Field(strict=True)
    deletion_protection: bool = Field(strict=True)
    subnet_group_name: str
    security_group_ids: list[str] = Field(min_length=1)
    secret_kms_key_arn: KmsKeyArn | None = None
    """The customer-managed KMS key that encrypts the database's master secret (AWS's default key
    when unset); the identities that read the secret may decrypt with exactly this key."""
    backup_retention_days: int = Field(ge=1, le=35, strict=True)
    """At least the stack policy's `minBackupRetentionDays`; 35 is RDS's maximum."""
    backup_window: BackupWindow
    maintenance_window: MaintenanceWindow
    drill_instance_class: InstanceClass | None = None
    """The size of a restore drill's scratch instance (`release drill`); the database's own when unset."""

    @field_validator("backup_window", "maintenance_window")
    @classmethod
    def _long_enough(cls, window: str, info: ValidationInfo) -> str:
        period = MINUTES_PER_DAY if info.field_name == "backup_window" else MINUTES_PER_WEEK
        _, length = _span(window, period)
        if length < MIN_WINDOW_MINUTES:
            raise ValueError(f"must last at least {MIN_WINDOW_MINUTES} minutes (RDS's minimum), not {length}")
        return window

    @property
    def windows_overlap(self) -> bool:
        """Whether the daily backup window meets the weekly maintenance window (RDS refuses that)."""
        return bool(
            window_minutes(self.backup_window, daily=True)
            & window_minutes(self.maintenance_window, daily=False)
        )


class TlsMode(StrEnum):
    """Who terminates TLS for the stack's hosts (components.gateway)."""

    CERT_MANAGER = "certManager"
    """The stack Gateway, with certificates cert-manager issues from `clusterIssuer`."""
    UPSTREAM = "upstream"
    """A load balancer in front of the Gateway, with its own certificate."""


FREE_STORAGE_ALARM_SHARE = 0.1
CPU_ALARM_PERCENT = 80
CONNECTIONS_ALARM_SHARE = 0.8
"""The database alarms' thresholds (components.database_alarms; the dashboards draw them too)."""


def connections_alarm_threshold(max_connections: int) -> int:
    """The connections alarm's threshold: 80% of the parameter group's max_connections."""
    return int(max_connections * CONNECTIONS_ALARM_SHARE)


def free_storage_alarm_bytes(allocated_storage_gb: int) -> int:
    """The free-storage alarm's threshold: 10% of the allocated storage, in whole bytes (CloudWatch's
    unit)."""
    return int(allocated_storage_gb * 1024**3 * FREE_STORAGE_ALARM_SHARE)


class TlsSettings(ConfigModel):
    """TLS on every host a user connects to: terminated by the stack Gateway with certificates from
    cert-manager's `cluster_issuer` (mode certManager, HTTP redirected to HTTPS by the Gateway) or by
    a load balancer in front (mode upstream, which redirects HTTP itself). The idle color is reached
    only with the preview header (core.gateway), not from chosen networks."""

    mode: TlsMode
    cluster_issuer: KubernetesName | None = None
    """Required in mode certManager, refused in mode upstream (core.config.rules)."""


class WorkloadIdentity(ConfigModel):
    """How pods get AWS credentials: IAM roles for service accounts (IRSA) on the cluster's OIDC
    provider. Each service's role trusts exactly `system:serviceaccount:<namespace>:<service>`."""

    oidc_provider_arn: OidcProviderArn

    @property
    def issuer(self) -> str:
        """The provider's issuer host and path, the prefix of its condition keys (`<issuer>:sub`)."""
        return self.oidc_provider_arn.split(":oidc-provider/", 1)[1]


PROMETHEUS_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]{0,62}")
RESERVED_ALERT_LABELS = ("service", "slo", "severity", "color")


class AlertingSettings(ConfigModel):
    """Where this stack's alerts go: labels every SLO alert carries, for Alertmanager's routes."""

    routing_labels: dict[str, str] = Field(min_length=1)
    sns_topic_arn: SnsTopicArn
    """Where the database's CloudWatch alarms notify (components.database_alarms)."""

    @field_validator("routing_labels")
    @classmethod
    def _label_names(cls, labels: dict[str, str]) -> dict[str, str]:
        require_names(labels, PROMETHEUS_LABEL, "label names must look like team or alert_route")
        reserved = sorted(set(labels) & set(RESERVED_ALERT_LABELS))
        if reserved:
            raise ValueError(f"{reserved} are set by the alert rules themselves")
        if any(not value or not value.isprintable() or len(value) > 128 for value in labels.values()):
            raise ValueError("label values must be one printable line of 1 to 128 characters")
        return labels


class AnalysisSettings(ConfigModel):
    """Metric analysis of a release (release.analysis), from this stack's Prometheus: the new color's
    error ratio and p95 latency over `window_seconds`, against absolute limits and against the color
    it replaces. Each measurement is Successful, Failed or Inconclusive (no data, too few requests);
    more than `failure_limit` failures, or more than `inconclusive_limit` inconclusive ones, fail it."""

    prometheus_url: HttpUrlText
    window_seconds: int = Field(default=120, ge=30, le=3600, strict=True)
    max_error_ratio: float = Field(default=0.01, ge=0, le=1)
    max_error_ratio_increase: float = Field(default=0.005, ge=0, le=1)
    """How much worse than the color it replaces the new one may be (0.005: half a percentage point)."""
    max_p95_seconds: float = Field(default=2.0, gt=0, le=60)
    min_requests: int = Field(default=50, ge=1, strict=True)
    failure_limit: int = Field(default=0, ge=0, strict=True)
    inconclusive_limit: int = Field(default=0, ge=0, strict=True)
    timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    """The hard deadline of one query, from connecting to the last byte."""

    @field_validator(
        "max_error_ratio", "max_error_ratio_increase", "max_p95_seconds", "timeout_seconds", mode="before"
    )
    @classmethod
    def _numbers_not_booleans(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError(f"a number is needed, not {str(value).lower()} (true would read as 1: no limit)")
        return value

    interval_seconds: int = Field(default=30, ge=5, le=3600, strict=True)
    """While a step waits for its window, the analysis also runs every `interval_seconds`: a Failed
    verdict (enough requests, over a limit) ends the wait at once; Inconclusive ones keep waiting."""


class DashboardSettings(ConfigModel):
    """Where this stack's Grafana dashboards go (components.dashboards): the Prometheus datasource
    their panels query, and what the Grafana sidecar of kube-prometheus-stack looks for: the label it
    loads ConfigMaps by (its `sidecar.dashboards.label` / `labelValue`) and the annotation that names
    the folder (its `folderAnnotation`)."""

    datasource_uid: GrafanaUid
    label: KubernetesLabelKey = "grafana_dashboard"
    label_value: KubernetesLabelValue = "1"
    folder: str = Field(default="Platform", min_length=1, max_length=100)
    folder_annotation: KubernetesLabelKey = "grafana_folder"

    @field_validator("folder")
    @classmethod
    def _one_line(cls, folder: str) -> str:
        if not folder.isprintable() or "/" in folder:
            raise ValueError("must be one printable line without '/' (a folder name, not a path)")
        return folder


class StrategyType(StrEnum):
    BLUE_GREEN = "blueGreen"
    CANARY = "canary"


class StrategySettings(ConfigModel):
    """How a release moves traffic: `blueGreen` (one switch), or `canary`: the stable host sends
    `steps` percent of its traffic to the new color in turn (the weights of the service's
    HTTPRoute), each held
    `pause_seconds` and judged by the metric analysis, before the switch."""

    type: StrategyType = StrategyType.BLUE_GREEN
    steps: list[int] = Field(default_factory=list)
    pause_seconds: int = Field(default=60, ge=0, le=3600, strict=True)

    @field_validator("steps", mode="before")
    @classmethod
    def _no_booleans(cls, steps: Any) -> Any:
        if isinstance(steps, list) and any(isinstance(step, bool) for step in steps):
            raise ValueError(f"steps are percentages (numbers), not true/false: {steps}")
        return steps

    @field_validator("steps")
    @classmethod
    def _increasing_percentages(cls, steps: list[int]) -> list[int]:
        if any(isinstance(step, bool) or not 1 <= step <= 99 for step in steps):
            raise ValueError(f"steps are percentages from 1 to 99 (the switch is the 100): {steps}")
        if any(later <= earlier for earlier, later in itertools.pairwise(steps)):
            raise ValueError(f"steps must increase strictly: {steps}")
        return steps

    @model_validator(mode="after")
    def _canary_has_steps(self) -> StrategySettings:
        if self.type is StrategyType.CANARY and not self.steps:
            raise ValueError("a canary needs steps, e.g. [10, 25, 50]")
        if self.type is StrategyType.BLUE_GREEN and self.steps:
            raise ValueError("steps belong to type canary")
        return self


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
    alerting: AlertingSettings
    dashboards: DashboardSettings
    analysis: AnalysisSettings | None = None
    strategy: StrategySettings = Field(default_factory=StrategySettings)
    health_check: HealthCheckSettings = Field(default_factory=HealthCheckSettings)
    app_secrets: dict[str, SecretStr] = Field(default_factory=dict)

    @field_validator("namespace")
    @classmethod
    def _namespace_label(cls, namespace: str) -> str:
        if not DNS_LABEL.fullmatch(namespace):
            raise ValueError("must be a lower-case DNS label")
        return namespace

    @field_validator("app_secrets")
    @classmethod
    def _secret_names(cls, secrets: dict[str, SecretStr]) -> dict[str, SecretStr]:
        require_names(secrets, SECRET_NAME, "appSecrets names must be UPPER_SNAKE_CASE")
        return secrets


STACK_KNOBS: tuple[str, ...] = tuple(
    (info.alias or name) for name, info in StackSettings.model_fields.items()
)
"""Every key a stack file may set (without the `platform:` prefix)."""

PROJECT_KEYS: tuple[str, ...] = tuple(
    (info.alias or name) for name, info in ProjectSettings.model_fields.items()
)
"""Every key that lives in Pulumi.yaml only."""


def _keys(model: type[ConfigModel]) -> frozenset[str]:
    return frozenset((info.alias or name) for name, info in model.model_fields.items())


PROJECT_LEVEL_TWINS: dict[str, tuple[str, frozenset[str]]] = {
    "database": ("postgres", _keys(PostgresSpec) - _keys(DatabaseSize)),
}
"""Per-stack knobs whose project-level twin in Pulumi.yaml holds what every stack shares, with the
twin's keys: one of them set under the knob (`database.parameters`) is a project-level value in the
wrong file, refused by the program and a parity violation, as an overridden project-level key is."""


def misplaced_project_key(knob: str, key: str) -> str | None:
    """The Pulumi.yaml key (`postgres.parameters`) that `key` set under the per-stack `knob`
    (`database`) belongs to; None when the key is not a twin's."""
    twin, keys = PROJECT_LEVEL_TWINS.get(knob, ("", frozenset()))
    return f"{twin}.{key}" if key in keys else None


# --------------------------------------------------------------------------------------------------
# The validated whole
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PodConfig:
    """Everything a color's pods read besides their image: the service's declared env vars and the
    project's feature flags (each with the color's own value where it has one), and the names of the
    secrets mounted for it. Its fingerprint names the color's config object and marks its pod
    template, so a change reaches that color's pods, and only them."""

    env: dict[str, str]
    flags: dict[str, str]
    secrets: tuple[str, ...]
    database: dict[str, str]
    """The database connection settings the pods read from `<svc>-database` (none for a service that
    reads no database): in the fingerprint, so a new port or name restarts the pods that use it."""

    @property
    def data(self) -> dict[str, str]:
        return dict(sorted({**self.env, **self.flags}.items()))

    @property
    def fingerprint(self) -> str:
        content = {
            "env": self.env,
            "flags": self.flags,
            "secrets": list(self.secrets),
            "database": self.database,
        }
        canonical = json.dumps(content, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:FINGERPRINT_LENGTH]


FINGERPRINT_LENGTH = 10


def pod_config(
    spec: ServiceSpec, declared_flags: dict[str, str], postgres: PostgresSpec, config: ColorConfig
) -> PodConfig:
    """What a color of `spec` reads, with `config`'s values over the declared defaults (values for
    keys nobody declares are left out; the config rules refuse them)."""
    return PodConfig(
        env={name: config.env.get(name, default) for name, default in sorted(spec.env.items())},
        flags={name: config.flags.get(name, default) for name, default in sorted(declared_flags.items())},
        secrets=tuple(sorted(spec.secrets)),
        database=postgres.connection_settings() if spec.reads_database else {},
    )


def project_pod_config(project: ProjectSettings, service: str, config: ColorConfig) -> PodConfig | None:
    """What a color of the project's `service` reads with `config`; None for an undeclared service."""
    spec = next((spec for spec in project.services if spec.name == service), None)
    return pod_config(spec, project.feature_flags, project.postgres, config) if spec is not None else None


def without_defaults(spec: ServiceSpec, declared_flags: dict[str, str], config: ColorConfig) -> ColorConfig:
    """`config` without the values that equal the declared defaults: a color keeps only its own."""
    return ColorConfig(
        flags={name: value for name, value in config.flags.items() if declared_flags.get(name) != value},
        env={name: value for name, value in config.env.items() if spec.env.get(name) != value},
    )


@dataclass(frozen=True)
class ServiceConfig:
    """Everything one BlueGreenService needs: its project-level spec and its release in this stack."""

    spec: ServiceSpec
    release: ServiceRelease
    declared_flags: dict[str, str]
    postgres: PostgresSpec

    @property
    def name(self) -> str:
        return self.spec.name

    def pod_config(self, color: Color) -> PodConfig:
        return self.pod_config_of(self.release.config.of(color))

    def pod_config_of(self, config: ColorConfig) -> PodConfig:
        return pod_config(self.spec, self.declared_flags, self.postgres, config)


@dataclass(frozen=True)
class StackConfig:
    stack: str
    project: ProjectSettings
    settings: StackSettings
    policy: StackPolicy

    @property
    def services(self) -> list[ServiceConfig]:
        return [
            ServiceConfig(
                spec, self.settings.releases[spec.name], self.project.feature_flags, self.project.postgres
            )
            for spec in self.project.services
        ]

    def hostname(self, service: str, preview: bool) -> str:
        """The service's host. The preview is served on the same host (its route matches the
        preview header, core.gateway), so `preview` changes nothing: same host, same certificate."""
        return f"{service}.{self.settings.domain}"

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
