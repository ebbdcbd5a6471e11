"""The post-deploy health checker: HTTP probes with httpx, decided like Flagger's analysis.

Every URL is probed concurrently, once per `interval_seconds`. A URL is healthy after `successes`
consecutive good probes; the verdict is **Healthy** when every URL is, and **Degraded** as soon as
one URL has `failures` consecutive bad probes, or when `window_seconds` ends first. A probe is bad,
and reported by kind, on:

    timeout      no answer within timeout_seconds
    connection   refused, reset, DNS failure, TLS failure
    status       a status other than expect_status (5xx; a redirect, unless follow_redirects)
    body         the JSON body lacks an expected key=value (e.g. the wrong version)
    latency      a good answer slower than max_latency_ms

The same checker backs `release health-check`, the deploy's preview and stable checks, and the
resource hook the program binds to each stable Service (`components.health_hook`).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import httpx

from components.config import HealthCheckSettings

__all__ = ["HealthCheckSettings", "Probe", "ProbeKind", "Verdict", "check", "check_sync"]

Clock = Callable[[], float]
ProbeObserver = Callable[["Probe"], None]


class ProbeKind(StrEnum):
    OK = "ok"
    TIMEOUT = "timeout"
    CONNECTION = "connection"
    STATUS = "status"
    BODY = "body"
    LATENCY = "latency"


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
) -> Verdict:
    """Probe every URL until the verdict is reached (see the module docstring for the rules).

    `expect_json` adds to `settings.expect_json` (the deploy adds the expected image this way).
    """
    if not urls:
        raise ValueError("a health check needs at least one URL")
    expected = {**settings.expect_json, **(expect_json or {})}
    probes: list[Probe] = []
    healthy_urls: set[str] = set()
    timeout = httpx.Timeout(settings.timeout_seconds)

    async with httpx.AsyncClient(timeout=timeout, follow_redirects=settings.follow_redirects) as client:
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
                next_probe = probe_started + settings.interval_seconds
                if next_probe >= deadline:
                    return (
                        f"{url}: the {settings.window_seconds:g}s window ended before "
                        f"{settings.successes} consecutive good probes (last: {_describe(probe)})"
                    )
                await asyncio.sleep(max(0.0, next_probe - clock()))

        reason = await _first_failure(watch(url) for url in dict.fromkeys(urls))

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
) -> Verdict:
    """`check` for callers without an event loop (the CLI, the release engine).

    Runs on a private loop and leaves the thread's current loop alone: Pulumi's runtime (the mock
    runtime included) keeps using the thread's loop afterwards, and `asyncio.run` would unset it.
    """
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(check(urls, settings, expect_json, on_probe))
    finally:
        loop.close()


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


async def _probe(
    client: httpx.AsyncClient,
    url: str,
    settings: HealthCheckSettings,
    expected: Mapping[str, str],
    at_seconds: float,
    clock: Clock,
) -> Probe:
    started = clock()

    def result(kind: ProbeKind, status: int | None = None, detail: str = "") -> Probe:
        return Probe(url, at_seconds, kind, status, (clock() - started) * 1000.0, detail)

    try:
        response = await client.get(url, headers={"Accept": "application/json"})
    except httpx.TimeoutException:
        return result(ProbeKind.TIMEOUT, detail=f"no answer within {settings.timeout_seconds:g}s")
    except httpx.TransportError as error:
        return result(ProbeKind.CONNECTION, detail=f"{type(error).__name__}: {error}")
    probe = result(ProbeKind.OK, response.status_code)
    if response.status_code != settings.expect_status:
        return result(
            ProbeKind.STATUS,
            response.status_code,
            f"expected status {settings.expect_status}, got {response.status_code}",
        )
    mismatch = _body_mismatch(response.content, expected)
    if mismatch:
        return result(ProbeKind.BODY, response.status_code, mismatch)
    if probe.latency_ms > settings.max_latency_ms:
        return Probe(
            url,
            at_seconds,
            ProbeKind.LATENCY,
            response.status_code,
            probe.latency_ms,
            f"{probe.latency_ms:.0f} ms is over the {settings.max_latency_ms} ms budget",
        )
    return probe


def _body_mismatch(content: bytes, expected: Mapping[str, str]) -> str:
    """'' when the JSON body has every expected key=value (dotted keys reach into objects)."""
    if not expected:
        return ""
    try:
        body = json.loads(content)
    except ValueError:
        return "the body is not JSON"
    wrong = []
    for key, want in expected.items():
        got: Any = body
        for part in key.split("."):
            got = got.get(part) if isinstance(got, dict) else None
        if got is None or str(got) != want:
            wrong.append(f"{key}={got!r} (expected {want!r})")
    return "; ".join(wrong)


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
