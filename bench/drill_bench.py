"""Benchmark: what a restore drill's verification (release.data.verification, the two queries
Pulumi.yaml declares: count(*) and max(updated_at) of accounts) costs on 1,000,000 rows in a real
local PostgreSQL, without an index on updated_at (the worst case: both are full scans) and with one.
Loading the rows is timed separately.

Run: `.venv/bin/python bench/drill_bench.py` (needs Debian's `postgresql` package). Figures go in
docs/development.md (Benchmark).
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.config.data_safety import DataSafetySpec  # noqa: E402
from core.config.sources import project_settings  # noqa: E402
from release.data.verification import verify_database  # noqa: E402
from tests.postgres_server import RunningPostgres, postgres_server, server_binaries  # noqa: E402

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
    return 0


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
