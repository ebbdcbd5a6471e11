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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

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
    """One colour of one service: requests per second, the share answered 5xx, and the share
    answered within 0.5 s, 2 s and 5 s; `for_last_seconds`: it takes traffic only in the last
    seconds of the history (a canary that starts mid-way), else throughout."""

    service: str
    colour: str
    per_second: float
    error_share: float = 0.001
    within: tuple[float, float, float] = (0.95, 1.0, 1.0)
    for_last_seconds: int = HISTORY_SECONDS


MISSING = "prometheus/promtool are not installed (Debian's `prometheus` package; .ci/run installs it)"


def binaries() -> tuple[str, str]:
    """The two binaries; where they are missing, a skip with the reason (a failure under CI=true)."""
    found = shutil.which("prometheus"), shutil.which("promtool")
    if found[0] and found[1]:
        return found[0], found[1]
    if os.environ.get("CI") == "true":
        pytest.fail(MISSING)
    pytest.skip(MISSING)


def openmetrics(traffic: list[Traffic], end: int) -> str:
    requests = ["# TYPE http_requests counter"]
    durations = ["# TYPE http_request_duration_seconds histogram"]
    for load in traffic:
        base = f'service="{load.service}",colour="{load.colour}"'
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
    return "\n".join([*requests, *durations, "# EOF"]) + "\n"


def _counter(name: str, labels: str, per_step: float, end: int, since: int) -> list[str]:
    """Samples every STEP_SECONDS (the scrape interval) growing by `per_step` from `since` on, 0 before."""
    start = end - HISTORY_SECONDS
    times = [start + index * STEP_SECONDS for index in range(HISTORY_SECONDS // STEP_SECONDS + 1)]
    return [f"{name}{{{labels}}} {per_step * max(0, (at - since) // STEP_SECONDS):.3f} {at}" for at in times]


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
def prometheus_with(traffic: list[Traffic], end: datetime = SERIES_END) -> Iterator[LoadedPrometheus]:
    """Prometheus holding `traffic` for the 30 minutes that end at `end` (rounded down to a scrape)."""
    prometheus, promtool = binaries()
    end_seconds = int(end.timestamp()) // STEP_SECONDS * STEP_SECONDS
    with tempfile.TemporaryDirectory() as scratch:
        directory = Path(scratch)
        (directory / "series.om").write_text(openmetrics(traffic, end_seconds))
        subprocess.run(
            [promtool, "tsdb", "create-blocks-from", "openmetrics", "series.om", "data"],
            cwd=directory,
            check=True,
            capture_output=True,
            timeout=120,
        )
        (directory / "prometheus.yml").write_text("global:\n  scrape_interval: 15s\n")
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
            yield LoadedPrometheus(url, datetime.fromtimestamp(end_seconds, UTC))
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
    new_colour_errors: float, sleep: Callable[[float], None], **knobs: Any
) -> tuple[ReleaseReport, FakeEngine]:
    """A staging release of NEW_API onto blue, judged by a Prometheus whose series run past the
    engine double's clock (SERIES_END): blue (the new colour) answers `new_colour_errors` of its
    requests with 5xx, green (live) 0.1%. `knobs` are more stack knobs (e.g. a canary strategy). The
    series already fill every window, so waits for a window go to `sleep` (a recorder) and the clock
    does not move."""
    traffic = [Traffic("api", "blue", 50, error_share=new_colour_errors), Traffic("api", "green", 50)]
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
