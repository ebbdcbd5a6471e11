"""Benchmark: what a restore drill's verification (release.data.verification, the two queries
Pulumi.yaml declares: count(*) and max(updated_at) of accounts) costs on 1,000,000 rows in a real
local PostgreSQL, without an index on updated_at (the worst case: both are full scans) and with one.
Loading the rows is timed separately. Then the drill's own overhead: a whole `release drill` (cleanup,
restore, verify, destroy, signed record) on the engine double against the same database, i.e.
everything but waiting for AWS (the double's data `up`s are the data program evaluated under
Pulumi's mock runtime; its main-stack `up` for the record evaluates the whole program).

Run: `.venv/bin/python bench/drill_bench.py` (needs Debian's `postgresql` package). Figures go in
docs/development.md (Benchmark).
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.config.data_safety import DataSafetySpec  # noqa: E402
from core.config.sources import project_settings, validated_stack_config  # noqa: E402
from release.context import ReleaseContext  # noqa: E402
from release.data.verification import verify_database  # noqa: E402
from release.flows.drill import DrillRequest, drill  # noqa: E402
from release.flows.snapshot import take_snapshot  # noqa: E402
from release.offline.mocks import DataMocks  # noqa: E402
from release.testing.fake_engine import FakeEngine  # noqa: E402
from tests.postgres_server import SUPERUSER, RunningPostgres, postgres_server, server_binaries  # noqa: E402
from tests.release_doubles import FAST_BLUE_GREEN, NEW_API, TEST_SIGNER, signed_project_copy  # noqa: E402

ROWS = 1_000_000
RUNS = 5
LOAD = (
    "CREATE TABLE accounts (id bigint PRIMARY KEY, email text NOT NULL, updated_at timestamptz NOT NULL)",
    f"INSERT INTO accounts SELECT n, 'user' || n || '@example.test', now() - n * interval '1 second'"
    f" FROM generate_series(1, {ROWS}) AS n",
    "VACUUM ANALYZE accounts",
)


def main() -> int:
    if server_binaries() is None:
        print("PostgreSQL's initdb/postgres are not installed (Debian's `postgresql` package)")
        return 2
    data_safety = project_settings(ROOT).data_safety
    assert data_safety is not None, "Pulumi.yaml declares no dataSafety"
    started = time.monotonic()
    with postgres_server() as running:
        print(f"PostgreSQL initdb + start {time.monotonic() - started:.1f} s")
        loading = time.monotonic()
        running.create_database("app", *LOAD)
        print(f"load {ROWS:,} rows (insert + vacuum analyze) {time.monotonic() - loading:.1f} s")
        measure(running, data_safety, "without an index on updated_at")
        running.execute("app", "CREATE INDEX accounts_updated_at ON accounts (updated_at)")
        measure(running, data_safety, "with an index on updated_at")
        overhead(running)
    return 0


def overhead(running: RunningPostgres) -> None:
    """A whole drill on the engine double, restoring into `running`, RUNS times."""
    with tempfile.TemporaryDirectory() as scratch:
        engine = FakeEngine(project_dir=signed_project_copy(Path(scratch)))
        engine.add_stack("staging", edit=FAST_BLUE_GREEN)
        engine.data_mocks = DataMocks(
            scratch_address=running.host,
            scratch_port=running.port,
            scratch_username=SUPERUSER,
            scratch_password=running.password,
        )
        project_file = ReleaseContext.for_tests(engine, engine.project_dir).project_file
        config = validated_stack_config("staging", engine.get_config("staging"), project_file)
        take_snapshot(engine, config, "api", NEW_API, "r-0123456789ab", lambda _: None, engine.clock())
        timings: list[float] = []
        steps: dict[str, list[float]] = {}
        for _ in range(RUNS):
            started = time.perf_counter()
            report = drill(
                ReleaseContext.for_tests(engine, engine.project_dir, progress=lambda _: None),
                DrillRequest("staging", "bench", signer=TEST_SIGNER, sslmode="disable"),
            )
            timings.append(time.perf_counter() - started)
            for step in report.steps:
                steps.setdefault(step.name, []).append(step.seconds)
        shown = ", ".join(f"{name} {statistics.median(values):.2f} s" for name, values in steps.items())
        print(
            f"a whole drill on the engine double (everything but waiting for AWS): median "
            f"{statistics.median(timings):.2f} s over {RUNS} runs ({shown})"
        )


def measure(running: RunningPostgres, data_safety: DataSafetySpec, label: str) -> None:
    runs = [
        verify_database(
            running.connection("app"), data_safety.verification, data_safety.query_timeout_seconds
        )
        for _ in range(RUNS)
    ]
    assert all(verification.passed for verification in runs), runs[-1].results
    per_query = ", ".join(
        f"{query.name} {statistics.median(run.results[index].seconds for run in runs) * 1000:.1f} ms"
        for index, query in enumerate(data_safety.verification)
    )
    totals = [run.seconds * 1000 for run in runs]
    print(
        f"verification {label}: median {statistics.median(totals):6.1f} ms, max {max(totals):6.1f} ms "
        f"over {RUNS} runs (connect + queries; {per_query})"
    )


if __name__ == "__main__":
    sys.exit(main())
