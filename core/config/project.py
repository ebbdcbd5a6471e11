"""Project-level config, declared once in `Pulumi.yaml`'s `config:` block and the same in every
stack: the PostgreSQL engine version, the services with their ports, probe paths and migration
commands, the per-stack policy table (`stackPolicies`: digest pinning, replica floors, deletion
protection, promotion gates, freeze windows) and the keys trusted to sign release records. A stack
file may not override them; the rules that are stricter for some stacks are this data, not
`if stack == ...` in code.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from core.config.base import (
    CONFIG_VALUE_RULE,
    DNS_LABEL,
    ENV_NAME,
    FEATURE_FLAG,
    RESERVED_ENV_PREFIXES,
    SECRET_NAME,
    ConfigModel,
    DatabaseName,
    EngineVersion,
    KubernetesName,
    MasterUsername,
    config_texts,
    config_value_problem,
    require_names,
)
from core.config.data_safety import DataSafetySpec
from core.config.signing import ReleaseSigning
from core.config.smoke import SmokeSettings
from core.config.supply_chain import StackSupplyChain, SupplyChainPolicy
from core.gateway import PREVIEW_TOKEN_SECRET

# --------------------------------------------------------------------------------------------------
# Project-level values (Pulumi.yaml)
# --------------------------------------------------------------------------------------------------


class ContainerResources(ConfigModel):
    cpu_request: str
    memory_request: str
    cpu_limit: str
    memory_limit: str


class MigrationSpec(ConfigModel):
    """A schema migration run as a Kubernetes Job with a color's image before that color's pods start."""

    command: list[str] = Field(min_length=1)
    backoff_limit: int = Field(default=2, ge=0, le=6, strict=True)
    active_deadline_seconds: int = Field(default=600, ge=30, le=3600, strict=True)
    expand_contract: bool = Field(
        default=True,
        strict=True,
        description="The migration only expands the schema (the old color keeps working against it).",
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
    reads_database: bool = Field(default=False, strict=True)
    """Whether the service (and its migration) reads the database: only then does its identity get
    permission to read the database secret, and its pods the DATABASE_* settings."""

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
        require_names(names, SECRET_NAME, "secret names must be UPPER_SNAKE_CASE")
        return names

    @field_validator("env", mode="before")
    @classmethod
    def _env_as_texts(cls, env: Any) -> Any:
        return config_texts(env)

    @model_validator(mode="after")
    def _env_names(self) -> ServiceSpec:
        """Env vars the project declares: names a pod can read, never one the program sets itself or
        a secret's (a secret value must never land in a ConfigMap through `--set-env`)."""
        require_names(self.env, ENV_NAME, "env var names must be UPPER_SNAKE_CASE of at most 100 characters")
        reserved = sorted(name for name in self.env if name.startswith(RESERVED_ENV_PREFIXES))
        secretive = sorted(
            name for name in self.env if name in self.secrets or name.removesuffix("_FILE") in self.secrets
        )
        bad_values = sorted(name for name, value in self.env.items() if config_value_problem(value))
        if reserved:
            raise ValueError(
                f"env vars {reserved}: the program sets {'/'.join(RESERVED_ENV_PREFIXES)}* itself"
            )
        if secretive:
            raise ValueError(f"env vars {secretive} are secrets the service reads from files; remove them")
        if bad_values:
            raise ValueError(f"env values of {bad_values} {CONFIG_VALUE_RULE}")
        return self


MIN_POSTGRES_MAJOR = 10
"""From PostgreSQL 10 on, the major version is the first number (16.4) and RDS names the parameter
group family after it alone (postgres16); older versions (9.6.x) are out of RDS's support."""
DB_PARAMETER_NAME = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)?")
"""A PostgreSQL setting (`max_connections`) or an RDS one (`rds.force_ssl`); matched with `fullmatch`."""


def parameter_group_family(engine_version: str) -> str:
    """The RDS parameter group family of a PostgreSQL engine version: "16.4" -> "postgres16".

    A ValueError for anything else than major.minor with a major of 10 or later.
    """
    matched = re.fullmatch(r"(\d+)\.(\d+)", engine_version)
    if matched is None:
        raise ValueError(f"engine version {engine_version!r} is not major.minor like 16.4")
    major = int(matched.group(1))
    if major < MIN_POSTGRES_MAJOR:
        raise ValueError(
            f"engine version {engine_version!r} has no parameter group family: RDS supports "
            f"PostgreSQL {MIN_POSTGRES_MAJOR} and later"
        )
    return f"postgres{major}"


class PostgresSpec(ConfigModel):
    engine_version: EngineVersion
    port: int = Field(default=5432, ge=1150, le=65535, strict=True)
    database_name: DatabaseName
    master_username: MasterUsername
    storage_type: str = "gp3"
    parameters: dict[str, str] = Field(default_factory=dict)
    """The settings of the database's own parameter group, the same in every stack (values as text,
    as RDS holds them). Applied `pending-reboot` (components/database.py says why)."""

    def connection_settings(self) -> dict[str, str]:
        """What a pod that reads the database gets besides the endpoint and the secret's ARN (outputs)."""
        return {
            "DATABASE_PORT": str(self.port),
            "DATABASE_NAME": self.database_name,
            "DATABASE_USER": self.master_username,
        }

    @field_validator("engine_version")
    @classmethod
    def _has_family(cls, version: str) -> str:
        parameter_group_family(version)
        return version

    @field_validator("parameters")
    @classmethod
    def _parameter_names(cls, parameters: dict[str, str]) -> dict[str, str]:
        require_names(
            parameters, DB_PARAMETER_NAME, "parameter names must look like max_connections or rds.force_ssl"
        )
        return parameters

    @property
    def parameter_group_family(self) -> str:
        return parameter_group_family(self.engine_version)

    @property
    def max_connections(self) -> int | None:
        """The parameter group's `max_connections`, when it sets a number (the alarms and dashboards
        draw 80% of it)."""
        value = self.parameters.get("max_connections")
        return int(value) if value and value.isdigit() else None


class GatewaySpec(ConfigModel):
    """The stack Gateway (components.gateway): `class_name` is the GatewayClass of the cluster's
    conformant Gateway API implementation, the same in every stack."""

    class_name: KubernetesName


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
    allow_asserted_review: bool = Field(
        default=True,
        strict=True,
        description="Whether a `release review` run outside GitHub Actions (its reviewer is a typed "
        "name, marked asserted) closes a break-glass release. Inside GitHub Actions the reviewer is who "
        "started the run's attempt.",
    )
    min_approvals: int = Field(
        default=1,
        ge=1,
        le=10,
        strict=True,
        description="How many distinct people must approve (with fourEyes, none of them the person "
        "releasing, the run's actor or whoever re-ran it).",
    )
    approval_environment: str | None = Field(
        default=None,
        description="A GitHub Actions environment protected by required reviewers; a job running in "
        "it (RELEASE_GITHUB_ENVIRONMENT) counts as approved, with the run URL as the reference.",
    )
    freeze_windows: list[FreezeWindow] = Field(default_factory=list)
    require_drill_within_days: int | None = Field(
        default=None,
        ge=1,
        le=366,
        strict=True,
        description="A passing restore drill of this stack's database (`release drill`), recorded and "
        "counted in its history, no older than this many days before a promotion into it.",
    )


class StackPolicy(ConfigModel):
    """Rules that are stricter for some stacks. Declared per stack name in Pulumi.yaml."""

    require_image_digest: bool = Field(strict=True)
    min_replicas: int = Field(ge=1, strict=True)
    require_deletion_protection: bool = Field(strict=True)
    min_backup_retention_days: int = Field(ge=1, le=35, strict=True)
    """The stack's `database.backupRetentionDays` may not be lower (how far back a restore can go)."""
    require_signed_records: bool = Field(
        default=False,
        strict=True,
        description="Only records signed by a trusted key count in this stack's history (release "
        "lifecycle, verification, revocation), and the release tool refuses to write an unsigned one.",
    )
    min_idle_replicas: int = Field(
        default=0,
        ge=0,
        strict=True,
        description="The smallest size a verified release may shrink the idle color to "
        "(releases.<svc>.idleReplicas): what a rollback finds running before it scales up.",
    )
    promotion: PromotionGate = Field(default_factory=PromotionGate)
    supply_chain: StackSupplyChain | None = None
    """How strictly this stack applies Pulumi.yaml's `supplyChain` to every image it releases (None:
    it does not verify images)."""


class SloSpec(ConfigModel):
    """Service level objectives, the same for every service in every stack (core.slo turns them into
    recording rules and burn-rate alerts)."""

    availability: float = Field(default=0.999, ge=0.9, le=0.99999)
    """The share of requests answered without a 5xx, over 30 days."""
    latency_target: float = Field(default=0.99, ge=0.9, le=0.99999)
    """The share of requests answered within `latency_threshold_seconds`."""
    latency_threshold_seconds: float = Field(default=2.0, gt=0, le=60)


class ProjectSettings(ConfigModel):
    services: list[ServiceSpec] = Field(min_length=1)
    postgres: PostgresSpec
    gateway: GatewaySpec
    stack_policies: dict[str, StackPolicy] = Field(min_length=1)
    release_signing: ReleaseSigning = Field(default_factory=ReleaseSigning)
    slos: SloSpec = Field(default_factory=SloSpec)
    feature_flags: dict[str, str] = Field(default_factory=dict)
    """The feature flags every service reads, with their defaults. Which flags exist is project-level;
    a color's own values ride its release (`releases.<svc>.config.<color>.flags`)."""
    data_safety: DataSafetySpec | None = None
    """Recovery targets, drill verification queries, snapshot retention (core/config/data_safety.py)."""
    smoke: SmokeSettings = Field(default_factory=SmokeSettings)
    """Each service's smoke suite and how suites run (core/config/smoke.py)."""
    supply_chain: SupplyChainPolicy | None = None
    """What every released image must prove: signers, provenance, vulnerability verdict, SBOM
    (core/config/supply_chain.py; docs/supply-chain.md)."""

    @field_validator("feature_flags", mode="before")
    @classmethod
    def _flags_as_strings(cls, flags: Any) -> Any:
        return config_texts(flags)

    @field_validator("feature_flags")
    @classmethod
    def _flag_names(cls, flags: dict[str, str]) -> dict[str, str]:
        require_names(flags, FEATURE_FLAG, "feature flag names must look like FEATURE_NAME")
        return flags

    @model_validator(mode="after")
    def _flags_are_not_env_vars(self) -> ProjectSettings:
        clashes = sorted(
            {name for service in self.services for name in service.env} & set(self.feature_flags)
        )
        if clashes:
            raise ValueError(f"{clashes} are both feature flags and env vars; one name, one meaning")
        return self

    @model_validator(mode="after")
    def _supply_chain_declared(self) -> ProjectSettings:
        strict = sorted(stack for stack, policy in self.stack_policies.items() if policy.supply_chain)
        if strict and self.supply_chain is None:
            raise ValueError(
                f"stackPolicies of {strict} set supplyChain, but Pulumi.yaml declares no supplyChain policy"
            )
        return self

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
        """Every secret some service reads, in a stable order (mounted into its pods)."""
        return sorted({name for service in self.services for name in service.secrets})

    @property
    def stack_secret_names(self) -> list[str]:
        """Every secret a stack must set (`platform:appSecrets.<NAME>`): those the services read, those
        the smoke suites send (never mounted into a pod), and the preview token (core.gateway)."""
        return list(dict.fromkeys([*self.secret_names, *self.smoke.secret_names, PREVIEW_TOKEN_SECRET]))
