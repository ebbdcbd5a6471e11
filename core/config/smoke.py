"""Smoke suites, declared once in `Pulumi.yaml` (`smoke`) and the same in every stack: per service, named
checks, each a request and what its answer must be. The release tool runs a service's suite against
the idle color through the preview route before any traffic moves, and against the stable host
after the switch (release.smoke); `release smoke` runs one on its own.

Only secret *values* differ per stack: a request names a stack secret by reference,
`${secret:NAME}` inside a header value or a body text, and the tool reads
`platform:appSecrets.NAME` of the stack it releases into (never mounted into a pod, never printed).

    smoke:
      value:
        concurrency: 4              # checks in flight at once
        checkTimeoutSeconds: 5      # one check, from connecting to the body's last byte
        suiteTimeoutSeconds: 15     # the whole suite
        suites:
          api:
            - name: account
              request:
                method: GET
                path: /v1/account
                headers: {Authorization: "Bearer ${secret:SMOKE_ACCOUNT_TOKEN}"}
              expect:
                status: 200
                maxLatencyMs: 1000
                json: {/account/plan: smoke}          # RFC 6901 pointer -> the value it must hold
                jsonTypes: {/account/id: string}      # pointer -> the JSON type it must have
                bodyContains: ['"plan"']
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from core.config.base import DNS_LABEL, SECRET_NAME, ConfigModel, require_names

SECRET_REFERENCE = re.compile(r"\$\{secret:([^}]*)\}")
"""`${secret:NAME}`: the value of the stack secret `platform:appSecrets.NAME`."""
PLACEHOLDER = re.compile(r"\$\{")
HEADER_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]{1,100}")
"""An HTTP header name (RFC 9110 token); matched with `fullmatch`."""
JSON_POINTER = re.compile(r"(/([^~/]|~[01])*)*")
"""An RFC 6901 JSON pointer: '' (the whole document) or `/`-separated tokens, `~0` for ~, `~1` for /."""
RESERVED_HEADERS = frozenset(
    {"host", "content-length", "transfer-encoding", "connection", "x-preview-token", "content-type"}
)
"""Headers the tool sets itself: the preview header (core.gateway), framing, and the body's type."""
MAX_CHECKS = 50
MAX_TEXT = 4096
HttpMethod = Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


class JsonType(StrEnum):
    """The JSON type a field must have (`jsonTypes`)."""

    STRING = "string"
    NUMBER = "number"
    INTEGER = "integer"
    BOOLEAN = "boolean"
    OBJECT = "object"
    ARRAY = "array"
    NULL = "null"


def secret_references(text: str) -> list[str]:
    """The stack secrets `text` names (`${secret:NAME}`), in order."""
    return SECRET_REFERENCE.findall(text)


def _texts_in(value: Any) -> list[str]:
    """Every string inside a JSON value (keys and values)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [text for key, item in value.items() for text in [str(key), *_texts_in(item)]]
    if isinstance(value, list):
        return [text for item in value for text in _texts_in(item)]
    return []


def _reference_problems(texts: list[str]) -> list[str]:
    """Why references in `texts` are wrong: a name that is not UPPER_SNAKE_CASE, or a `${` that is not
    a `${secret:NAME}` (a typo would otherwise be sent as it is)."""
    problems = []
    for text in texts:
        names = secret_references(text)
        bad = [name for name in names if not SECRET_NAME.fullmatch(name)]
        if bad:
            problems.append(f"secret names must be UPPER_SNAKE_CASE: {bad}")
        if len(PLACEHOLDER.findall(text)) != len(names):
            problems.append("the only placeholder is ${secret:NAME} (a stack secret, appSecrets.NAME)")
    return problems


class SmokeRequest(ConfigModel):
    """What one check sends, relative to the host under test (the preview route or the stable host)."""

    method: HttpMethod = "GET"
    path: str
    """Absolute path, with a query if needed (`/v1/search?q=smoke`); never a scheme or host."""
    headers: dict[str, str] = Field(default_factory=dict)
    json_body: Any = Field(default=None, alias="json")
    """A JSON body (sent as application/json); strings may hold `${secret:NAME}`."""
    body: str | None = Field(default=None, max_length=MAX_TEXT)
    """A text body (sent as text/plain), instead of `json`."""
    follow_redirects: bool = Field(default=False, strict=True)
    """Follow up to 10 redirects (a loop is a failed check); by default a redirect is the answer."""

    @field_validator("path")
    @classmethod
    def _absolute_path(cls, path: str) -> str:
        if not path.startswith("/") or path.startswith("//"):
            raise ValueError("must be an absolute path like /v1/account (the host is the one under test)")
        if not path.isprintable() or " " in path or "#" in path or len(path) > 2048:
            raise ValueError("must be one line of at most 2048 characters, without spaces or a #fragment")
        if PLACEHOLDER.search(path):
            raise ValueError("may not hold ${secret:...}: a path ends up in logs; send secrets in a header")
        return path

    @field_validator("headers")
    @classmethod
    def _header_names(cls, headers: dict[str, str]) -> dict[str, str]:
        require_names(headers, HEADER_NAME, "header names must be HTTP tokens like Authorization")
        reserved = sorted(name for name in headers if name.lower() in RESERVED_HEADERS)
        if reserved:
            raise ValueError(f"{reserved} are set by the release tool itself; remove them")
        bad = sorted(
            name for name, value in headers.items() if not value.isprintable() or len(value) > MAX_TEXT
        )
        if bad:
            raise ValueError(
                f"the values of {bad} must be one printable line of at most {MAX_TEXT} characters"
            )
        problems = _reference_problems(list(headers.values()))
        if problems:
            raise ValueError("; ".join(sorted(set(problems))))
        return headers

    @model_validator(mode="after")
    def _one_body(self) -> SmokeRequest:
        if self.json_body is not None and self.body is not None:
            raise ValueError("a request has one body: `json` or `body`, not both")
        if self.method in ("GET", "HEAD") and (self.json_body is not None or self.body is not None):
            raise ValueError(f"a {self.method} request has no body; use POST, PUT or PATCH")
        problems = _reference_problems(_texts_in(self.json_body) + ([self.body] if self.body else []))
        if problems:
            raise ValueError("; ".join(sorted(set(problems))))
        return self

    @property
    def secret_names(self) -> list[str]:
        texts = [*self.headers.values(), *_texts_in(self.json_body), *([self.body] if self.body else [])]
        return sorted({name for text in texts for name in secret_references(text)})


class SmokeExpect(ConfigModel):
    """What the answer must be; every expectation that fails is reported, with what came back."""

    status: int = Field(default=200, ge=100, le=599, strict=True)
    max_latency_ms: int | None = Field(default=None, ge=1, le=60000, strict=True)
    """From sending the request to the body's last byte."""
    json_fields: dict[str, Any] = Field(default_factory=dict, alias="json")
    """JSON pointer -> the value the field must hold (compared as JSON: `1` is not `true`, nor `"1"`)."""
    json_types: dict[str, JsonType] = Field(default_factory=dict)
    body_contains: list[str] = Field(default_factory=list)

    @field_validator("json_fields", "json_types")
    @classmethod
    def _pointers(cls, fields: dict[str, Any]) -> dict[str, Any]:
        require_names(fields, JSON_POINTER, "keys are JSON pointers like /account/id (RFC 6901)")
        return fields

    @field_validator("body_contains")
    @classmethod
    def _texts(cls, texts: list[str]) -> list[str]:
        if any(not text or len(text) > MAX_TEXT or PLACEHOLDER.search(text) for text in texts):
            raise ValueError(
                f"each text is 1 to {MAX_TEXT} characters, without ${{secret:...}} (it would be printed "
                "when the check fails)"
            )
        return texts

    @property
    def parses_json(self) -> bool:
        return bool(self.json_fields or self.json_types)


class SmokeCheck(ConfigModel):
    name: str
    request: SmokeRequest
    expect: SmokeExpect = Field(default_factory=SmokeExpect)

    @field_validator("name")
    @classmethod
    def _slug(cls, name: str) -> str:
        require_names([name], DNS_LABEL, "a check name is a lowercase DNS label, e.g. account-page")
        return name


class SmokeSettings(ConfigModel):
    """The project's smoke suites, per service, and how they run: at most `concurrency` checks at
    once, each within `check_timeout_seconds` (connect to last byte), all within `suite_timeout_seconds`."""

    concurrency: int = Field(default=4, ge=1, le=32, strict=True)
    check_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    suite_timeout_seconds: float = Field(default=15.0, gt=0, le=300)
    suites: dict[str, list[SmokeCheck]] = Field(default_factory=dict)

    @field_validator("suites")
    @classmethod
    def _named_once(cls, suites: dict[str, list[SmokeCheck]]) -> dict[str, list[SmokeCheck]]:
        problems = []
        for service, checks in suites.items():
            names = [check.name for check in checks]
            repeated = sorted({name for name in names if names.count(name) > 1})
            if repeated:
                problems.append(f"{service}: check names must be unique, repeated: {repeated}")
            if not 1 <= len(checks) <= MAX_CHECKS:
                problems.append(f"{service}: a suite has 1 to {MAX_CHECKS} checks, not {len(checks)}")
        if problems:
            raise ValueError("; ".join(problems))
        return suites

    @model_validator(mode="after")
    def _bounds_fit(self) -> SmokeSettings:
        if self.suite_timeout_seconds < self.check_timeout_seconds:
            raise ValueError(
                f"suiteTimeoutSeconds ({self.suite_timeout_seconds:g}) must be at least "
                f"checkTimeoutSeconds ({self.check_timeout_seconds:g})"
            )
        slow = sorted(
            f"{service}.{check.name}"
            for service, checks in self.suites.items()
            for check in checks
            if check.expect.max_latency_ms is not None
            and check.expect.max_latency_ms > self.check_timeout_seconds * 1000
        )
        if slow:
            raise ValueError(
                f"maxLatencyMs of {slow} is beyond checkTimeoutSeconds: the check would time out first"
            )
        return self

    def suite(self, service: str) -> list[SmokeCheck]:
        """The service's checks (none declared: empty)."""
        return self.suites.get(service, [])

    @property
    def secret_names(self) -> list[str]:
        """Every stack secret some check sends."""
        return sorted(
            {name for checks in self.suites.values() for c in checks for name in c.request.secret_names}
        )
