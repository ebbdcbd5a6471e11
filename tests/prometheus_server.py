"""A real Prometheus (Debian's binary) on 127.0.0.1, loaded with known series through
`promtool tsdb create-blocks-from openmetrics`: deterministic windows for release analysis tests and
the analysis benchmark (bench/analysis_bench.py)."""

from __future__ import annotations

import functools
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from release.context import ReleaseContext
from release.flows.deploy import deploy
from release.report.release_report import ReleaseReport
from release.testing.fake_clock import MONDAY_MORNING
from release.testing.fake_engine import FakeEngine
from tests.release_doubles import FAST_BLUE_GREEN, NEW_API, cluster, signed_project

STEP_SECONDS = 15
HISTORY_SECONDS = 1800
READY_SECONDS = 30


@dataclass(frozen=True)
class Traffic:
    """One color of one service: requests per second, the share answered 5xx, and the share
    answered within 0.5 s, 2 s and 5 s; `for_last_seconds`: it takes traffic only in the last
    seconds of the history (a canary that starts mid-way), else throughout."""

    service: str
    color: str
    per_second: float
    error_share: float = 0.001
    within: tuple[float, float, float] = (0.95, 1.0, 1.0)
    for_last_seconds: int = HISTORY_SECONDS


@dataclass(frozen=True)
class Series:
    """One more series to load besides the traffic: a gauge holding `value` throughout, or (`counter`)
    a counter growing by `value` every scrape. A counter's name ends in `_total`."""

    name: str
    labels: dict[str, str]
    value: float
    counter: bool = False

    @property
    def family(self) -> str:
        return self.name.removesuffix("_total") if self.counter else self.name


MISSING = "prometheus/promtool are not installed (Debian's `prometheus` package; .ci/run installs it)"


def binaries() -> tuple[str, str]:
    """The two binaries; where they are missing, a skip with the reason (a failure under CI=true)."""
    found = shutil.which("prometheus"), shutil.which("promtool")
    if found[0] and found[1]:
        return found[0], found[1]
    if os.environ.get("CI") == "true":
        pytest.fail(MISSING)
    pytest.skip(MISSING)


def openmetrics(traffic: list[Traffic], end: int, extra: Sequence[Series] = ()) -> str:
    requests = ["# TYPE http_requests counter"]
    durations = ["# TYPE http_request_duration_seconds histogram"]
    for load in traffic:
        base = f'service="{load.service}",color="{load.color}"'
        per_step = load.per_second * STEP_SECONDS
        since = end - load.for_last_seconds
        counter = functools.partial(_counter, end=end, since=since)
        for code, share in (("200", 1 - load.error_share), ("500", load.error_share)):
            requests += counter("http_requests_total", f'{base},code="{code}"', per_step * share)
        for le, share in zip(("0.5", "2.0", "5.0", "+Inf"), (*load.within, 1.0), strict=True):
            bucket = f'{base},le="{le}"'
            durations += counter("http_request_duration_seconds_bucket", bucket, per_step * share)
        durations += counter("http_request_duration_seconds_count", base, per_step)
        durations += counter("http_request_duration_seconds_sum", base, per_step * 0.3)
    families: list[str] = []
    for family in dict.fromkeys(series.family for series in extra):
        members = [series for series in extra if series.family == family]
        families.append(f"# TYPE {family} {'counter' if members[0].counter else 'gauge'}")
        for series in members:
            labels = ",".join(f'{name}="{value}"' for name, value in series.labels.items())
            if series.counter:
                families += _counter(series.name, labels, series.value, end=end, since=end - HISTORY_SECONDS)
            else:
                families += _gauge(series.name, labels, series.value, end=end)
    return "\n".join([*requests, *durations, *families, "# EOF"]) + "\n"


def _counter(name: str, labels: str, per_step: float, end: int, since: int) -> list[str]:
    """Samples every STEP_SECONDS (the scrape interval) growing by `per_step` from `since` on, 0 before."""
    start = end - HISTORY_SECONDS
    times = [start + index * STEP_SECONDS for index in range(HISTORY_SECONDS // STEP_SECONDS + 1)]
    return [f"{name}{{{labels}}} {per_step * max(0, (at - since) // STEP_SECONDS):.3f} {at}" for at in times]


def _gauge(name: str, labels: str, value: float, end: int) -> list[str]:
    start = end - HISTORY_SECONDS
    times = [start + index * STEP_SECONDS for index in range(HISTORY_SECONDS // STEP_SECONDS + 1)]
    return [f"{name}{{{labels}}} {value:.3f} {at}" for at in times]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class LoadedPrometheus:
    url: str
    end: datetime
    """The last sample's time: query at it for a window of known series."""


SERIES_END = MONDAY_MORNING + timedelta(minutes=10)
"""Where the series end by default: ten minutes past the engine double's first instant, so every
window a release on a fresh FakeEngine judges (its clock moves 30 s an update) is full of samples.
Prometheus answers a query at any time given to it, so the suite never depends on the day it runs."""


@contextmanager
def prometheus_with(
    traffic: list[Traffic],
    end: datetime = SERIES_END,
    extra: Sequence[Series] = (),
    rule_groups: Sequence[dict[str, Any]] = (),
) -> Iterator[LoadedPrometheus]:
    """Prometheus holding `traffic` and `extra` for the 30 minutes that end at `end` (rounded down to a
    scrape); with `rule_groups`, also their recording rules evaluated over those 30 minutes every
    scrape interval (`promtool tsdb create-blocks-from rules`, as if Prometheus had run them)."""
    prometheus, promtool = binaries()
    end_seconds = int(end.timestamp()) // STEP_SECONDS * STEP_SECONDS
    with tempfile.TemporaryDirectory() as scratch:
        directory = Path(scratch)
        (directory / "series.om").write_text(openmetrics(traffic, end_seconds, extra))
        _promtool(promtool, directory, "create-blocks-from", "openmetrics", "series.om", "data")
        (directory / "prometheus.yml").write_text("global:\n  scrape_interval: 15s\n")
        if rule_groups:
            with _serving(prometheus, directory) as url:
                _backfill(promtool, directory, url, rule_groups, end_seconds)
        with _serving(prometheus, directory) as url:
            yield LoadedPrometheus(url, datetime.fromtimestamp(end_seconds, UTC))


def _promtool(promtool: str, directory: Path, *arguments: str) -> None:
    subprocess.run(
        [promtool, "tsdb", *arguments], cwd=directory, check=True, capture_output=True, timeout=120
    )


def _backfill(
    promtool: str, directory: Path, url: str, rule_groups: Sequence[dict[str, Any]], end_seconds: int
) -> None:
    """The recording rules of `rule_groups` (alerts left out) evaluated every scrape interval over the
    loaded history, as blocks moved into the data directory (read when Prometheus next starts)."""
    recording = [
        {**group, "rules": [rule for rule in group["rules"] if "record" in rule]} for group in rule_groups
    ]
    (directory / "rules.yml").write_text(yaml.safe_dump({"groups": recording}))
    _promtool(
        promtool,
        directory,
        "create-blocks-from",
        "rules",
        f"--start={end_seconds - HISTORY_SECONDS}",
        f"--end={end_seconds}",
        f"--url={url}",
        f"--eval-interval={STEP_SECONDS}s",
        "--output-dir=rule-blocks",
        "--quiet",
        "rules.yml",
    )
    for block in (directory / "rule-blocks").iterdir():
        block.rename(directory / "data" / block.name)


@contextmanager
def _serving(prometheus: str, directory: Path) -> Iterator[str]:
    """Prometheus on the data in `directory`, on a free port of 127.0.0.1, until the block ends."""
    port = _free_port()
    server = subprocess.Popen(
        [
            prometheus,
            "--config.file=prometheus.yml",
            "--storage.tsdb.path=data",
            "--storage.tsdb.retention.time=30d",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        cwd=directory,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_ready(url)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()


def _wait_ready(url: str) -> None:
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"Prometheus at {url} was not ready within {READY_SECONDS} s")


def judged_release(
    new_color_errors: float, sleep: Callable[[float], None], **knobs: Any
) -> tuple[ReleaseReport, FakeEngine]:
    """A staging release of NEW_API onto blue, judged by a Prometheus whose series run past the
    engine double's clock (SERIES_END): blue (the new color) answers `new_color_errors` of its
    requests with 5xx, green (live) 0.1%. `knobs` are more stack knobs (e.g. a canary strategy). The
    series already fill every window, so waits for a window go to `sleep` (a recorder) and the clock
    does not move."""
    traffic = [Traffic("api", "blue", 50, error_share=new_color_errors), Traffic("api", "green", 50)]
    with prometheus_with(traffic) as loaded:
        engine = FakeEngine(project_dir=signed_project())
        edit = {
            **FAST_BLUE_GREEN,
            "platform:analysis": {"prometheusUrl": loaded.url},
            **{f"platform:{key}": value for key, value in knobs.items()},
        }
        engine.add_stack("staging", edit=edit)
        with cluster(engine) as api:
            context = ReleaseContext.for_tests(engine, engine.project_dir, sleep=sleep)
            report = deploy(context, api.request(NEW_API))
    return report, engine
