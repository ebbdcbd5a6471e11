"""What every part of the config model shares: the project's name and key layout, the name
patterns (matched with `fullmatch`), the blue-green `Color`, and `ConfigModel`, the strict base of
every model (camelCase keys as Pulumi config writes them; unknown keys are errors).

The config comes in two layers, each in its own module: project-level values (`core.config.project`,
Pulumi.yaml: the same in every stack) and per-stack knobs (`core.config.stack`, Pulumi.<stack>.yaml).
`core.config.rules` checks both at once; `core.config.sources` is the only code that reads them.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
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
ENV_NAME = re.compile(r"[A-Z][A-Z0-9_]{0,99}")
"""An env var or flag name a pod reads (and a ConfigMap key): UPPER_SNAKE_CASE, at most 100 characters."""
RESERVED_ENV_PREFIXES = ("APP_", "AWS_", "DATABASE_")
"""Names the program sets itself (the image and color, the pod's AWS identity, the database)."""
MAX_CONFIG_VALUE = 4096
CONFIG_VALUE_RULE = f"must be one printable line of at most {MAX_CONFIG_VALUE} characters"


def config_value_problem(value: str) -> str:
    """Why `value` cannot be a flag or env value (CONFIG_VALUE_RULE), or ''."""
    return CONFIG_VALUE_RULE if len(value) > MAX_CONFIG_VALUE or not value.isprintable() else ""


def fullmatching(pattern: str, rule: str) -> AfterValidator:
    """A pydantic validator: the whole string matches `pattern` (fullmatch), else `rule` is the error."""
    compiled = re.compile(pattern)

    def check(text: str) -> str:
        if not compiled.fullmatch(text):
            raise ValueError(f"{rule} (the whole value must match {pattern})")
        return text

    return AfterValidator(check)


EngineVersion = Annotated[str, fullmatching(r"\d+\.\d+", "must be a major.minor version like 16.4")]
DatabaseName = Annotated[
    str, fullmatching(r"[a-z][a-z0-9_]{0,62}", "must be a lower-case name of at most 63 characters")
]
MasterUsername = Annotated[
    str, fullmatching(r"[a-z][a-z0-9_]{0,15}", "must be a lower-case name of at most 16 characters")
]
HttpScheme = Annotated[str, fullmatching(r"https?", "must be http or https")]
HTTP_URL = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~/-]*)?")
HttpUrlText = Annotated[
    str,
    fullmatching(
        HTTP_URL.pattern,
        "must be an http(s) URL with a host, no credentials, query or fragment, like "
        "http://prometheus.monitoring.example.test:9090",
    ),
]
InstanceClass = Annotated[
    str, fullmatching(r"db\.[a-z0-9]+\.[a-z0-9]+", "must be an RDS instance class like db.t4g.micro")
]
OidcProviderArn = Annotated[
    str,
    fullmatching(
        r"arn:aws:iam::\d{12}:oidc-provider/[a-z0-9.-]+(/[A-Za-z0-9._-]+)+",
        "must be an IAM OIDC provider ARN like arn:aws:iam::<12 digits>:oidc-provider/<issuer host>/id/<id>",
    ),
]
SnsTopicArn = Annotated[
    str,
    fullmatching(
        r"arn:aws:sns:[a-z]{2}(-[a-z]+)+-\d:\d{12}:[A-Za-z0-9_-]{1,256}",
        "must be one SNS topic's ARN like arn:aws:sns:<region>:<12 digits>:<topic name>",
    ),
]
KmsKeyArn = Annotated[
    str,
    fullmatching(
        r"arn:aws:kms:[a-z]{2}(-[a-z]+)+-\d:\d{12}:key/[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}",
        "must be one KMS key's ARN like arn:aws:kms:<region>:<12 digits>:key/<key id> (no aliases, no *)",
    ),
]
KubernetesName = Annotated[
    str,
    fullmatching(r"[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?", "must be a Kubernetes name like letsencrypt"),
]
KubernetesLabelKey = Annotated[
    str,
    fullmatching(
        r"([a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?",
        "must be a Kubernetes label or annotation key like grafana_dashboard or example.com/folder",
    ),
]
KubernetesLabelValue = Annotated[
    str,
    fullmatching(
        r"([A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?)?",
        "must be a Kubernetes label value like 1 (at most 63 letters, digits, '-', '_' or '.')",
    ),
]
GrafanaUid = Annotated[
    str,
    fullmatching(r"[A-Za-z0-9._-]{1,40}", "must be a Grafana datasource uid like prometheus"),
]
_CLOCK = r"([01]\d|2[0-3]):[0-5]\d"
_DAY = r"(mon|tue|wed|thu|fri|sat|sun)"
BackupWindow = Annotated[
    str,
    fullmatching(
        rf"{_CLOCK}-{_CLOCK}", "must be a daily UTC window hh24:mi-hh24:mi like 00:30-01:30 (AWS's format)"
    ),
]
MaintenanceWindow = Annotated[
    str,
    fullmatching(
        rf"{_DAY}:{_CLOCK}-{_DAY}:{_CLOCK}",
        "must be a weekly UTC window ddd:hh24:mi-ddd:hh24:mi like sun:02:00-sun:03:00 "
        "(AWS's format, lower-case days as AWS reports them)",
    ),
]
NamespaceName = Annotated[
    str,
    fullmatching(
        r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?", "must be a Kubernetes namespace name like gateway-system"
    ),
]
AwsRegion = Annotated[str, fullmatching(r"[a-z]{2}(-[a-z]+)+-\d", "must be an AWS region like eu-west-1")]
Domain = Annotated[
    str,
    fullmatching(
        r"([a-z0-9]([a-z0-9-]*[a-z0-9])?\.)+[a-z]{2,}", "must be a lower-case DNS domain like example.com"
    ),
]


def _cidr_ranges(ranges: list[str]) -> list[str]:
    """Every entry is one network in CIDR notation with no host bits set (10.20.0.0/16, not
    10.20.0.1/16); one ValueError lists every entry that is not."""
    bad = []
    for text in ranges:
        try:
            ipaddress.ip_network(text, strict=True)
        except ValueError:
            bad.append(text)
    if bad:
        raise ValueError(f"not CIDR ranges like 10.20.0.0/16: {bad}")
    return ranges


def public_ranges(ranges: Iterable[str]) -> list[str]:
    """The ranges that reach beyond private networks (the whole internet, or any public part of it)."""
    return [text for text in ranges if not ipaddress.ip_network(text, strict=False).is_private]


CidrRanges = Annotated[list[str], Field(min_length=1), AfterValidator(_cidr_ranges)]
"""At least one network in CIDR notation (IPv4 or IPv6), e.g. `[10.20.0.0/16]`."""


class Color(StrEnum):
    """A blue-green color. The stable Service selects the active one, the preview Service the other."""

    BLUE = "blue"
    GREEN = "green"

    @property
    def other(self) -> Color:
        return Color.GREEN if self is Color.BLUE else Color.BLUE


class ConfigModel(BaseModel):
    """Camel-case keys as Pulumi config writes them; unknown keys are errors, never ignored."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


def require_names(names: Iterable[str], pattern: re.Pattern[str], rule: str) -> None:
    """Raise one ValueError listing every name that does not fullmatch `pattern` (names only, no values)."""
    bad = [name for name in names if not pattern.fullmatch(name)]
    if bad:
        raise ValueError(f"{rule}: {bad}")


def config_texts(values: Any) -> Any:
    """A mapping of env-style values as text: YAML's `true`, `8080` and `0.5` become "true", "8080" and
    "0.5" (what a container's environment holds); anything else is left for validation to refuse."""
    if not isinstance(values, dict):
        return values
    return {name: _text(value) for name, value in values.items()}


def _text(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value


def full_key(key: str) -> str:
    return f"{PROJECT_NAME}:{key}"
