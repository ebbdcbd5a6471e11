"""Service level objectives as Prometheus rules: what every service's pods must expose, the recording
rules per color, and multi-window multi-burn-rate alerts (the SRE workbook, chapter 5).

Pure data (no SDK import): `components.service_monitoring` puts these groups into a PrometheusRule,
and the tests hand the same groups to `promtool check rules` and `promtool test rules`.

The app exposes, on its HTTP port at `/metrics`:

- `http_requests_total{code}`: a counter of answered requests by HTTP status code;
- `http_request_duration_seconds`: a histogram of request durations, with a bucket at the latency
  objective's threshold (`le` = `slos.latencyThresholdSeconds`).

The scrape adds `service` (the pod's `app.kubernetes.io/name`) and `color` (its
`platform.example.test/color`), so every series says which color answered.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

REQUESTS = "http_requests_total"
DURATION = "http_request_duration_seconds"
WINDOWS = ("5m", "30m", "1h", "6h")
"""The windows the burn-rate alerts read (each long window has a short one beside it)."""


@dataclass(frozen=True)
class BurnRateAlert:
    """Fire when the error budget burns `rate` times faster than it may, over both windows."""

    suffix: str
    long: str
    short: str
    rate: float
    severity: str
    hold: str


BURN_RATE_ALERTS = (
    BurnRateAlert("BurnFast", "1h", "5m", 14.4, "page", "2m"),  # 2% of a 30-day budget in 1 hour
    BurnRateAlert("BurnSlow", "6h", "30m", 6.0, "ticket", "15m"),  # 5% of it in 6 hours
)


@dataclass(frozen=True)
class Objective:
    """One SLO: the share of requests that must be good, and the recorded ratio of bad ones."""

    name: str
    target: float
    bad_ratio: str
    """The recorded rule holding the ratio of bad requests per service (`<name>{window}`)."""
    says: str


def threshold_text(seconds: float) -> str:
    """A histogram bucket's `le` as clients write it: `2` (Go) or `2.0` (Python) both match; a
    fraction is matched exactly as Python's repr writes it (every digit kept)."""
    if float(seconds).is_integer():
        return f"{int(seconds)}(\\\\.0)?"
    return repr(float(seconds)).replace(".", "\\\\.")


def recording_rules(service: str, latency_threshold_seconds: float) -> list[dict[str, str]]:
    """Request rate, error ratio and slow ratio per color and per service, for every window, and p95
    latency per color: what release analysis compares between colors and what the alerts read."""
    selector = f'service="{service}"'
    errors = f'{REQUESTS}{{{selector},code=~"5.."}}'
    fast = f'{DURATION}_bucket{{{selector},le=~"{threshold_text(latency_threshold_seconds)}"}}'
    rules = []
    for by, level in (("service, color", "service_color"), ("service", "service")):
        for window in WINDOWS:
            total = f"sum by ({by}) (rate({REQUESTS}{{{selector}}}[{window}]))"
            rules += [
                {"record": f"{level}:http_requests:rate{window}", "expr": total},
                {
                    "record": f"{level}:http_errors:ratio_rate{window}",
                    "expr": f"sum by ({by}) (rate({errors}[{window}])) / {total}",
                },
                {
                    "record": f"{level}:http_slow:ratio_rate{window}",
                    "expr": f"1 - (sum by ({by}) (rate({fast}[{window}])) "
                    f"/ sum by ({by}) (rate({DURATION}_count{{{selector}}}[{window}])))",
                },
            ]
    rules.append(
        {
            "record": "service_color:http_request_duration_seconds:p95_rate5m",
            "expr": f"histogram_quantile(0.95, sum by (service, color, le) "
            f"(rate({DURATION}_bucket{{{selector}}}[5m])))",
        }
    )
    return rules


def alerting_rules(
    service: str, objectives: list[Objective], routing_labels: dict[str, str]
) -> list[dict[str, Any]]:
    """Two alerts per objective: a fast burn pages, a slow burn opens a ticket. Each needs both of
    its windows over the threshold, so it fires quickly and stops soon after the burn ends."""
    rules: list[dict[str, Any]] = []
    for objective in objectives:
        budget = round(1 - objective.target, 10)
        for alert in BURN_RATE_ALERTS:
            limit = round(alert.rate * budget, 10)
            long_ratio = f'{objective.bad_ratio}{alert.long}{{service="{service}"}}'
            short_ratio = f'{objective.bad_ratio}{alert.short}{{service="{service}"}}'
            rules.append(
                {
                    "alert": f"{objective.name}Budget{alert.suffix}",
                    "expr": f"{long_ratio} > {limit} and {short_ratio} > {limit}",
                    "for": alert.hold,
                    "labels": {
                        **routing_labels,
                        "service": service,
                        "slo": objective.name.lower(),
                        "severity": alert.severity,
                    },
                    "annotations": {
                        "summary": f"{service}: {objective.says} budget burning {alert.rate}x too fast",
                        "description": (
                            f"{objective.says} objective {objective.target:.4%}: over {alert.long} and "
                            f"{alert.short} the bad share is above {limit:.4%} ({alert.rate} x the budget)"
                        ),
                    },
                }
            )
    return rules


def coverage_rules(
    service: str, latency_threshold_seconds: float, routing_labels: dict[str, str]
) -> list[dict[str, Any]]:
    """Alerts for when the SLO alerts would be blind: no color can be scraped, no series at all, or
    no histogram bucket at the latency threshold (the slow ratio would be empty, never alerting)."""
    bucket = f'{DURATION}_bucket{{service="{service}",le=~"{threshold_text(latency_threshold_seconds)}"}}'
    blind = [
        (
            "MetricsScrapeFailing",
            f'sum by (service) (up{{service="{service}"}}) == 0',
            "5m",
            "page",
            "no pod of either color answers the scrape",
        ),
        (
            "MetricsAbsent",
            f'absent(up{{service="{service}"}})',
            "15m",
            "ticket",
            "Prometheus has no scrape target for it (ServiceMonitor or selectors broken?)",
        ),
        (
            "LatencyBucketMissing",
            f'count by (service) ({DURATION}_count{{service="{service}"}}) unless on (service) '
            f"count by (service) ({bucket})",
            "15m",
            "ticket",
            f"no histogram bucket at {latency_threshold_seconds:g} s: the latency SLO cannot alert",
        ),
    ]
    return [
        {
            "alert": name,
            "expr": expr,
            "for": hold,
            "labels": {**routing_labels, "service": service, "slo": "coverage", "severity": severity},
            "annotations": {"summary": f"{service}: {says}", "description": f"{service}: {says}"},
        }
        for name, expr, hold, severity, says in blind
    ]


def rule_groups(
    service: str,
    availability: float,
    latency_target: float,
    latency_threshold_seconds: float,
    routing_labels: dict[str, str],
) -> list[dict[str, Any]]:
    """The PrometheusRule groups of one service: its recording rules, then its SLO alerts."""
    objectives = [
        Objective("Availability", availability, "service:http_errors:ratio_rate", "availability"),
        Objective(
            "Latency",
            latency_target,
            "service:http_slow:ratio_rate",
            f"latency (answered within {latency_threshold_seconds:g} s)",
        ),
    ]
    return [
        {"name": f"{service}-slo-recording", "rules": recording_rules(service, latency_threshold_seconds)},
        {
            "name": f"{service}-slo-alerts",
            "rules": alerting_rules(service, objectives, routing_labels)
            + coverage_rules(service, latency_threshold_seconds, routing_labels),
        },
    ]
