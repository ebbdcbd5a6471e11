"""Smoke suites: a service's declared checks (core.config.smoke) run against one host, concurrently.

A release runs the suite twice: against the idle color through the preview route (the stable host
with the preview header) before any traffic moves, and against the stable host after the switch.
`release smoke` runs it on its own. The result says "N/M smoke checks passed" and, for each failed
check, every expectation that failed and what came back.

Hard bounds, whatever a server does (`run_suite` never raises for it, and never hangs):

- at most `concurrency` checks are in flight at once;
- a check takes at most `check_timeout_seconds`, from connecting to the last byte of the body
  (a deadline on the whole request, redirects included, so a trickled answer is cut off);
- the suite takes at most `suite_timeout_seconds`: a check still waiting or running then fails;
- a body is streamed and never more than 1 MiB of it kept (more is a failed check); JSON is parsed
  only if it nests at most 64 levels; at most 10 redirects are followed, only where a check asks,
  and never to another host (the preview token and secrets stay on the host under test).

What is never printed or recorded: a secret (a stack secret a check sends, the preview token),
including when a server echoes it back (every text that came back is redacted), and any body
beyond a short excerpt of a failed check's answer.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

from core.config.base import SECRETS_KEY, full_key
from core.config.smoke import SECRET_REFERENCE, JsonType, SmokeCheck, SmokeExpect, SmokeSettings
from core.config.stack import HealthCheckSettings, StackConfig
from core.errors import ConfigProblem
from core.gateway import PREVIEW_TOKEN_SECRET
from core.health import (
    MAX_BODY_BYTES,
    MAX_JSON_DEPTH,
    MAX_REDIRECTS,
    failure_of,
    json_depth,
    run_on_private_loop,
    shortened,
    trust_of,
)
from core.text import one_line
from release.engine.protocol import Engine

EXCERPT_CHARS = 120
"""The most of a failed check's body that is shown (redacted)."""
VALUE_CHARS = 60
"""The most of a JSON value that came back that is shown (redacted)."""
REDACTED = "[secret]"
REDIRECTS = frozenset({301, 302, 303, 307, 308})

Clock = Callable[[], float]


@dataclass(frozen=True)
class CheckOutcome:
    """One check: passed, or every expectation it failed (each says what came back)."""

    name: str
    passed: bool
    failures: tuple[str, ...] = ()
    status: int | None = None
    latency_ms: float = 0.0
    excerpt: str = ""
    """The start of the body of a failed check's answer, redacted (empty for a passed check)."""

    def describe(self) -> str:
        shown = "; ".join(self.failures)
        return f"{self.name}: {shown}" + (f" (body: {self.excerpt})" if self.excerpt else "")

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "passed": self.passed,
            "status": self.status,
            "latencyMs": round(self.latency_ms, 1),
            "failures": list(self.failures),
            "excerpt": self.excerpt or None,
        }


@dataclass
class SmokeResult:
    """A suite's run against one host: `target` is `preview` (the idle color) or `stable`."""

    service: str
    target: str
    origin: str
    checks: list[CheckOutcome] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def passed_count(self) -> int:
        return sum(check.passed for check in self.checks)

    @property
    def total(self) -> int:
        return len(self.checks)

    @property
    def passed(self) -> bool:
        return self.passed_count == self.total

    @property
    def failed(self) -> list[CheckOutcome]:
        return [check for check in self.checks if not check.passed]

    def headline(self) -> str:
        return f"{self.passed_count}/{self.total} smoke checks passed"

    def summary(self) -> str:
        """The headline, then each failed check with what it expected and what came back."""
        return "; ".join([self.headline(), *(check.describe() for check in self.failed)])

    def counts(self) -> dict[str, Any]:
        """What a signed record keeps: the count, and the names of the checks that failed."""
        return {
            "passed": self.passed_count,
            "total": self.total,
            "failed": [check.name for check in self.failed],
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "target": self.target,
            "origin": self.origin,
            **self.counts(),
            "summary": self.headline(),
            "seconds": round(self.seconds, 3),
            "checks": [check.to_json() for check in self.checks],
        }


def origin_of(url: str) -> str:
    """`https://api.example.test/healthz/ready` -> `https://api.example.test`: where a suite's paths go."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


class Redactor:
    """Replaces every secret value (the suite's secrets, the headers the tool adds) in a text."""

    def __init__(self, values: Sequence[str]) -> None:
        self._values = sorted({value for value in values if value}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for value in self._values:
            text = text.replace(value, REDACTED)
        return text


class _BodyTooLargeError(Exception):
    pass


class _OtherHostError(Exception):
    pass


@dataclass(frozen=True)
class _Answer:
    status: int
    body: bytes


@dataclass(frozen=True)
class Suite:
    """A service's suite as one stack runs it: its checks, how they run, the values of the secrets they
    send (never shown), and the stack's TLS trust (its health check's CA bundle)."""

    service: str
    checks: tuple[SmokeCheck, ...]
    settings: SmokeSettings
    secrets: Mapping[str, str] = field(default_factory=dict, repr=False)
    health: HealthCheckSettings | None = None


def run_suite_sync(
    suite: Suite, target: str, origin: str, headers: Mapping[str, str] | None = None
) -> SmokeResult:
    """`run_suite` for callers without an event loop (the release flows, `release smoke`)."""
    return run_on_private_loop(run_suite(suite, target, origin, headers))


async def run_suite(
    suite: Suite,
    target: str,
    origin: str,
    headers: Mapping[str, str] | None = None,
    clock: Clock = time.monotonic,
) -> SmokeResult:
    """Run the suite's checks against `origin` (`target`: preview or stable), at most `concurrency`
    at once, within the suite's deadline (module docstring). `${secret:NAME}` stands for
    `suite.secrets[NAME]`; `headers` go with every request (the preview header)."""
    settings, secrets, checks = suite.settings, suite.secrets, suite.checks
    extra = dict(headers or {})
    redact = Redactor([*secrets.values(), *extra.values()])
    trust = trust_of(suite.health)
    started = clock()
    gate = asyncio.Semaphore(settings.concurrency)
    # identity: the body is read as sent, so 1 MiB read is 1 MiB (no decompression bomb)
    async with httpx.AsyncClient(
        headers={**extra, "Accept-Encoding": "identity"},
        timeout=httpx.Timeout(settings.check_timeout_seconds),
        verify=trust,
    ) as client:

        async def bounded(check: SmokeCheck) -> CheckOutcome:
            async with gate:
                try:
                    return await _run_check(client, origin, check, settings, secrets, redact, clock)
                except Exception as error:  # noqa: BLE001 - a bug in judging is a failed check, said
                    return CheckOutcome(check.name, False, (f"error: {type(error).__name__}",))

        tasks = [asyncio.ensure_future(bounded(check)) for check in checks]
        deadline = settings.suite_timeout_seconds
        done, pending = await asyncio.wait(tasks, timeout=deadline) if tasks else (set(), set())
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    late = f"deadline: the suite's {deadline:g} s passed before this check finished"
    outcomes = [
        task.result() if task in done else CheckOutcome(check.name, False, (late,))
        for check, task in zip(checks, tasks, strict=True)
    ]
    return SmokeResult(suite.service, target, origin, outcomes, clock() - started)


async def _run_check(
    client: httpx.AsyncClient,
    origin: str,
    check: SmokeCheck,
    settings: SmokeSettings,
    secrets: Mapping[str, str],
    redact: Redactor,
    clock: Clock,
) -> CheckOutcome:
    """One check, judged; never raises: whatever goes wrong is a failed check, said in one line."""
    started = clock()

    def failed(*failures: str, status: int | None = None, body: bytes = b"") -> CheckOutcome:
        latency = (clock() - started) * 1000.0
        shown = tuple(one_line(redact(text)) for text in failures)
        return CheckOutcome(check.name, False, shown, status, latency, _excerpt(body, redact))

    try:
        request = _request_of(check, secrets)
    except KeyError as missing:
        return failed(f"secret: {missing.args[0]} has no value in this stack")
    except ValueError as error:
        return failed(f"request: {error}")
    timeout = settings.check_timeout_seconds
    try:
        async with asyncio.timeout(timeout):
            answer = await _send(client, origin, check, request)
    except _BodyTooLargeError:
        return failed(f"body: larger than {MAX_BODY_BYTES // (1024 * 1024)} MiB")
    except _OtherHostError as error:
        return failed(f"redirect: {error}")
    except httpx.TooManyRedirects:
        return failed(f"redirect: more than {MAX_REDIRECTS} redirects (a redirect loop?)")
    except Exception as error:  # noqa: BLE001 - a check reports every failure, by kind, never raises
        kind, detail = failure_of(error, timeout)
        return failed(f"{kind.value}: {detail}")
    latency = (clock() - started) * 1000.0
    failures = judge(check.expect, answer.status, answer.body, latency, redact)
    if failures:
        return failed(*failures, status=answer.status, body=answer.body)
    return CheckOutcome(check.name, True, (), answer.status, latency)


@dataclass(frozen=True)
class _Request:
    method: str
    headers: dict[str, str]
    content: bytes | None
    content_type: str | None


def _request_of(check: SmokeCheck, secrets: Mapping[str, str]) -> _Request:
    """The request with every `${secret:NAME}` replaced; KeyError naming a secret without a value,
    ValueError when a value cannot go into a header (a line break would split it)."""

    def filled(text: str) -> str:
        return SECRET_REFERENCE.sub(lambda found: secrets[found.group(1)], text)

    headers = {name: filled(value) for name, value in check.request.headers.items()}
    if any(not value.isprintable() for value in headers.values()):
        raise ValueError("a secret sent in a header is not one printable line")
    spec = check.request
    if spec.json_body is not None:
        body = json.dumps(_filled_json(spec.json_body, filled)).encode()
        return _Request(spec.method, headers, body, "application/json")
    if spec.body is not None:
        return _Request(spec.method, headers, filled(spec.body).encode(), "text/plain; charset=utf-8")
    return _Request(spec.method, headers, None, None)


def _filled_json(value: Any, filled: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return filled(value)
    if isinstance(value, dict):
        return {filled(str(key)): _filled_json(item, filled) for key, item in value.items()}
    if isinstance(value, list):
        return [_filled_json(item, filled) for item in value]
    return value


async def _send(client: httpx.AsyncClient, origin: str, check: SmokeCheck, request: _Request) -> _Answer:
    """Send the request; follow redirects (same host only) if the check asks; read at most 1 MiB."""
    url = httpx.URL(origin + check.request.path)
    method, content = request.method, request.content
    for _ in range(MAX_REDIRECTS + 1):
        headers = dict(request.headers)
        if content is not None and request.content_type:
            headers["Content-Type"] = request.content_type
        async with client.stream(method, url, headers=headers, content=content) as response:
            if response.status_code in REDIRECTS and check.request.follow_redirects:
                location = response.headers.get("location", "")
                target = url.join(location)
                if (target.scheme, target.host, target.port) != (url.scheme, url.host, url.port):
                    raise _OtherHostError(
                        f"{response.status_code} to another host ({shortened(str(target), 80)}), not followed"
                    )
                if response.status_code == 303 or (
                    response.status_code in (301, 302) and method not in ("GET", "HEAD")
                ):
                    method, content = "GET", None
                url = target
                continue
            body = bytearray()
            async for chunk in response.aiter_raw():
                body += chunk
                if len(body) > MAX_BODY_BYTES:
                    raise _BodyTooLargeError
            return _Answer(response.status_code, bytes(body))
    raise httpx.TooManyRedirects("too many redirects")


def judge(
    expect: SmokeExpect, status: int, body: bytes, latency_ms: float, redact: Callable[[str], str] = str
) -> list[str]:
    """Every expectation the answer fails, each with what came back ([] when it passes); what came
    back is redacted before it is shortened (so no part of a secret shows)."""
    failures = []
    if status != expect.status:
        failures.append(f"status: expected {expect.status}, got {status}")
    if expect.max_latency_ms is not None and latency_ms > expect.max_latency_ms:
        failures.append(f"latency: expected at most {expect.max_latency_ms} ms, took {latency_ms:.0f} ms")
    text = body.decode("utf-8", errors="replace")
    failures += [
        f"body: expected to contain {shortened(wanted, VALUE_CHARS)!r}, it does not"
        for wanted in expect.body_contains
        if wanted not in text
    ]
    if expect.parses_json:
        failures += _json_failures(expect, text, redact)
    return failures


MISSING = object()


def _json_failures(expect: SmokeExpect, text: str, redact: Callable[[str], str]) -> list[str]:
    if json_depth(text) > MAX_JSON_DEPTH:
        return [f"body: JSON nests deeper than {MAX_JSON_DEPTH} levels (not parsed)"]
    try:
        document = json.loads(text)
    except (ValueError, RecursionError):
        return ["body: expected JSON, got something else"]
    failures = []
    for pointer, wanted in expect.json_fields.items():
        got = resolve(document, pointer)
        if got is MISSING:
            failures.append(f"{pointer or '(document)'}: expected {_shown(wanted)}, missing")
        elif not same_json(got, wanted):
            failures.append(
                f"{pointer or '(document)'}: expected {_shown(wanted)}, got {_shown(got, redact)}"
            )
    for pointer, kind in expect.json_types.items():
        got = resolve(document, pointer)
        if got is MISSING:
            failures.append(f"{pointer or '(document)'}: expected {_article(kind)}, missing")
        elif not is_json_type(got, kind):
            failures.append(
                f"{pointer or '(document)'}: expected {_article(kind)}, got {_article(type_of(got))} "
                f"{_shown(got, redact)}"
            )
    return failures


def resolve(document: Any, pointer: str) -> Any:
    """The value at an RFC 6901 pointer, or MISSING."""
    if pointer == "":
        return document
    current = document
    for raw in pointer[1:].split("/"):
        token = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(current, dict) and token in current:
            current = current[token]
        elif isinstance(current, list) and token.isdigit() and (token == "0" or not token.startswith("0")):
            index = int(token)
            if index >= len(current):
                return MISSING
            current = current[index]
        else:
            return MISSING
    return current


def type_of(value: Any) -> JsonType:
    if value is None:
        return JsonType.NULL
    if isinstance(value, bool):
        return JsonType.BOOLEAN
    if isinstance(value, int):
        return JsonType.INTEGER
    if isinstance(value, float):
        return JsonType.NUMBER
    if isinstance(value, str):
        return JsonType.STRING
    return JsonType.ARRAY if isinstance(value, list) else JsonType.OBJECT


def is_json_type(value: Any, kind: JsonType) -> bool:
    """JSON Schema's meaning: an integer is a number too; 1.0 is an integer; a boolean is neither."""
    found = type_of(value)
    if kind is JsonType.NUMBER:
        return found in (JsonType.NUMBER, JsonType.INTEGER)
    if kind is JsonType.INTEGER:
        return found is JsonType.INTEGER or (found is JsonType.NUMBER and float(value).is_integer())
    return found is kind


def same_json(got: Any, wanted: Any) -> bool:
    """Equal as JSON values: `true` is not `1`, `"1"` is not `1`; 1 and 1.0 are the same number."""
    if isinstance(got, bool) or isinstance(wanted, bool):
        return isinstance(got, bool) and isinstance(wanted, bool) and got == wanted
    if isinstance(got, int | float) and isinstance(wanted, int | float):
        return float(got) == float(wanted)
    if isinstance(got, dict) and isinstance(wanted, dict):
        return got.keys() == wanted.keys() and all(same_json(got[key], wanted[key]) for key in got)
    if isinstance(got, list) and isinstance(wanted, list):
        return len(got) == len(wanted) and all(map(same_json, got, wanted))
    return type(got) is type(wanted) and bool(got == wanted)


def _shown(value: Any, redact: Callable[[str], str] = str) -> str:
    return shortened(redact(json.dumps(value, ensure_ascii=False)), VALUE_CHARS)


def _article(kind: JsonType) -> str:
    return f"an {kind}" if kind.value[0] in "aeiou" else f"a {kind}"


def _excerpt(body: bytes, redact: Redactor) -> str:
    if not body:
        return ""
    text = body[: EXCERPT_CHARS * 4].decode("utf-8", errors="replace")
    return repr(one_line(shortened(redact(text), EXCERPT_CHARS)))


def unreadable_secret(stack: str, name: str = PREVIEW_TOKEN_SECRET) -> ConfigProblem:
    """A stack secret the engine returned no value for (the validated config says it is set)."""
    why = (
        "the engine returned no preview token, so the preview checks could not reach the idle color "
        "(they would check the live one)"
        if name == PREVIEW_TOKEN_SECRET
        else f"the engine returned no value for {name}, which a smoke check sends"
    )
    value = '"$(openssl rand -hex 32)"' if name == PREVIEW_TOKEN_SECRET else "<value>"
    return ConfigProblem(
        stack,
        full_key(f"{SECRETS_KEY}.{name}"),
        "(unreadable)",
        why,
        f"pulumi config set --secret --path '{SECRETS_KEY}.{name}' {value} -s {stack}",
    )


def suite_for(
    engine: Engine, stack_config: StackConfig, service: str
) -> tuple[Suite | None, list[ConfigProblem]]:
    """The service's smoke suite with the values of the secrets it sends, read from the stack (None
    when it declares none), or the problems when the engine returned no value for some of them."""
    smoke = stack_config.project.smoke
    checks = smoke.suite(service)
    if not checks:
        return None, []
    names = sorted({name for check in checks for name in check.request.secret_names})
    values = {name: engine.app_secret(stack_config.stack, name) for name in names}
    missing = [unreadable_secret(stack_config.stack, name) for name, value in values.items() if value is None]
    if missing:
        return None, missing
    secrets = {name: value.reveal() for name, value in values.items() if value is not None}
    return Suite(service, tuple(checks), smoke, secrets, stack_config.settings.health_check), []
