"""SLOs as code: every stack's PrometheusRule passes `promtool check rules`, and each burn-rate alert
fires (or stays quiet) on known series under `promtool test rules`.

promtool comes from Debian's `prometheus` package (`.ci/run` installs it). Where it is missing these
tests are skipped with the reason; under CI=true a missing promtool fails them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.slo import rule_groups
from tests.conftest import STACKS, baseline

PROMETHEUS_RULE = "kubernetes:monitoring.coreos.com/v1:PrometheusRule"
SERVICE_MONITOR = "kubernetes:monitoring.coreos.com/v1:ServiceMonitor"
ROUTING = {"team": "platform", "route": "pager"}


def promtool() -> str:
    found = shutil.which("promtool")
    if found:
        return found
    reason = "promtool is not installed (Debian's `prometheus` package; .ci/run installs it)"
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def run_promtool(*arguments: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *arguments], capture_output=True, text=True, timeout=120, cwd=cwd, check=False
    )


def rendered_groups(stack: str, service: str = "api") -> list[dict[str, Any]]:
    rule = baseline(stack).named(PROMETHEUS_RULE, f"{service}-slo")
    groups: list[dict[str, Any]] = rule.inputs["spec"]["groups"]
    return groups


@pytest.mark.parametrize("stack", STACKS)
def test_every_stacks_rules_pass_promtool_check(stack: str, tmp_path: Path) -> None:
    for service in ("api", "web"):
        (tmp_path / f"{service}.yml").write_text(yaml.safe_dump({"groups": rendered_groups(stack, service)}))
    checked = run_promtool("check", "rules", "api.yml", "web.yml", cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS" in checked.stdout


def test_only_the_routing_labels_differ_between_stacks() -> None:
    def without_routing(groups: list[dict[str, Any]]) -> Any:
        text = yaml.safe_dump(groups)
        for route in ("chat-dev", "chat-staging", "pager"):
            text = text.replace(route, "ROUTE")
        return text

    assert len({without_routing(rendered_groups(stack)) for stack in STACKS}) == 1


def alert(name: str) -> dict[str, Any]:
    groups = rule_groups("api", 0.999, 0.99, 2.0, ROUTING)
    return next(rule for group in groups for rule in group["rules"] if rule.get("alert") == name)


def requests(good_per_minute: int, bad_per_minute: int) -> list[dict[str, str]]:
    series = 'http_requests_total{service="api",color="blue",code="%s"}'
    return [
        {"series": series % "200", "values": f"0+{good_per_minute}x420"},
        {"series": series % "500", "values": f"0+{bad_per_minute}x420"},
    ]


def durations(fast_per_minute: int, total_per_minute: int) -> list[dict[str, str]]:
    bucket = 'http_request_duration_seconds_bucket{service="api",color="green",le="%s"}'
    return [
        {"series": bucket % "2.0", "values": f"0+{fast_per_minute}x420"},
        {"series": bucket % "+Inf", "values": f"0+{total_per_minute}x420"},
        {
            "series": 'http_request_duration_seconds_count{service="api",color="green"}',
            "values": f"0+{total_per_minute}x420",
        },
    ]


def expectation(name: str, firing: bool) -> dict[str, Any]:
    rule = alert(name)
    expected = [{"exp_labels": rule["labels"], "exp_annotations": rule["annotations"]}] if firing else []
    return {"eval_time": "7h", "alertname": name, "exp_alerts": expected}


def promtool_test(tmp_path: Path, series: list[dict[str, str]], expectations: list[dict[str, Any]]) -> None:
    (tmp_path / "rules.yml").write_text(
        yaml.safe_dump({"groups": rule_groups("api", 0.999, 0.99, 2.0, ROUTING)})
    )
    unit = {
        "rule_files": ["rules.yml"],
        "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": series, "alert_rule_test": expectations}],
    }
    (tmp_path / "test.yml").write_text(yaml.safe_dump(unit))
    tested = run_promtool("test", "rules", "test.yml", cwd=tmp_path)
    assert tested.returncode == 0, tested.stdout + tested.stderr


@pytest.mark.parametrize("name", ["AvailabilityBudgetBurnFast", "AvailabilityBudgetBurnSlow"])
def test_two_percent_errors_against_a_three_nines_objective_fire_both_availability_alerts(
    name: str, tmp_path: Path
) -> None:
    promtool_test(tmp_path, requests(980, 20), [expectation(name, firing=True)])


@pytest.mark.parametrize("name", ["AvailabilityBudgetBurnFast", "AvailabilityBudgetBurnSlow"])
def test_errors_within_the_budget_fire_nothing(name: str, tmp_path: Path) -> None:
    promtool_test(tmp_path, requests(9995, 5), [expectation(name, firing=False)])  # 0.05%


def test_a_moderate_burn_opens_a_ticket_but_pages_nobody(tmp_path: Path) -> None:
    burn_ten_times = requests(990, 10)  # 1% errors: 10x the budget, between 6x and 14.4x
    promtool_test(
        tmp_path,
        burn_ten_times,
        [
            expectation("AvailabilityBudgetBurnSlow", firing=True),
            expectation("AvailabilityBudgetBurnFast", firing=False),
        ],
    )


@pytest.mark.parametrize("name", ["LatencyBudgetBurnFast", "LatencyBudgetBurnSlow"])
def test_a_fifth_of_requests_slower_than_two_seconds_fires_both_latency_alerts(
    name: str, tmp_path: Path
) -> None:
    promtool_test(tmp_path, durations(800, 1000), [expectation(name, firing=True)])


@pytest.mark.parametrize("name", ["LatencyBudgetBurnFast", "LatencyBudgetBurnSlow"])
def test_requests_within_the_latency_objective_fire_nothing(name: str, tmp_path: Path) -> None:
    promtool_test(tmp_path, durations(999, 1000), [expectation(name, firing=False)])


def test_the_service_monitor_scrapes_both_colors_and_labels_who_answered() -> None:
    monitor = baseline("production").named(SERVICE_MONITOR, "api-monitor")
    spec = monitor.inputs["spec"]
    assert spec["selector"] == {"matchLabels": {"app.kubernetes.io/name": "api"}}  # stable and preview
    endpoint = spec["endpoints"][0]
    assert (endpoint["port"], endpoint["path"]) == ("http", "/metrics")
    assert {relabel["targetLabel"] for relabel in endpoint["relabelings"]} == {"service", "color"}


def test_alerts_carry_the_stacks_routing_labels() -> None:
    alerts = [rule for group in rendered_groups("production") for rule in group["rules"] if "alert" in rule]
    assert len(alerts) == 7  # 2 objectives x 2 burn rates, and 3 for when they would be blind
    assert all(rule["labels"]["route"] == "pager" and rule["labels"]["team"] == "platform" for rule in alerts)


def test_a_service_nobody_scrapes_is_an_alert_not_silence(tmp_path: Path) -> None:
    scraped_down = [{"series": 'up{service="api",color="blue"}', "values": "0x60"}]
    down = expectation("MetricsScrapeFailing", firing=True)
    quiet = expectation("MetricsAbsent", firing=False)
    down["eval_time"] = quiet["eval_time"] = "30m"
    promtool_test(tmp_path, scraped_down, [down, quiet])


def test_no_series_at_all_is_an_alert(tmp_path: Path) -> None:
    absent = expectation("MetricsAbsent", firing=True)
    absent["eval_time"] = "30m"
    promtool_test(tmp_path, [{"series": 'up{service="web"}', "values": "1x60"}], [absent])


def test_a_histogram_without_the_threshold_bucket_is_an_alert(tmp_path: Path) -> None:
    without = [series for series in durations(800, 1000) if 'le="2.0"' not in series["series"]]
    missing = expectation("LatencyBucketMissing", firing=True)
    missing["eval_time"] = "30m"
    promtool_test(tmp_path, without, [missing])
