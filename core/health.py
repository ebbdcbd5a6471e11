"""The post-deploy health checker: HTTP probes with httpx, decided like Flagger's analysis.

Every URL is probed concurrently, once per `interval_seconds`. A URL is healthy after `successes`
consecutive good probes; the verdict is **Healthy** when every URL is, and **Degraded** as soon as
one URL has `failures` consecutive bad probes, or when `window_seconds` ends first. A probe is bad,
and reported by kind, on:

    timeout      no complete answer (connect, headers and body) within timeout_seconds
    connection   refused, reset, DNS failure, TLS failure, a malformed answer
    status       a status other than expect_status (5xx; a redirect, unless follow_redirects)
    redirect     more than MAX_REDIRECTS redirects in a row (a redirect loop), when following them
    url          a URL that cannot be requested (malformed, or not http/https)
    body         a body over MAX_BODY_BYTES (1 MiB), one that cannot be decoded, or, when JSON is
                 expected, one that is not JSON, nests deeper than MAX_JSON_DEPTH levels, or lacks an
                 expected key=value (e.g. the wrong version)
    latency      a good answer slower than max_latency_ms
    error        anything else that went wrong while probing (a bug, reported rather than raised)

Hard bounds, whatever a server or a URL does (`check` never raises for either):

- a probe takes at most `timeout_seconds`, from connecting to the last byte of the body: it is a
  deadline on the whole request, not httpx's per-read timeout, so a server trickling its answer a
  byte at a time is cut off too; the body is streamed and never more than 1 MiB of it is kept;
- the verdict comes at most `window_seconds + timeout_seconds` after the check starts (the last
  probe starts inside the window and may take one timeout); Degraded by failures comes at most
  `(failures - 1) x max(interval_seconds, timeout_seconds) + timeout_seconds` after the first bad
  probe of the streak.

The same checker backs `release health-check`, the deploy's preview and stable checks, and the
resource hook the program binds to each stable Service (`components.health_hook`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import ssl
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from itertools import accumulate
from typing import Any, TypeVar

import httpx

from core.config.stack import HealthCheckSettings

__all__ = ["Probe", "ProbeKind", "Verdict", "check", "check_sync", "run_on_private_loop"]

T = TypeVar("T")
Clock = Callable[[], float]
ProbeObserver = Callable[["Probe"], None]

MAX_BODY_BYTES = 1024 * 1024
"""The most of a body a probe reads; a longer body is a failed `body` probe."""
MAX_JSON_DEPTH = 64
"""The deepest nesting of arrays and objects a JSON body may have before it is parsed."""
MAX_REDIRECTS = 10
"""The most redirects a probe follows (when following them) before it is a failed `redirect` probe."""


class ProbeKind(StrEnum):
    OK = "ok"
    TIMEOUT = "timeout"
    CONNECTION = "connection"
    STATUS = "status"
    BODY = "body"
    LATENCY = "latency"
    REDIRECT = "redirect"
    URL = "url"
    TLS = "tls"
    """the certificate did not verify (wrong CA, wrong host, expired): never skipped"""
    ERROR = "error"


@dataclass(frozen=True)
class Probe:
    """One request: what came back, how long it took, and why it failed (if it did)."""

    url: str
    at_seconds: float
    """When the probe started, in seconds since the check started."""
    kind: ProbeKind
    status: int | None
    latency_ms: float
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.kind is ProbeKind.OK

    def to_json(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "atSeconds": round(self.at_seconds, 3),
            "ok": self.ok,
            "kind": self.kind.value,
            "status": self.status,
            "latencyMs": round(self.latency_ms, 1),
            "error": self.detail or None,
        }


@dataclass
class Verdict:
    """The outcome of one health check, with every probe it made."""

    healthy: bool
    reason: str
    probes: list[Probe] = field(default_factory=list)
    first_failure_seconds: float | None = None
    """When the first bad probe started (seconds since the check started)."""
    decided_seconds: float = 0.0
    """When the verdict was reached (seconds since the check started)."""

    @property
    def phase(self) -> str:
        """Argo Rollouts' word for it."""
        return "Healthy" if self.healthy else "Degraded"

    @property
    def failure_kinds(self) -> list[str]:
        return sorted({probe.kind.value for probe in self.probes if not probe.ok})

    def to_json(self) -> dict[str, Any]:
        return {
            "healthy": self.healthy,
            "phase": self.phase,
            "reason": self.reason,
            "decidedSeconds": round(self.decided_seconds, 3),
            "firstFailureSeconds": (
                None if self.first_failure_seconds is None else round(self.first_failure_seconds, 3)
            ),
            "failureKinds": self.failure_kinds,
            "probes": [probe.to_json() for probe in self.probes],
        }


async def check(
    urls: Sequence[str],
    settings: HealthCheckSettings,
    expect_json: Mapping[str, str] | None = None,
    on_probe: ProbeObserver | None = None,
    clock: Clock = time.monotonic,
    headers: Mapping[str, str] | None = None,
) -> Verdict:
    """Probe every URL until the verdict is reached (see the module docstring for the rules).

    `expect_json` adds to `settings.expect_json` (the deploy adds the expected image this way).
    `headers` go with every request (the preview header, core.gateway); their values are never
    reported.
    Returns within `window_seconds + timeout_seconds`; raises only ValueError, for no URLs at all.
    """
    if not urls:
        raise ValueError("a health check needs at least one URL")
    expected = {**settings.expect_json, **(expect_json or {})}
    probes: list[Probe] = []
    healthy_urls: set[str] = set()
    timeout = httpx.Timeout(settings.timeout_seconds)

    async with httpx.AsyncClient(
        headers=dict(headers or {}),
        timeout=timeout,
        follow_redirects=settings.follow_redirects,
        max_redirects=MAX_REDIRECTS,
        verify=_trust(settings),
    ) as client:
        started = clock()
        deadline = started + settings.window_seconds

        async def watch(url: str) -> str | None:
            """Probe one URL until it is decided; None when healthy, else why it is not."""
            good = bad = 0
            while True:
                probe_started = clock()
                probe = await _probe(client, url, settings, expected, probe_started - started, clock)
                probes.append(probe)
                if on_probe is not None:
                    on_probe(probe)
                good, bad = (good + 1, 0) if probe.ok else (0, bad + 1)
                if good >= settings.successes:
                    healthy_urls.add(url)
                    return None
                if bad >= settings.failures:
                    return f"{url}: {bad} consecutive failed probes (last: {_describe(probe)})"
                next_probe = max(probe_started + settings.interval_seconds, clock())
                if next_probe >= deadline:
                    return (
                        f"{url}: the {settings.window_seconds:g}s window ended before "
                        f"{settings.successes} consecutive good probes (last: {_describe(probe)})"
                    )
                await asyncio.sleep(max(0.0, next_probe - clock()))

        reason = await _within_window(settings, _first_failure(watch(url) for url in dict.fromkeys(urls)))

    decided = clock() - started
    failures = [probe.at_seconds for probe in probes if not probe.ok]
    return Verdict(
        healthy=reason is None,
        reason=reason or f"{len(healthy_urls)} URL(s) answered {settings.successes} good probes in a row",
        probes=sorted(probes, key=lambda probe: (probe.at_seconds, probe.url)),
        first_failure_seconds=min(failures) if failures else None,
        decided_seconds=decided,
    )


def check_sync(
    urls: Sequence[str],
    settings: HealthCheckSettings,
    expect_json: Mapping[str, str] | None = None,
    on_probe: ProbeObserver | None = None,
    headers: Mapping[str, str] | None = None,
) -> Verdict:
    """`check` for callers without an event loop (the CLI, the release engine).

    Runs on a private loop and leaves the thread's current loop alone: Pulumi's runtime (the mock
    runtime included) keeps using the thread's loop afterwards, and `asyncio.run` would unset it.
    Like `asyncio.run`, it finalises async generators left open (httpx's, when a probe stops
    reading a body) before closing the loop.
    """
    return run_on_private_loop(check(urls, settings, expect_json, on_probe, headers=headers))


def run_on_private_loop(work: Coroutine[Any, Any, T]) -> T:
    """Run `work` to its end on a new event loop, leaving the thread's current loop alone (Pulumi's
    runtime keeps using it; `asyncio.run` would unset it), and finalise async generators left open.
    Interrupted, `work` is cancelled and ends on that loop: left suspended, it would be closed
    whenever the garbage collector reaches it, with no loop to close its HTTP client on."""
    loop = asyncio.new_event_loop()
    task = loop.create_task(work)
    try:
        return loop.run_until_complete(task)
    finally:
        if not task.done():  # interrupted (Ctrl-C, SIGTERM): it ends on its own loop, closing its clients
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                loop.run_until_complete(task)
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


async def _within_window(settings: HealthCheckSettings, deciding: Awaitable[str | None]) -> str | None:
    """The verdict's reason from `deciding`, or Degraded's once `window_seconds + timeout_seconds` pass.

    The watchers already stop starting probes when the window ends, and every probe is bounded by
    its timeout; this is the hard deadline that holds whatever happens inside them."""
    try:
        async with asyncio.timeout(settings.window_seconds + settings.timeout_seconds):
            return await deciding
    except TimeoutError:
        return (
            f"the {settings.window_seconds:g}s window ended, and the last probes' "
            f"{settings.timeout_seconds:g}s timeout with it, before a verdict"
        )


async def _first_failure(watchers: Any) -> str | None:
    """Run the per-URL watchers together; the first failure decides and cancels the rest."""
    tasks = [asyncio.ensure_future(watcher) for watcher in watchers]
    try:
        for finished in asyncio.as_completed(tasks):
            reason = await finished
            if reason is not None:
                return str(reason)
        return None
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class _BodyTooLargeError(Exception):
    """The body went past MAX_BODY_BYTES; what the status was."""

    def __init__(self, status: int) -> None:
        super().__init__(f"the body is larger than {MAX_BODY_BYTES // (1024 * 1024)} MiB")
        self.status = status


async def _probe(
    client: httpx.AsyncClient,
    url: str,
    settings: HealthCheckSettings,
    expected: Mapping[str, str],
    at_seconds: float,
    clock: Clock,
) -> Probe:
    """One GET of `url`, judged; never raises: whatever goes wrong is a failed probe of some kind.

    The whole request, from connecting to the body's last byte, gets `timeout_seconds`."""
    started = clock()

    def result(kind: ProbeKind, status: int | None = None, detail: str = "") -> Probe:
        return Probe(url, at_seconds, kind, status, (clock() - started) * 1000.0, detail)

    try:
        async with asyncio.timeout(settings.timeout_seconds):
            status, content = await _fetch(client, url, settings.expect_status)
    except _BodyTooLargeError as error:
        return result(ProbeKind.BODY, error.status, str(error))
    except Exception as error:  # noqa: BLE001 - a probe reports every failure, by kind, never raises
        kind, detail = _failure(error, settings.timeout_seconds)
        return result(kind, detail=detail)
    probe = result(ProbeKind.OK, status)
    if status != settings.expect_status:
        return result(ProbeKind.STATUS, status, f"expected status {settings.expect_status}, got {status}")
    mismatch = _body_mismatch(content, expected)
    if mismatch:
        return result(ProbeKind.BODY, status, mismatch)
    if probe.latency_ms > settings.max_latency_ms:
        return Probe(
            url,
            at_seconds,
            ProbeKind.LATENCY,
            status,
            probe.latency_ms,
            f"{probe.latency_ms:.0f} ms is over the {settings.max_latency_ms} ms budget",
        )
    return probe


async def _fetch(client: httpx.AsyncClient, url: str, expect_status: int) -> tuple[int, bytes]:
    """GET `url`: its status and, when that is `expect_status`, its body (else b'', left unread).

    The body is streamed; raises _BodyTooLargeError as soon as it passes MAX_BODY_BYTES."""
    async with client.stream("GET", url, headers={"Accept": "application/json"}) as response:
        if response.status_code != expect_status:
            return response.status_code, b""
        body = bytearray()
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > MAX_BODY_BYTES:
                raise _BodyTooLargeError(response.status_code)
        return response.status_code, bytes(body)


def _failure(error: Exception, timeout_seconds: float) -> tuple[ProbeKind, str]:
    """The kind of failed probe `error` makes, and what to say about it."""
    if isinstance(error, TimeoutError | httpx.TimeoutException):
        return ProbeKind.TIMEOUT, f"no complete answer within {timeout_seconds:g}s"
    if isinstance(error, httpx.TooManyRedirects):
        return ProbeKind.REDIRECT, f"more than {MAX_REDIRECTS} redirects (a redirect loop?)"
    if isinstance(error, httpx.InvalidURL | httpx.UnsupportedProtocol):
        return ProbeKind.URL, f"the URL cannot be requested: {_shortened(str(error))}"
    if isinstance(error, httpx.DecodingError):
        return ProbeKind.BODY, f"the body cannot be decoded: {_shortened(str(error))}"
    if _certificate_failed(error):
        return ProbeKind.TLS, f"the certificate did not verify: {_shortened(str(error))}"
    kind = ProbeKind.CONNECTION if isinstance(error, httpx.TransportError) else ProbeKind.ERROR
    return kind, f"{type(error).__name__}: {_shortened(str(error))}"


def _trust(settings: HealthCheckSettings) -> ssl.SSLContext | bool:
    """Verify every certificate: against the stack's CA bundle when it has one, else certifi's
    public CAs (httpx's default)."""
    if settings.ca_bundle:
        return ssl.create_default_context(cadata=settings.ca_bundle)
    return True


def _certificate_failed(error: BaseException) -> bool:
    seen: BaseException | None = error
    for _ in range(8):  # the SSL error sits a few causes deep inside httpx's and httpcore's
        if seen is None:
            return False
        if isinstance(seen, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _body_mismatch(content: bytes, expected: Mapping[str, str]) -> str:
    """'' when the JSON body has every expected key=value (dotted keys reach into objects).

    The body is only parsed when something is expected, and only if it nests at most
    MAX_JSON_DEPTH levels (so parsing can never exhaust the stack)."""
    if not expected:
        return ""
    try:
        text = content.decode(json.detect_encoding(content))
    except ValueError:
        return "the body is not JSON"
    if _json_depth(text) > MAX_JSON_DEPTH:
        return f"the JSON body nests deeper than {MAX_JSON_DEPTH} levels"
    try:
        body = json.loads(text)
    except (ValueError, RecursionError):
        return "the body is not JSON"
    wrong = []
    for key, want in expected.items():
        got: Any = body
        for part in key.split("."):
            got = got.get(part) if isinstance(got, dict) else None
        if got is None or str(got) != want:
            wrong.append(f"{key}={_shortened(repr(got))} (expected {want!r})")
    return "; ".join(wrong)


_JSON_STRING = re.compile(r'"(?:[^"\\]++|\\.)*+"?', re.DOTALL)
"""A JSON string, escapes included; an unterminated one runs to the end (so matching is linear)."""
_NOT_A_BRACKET = re.compile(r"[^\[\]{}]+")
_NESTING_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


def _json_depth(text: str) -> int:
    """How deep `text` nests arrays and objects, brackets inside strings not counting.

    An upper bound on how deep `json.loads` recurses, even for invalid JSON; linear time, no
    recursion, and the running count is taken in C (map, accumulate, max)."""
    brackets = _NOT_A_BRACKET.sub("", _JSON_STRING.sub("", text))
    return max(accumulate(map(_NESTING_STEP.__getitem__, brackets)), default=0)


def _shortened(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _describe(probe: Probe) -> str:
    return f"{probe.kind.value}, {probe.detail}" if probe.detail else probe.kind.value


def parse_expect_json(pairs: Sequence[str]) -> dict[str, str]:
    """`key=value` command-line pairs as a mapping; raises ValueError naming a malformed pair."""
    expected: dict[str, str] = {}
    for pair in pairs:
        key, separator, value = pair.partition("=")
        if not separator or not key:
            raise ValueError(f"--expect-json {pair!r}: use key=value, e.g. status=ok or build.version=1.4.2")
        expected[key] = value
    return expected
