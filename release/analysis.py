"""Metric analysis of a release: the new color judged on Prometheus' numbers, not only on a health URL.

    measurement      query (PromQL, over the window)                            Successful when
    requests         increase(http_requests_total{color=new})                  >= min_requests
    error-ratio      5xx rate / all rate, new color                            <= max_error_ratio
    error-increase   new color's error ratio - the replaced color's           <= max_error_ratio_increase
    p95-latency      histogram_quantile(0.95, ... new color)                   <= max_p95_seconds

Each measurement is **Successful**, **Failed** or **Inconclusive**. Inconclusive, never a silent pass:
no data, NaN, too few requests, a series of another color, more than one series, a Prometheus that
is unreachable, slow, answers an error or more than MAX_BODY_BYTES. The analysis is **Failed** when
more than `failure_limit` measurements failed or more than `inconclusive_limit` were inconclusive
(Argo Rollouts' failureLimit and inconclusiveLimit), else **Successful**. Every query, value and
verdict is kept, for the report and for the release record in stack history.

The replaced color is measured over the window that ended when traffic left it (`baseline_at`), so
both colors are judged on real traffic (Kayenta compares the same minutes; a blue-green release has
no such minutes, so it compares each color's last window on stable traffic).
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

import httpx

from core.config.stack import AnalysisSettings
from core.health import run_on_private_loop
from core.slo import DURATION, REQUESTS
from core.text import one_line

MAX_BODY_BYTES = 1024 * 1024


class Outcome(StrEnum):
    SUCCESSFUL = "Successful"
    FAILED = "Failed"
    INCONCLUSIVE = "Inconclusive"


@dataclass(frozen=True)
class Measurement:
    name: str
    query: str
    value: float | None
    limit: str
    outcome: Outcome
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "query": self.query,
            "value": self.value,
            "limit": self.limit,
            "outcome": self.outcome,
            "reason": self.reason or None,
        }


@dataclass
class Analysis:
    service: str
    color: str
    baseline_color: str
    window_seconds: int
    measurements: list[Measurement] = field(default_factory=list)
    failure_limit: int = 0
    inconclusive_limit: int = 0

    @property
    def outcome(self) -> Outcome:
        counts = {kind: sum(1 for m in self.measurements if m.outcome is kind) for kind in Outcome}
        if counts[Outcome.FAILED] > self.failure_limit:
            return Outcome.FAILED
        if counts[Outcome.INCONCLUSIVE] > self.inconclusive_limit:
            return Outcome.INCONCLUSIVE
        return Outcome.SUCCESSFUL

    @property
    def passed(self) -> bool:
        return self.outcome is Outcome.SUCCESSFUL

    def summary(self) -> str:
        shown = ", ".join(
            f"{m.name} {_number(m.value)} ({m.outcome}{': ' + m.reason if m.reason else ''})"
            for m in self.measurements
        )
        return f"metrics {self.outcome}: {shown}"

    def to_json(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "color": self.color,
            "baselineColor": self.baseline_color,
            "windowSeconds": self.window_seconds,
            "outcome": self.outcome,
            "measurements": [measurement.to_json() for measurement in self.measurements],
        }


class QueryError(Exception):
    """Prometheus gave no usable answer (the measurement is Inconclusive, with this reason). The
    reason may quote Prometheus's own words: it is kept on one line (a newline from the server
    cannot start a line of ours)."""

    def __init__(self, reason: str) -> None:
        super().__init__(one_line(reason))


@dataclass(frozen=True)
class Sample:
    value: float
    labels: dict[str, str]


Query = Callable[[str, datetime | None], list[Sample]]


MAX_REASON = 300
"""The longest reason a measurement keeps (a label from an odd endpoint must not bloat a record)."""


def prometheus_query(settings: AnalysisSettings) -> Query:
    """An instant query against `settings.prometheus_url`: a hard deadline on the whole answer (headers
    and body), at most MAX_BODY_BYTES of it, uncompressed, HTTP 200 with status success and no
    warnings; anything else raises QueryError (the measurement is Inconclusive)."""

    def query(promql: str, at: datetime | None) -> list[Sample]:
        params = {"query": promql}
        if at is not None:
            params["time"] = f"{at.timestamp():.3f}"
        try:
            url = httpx.URL(settings.prometheus_url.rstrip("/") + "/api/v1/query")
        except (httpx.InvalidURL, UnicodeError, ValueError) as error:
            raise QueryError(f"the URL cannot be requested: {str(error)[:100]}") from None
        try:
            status, body = run_on_private_loop(
                asyncio.wait_for(_fetch(url, params, settings.timeout_seconds), settings.timeout_seconds)
            )
        except TimeoutError:
            raise QueryError(f"no complete answer within {settings.timeout_seconds:g} s") from None
        except httpx.HTTPError as error:
            raise QueryError(f"Prometheus is unreachable: {type(error).__name__}") from None
        except (UnicodeError, ValueError) as error:
            raise QueryError(f"the URL cannot be requested: {type(error).__name__}") from None
        return _samples(status, body)

    return query


async def _fetch(url: httpx.URL, params: dict[str, str], timeout: float) -> tuple[int, bytes]:
    headers = {"Accept": "application/json", "Accept-Encoding": "identity"}
    async with (
        httpx.AsyncClient(timeout=timeout, follow_redirects=False) as client,
        client.stream("GET", url, params=params, headers=headers) as response,
    ):
        if response.headers.get("Content-Encoding", "identity") != "identity":
            raise QueryError("the answer is compressed though an uncompressed one was asked for")
        body = bytearray()
        async for chunk in response.aiter_raw():
            body += chunk
            if len(body) > MAX_BODY_BYTES:
                raise QueryError(f"the answer is larger than {MAX_BODY_BYTES // 1024} KiB")
        return response.status_code, bytes(body)


def _samples(status: int, body: bytes) -> list[Sample]:
    try:
        answer = json.loads(body)
    except ValueError:
        raise QueryError(f"HTTP {status}: the answer is not JSON") from None
    if not isinstance(answer, dict) or answer.get("status") != "success" or status != 200:
        error = answer.get("error", "") if isinstance(answer, dict) else ""
        raise QueryError(f"HTTP {status}: Prometheus answered an error: {str(error)[:200]}")
    if answer.get("warnings"):
        raise QueryError(f"Prometheus warned: {str(answer['warnings'])[:200]}")
    data = answer.get("data")
    if (
        not isinstance(data, dict)
        or data.get("resultType") != "vector"
        or not isinstance(data.get("result"), list)
    ):
        raise QueryError("the answer is not an instant vector")
    samples = []
    for item in data["result"]:
        try:
            samples.append(
                Sample(float(item["value"][1]), {str(k): str(v) for k, v in item["metric"].items()})
            )
        except (KeyError, IndexError, TypeError, ValueError):
            raise QueryError("a series in the answer is malformed") from None
    return samples


def analyse(
    settings: AnalysisSettings,
    service: str,
    color: str,
    baseline_color: str,
    query: Query,
    at: datetime,
    baseline_at: datetime | None = None,
    compare: bool = True,
) -> Analysis:
    """Measure `color` of `service` over the window ending `at` (the clock's now), and compare it with
    `baseline_color` over the window ending `baseline_at` (default: the same time). `compare=False`
    leaves the comparison out (the other color takes no traffic: nothing to compare with)."""
    window = f"{settings.window_seconds}s"
    analysis = Analysis(
        service,
        color,
        baseline_color,
        settings.window_seconds,
        failure_limit=settings.failure_limit,
        inconclusive_limit=settings.inconclusive_limit,
    )

    def selector(which: str) -> str:
        return f'service="{service}",color="{which}"'

    def error_ratio(which: str) -> str:
        everything = f"sum by (color) (rate({REQUESTS}{{{selector(which)}}}[{window}]))"
        errors = f'sum by (color) (rate({REQUESTS}{{{selector(which)},code=~"5.."}}[{window}]))'
        return f"({errors} or {everything} * 0) / {everything}"

    def measure(promql: str, which: str, moment: datetime | None) -> tuple[float | None, str]:
        try:
            return _one_value(query(promql, moment), which), ""
        except QueryError as error:
            return None, str(error)

    def requests_query(which: str) -> str:
        return f"sum by (color) (increase({REQUESTS}{{{selector(which)}}}[{window}]))"

    requests, why = measure(requests_query(color), color, at)
    enough = requests is not None and requests >= settings.min_requests
    if not why and not enough:
        why = f"too few requests to judge ({_number(requests)})"
    analysis.measurements.append(
        _judge("requests", requests_query(color), requests, why, f">= {settings.min_requests}", enough)
    )
    too_few = "" if enough else "too few requests to judge"

    ratio_query = error_ratio(color)
    ratio, why = measure(ratio_query, color, at)
    analysis.measurements.append(
        _judge(
            "error-ratio",
            ratio_query,
            ratio,
            why or too_few,
            f"<= {settings.max_error_ratio:g}",
            ratio is not None and ratio <= settings.max_error_ratio,
        )
    )

    if compare:
        moment = baseline_at or at
        baseline_requests, baseline_why = measure(requests_query(baseline_color), baseline_color, moment)
        if not baseline_why and (baseline_requests is None or baseline_requests < settings.min_requests):
            baseline_why = f"too few requests to compare with ({_number(baseline_requests)})"
        baseline_query = error_ratio(baseline_color)
        baseline = None
        if not baseline_why:
            baseline, baseline_why = measure(baseline_query, baseline_color, moment)
        increase = None if ratio is None or baseline is None else ratio - baseline
        when = f" at {moment.isoformat(timespec='seconds')}" if moment is not None else ""
        analysis.measurements.append(
            _judge(
                "error-increase",
                f"({ratio_query}) - ({baseline_query}){when}",
                increase,
                why or too_few or (f"{baseline_color}: {baseline_why}" if baseline_why else ""),
                f"<= {settings.max_error_ratio_increase:g} over {baseline_color}",
                increase is not None and increase <= settings.max_error_ratio_increase,
            )
        )

    buckets = f"sum by (color, le) (rate({DURATION}_bucket{{{selector(color)}}}[{window}]))"
    p95_query = f"histogram_quantile(0.95, {buckets})"
    p95, why = measure(p95_query, color, at)
    analysis.measurements.append(
        _judge(
            "p95-latency",
            p95_query,
            p95,
            why or too_few,
            f"<= {settings.max_p95_seconds:g} s",
            p95 is not None and p95 <= settings.max_p95_seconds,
        )
    )
    return analysis


def _one_value(samples: list[Sample], color: str) -> float:
    if not samples:
        raise QueryError("no data (an empty vector)")
    if len(samples) > 1:
        raise QueryError(f"{len(samples)} series where one is expected")
    sample = samples[0]
    if sample.labels.get("color", color) != color:
        raise QueryError(f"a series of color {sample.labels['color'][:40]!r}, not {color!r}")
    if math.isnan(sample.value) or math.isinf(sample.value):
        raise QueryError("no data (NaN: no requests in the window)")
    return sample.value


def _judge(name: str, query: str, value: float | None, why: str, limit: str, within: bool) -> Measurement:
    """Inconclusive with `why` when there is one (no data, too few requests, a query error)."""
    if why or value is None:
        return Measurement(name, query, value, limit, Outcome.INCONCLUSIVE, (why or "no value")[:MAX_REASON])
    return Measurement(name, query, value, limit, Outcome.SUCCESSFUL if within else Outcome.FAILED)


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"
