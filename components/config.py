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
under Pulumi's mock runtime alike; `release.stack_files` builds the same `RawConfig` from the files.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
)
from pydantic.alias_generators import to_camel

from components.image_ref import digest_of, is_image
from components.pulumi_yaml import PulumiYamlError, load_pulumi_yaml
from release.errors import ConfigError, ConfigProblem

PROJECT_NAME = "platform"
"""The Pulumi project name, and so the namespace of every config key (`platform:<key>`)."""

SECRETS_KEY = "appSecrets"
"""The per-stack key that holds the application secrets, each set with `pulumi config set --secret`."""

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


class _Model(BaseModel):
    """Camel-case keys as Pulumi config writes them; unknown keys are errors, never ignored."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


# --------------------------------------------------------------------------------------------------
# Project-level values (Pulumi.yaml)
# --------------------------------------------------------------------------------------------------


class ContainerResources(_Model):
    cpu_request: str
    memory_request: str
    cpu_limit: str
    memory_limit: str


class MigrationSpec(_Model):
    """A schema migration run as a Kubernetes Job with a colour's image before that colour's pods start."""

    command: list[str] = Field(min_length=1)
    backoff_limit: int = Field(default=2, ge=0, le=6, strict=True)
    active_deadline_seconds: int = Field(default=600, ge=30, le=3600, strict=True)
    expand_contract: bool = Field(
        default=True,
        strict=True,
        description="The migration only expands the schema (the old colour keeps working against it).",
    )


class ServiceSpec(_Model):
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


class PostgresSpec(_Model):
    engine_version: EngineVersion
    port: int = Field(default=5432, ge=1150, le=65535, strict=True)
    database_name: DatabaseName
    master_username: MasterUsername
    backup_retention_days: int = Field(ge=1, le=35, strict=True)
    storage_type: str = "gp3"


class IngressSpec(_Model):
    class_name: str


WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
WEEKLY_TIME = re.compile(r"(?P<day>Mon|Tue|Wed|Thu|Fri|Sat|Sun) (?P<hour>[01]\d|2[0-3]):(?P<minute>[0-5]\d)")
"""Matched with `fullmatch` (see DNS_LABEL)."""


class FreezeWindow(_Model):
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


class PromotionGate(_Model):
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


class StackPolicy(_Model):
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


class TrustedKey(_Model):
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


class ReleaseSigning(_Model):
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


class ProjectSettings(_Model):
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


class ColorImages(_Model):
    blue: str
    green: str

    def of(self, color: Color) -> str:
        return self.blue if color is Color.BLUE else self.green


class ServiceRelease(_Model):
    """The release state of one service in one stack: what each colour runs, and which is live."""

    replicas: int = Field(ge=1, le=100, strict=True)
    active_color: Color
    images: ColorImages

    @property
    def preview_color(self) -> Color:
        return self.active_color.other


class HealthCheckSettings(_Model):
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


class DatabaseSize(_Model):
    instance_class: InstanceClass
    allocated_storage_gb: int = Field(ge=20, le=65536, strict=True)
    multi_az: bool = Field(strict=True)
    deletion_protection: bool = Field(strict=True)
    subnet_group_name: str
    security_group_ids: list[str] = Field(min_length=1)


class StackSettings(_Model):
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


# --------------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------------


def load_stack_config(raw: RawConfig, enforce_policy: bool = True) -> StackConfig:
    """Validate `raw` into a StackConfig, or raise one ConfigError that lists every problem.

    `enforce_policy=False` skips only the per-stack policy rules (digest pinning, replica floor,
    deletion protection); the parity check uses it to evaluate a stack with another stack's knobs.
    """
    problems: list[ConfigProblem] = []
    stack = raw.stack
    problems += _namespace_problems(raw)
    problems += _override_problems(raw)

    project_input = {key: raw.project_values.get(key) for key in PROJECT_KEYS if key in raw.project_values}
    project = _validate(ProjectSettings, project_input, stack, "Pulumi.yaml config", problems)

    stack_input = {key: raw.values[full_key(key)] for key in STACK_KNOBS if full_key(key) in raw.values}
    if full_key(SECRETS_KEY) in raw.values and full_key(SECRETS_KEY) not in raw.secret_keys:
        problems.append(
            ConfigProblem(
                stack,
                full_key(SECRETS_KEY),
                "(plain text, value not shown)",
                "application secrets are stored in plain text",
                f"remove the key and set each value with "
                f"`pulumi config set --secret --path '{SECRETS_KEY}.<NAME>' -s {stack}`",
            )
        )
    settings = _validate(StackSettings, stack_input, stack, f"Pulumi.{stack}.yaml", problems)

    policy: StackPolicy | None = None
    if project is not None:
        policy = project.stack_policies.get(stack)
        if policy is None:
            problems.append(
                ConfigProblem(
                    stack,
                    full_key("stackPolicies"),
                    sorted(project.stack_policies),
                    f"no policy is declared for stack '{stack}'",
                    f"add a '{stack}:' entry under stackPolicies in Pulumi.yaml",
                )
            )
    if project is not None and settings is not None:
        problems += _cross_problems(stack, project, settings)
        if policy is not None and enforce_policy:
            problems += _policy_problems(stack, project, settings, policy)

    if problems or project is None or settings is None or policy is None:
        raise ConfigError(stack, problems)
    return StackConfig(stack=stack, project=project, settings=settings, policy=policy)


def _namespace_problems(raw: RawConfig) -> list[ConfigProblem]:
    problems = []
    known = set(STACK_KNOBS) | set(PROJECT_KEYS)
    for key in sorted(raw.values):
        namespace, _, short = key.partition(":")
        if namespace != PROJECT_NAME:
            problems.append(
                ConfigProblem(
                    raw.stack,
                    key,
                    _shown(raw, key),
                    f"the program reads only '{PROJECT_NAME}:' keys; this one would be ignored "
                    "(providers are configured explicitly from platform: keys)",
                    f"remove it (`pulumi config rm {key} -s {raw.stack}`) or use the matching "
                    f"'{PROJECT_NAME}:' knob: {', '.join(STACK_KNOBS)}",
                    parity=True,
                )
            )
        elif short not in known:
            problems.append(
                ConfigProblem(
                    raw.stack,
                    key,
                    _shown(raw, key),
                    "unknown key (a typo would otherwise silently fall back to a default)",
                    f"remove it or use one of the per-stack knobs: {', '.join(STACK_KNOBS)}",
                    parity=True,
                )
            )
    return problems


def _override_problems(raw: RawConfig) -> list[ConfigProblem]:
    problems = []
    for key in PROJECT_KEYS:
        merged = raw.values.get(full_key(key), raw.project_values.get(key))
        if key in raw.overridden or merged != raw.project_values.get(key):
            problems.append(
                ConfigProblem(
                    raw.stack,
                    full_key(key),
                    _shown(raw, full_key(key)),
                    "a project-level value is set in the stack; it must be the same in every stack "
                    f"(Pulumi.yaml declares {json.dumps(raw.project_values.get(key))})",
                    f"remove it from Pulumi.{raw.stack}.yaml (`pulumi config rm {key} -s {raw.stack}`) "
                    "and change Pulumi.yaml if every stack should change",
                    parity=True,
                )
            )
    return problems


def _shown(raw: RawConfig, key: str) -> Any:
    if key in raw.secret_keys:
        return "[secret]"
    return raw.values.get(key)


def _validate(
    model: type[_Model], data: dict[str, Any], stack: str, where: str, problems: list[ConfigProblem]
) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as error:
        for detail in error.errors():
            problems.append(_problem_from_pydantic(stack, where, model, detail))
        return None


def _problem_from_pydantic(stack: str, where: str, model: type[_Model], detail: Any) -> ConfigProblem:
    location = [str(part) for part in detail["loc"]]
    key = full_key(".".join(location)) if location else full_key("")
    secret = location[:1] == [SECRETS_KEY]
    value = "[secret]" if secret else (None if detail["type"] == "missing" else _scrub(detail.get("input")))
    kind = detail["type"]
    if kind == "missing":
        problem = f"required in {where} but not set"
        fix = (
            f"set it in {where}"
            if where == "Pulumi.yaml config"
            else f"`pulumi config set --path '{'.'.join(location)}' <value> -s {stack}`"
        )
    elif kind == "extra_forbidden":
        problem = "unknown key (a typo would otherwise silently fall back to a default)"
        known = _known_keys(model, location[:-1])
        fix = f"remove it from {where}" + (
            f"; the keys allowed here are: {', '.join(known)}" if known else ""
        )
    else:
        problem = detail["msg"]
        fix = f"correct the value in {where}"
    return ConfigProblem(stack, key, value, problem, fix)


def _scrub(value: Any) -> Any:
    """An error's input with any application secrets in it replaced (an error must never print one)."""
    if isinstance(value, dict):
        return {key: "[secret]" if key == SECRETS_KEY else _scrub(item) for key, item in value.items()}
    return value


def _known_keys(model: type[_Model], location: list[str]) -> list[str]:
    """The keys a model accepts at `location` (dict keys and list indexes in the path are skipped)."""
    current: Any = model
    for part in location:
        if not (isinstance(current, type) and issubclass(current, _Model)):
            return []
        fields = {info.alias or name: info for name, info in current.model_fields.items()}
        if part not in fields:
            continue  # a dict key or list index: stay on the same model
        current = _model_of(fields[part].annotation)
    if isinstance(current, type) and issubclass(current, _Model):
        return [info.alias or name for name, info in current.model_fields.items()]
    return []


def _model_of(annotation: Any) -> Any:
    """The pydantic model inside `X`, `X | None`, `list[X]` or `dict[str, X]`, else None."""
    if isinstance(annotation, type) and issubclass(annotation, _Model):
        return annotation
    for argument in getattr(annotation, "__args__", ()):
        found = _model_of(argument)
        if found is not None:
            return found
    return None


def _cross_problems(stack: str, project: ProjectSettings, settings: StackSettings) -> list[ConfigProblem]:
    problems = []
    declared = [service.name for service in project.services]
    for name in declared:
        if name not in settings.releases:
            problems.append(
                ConfigProblem(
                    stack,
                    full_key(f"releases.{name}"),
                    None,
                    f"service '{name}' is declared in Pulumi.yaml but has no release in this stack",
                    f"`pulumi config set --path 'releases.{name}.replicas' 1 -s {stack}` and set "
                    "activeColor and images.blue / images.green the same way",
                )
            )
    for name in settings.releases:
        if name not in declared:
            problems.append(
                ConfigProblem(
                    stack,
                    full_key(f"releases.{name}"),
                    name,
                    f"unknown service; Pulumi.yaml declares {declared}",
                    f"remove it (`pulumi config rm --path 'releases.{name}' -s {stack}`) or declare "
                    "the service in Pulumi.yaml",
                )
            )
    for service_name, release in settings.releases.items():
        for color in Color:
            image = release.images.of(color)
            if not is_image(image):
                problems.append(
                    ConfigProblem(
                        stack,
                        full_key(f"releases.{service_name}.images.{color}"),
                        image,
                        "not an image reference",
                        "use <repository>@sha256:<64 hex digits> (or <repository>:<tag> where the "
                        "stack policy allows tags)",
                    )
                )
    missing = [name for name in project.secret_names if name not in settings.app_secrets]
    if missing:
        problems.append(
            ConfigProblem(
                stack,
                full_key(SECRETS_KEY),
                f"missing: {', '.join(missing)}",
                f"{len(missing)} secret(s) the services read are not set: {', '.join(missing)}",
                "set each one: "
                + "; ".join(
                    f"`pulumi config set --secret --path '{SECRETS_KEY}.{name}' <value> -s {stack}`"
                    for name in missing
                ),
            )
        )
    unused = [name for name in settings.app_secrets if name not in project.secret_names]
    if unused:
        problems.append(
            ConfigProblem(
                stack,
                full_key(SECRETS_KEY),
                f"unused: {', '.join(unused)}",
                "no service declares these secrets (a typo would leave the real one unset)",
                "remove them or add them to a service's `secrets:` list in Pulumi.yaml",
            )
        )
    return problems


def _policy_problems(
    stack: str, project: ProjectSettings, settings: StackSettings, policy: StackPolicy
) -> list[ConfigProblem]:
    problems = []
    rule = f"stackPolicies.{stack} in Pulumi.yaml"
    for service in project.services:
        release = settings.releases.get(service.name)
        if release is None:
            continue
        if release.replicas < policy.min_replicas:
            problems.append(
                ConfigProblem(
                    stack,
                    full_key(f"releases.{service.name}.replicas"),
                    release.replicas,
                    f"{stack} runs at least {policy.min_replicas} replicas of every service ({rule})",
                    f"`pulumi config set --path 'releases.{service.name}.replicas' "
                    f"{policy.min_replicas} -s {stack}`",
                )
            )
        if policy.require_image_digest:
            for color in Color:
                image = release.images.of(color)
                if is_image(image) and not digest_of(image):
                    problems.append(
                        ConfigProblem(
                            stack,
                            full_key(f"releases.{service.name}.images.{color}"),
                            image,
                            f"{stack} requires images pinned by digest; a tag can change under you ({rule})",
                            "use <repository>@sha256:<64 hex digits>, e.g. the digest "
                            "`docker buildx imagetools inspect <image>` prints",
                        )
                    )
    if policy.require_deletion_protection and not settings.database.deletion_protection:
        problems.append(
            ConfigProblem(
                stack,
                full_key("database.deletionProtection"),
                False,
                f"{stack} requires deletion protection on the database ({rule})",
                f"`pulumi config set --path 'database.deletionProtection' true -s {stack}`",
            )
        )
    return problems


# --------------------------------------------------------------------------------------------------
# Reading config as the engine hands it to the program
# --------------------------------------------------------------------------------------------------


def read_project_file(path: Path) -> dict[str, Any]:
    """Pulumi.yaml's project-level config values, with short keys (`postgres`, not `platform:postgres`).

    Read with the safe loader (`components.pulumi_yaml`). A file that is not what Pulumi expects
    raises one PulumiYamlError (a ValueError) naming the file and every problem: not YAML, not a
    mapping, `config:` not a mapping, a key that is not text, an entry declared as a mapping
    without `value:`. A missing file raises FileNotFoundError.
    """
    document = load_pulumi_yaml(path)
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise PulumiYamlError(
            str(path),
            f"expected a mapping at the top level (name:, runtime:, config:), not {_yaml_kind(document)}",
        )
    declarations = document.get("config")
    if declarations is None:
        return {}
    if not isinstance(declarations, dict):
        raise PulumiYamlError(
            str(path), f"`config:` must be a mapping of keys to declarations, not {_yaml_kind(declarations)}"
        )
    values: dict[str, Any] = {}
    problems: list[str] = []
    for key, declaration in declarations.items():
        if not isinstance(key, str):
            problems.append(f"config key {key!r} must be text")
            continue
        short = key.split(":", 1)[1] if key.startswith(f"{PROJECT_NAME}:") else key
        if isinstance(declaration, dict):
            if "value" not in declaration:
                problems.append(
                    f"config.{key} has no `value:` (declare a project-level value as "
                    f"`{key}:` with `value:` under it)"
                )
                continue
            values[short] = declaration["value"]
        else:
            values[short] = declaration
    if problems:
        raise PulumiYamlError(str(path), "; ".join(problems))
    return values


def _yaml_kind(value: Any) -> str:
    return {list: "a list", str: "text", int: "a number", float: "a number", bool: "a boolean"}.get(
        type(value), type(value).__name__
    )


def raw_config_from_runtime(stack: str, project_file: Path) -> RawConfig:
    """The config the engine (or the mock runtime) gave this program run, with Pulumi.yaml beside it.

    The engine passes every value as a string, objects as JSON text; Pulumi.yaml's values are already
    merged in. Comparing against Pulumi.yaml is how the program notices a stack overriding one.
    """
    from pulumi.runtime import config as runtime_config

    merged: dict[str, Any] = dict(runtime_config.get_config_env())
    merged.update(runtime_config.CONFIG.get())
    secret_keys = set(runtime_config.get_config_secret_keys_env()) | set(runtime_config._SECRET_KEYS.get())
    values = {key: parse_engine_value(value) for key, value in merged.items()}
    return RawConfig(
        stack=stack,
        values=values,
        project_values=read_project_file(project_file),
        secret_keys={key for key in secret_keys if key in values},
    )


def parse_engine_value(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value
