"""Benchmark: how fast a failing release is detected, and what a blue-green rollback costs.

Prints, on this machine:
- what a smoke suite of four checks (answers in 50 to 200 ms) adds to a release on the engine double
  against real local servers, per run of the suite: its step's time against its slowest check, and
  the release's time outside its steps with and without the suite (target: the slowest check + 50 ms);
- the time from the first failing probe to the unhealthy verdict (the rollback decision) with the
  default health-check settings, for a service answering 500 and for one that hangs (timeouts),
  against the target `failures x interval + timeout`;
- how long the promotion gate and the audit take to read 100 / 1,000 / 5,000 history entries, every
  record chained onto the one before it (release.history.chain walks the chain once per read);
- how many resources the automatic rollback of a release that failed after the switch changes,
  targeted (the default) against a full `up` of the same restored config, for stacks of 1, 10 and
  50 services. The engine here is the test double (release/testing/fake_engine.py), which evaluates the real
  program under the mock runtime and counts resources whose declared inputs change: the counts are
  the program's, the engine's own timings are not measured (no Pulumi CLI here).

Run: `make bench-release` (or `.venv/bin/python bench/release_bench.py`).
Figures go in docs/development.md (Benchmark).
"""

from __future__ import annotations

import importlib
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

SERVICE_COUNTS = (1, 10, 50)
HISTORY_SIZES = (100, 1000, 5000)
REPEATS = 3
UNCHAINED_GATE_MS = {100: 19, 1000: 177, 5000: 1008}
"""The gate before records were chained (issue 23's baseline): the chained gate may cost up to 1.5x."""
IMAGE = "registry.example.test/platform/api@sha256:" + "ab" * 32


def decision_seconds(behaviour: str) -> tuple[float, float]:
    """(first failing probe -> verdict, budget) with default settings against a real local server."""
    from core.config.stack import HealthCheckSettings
    from core.health import check_sync
    from tests.http_servers import failing, serve, slow

    settings = HealthCheckSettings()
    server = failing(500) if behaviour == "500" else slow(settings.timeout_seconds * 5)
    with serve(server) as url:
        verdict = check_sync([url], settings)
    assert not verdict.healthy and verdict.first_failure_seconds is not None
    return verdict.decided_seconds - verdict.first_failure_seconds, settings.decision_budget_seconds


def rollback_changes(project_dir: Path, stack: str, service: str, targeted: bool) -> tuple[int, int, float]:
    """(resources the rollback of a release that failed after its switch changes, resources in the
    stack, seconds to plan it). A release fails on its stable check and rolls back; then the stack is
    put back to its switched state, and the same restore is planned (timed) and applied, targeted as
    the tool plans it or as a full `up` of the same config."""
    from core.config.sources import validated_stack_config
    from release.context import ReleaseContext
    from release.flows.deploy import deploy
    from release.flows.restore import plan_rollback
    from release.testing.fake_engine import FakeEngine
    from tests.release_doubles import FAST_HEALTH_CHECK, cluster, history_of

    engine = FakeEngine(project_dir=project_dir)
    engine.add_stack(stack, edit={"platform:healthCheck": FAST_HEALTH_CHECK})
    ctx = ReleaseContext.for_tests(engine, project_dir)
    with cluster(engine, stack, service) as double:
        double.bad_when_stable.add(IMAGE)
        report = deploy(ctx, double.request(IMAGE))
    assert report.phase == "RolledBack" and report.rollback is not None, report.render()
    switched = next(
        entry for entry in history_of(engine, stack) if entry.record and entry.record.event == "switch"
    )
    engine.up(stack, switched.config, "benchmark: back to the switched state")
    current = engine.get_config(stack)
    project = validated_stack_config(stack, current, ctx.project_file).project
    started = time.perf_counter()
    plan = plan_rollback(stack, current, report.rollback.target, project)
    planning = time.perf_counter() - started
    engine.up(stack, plan.restore, "benchmark: the restore", targets=plan.targets if targeted else [])
    return len(engine.ups[-1].changed_urns), len(engine.stacks[stack].deployed), planning


def history_seconds(size: int) -> tuple[float, float]:
    """(parse history + gate evidence, audit rows) for `size` entries shaped like the CLI's JSON."""
    from datetime import datetime, timedelta

    from release.gates import evidence_for
    from release.history.entries import parse_history
    from release.report.audit import audit_rows
    from tests.history_data import GOOD, STAGING_RULES, Chain, record, update

    start = datetime(2026, 1, 1)
    chain = Chain()  # every record chained onto the one before it, as the tool writes them
    raw = [
        update(
            (start + timedelta(minutes=index)).isoformat(),
            record("verify" if index % 3 else "stage"),
            chain=chain,
        )
        for index in range(size)
    ][::-1]
    gated = audited = float("inf")
    for _ in range(REPEATS):  # the best of a few runs, as timeit reports: the rest is the machine's noise
        began = time.perf_counter()
        entries = parse_history(raw, STAGING_RULES)  # judges every record and walks the chain once
        evidence_for("staging", entries, "api", GOOD, live=True)
        gated = min(gated, time.perf_counter() - began)
        began = time.perf_counter()
        audit_rows("staging", entries)
        audited = min(audited, time.perf_counter() - began)
    return gated, audited


SMOKE_DELAYS = {"/smoke/a": 0.05, "/smoke/b": 0.10, "/smoke/c": 0.15, "/smoke/d": 0.20}
"""The bench suite: four checks whose answers take 50 to 200 ms (the slowest: 200 ms)."""
SMOKE_REPEATS = 5
SMOKE_BUDGET_MS = 50


def smoke_project(destination: Path, with_suite: bool) -> Path:
    """A copy of the test project whose api suite is the bench's four checks (or none at all)."""
    from tests.conftest import edit_yaml
    from tests.release_doubles import signed_project_copy

    project = signed_project_copy(destination)

    def suite(document: dict[str, Any]) -> None:
        suites = document["config"]["smoke"]["value"]["suites"]
        # the account check stays in web's suite, so the stack's smoke secret is still sent
        suites["web"] = [*suites["web"], *[check for check in suites["api"] if check["name"] == "account"]]
        suites["api"] = [{"name": f"check-{path[-1]}", "request": {"path": path}} for path in SMOKE_DELAYS]
        if not with_suite:
            del suites["api"]

    edit_yaml(project / "Pulumi.yaml", suite)
    return project


@dataclass
class SmokeCosts:
    """What a suite of four checks cost, per run of the suite (a release runs it twice)."""

    over_slowest_ms: list[float] = field(default_factory=list)
    """Each `smoke` step's time minus its slowest check's answer (as the check measured it)."""
    step_ms: list[float] = field(default_factory=list)
    """Each `smoke` step's time: what a run of the suite adds to a release's steps."""
    outside_ms: dict[bool, list[float]] = field(default_factory=lambda: {True: [], False: []})
    """Per release, with and without the suite: its time outside its steps (reading the stack,
    history and secrets, the report); the steps themselves vary with the engine double's updates."""
    release_extra_ms: float = 0.0
    """(the release with the suite - without it) / 2, each the best of SMOKE_REPEATS releases."""

    @property
    def outside_extra_ms(self) -> float:
        return statistics.median(self.outside_ms[True]) - statistics.median(self.outside_ms[False])


def smoke_costs() -> SmokeCosts:
    """Releases of api on the engine double against real local servers whose four check endpoints
    answer in 50 to 200 ms, with the suite and without it."""
    from contextlib import ExitStack

    from release.context import ReleaseContext
    from release.flows.deploy import deploy
    from release.testing.fake_engine import FakeEngine
    from tests.http_servers import Answer, Request, serve_app
    from tests.release_doubles import FAST_BLUE_GREEN, Cluster

    def slowed(app: Any) -> Any:
        def answer(request: Request) -> Answer:
            time.sleep(SMOKE_DELAYS.get(request.path, 0.0))
            return app(request)

        return answer

    costs = SmokeCosts()
    best: dict[bool, float] = {}
    for with_suite in (True, False):
        best[with_suite] = float("inf")
        with tempfile.TemporaryDirectory() as directory:
            project = smoke_project(Path(directory), with_suite)
            for _ in range(SMOKE_REPEATS):
                engine = FakeEngine(project_dir=project)
                engine.add_stack("staging", edit=FAST_BLUE_GREEN)
                double = Cluster(engine, "staging", "api")
                with ExitStack() as servers:
                    double.preview_url = servers.enter_context(serve_app(slowed(double.app(preview=True))))
                    double.stable_url = servers.enter_context(serve_app(slowed(double.app(preview=False))))
                    ctx = ReleaseContext.for_tests(engine, project, progress=lambda _: None)
                    started = time.perf_counter()
                    report = deploy(ctx, double.request(IMAGE))
                    best[with_suite] = min(best[with_suite], time.perf_counter() - started)
                assert report.phase == "Healthy", report.render()
                outside = time.perf_counter() - started - sum(step.seconds for step in report.steps)
                costs.outside_ms[with_suite].append(1000 * outside)
                for step in report.steps:
                    if step.smoke is not None:
                        slowest = max(check.latency_ms for check in step.smoke.checks)
                        costs.over_slowest_ms.append(1000 * step.seconds - slowest)
                        costs.step_ms.append(1000 * step.seconds)
    costs.release_extra_ms = 1000 * (best[True] - best[False]) / 2
    return costs


def main() -> None:
    synthetic_project = importlib.import_module("plan_bench").synthetic_project  # bench/ is on sys.path

    costs = smoke_costs()
    slowest = 1000 * max(SMOKE_DELAYS.values())
    print(
        f"a smoke suite of 4 checks (answers in 50 to {slowest:.0f} ms), in {SMOKE_REPEATS} releases on the "
        f"engine double (two runs each, preview and stable): a run's step took "
        f"{min(costs.step_ms):.0f} to {max(costs.step_ms):.0f} ms, its slowest check plus "
        f"{min(costs.over_slowest_ms):.1f} to {max(costs.over_slowest_ms):.1f} ms; outside the steps the "
        f"release took {costs.outside_extra_ms:+.1f} ms (median) more than without a suite: per run, "
        f"at most {max(costs.step_ms) + max(costs.outside_extra_ms, 0) / 2:.0f} ms (target <= "
        f"{slowest + SMOKE_BUDGET_MS:.0f} ms = the slowest check + {SMOKE_BUDGET_MS} ms). Whole releases, "
        f"best of {SMOKE_REPEATS}: {costs.release_extra_ms:+.0f} ms per run (the double's updates vary "
        "by more than that)"
    )
    for behaviour, label in (("500", "answers 500"), ("hang", "hangs (timeouts)")):
        seconds, budget = decision_seconds(behaviour)
        print(
            f"first failing probe -> rollback decision, service {label:<16} {seconds:5.2f} s "
            f"(target <= {budget:.0f} s = failures x interval + timeout, defaults)"
        )
    print("resources changed by the automatic rollback of a release that failed after the switch:")
    for count in SERVICE_COUNTS:
        with tempfile.TemporaryDirectory() as directory:
            project = synthetic_project(Path(directory), count)
            targeted, total, planning = rollback_changes(project, "dev", "svc000", targeted=True)
            full, _, _ = rollback_changes(project, "dev", "svc000", targeted=False)
        print(
            f"  {count:>3} service(s), {total:>4} resources: the blue-green rollback changes {targeted} "
            f"of the 2 it targets; a full up of the same restore changes {full} and diffs all {total}; "
            f"planned in {1000 * planning:.1f} ms"
        )
    print(
        "reading chained stack history (parse, signatures, chain + evidence for one digest; audit rows; "
        f"best of {REPEATS}):"
    )
    for size in HISTORY_SIZES:
        gated, audited = history_seconds(size)
        target = 1.5 * UNCHAINED_GATE_MS[size]
        print(
            f"  {size:>5} entries: {1000 * gated:7.1f} ms (target <= {target:,.0f} ms = 1.5 x the unchained "
            f"gate's {UNCHAINED_GATE_MS[size]:,} ms); audit {1000 * audited:7.1f} ms"
        )


if __name__ == "__main__":
    main()
