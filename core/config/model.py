"""The whole stack configuration as one typed, validated object.

Config comes in two layers:

- **project-level** values, declared once in `Pulumi.yaml`'s `config:` block: the same in every stack
  (PostgreSQL engine version, the services with their ports, probe paths and migration commands, the
  per-stack policy table). A stack file may not override them.
- **per-stack knobs**, in `Pulumi.<stack>.yaml` under the `platform:` namespace: replica counts, sizes,
  namespace and kube context, hostnames, feature flags, the image of each colour, the active colour.

`load_stack_config` validates both and raises one `ConfigError` naming every problem at once (stack,
key, value, fix). The rules that are stricter for some stacks (images pinned by digest, minimum
replicas, deletion protection) come from the `stackPolicies` table in `Pulumi.yaml`: data, not
`if stack == ...` in code, so every stack runs the same code path.

The runtime reader (`raw_config_from_runtime`) is what `__main__.py` uses under the real engine and
under Pulumi's mock runtime alike; `core.config.sources` builds the same `RawConfig` from the files.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
)
from pydantic.alias_generators import to_camel

PROJECT_NAME = "platform"
"""The Pulumi project name, and so the namespace of every config key (`platform:<key>`)."""

SECRETS_KEY = "appSecrets"
"""The per-stack key that holds the application secrets, each set with `pulumi config set --secret`."""

SECRET_MARKER = "[secret]"
"""What every output shows in place of a secret value (plans, manifests, errors, config read back)."""

# Name patterns are matched with `fullmatch` (never `match` with `^...$`: `$` also matches before a
# trailing newline, so "platform-dev\n" would pass).
DNS_LABEL = re.compile(r"[a-z]([a-z0-9-]{0,40}[a-z0-9])?")
SECRET_NAME = re.compile(r"[A-Z][A-Z0-9_]*")
FEATURE_FLAG = re.compile(r"FEATURE_[A-Z0-9_]+")


def _fullmatching(pattern: str, rule: str) -> AfterValidator:
    """A pydantic validator: the whole string matches `pattern` (fullmatch), else `rule` is the error."""
    compiled = re.compile(pattern)

    def check(text: str) -> str:
        if not compiled.fullmatch(text):
            raise ValueError(f"{rule} (the whole value must match {pattern})")
        return text

    return AfterValidator(check)


EngineVersion = Annotated[str, _fullmatching(r"\d+\.\d+", "must be a major.minor version like 16.4")]
DatabaseName = Annotated[
    str, _fullmatching(r"[a-z][a-z0-9_]{0,62}", "must be a lower-case name of at most 63 characters")
]
MasterUsername = Annotated[
    str, _fullmatching(r"[a-z][a-z0-9_]{0,15}", "must be a lower-case name of at most 16 characters")
]
HttpScheme = Annotated[str, _fullmatching(r"https?", "must be http or https")]
InstanceClass = Annotated[
    str, _fullmatching(r"db\.[a-z0-9]+\.[a-z0-9]+", "must be an RDS instance class like db.t4g.micro")
]
AwsRegion = Annotated[str, _fullmatching(r"[a-z]{2}(-[a-z]+)+-\d", "must be an AWS region like eu-west-1")]
Domain = Annotated[
    str,
    _fullmatching(
        r"([a-z0-9]([a-z0-9-]*[a-z0-9])?\.)+[a-z]{2,}", "must be a lower-case DNS domain like example.com"
    ),
]


class Color(StrEnum):
    """A blue-green colour. The stable Service selects the active one, the preview Service the other."""

    BLUE = "blue"
    GREEN = "green"

    @property
    def other(self) -> Color:
        return Color.GREEN if self is Color.BLUE else Color.BLUE


class ConfigModel(BaseModel):
    """Camel-case keys as Pulumi config writes them; unknown keys are errors, never ignored."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


# --------------------------------------------------------------------------------------------------
# Project-level values (Pulumi.yaml)
# --------------------------------------------------------------------------------------------------


class ContainerResources(ConfigModel):
    cpu_request: str
    memory_request: str
    cpu_limit: str
    memory_limit: str


class MigrationSpec(ConfigModel):
    """A schema migration run as a Kubernetes Job with a colour's image before that colour's pods start."""

    command: list[str] = Field(min_length=1)
    backoff_limit: int = Field(default=2, ge=0, le=6, strict=True)
    active_deadline_seconds: int = Field(default=600, ge=30, le=3600, strict=True)
    expand_contract: bool = Field(
        default=True,
        strict=True,
        description="The migration only expands the schema (the old colour keeps working against it).",
    )


class ServiceSpec(ConfigModel):
    name: str
    port: int = Field(ge=1, le=65535, strict=True)
    readiness_path: str
    liveness_path: str
    env: dict[str, str] = Field(default_factory=dict)
    secrets: list[str] = Field(default_factory=list)
    migration: MigrationSpec | None = None
    resources: ContainerResources

    @field_validator("name")
    @classmethod
    def _dns_label(cls, name: str) -> str:
        if not DNS_LABEL.fullmatch(name):
            raise ValueError("must be a lower-case DNS label of at most 42 characters")
        return name

    @field_validator("readiness_path", "liveness_path")
    @classmethod
    def _absolute_path(cls, path: str) -> str:
        if not path.startswith("/"):
            raise ValueError("must start with '/'")
        return path

    @field_validator("secrets")
    @classmethod
    def _secret_names(cls, names: list[str]) -> list[str]:
        _require_names(names, SECRET_NAME, "secret names must be UPPER_SNAKE_CASE")
        return names


class PostgresSpec(ConfigModel):
    engine_version: EngineVersion
    port: int = Field(default=5432, ge=1150, le=65535, strict=True)
    database_name: DatabaseName
    master_username: MasterUsername
    backup_retention_days: int = Field(ge=1, le=35, strict=True)
    storage_type: str = "gp3"


class IngressSpec(ConfigModel):
    class_name: str


WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
WEEKLY_TIME = re.compile(r"(?P<day>Mon|Tue|Wed|Thu|Fri|Sat|Sun) (?P<hour>[01]\d|2[0-3]):(?P<minute>[0-5]\d)")
"""Matched with `fullmatch` (see DNS_LABEL)."""


class FreezeWindow(ConfigModel):
    """A weekly window in which promotions to the stack are refused (break-glass excepted).

    `starts`/`ends` are local wall-clock times in `time_zone` ("Fri 16:00", "Mon 08:00"); a window
    may wrap around the week. Daylight saving is handled by the time zone, not by the times.
    """

    starts: str
    ends: str
    time_zone: str
    reason: str = ""

    @field_validator("starts", "ends")
    @classmethod
    def _weekly_time(cls, text: str) -> str:
        if not WEEKLY_TIME.fullmatch(text):
            raise ValueError("must look like 'Fri 16:00' (Mon..Sun, 24-hour time)")
        return text

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, name: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise ValueError(f"unknown time zone {name!r}; use an IANA name like 'Europe/Berlin'") from error
        return name

    @property
    def start_minute(self) -> int:
        """`starts` as minutes since Monday 00:00 (local time in `time_zone`)."""
        return _minute_of_week(self.starts)

    @property
    def end_minute(self) -> int:
        return _minute_of_week(self.ends)

    def contains(self, local_minute: int) -> bool:
        """Whether a local minute of the week is inside the window (which may wrap around Sunday)."""
        starts, ends = self.start_minute, self.end_minute
        return (
            starts <= local_minute < ends if starts <= ends else local_minute >= starts or local_minute < ends
        )


def _minute_of_week(text: str) -> int:
    """'Fri 16:00' -> minutes since Monday 00:00; the text was validated as WEEKLY_TIME."""
    matched = WEEKLY_TIME.fullmatch(text)
    if matched is None:
        raise ValueError(f"{text!r} is not a weekly time like 'Fri 16:00'")
    return (
        WEEKDAYS.index(matched.group("day")) * 1440
        + int(matched.group("hour")) * 60
        + int(matched.group("minute"))
    )


class PromotionGate(ConfigModel):
    """How a stack receives a digest: promoted from which stack, after how much proof, approved how.

    No `promote_from` makes the stack an entry stage (`release deploy`); otherwise it receives digests
    only by `release promote <promote_from> <stack>`, from that stack and no other.
    """

    promote_from: str | None = None
    min_soak_minutes: int = Field(default=0, ge=0, le=10080, strict=True)
    max_verification_age_hours: float | None = Field(default=None, gt=0)
    require_approval: bool = Field(default=False, strict=True)
    allow_asserted_approval: bool = Field(
        default=True,
        strict=True,
        description="Outside GitHub Actions, whether a typed --approval/--approver counts at all (it is "
        "asserted, not proven, and the audit marks it so). Inside GitHub Actions the approval is always "
        "read from GitHub's API.",
    )
    require_signed_evidence: bool = Field(
        default=False,
        strict=True,
        description="Count only records signed by a trusted key (releaseSigning.trustedKeys) as the "
        "source's verification, and as approval and review.",
    )
    four_eyes: bool = Field(default=False, strict=True)
    approval_environment: str | None = Field(
        default=None,
        description="A GitHub Actions environment protected by required reviewers; a job running in "
        "it (RELEASE_GITHUB_ENVIRONMENT) counts as approved, with the run URL as the reference.",
    )
    freeze_windows: list[FreezeWindow] = Field(default_factory=list)


class StackPolicy(ConfigModel):
    """Rules that are stricter for some stacks. Declared per stack name in Pulumi.yaml."""

    require_image_digest: bool = Field(strict=True)
    min_replicas: int = Field(ge=1, strict=True)
    require_deletion_protection: bool = Field(strict=True)
    require_signed_records: bool = Field(
        default=False,
        strict=True,
        description="Only records signed by a trusted key count in this stack's history (release "
        "lifecycle, verification, revocation), and the release tool refuses to write an unsigned one.",
    )
    promotion: PromotionGate = Field(default_factory=PromotionGate)


ED25519_PUBLIC_KEY = re.compile(r"[A-Za-z0-9+/]{43}=")
"""32 raw bytes in standard base64: what `release keygen` prints."""
KEY_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")


class TrustedKey(ConfigModel):
    """A public key whose signatures on release records are trusted (the CI's signing key).

    Rotation: add the new key, move CI to it, then set `retired_after` on the old one; records it
    signed before that time stay evidence. Remove a key only if it leaked: everything it signed
    stops counting.
    """

    name: str
    public_key: str
    retired_after: datetime | None = None

    @field_validator("name")
    @classmethod
    def _key_name(cls, name: str) -> str:
        if not KEY_NAME.fullmatch(name):
            raise ValueError("must be a short lower-case name like 'ci-2026-11'")
        return name

    @field_validator("public_key")
    @classmethod
    def _ed25519(cls, key: str) -> str:
        if not ED25519_PUBLIC_KEY.fullmatch(key):
            raise ValueError(
                "must be an Ed25519 public key in base64 (44 characters), as `release keygen` prints"
            )
        return key

    @field_validator("retired_after")
    @classmethod
    def _aware(cls, moment: datetime | None) -> datetime | None:
        if moment is not None and moment.tzinfo is None:
            raise ValueError("must carry a time zone, e.g. 2026-12-01T00:00:00Z")
        return moment


class ReleaseSigning(ConfigModel):
    """Who may sign release records: the trusted public keys (project-level, the same in every stack)."""

    trusted_keys: list[TrustedKey] = Field(default_factory=list)

    @field_validator("trusted_keys")
    @classmethod
    def _unique(cls, keys: list[TrustedKey]) -> list[TrustedKey]:
        for attribute in ("name", "public_key"):
            values = [getattr(key, attribute) for key in keys]
            repeated = sorted({value for value in values if values.count(value) > 1})
            if repeated:
                raise ValueError(f"trusted keys must have unique {attribute}s; repeated: {repeated}")
        return keys


class ProjectSettings(ConfigModel):
    services: list[ServiceSpec] = Field(min_length=1)
    postgres: PostgresSpec
    ingress: IngressSpec
    stack_policies: dict[str, StackPolicy] = Field(min_length=1)
    release_signing: ReleaseSigning = Field(default_factory=ReleaseSigning)

    @field_validator("services")
    @classmethod
    def _unique_names(cls, services: list[ServiceSpec]) -> list[ServiceSpec]:
        names = [service.name for service in services]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"service names must be unique; repeated: {duplicates}")
        return services

    @field_validator("stack_policies")
    @classmethod
    def _known_sources(cls, policies: dict[str, StackPolicy]) -> dict[str, StackPolicy]:
        unknown = {
            stack: policy.promotion.promote_from
            for stack, policy in policies.items()
            if policy.promotion.promote_from is not None and policy.promotion.promote_from not in policies
        }
        if unknown:
            raise ValueError(f"promotion.promoteFrom names stacks without a policy: {unknown}")
        return policies

    @property
    def secret_names(self) -> list[str]:
        """Every secret some service reads, in a stable order."""
        return sorted({name for service in self.services for name in service.secrets})


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


class StackSettings(ConfigModel):
    namespace: str
    kube_context: str
    aws_region: AwsRegion
    domain: Domain
    releases: dict[str, ServiceRelease]
    database: DatabaseSize
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
        _require_names(flags, FEATURE_FLAG, "feature flag names must look like FEATURE_NAME")
        return flags

    @field_validator("app_secrets")
    @classmethod
    def _secret_names(cls, secrets: dict[str, SecretStr]) -> dict[str, SecretStr]:
        _require_names(secrets, SECRET_NAME, "appSecrets names must be UPPER_SNAKE_CASE")
        return secrets


def _require_names(names: Iterable[str], pattern: re.Pattern[str], rule: str) -> None:
    """Raise one ValueError listing every name that does not fullmatch `pattern` (names only, no values)."""
    bad = [name for name in names if not pattern.fullmatch(name)]
    if bad:
        raise ValueError(f"{rule}: {bad}")


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


def full_key(key: str) -> str:
    return f"{PROJECT_NAME}:{key}"
