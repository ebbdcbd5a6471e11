"""Each service's Grafana dashboard as the program declares it (components.dashboards): a ConfigMap the
kube-prometheus-stack sidecar loads, the same in every stack but its datasource, namespace, label and
folder; and every PromQL query of every panel sent to a real Prometheus (the one the metric analysis
tests use) holding known series and the SLO recording rules backfilled over them: each query must
parse and return data, for both colors where its legend names the color."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.config.stack import DashboardSettings
from core.dashboards import DASHBOARD_LABEL
from release.cli import main
from release.offline.mock_runtime import ProgramRun
from tests.conftest import PROJECT, ROOT, STACKS, baseline
from tests.prometheus_server import LoadedPrometheus, Series, Traffic, prometheus_with

STACK = "staging"
NAMESPACE = "platform-staging"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"


def dashboards(run: ProgramRun) -> dict[str, dict[str, Any]]:
    """service -> the ConfigMap's inputs, for every dashboard ConfigMap the program declares."""
    return {
        resource.inputs["metadata"]["labels"][DASHBOARD_LABEL]: resource.inputs
        for resource in run.resources
        if resource.type == CONFIG_MAP and DASHBOARD_LABEL in resource.inputs["metadata"].get("labels", {})
    }


def document(inputs: dict[str, Any]) -> dict[str, Any]:
    (text,) = inputs["data"].values()
    parsed: dict[str, Any] = json.loads(text)
    return parsed


def queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str, bool]]:
    """(panel title, PromQL, whether the legend names the color) for every query of every panel."""
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            yield panel["title"], target["expr"], "{{color}}" in target.get("legendFormat", "")


def rule_groups(run: ProgramRun) -> list[dict[str, Any]]:
    """The recording and alerting rules the program declares (every service's PrometheusRule)."""
    return [
        group
        for resource in run.resources
        if resource.inputs.get("kind") == "PrometheusRule"
        for group in resource.inputs["spec"]["groups"]
    ]


def kube_state(service: str) -> list[Series]:
    """What kube-state-metrics reports for a service's two Deployments and their pods."""
    series = []
    for color in ("blue", "green"):
        deployment = {"namespace": NAMESPACE, "deployment": f"{service}-{color}"}
        series += [
            Series("kube_deployment_status_replicas_available", deployment, 2),
            Series("kube_deployment_spec_replicas", deployment, 2),
        ]
        pod = {"namespace": NAMESPACE, "pod": f"{service}-{color}-5d8f7c9b4-x7k2p", "container": service}
        series.append(Series("kube_pod_container_status_restarts_total", pod, 0.02, counter=True))
    # the migration Job's pods are not the color's
    job = {"namespace": NAMESPACE, "pod": f"{service}-migrate-blue-abcde", "container": "migrate"}
    return [*series, Series("kube_pod_container_status_restarts_total", job, 1, counter=True)]


RDS = {"dimension_DBInstanceIdentifier": NAMESPACE}
EXTRA = [
    *kube_state("api"),
    *kube_state("web"),
    Series("aws_rds_cpuutilization_average", RDS, 35),
    Series("aws_rds_free_storage_space_average", RDS, 15e9),
    Series("aws_rds_database_connections_average", RDS, 40),
]
TRAFFIC = [Traffic(service, color, 50) for service in ("api", "web") for color in ("blue", "green")]


@pytest.fixture(scope="module")
def prometheus() -> Iterator[LoadedPrometheus]:
    with prometheus_with(TRAFFIC, extra=EXTRA, rule_groups=rule_groups(baseline(STACK))) as loaded:
        yield loaded


def problem(prometheus: LoadedPrometheus, expr: str, per_color: bool) -> str:
    """Why a panel's query would show nothing useful ('' when it returns data, for both colors)."""
    answer = httpx.get(
        f"{prometheus.url}/api/v1/query",
        params={"query": expr, "time": prometheus.end.timestamp()},
        timeout=10,
    ).json()
    if answer.get("status") != "success":
        return f"does not parse or run: {answer.get('error')}"
    result = answer["data"]["result"]
    if not result:
        return "returns no data"
    missing = {"blue", "green"} - {series["metric"].get("color") for series in result}
    return f"no data for {sorted(missing)}" if per_color and missing else ""


def test_every_query_of_every_panel_parses_and_returns_data_for_both_colors(
    prometheus: LoadedPrometheus,
) -> None:
    checked = []
    problems = []
    for service, inputs in dashboards(baseline(STACK)).items():
        for title, expr, per_color in queries(document(inputs)):
            checked.append((service, title, per_color))
            found = problem(prometheus, expr, per_color)
            if found:
                problems.append(f"{service} / {title}: {expr}: {found}")
    assert problems == []
    assert len(checked) == 20 + 17  # api (with the database's three panels) and web
    assert sum(per_color for _, _, per_color in checked) == 2 * 7


def test_the_check_fails_a_query_that_is_empty_one_colored_or_does_not_parse(
    prometheus: LoadedPrometheus,
) -> None:
    assert problem(prometheus, 'service_color:http_requests:rate5m{service="billing"}', True) == (
        "returns no data"
    )
    one = 'service_color:http_requests:rate5m{service="api", color="blue"}'
    assert problem(prometheus, one, True) == "no data for ['green']"
    assert problem(prometheus, "sum(rate(http_requests_total[5m]", False).startswith("does not parse")


def test_the_restart_panel_counts_only_each_colors_own_pods(prometheus: LoadedPrometheus) -> None:
    (expr,) = [
        expr
        for title, expr, _ in queries(document(dashboards(baseline(STACK))["api"]))
        if title == "Pod restarts"
    ]
    answer = httpx.get(
        f"{prometheus.url}/api/v1/query", params={"query": expr, "time": prometheus.end.timestamp()}
    ).json()
    values = {series["metric"]["color"]: float(series["value"][1]) for series in answer["data"]["result"]}
    # 0.02 restarts a scrape over the 30 loaded minutes each; the migration Job's pod (1 a scrape) is
    # in neither color
    assert values == {"blue": pytest.approx(2.4, rel=0.1), "green": pytest.approx(2.4, rel=0.1)}


@pytest.mark.parametrize("stack", STACKS)
def test_each_stack_ships_its_dashboards_as_configmaps_the_grafana_sidecar_loads(stack: str) -> None:
    found = dashboards(baseline(stack))
    assert sorted(found) == ["api", "web"]
    settings = DashboardSettings(datasource_uid=f"prometheus-{stack}")
    for service, inputs in found.items():
        metadata = inputs["metadata"]
        assert metadata["name"] == f"{service}-dashboard" and metadata["namespace"] == f"platform-{stack}"
        assert metadata["labels"][settings.label] == settings.label_value
        assert metadata["annotations"] == {settings.folder_annotation: settings.folder}
        dashboard = document(inputs)
        sources = {
            target["datasource"]["uid"]
            for panel in dashboard["panels"]
            for target in panel.get("targets", [])
        }
        assert sources == {f"prometheus-{stack}"}
        (releases,) = dashboard["annotations"]["list"]
        assert releases["target"]["tags"] == ["release", f"service:{service}", f"namespace:platform-{stack}"]


def test_the_dashboards_differ_between_stacks_only_in_datasource_and_namespace() -> None:
    def normalised(stack: str) -> str:
        found = dashboards(baseline(stack))
        text = json.dumps({service: document(inputs) for service, inputs in found.items()}, sort_keys=True)
        return text.replace(f"prometheus-{stack}", "<datasource>").replace(f"platform-{stack}", "<namespace>")

    assert normalised("dev") == normalised("staging") == normalised("production")


def test_release_plan_shows_each_dashboard_configmap(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", STACK, "--resources", "--project-dir", str(PROJECT)]) == 0
    out = capsys.readouterr().out
    assert re.search(
        r"ConfigMap +api-dashboard +dashboard=api \(platform-staging\)  panels=13  "
        r"datasource=prometheus-staging  sidecar=grafana_dashboard=1  folder=Platform",
        out,
    )


def test_the_docs_show_every_query_of_the_api_dashboard() -> None:
    docs = (ROOT / "docs" / "observability.md").read_text()
    shown = [
        expr.replace(NAMESPACE, "<namespace>")
        for _, expr, _ in queries(document(dashboards(baseline(STACK))["api"]))
    ]
    assert [expr for expr in shown if expr not in docs] == []


def test_bad_dashboard_knobs_are_reported_together_with_their_keys(project: Path) -> None:
    from tests.conftest import problems_of

    def edit(config: dict[str, Any]) -> None:
        config["platform:dashboards"] = {"datasourceUid": "prom etheus", "label": "-bad", "folder": "a/b"}

    problems = {problem.key for problem in problems_of(project, "dev", edit)}
    assert {
        "platform:dashboards.datasourceUid",
        "platform:dashboards.label",
        "platform:dashboards.folder",
    } <= problems
