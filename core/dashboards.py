"""Each service's Grafana dashboard as data: its rows, panels and PromQL queries (no SDK import).

`components.dashboards` renders these with Grafana's own builders (grafana-foundation-sdk) into the
dashboard JSON the Grafana sidecar of kube-prometheus-stack loads from a ConfigMap; the tests send
every query to a real Prometheus holding known series (each must parse, and return data, for both
colors where the panel is per color).

What the queries read:

- the recording rules of core.slo (request rate, error and slow ratios per color and per service,
  p95 per color), so a panel shows exactly what the burn-rate alerts and the release analysis see;
- kube-state-metrics (`kube_deployment_status_replicas_available`, `kube_deployment_spec_replicas`,
  `kube_pod_container_status_restarts_total`), which kube-prometheus-stack installs; the color is
  taken from the Deployment or pod name (`<svc>-blue`, `<svc>-green-...`);
- for a service that reads the database, the RDS metrics the database alarms watch
  (components.database_alarms), as the Prometheus CloudWatch exporter YACE names them
  (`aws_rds_<metric>_average{dimension_DBInstanceIdentifier="<instance>"}`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from core.config.project import SloSpec
from core.config.stack import CPU_ALARM_PERCENT, connections_alarm_threshold
from core.slo import BURN_RATE_ALERTS, WINDOWS

COLORS = ("blue", "green")
DASHBOARD_LABEL = "platform.example.test/dashboard"
"""On each dashboard ConfigMap: the service it shows (`release plan` lists the dashboard by it)."""
RELEASE_TAG = "release"
"""Every annotation the release tool posts carries it, beside `service:<svc>` and `namespace:<ns>`."""


class PanelKind(StrEnum):
    TIMESERIES = "timeseries"
    STAT = "stat"


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str


@dataclass(frozen=True)
class Panel:
    title: str
    description: str
    unit: str
    queries: tuple[Query, ...]
    kind: PanelKind = PanelKind.TIMESERIES
    per_color: bool = False
    """Every query returns one series per color (the tests require data for both)."""
    thresholds: tuple[float, ...] = ()
    """Where the panel turns orange, then red (an alert's or alarm's thresholds, ascending)."""
    good_above: bool = False
    """The panel is red below its one threshold and green from it on (a budget left)."""
    stacked: bool = False


@dataclass(frozen=True)
class Row:
    title: str
    panels: tuple[Panel, ...]


@dataclass(frozen=True)
class DashboardSpec:
    uid: str
    title: str
    service: str
    rows: tuple[Row, ...]
    annotation_tags: tuple[str, ...] = field(default=())

    @property
    def panels(self) -> list[Panel]:
        return [panel for row in self.rows for panel in row.panels]

    @property
    def queries(self) -> list[str]:
        return [query.expr for panel in self.panels for query in panel.queries]


def annotation_tags(service: str, namespace: str) -> tuple[str, ...]:
    """The tags that tie a release annotation to one service's dashboard in one stack."""
    return (RELEASE_TAG, f"service:{service}", f"namespace:{namespace}")


def dashboard_spec(
    service: str,
    namespace: str,
    slos: SloSpec,
    database_instance: str | None,
    max_connections: int | None,
) -> DashboardSpec:
    """The dashboard of `service` in the stack whose app namespace is `namespace`: traffic per color,
    the SLOs, the pods per color, and (`database_instance`) the database alarms' metrics."""
    rows = [
        _traffic(service, slos.availability, slos.latency_threshold_seconds),
        _slo(service, "Availability", "http_errors", slos.availability),
        _slo(service, "Latency", "http_slow", slos.latency_target),
        _pods(service, namespace),
    ]
    if database_instance is not None:
        rows.append(_database(database_instance, max_connections))
    return DashboardSpec(
        uid=f"{namespace}-{service}"[:40],
        title=f"{service} ({namespace})",
        service=service,
        rows=tuple(rows),
        annotation_tags=annotation_tags(service, namespace),
    )


def _traffic(service: str, availability: float, latency_threshold_seconds: float) -> Row:
    selector = f'{{service="{service}"}}'
    per_color = "{{color}}"
    return Row(
        "Traffic per color",
        (
            Panel(
                "Request rate",
                "Requests per second each color answers (5 m rate).",
                "reqps",
                (Query(f"service_color:http_requests:rate5m{selector}", per_color),),
                per_color=True,
            ),
            Panel(
                "Error ratio",
                "Share of requests each color answers with a 5xx (5 m); the line is the SLO's budget.",
                "percentunit",
                (Query(f"service_color:http_errors:ratio_rate5m{selector}", per_color),),
                per_color=True,
                thresholds=(round(1 - availability, 10),),
            ),
            Panel(
                "p95 latency",
                "95th percentile of request duration per color (5 m); the line is the latency SLO's "
                "threshold.",
                "s",
                (Query(f"service_color:http_request_duration_seconds:p95_rate5m{selector}", per_color),),
                per_color=True,
                thresholds=(latency_threshold_seconds,),
            ),
            Panel(
                # (no word here may equal a per-stack knob's value, such as a strategy's name: parity
                # would credit that knob with the text)
                "Traffic split",
                "Share of the service's requests each color answers: the live HTTPRoute's weights as "
                "observed (the new color's share while a release steps its weight up).",
                "percentunit",
                (
                    Query(
                        f"service_color:http_requests:rate5m{selector} / ignoring(color) group_left "
                        f"service:http_requests:rate5m{selector}",
                        per_color,
                    ),
                ),
                per_color=True,
                stacked=True,
            ),
        ),
    )


def _slo(service: str, objective: str, ratio: str, target: float) -> Row:
    budget = round(1 - target, 10)
    selector = f'{{service="{service}"}}'
    burn_rates = tuple(
        Query(f"service:{ratio}:ratio_rate{window}{selector} / {budget}", window) for window in WINDOWS
    )
    remaining = f"1 - avg_over_time(service:{ratio}:ratio_rate1h{selector}[30d]) / {budget}"
    alerts = " / ".join(f"{alert.rate:g}x over {alert.long} and {alert.short}" for alert in BURN_RATE_ALERTS)
    return Row(
        f"{objective} SLO ({target:.4%})",
        (
            Panel(
                f"{objective} error budget remaining",
                f"Share of the 30-day error budget ({budget:.4%} bad requests) not yet spent: 1 minus the "
                "average hourly bad share over 30 days, divided by the budget.",
                "percentunit",
                (Query(remaining, "remaining"),),
                kind=PanelKind.STAT,
                thresholds=(0.0,),
                good_above=True,
            ),
            Panel(
                f"{objective} burn rate",
                "How many times faster than allowed the budget burns, per window; the lines are the "
                f"alerts' thresholds ({alerts}).",
                "suffix:x",
                burn_rates,
                thresholds=tuple(sorted(alert.rate for alert in BURN_RATE_ALERTS)),
            ),
        ),
    )


def _pods(service: str, namespace: str) -> Row:
    deployments = f'namespace="{namespace}", deployment=~"{service}-(blue|green)"'

    def by_color(expr: str, label: str, pattern: str) -> str:
        return f'sum by (color) (label_replace({expr}, "color", "$1", "{label}", "{pattern}"))'

    return Row(
        "Pods per color",
        (
            Panel(
                "Replicas",
                "Available and desired replicas of each color's Deployment (kube-state-metrics).",
                "short",
                (
                    Query(
                        by_color(
                            f"kube_deployment_status_replicas_available{{{deployments}}}",
                            "deployment",
                            f"{service}-(blue|green)",
                        ),
                        "{{color}} available",
                    ),
                    Query(
                        by_color(
                            f"kube_deployment_spec_replicas{{{deployments}}}",
                            "deployment",
                            f"{service}-(blue|green)",
                        ),
                        "{{color}} desired",
                    ),
                ),
                per_color=True,
            ),
            Panel(
                "Pod restarts",
                "Container restarts of each color's pods over the last hour (kube-state-metrics).",
                "short",
                (
                    Query(
                        by_color(
                            "increase(kube_pod_container_status_restarts_total"
                            f'{{namespace="{namespace}", container="{service}", '
                            f'pod=~"{service}-(blue|green)-.+"}}[1h])',
                            "pod",
                            f"{service}-(blue|green)-.+",
                        ),
                        "{{color}}",
                    ),
                ),
                per_color=True,
            ),
        ),
    )


def _database(instance: str, max_connections: int | None) -> Row:
    selector = f'{{dimension_DBInstanceIdentifier="{instance}"}}'
    connections = (float(connections_alarm_threshold(max_connections)),) if max_connections else ()
    return Row(
        "Database (the alarms' metrics)",
        (
            Panel(
                "CPU",
                f"Average CPU of the instance; the alarm fires above {CPU_ALARM_PERCENT}% for three "
                "5-minute periods.",
                "percent",
                (Query(f"aws_rds_cpuutilization_average{selector}", "CPU"),),
                thresholds=(float(CPU_ALARM_PERCENT),),
            ),
            Panel(
                "Free storage",
                "Free storage of the instance; the alarm fires below 10% of the allocated storage.",
                "bytes",
                (Query(f"aws_rds_free_storage_space_average{selector}", "free"),),
            ),
            Panel(
                "Connections",
                "Database connections; the alarm fires above 80% of max_connections.",
                "short",
                (Query(f"aws_rds_database_connections_average{selector}", "connections"),),
                thresholds=connections,
            ),
        ),
    )
