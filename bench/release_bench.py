"""Benchmark: how fast a failing release is detected, and what a blue-green rollback costs.

Prints, on this machine:
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
import sys
import tempfile
import time
from pathlib import Path

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


def main() -> None:
    synthetic_project = importlib.import_module("plan_bench").synthetic_project  # bench/ is on sys.path

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
