"""Drill verification against a real PostgreSQL: the project's queries prove a restored database is
usable, each read-only and with a deadline; anything but a clean answer is a failed check with its
reason, never an exception and never the password. Then the RTO and RPO against the targets.

The server runs in America/New_York so a newest write that comes back right in UTC proves time zones
are handled, not assumed.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from core.config.data_safety import RecoveryTargets, VerificationQuery
from core.config.sources import project_settings
from release.data import verification as verification_module
from release.data.verification import (
    READ_ONLY_REFUSAL,
    DatabaseConnection,
    QueryResult,
    RecoveryFigures,
    Verification,
    format_verification,
    recovery_figures,
    verify_database,
)
from release.testing.fake_clock import MONDAY_MORNING
from tests.postgres_server import RunningPostgres, postgres_server

ROOT = Path(__file__).resolve().parents[1]
NEWEST = datetime(2026, 3, 1, 12, 5, tzinfo=UTC)
FIXTURE = (
    "CREATE TABLE accounts (id serial PRIMARY KEY, email text NOT NULL, updated_at timestamptz NOT NULL)",
    "INSERT INTO accounts (email, updated_at) VALUES"
    " ('a@example.test', '2026-03-01 12:00:00+00'),"
    " ('b@example.test', '2026-03-01 12:05:00+00'),"
    " ('c@example.test', '2026-03-01 11:00:00+00')",
    "CREATE TABLE empty_accounts (LIKE accounts)",
    "CREATE TABLE naive_events (happened_at timestamp NOT NULL)",
    "INSERT INTO naive_events VALUES ('2026-03-01 12:05:00')",
    "CREATE SEQUENCE invoice_numbers",
)
TIMEOUT = 5.0


@pytest.fixture(scope="module")
def postgres() -> Iterator[RunningPostgres]:
    with postgres_server(timezone="America/New_York") as running:
        yield running


@pytest.fixture(scope="module")
def app(postgres: RunningPostgres) -> DatabaseConnection:
    """The restored database: three accounts, the newest written at NEWEST."""
    return postgres.create_database("app", *FIXTURE)


def query(sql: str, expect: str = "positive", name: str = "check") -> VerificationQuery:
    return VerificationQuery.model_validate({"name": name, "sql": sql, "expect": expect})


def verify_one(
    connection: DatabaseConnection, sql: str, expect: str = "positive", **timing: float
) -> QueryResult:
    verification = verify_database(connection, [query(sql, expect)], timing.pop("timeout", TIMEOUT), **timing)
    (result,) = verification.results
    return result


def test_tables_with_known_rows_pass_and_give_the_newest_write_in_utc(app: DatabaseConnection) -> None:
    queries = [
        query("SELECT count(*) FROM accounts", name="accounts-rows"),
        query("SELECT max(updated_at) FROM accounts", "newestWrite", name="newest-write"),
    ]
    verification = verify_database(app, queries, TIMEOUT)
    assert verification.passed, verification.results
    assert [(result.name, result.value) for result in verification.results] == [
        ("accounts-rows", "3"),
        ("newest-write", "2026-03-01T12:05:00+00:00"),
    ]
    assert verification.newest_write == NEWEST
    assert verification.newest_write.tzinfo is UTC


def test_the_projects_own_pulumi_yaml_queries_pass_on_a_schema_with_accounts_updated_at(
    app: DatabaseConnection,
) -> None:
    data_safety = project_settings(ROOT).data_safety
    assert data_safety is not None
    verification = verify_database(app, data_safety.verification, data_safety.query_timeout_seconds)
    assert verification.passed, verification.results
    assert verification.newest_write == NEWEST


def test_the_newest_write_is_the_newest_of_every_newest_write_query(app: DatabaseConnection) -> None:
    queries = [
        query("SELECT min(updated_at) FROM accounts", "newestWrite", name="oldest"),
        query("SELECT max(updated_at) FROM accounts", "newestWrite", name="newest"),
    ]
    assert verify_database(app, queries, TIMEOUT).newest_write == NEWEST


def test_an_empty_table_fails_positive_with_its_value_0(app: DatabaseConnection) -> None:
    result = verify_one(app, "SELECT count(*) FROM empty_accounts")
    assert (result.passed, result.value, result.detail) == (False, "0", "0 is not above 0")


def test_an_empty_table_has_no_newest_write(app: DatabaseConnection) -> None:
    verification = verify_database(
        app, [query("SELECT max(updated_at) FROM empty_accounts", "newestWrite")], TIMEOUT
    )
    assert not verification.passed
    assert verification.results[0].detail == "returned NULL"
    assert verification.newest_write is None


def test_a_query_that_raises_fails_with_the_sql_error_and_the_next_query_still_runs(
    app: DatabaseConnection,
) -> None:
    verification = verify_database(
        app, [query("SELECT count(*) FROM missing", name="broken"), query("SELECT 1", name="after")], TIMEOUT
    )
    broken, after = verification.results
    assert not broken.passed
    assert broken.detail == 'SQL error: 42P01 relation "missing" does not exist'
    assert after.passed


def test_a_slow_query_fails_within_about_its_timeout(app: DatabaseConnection) -> None:
    started = time.monotonic()
    result = verify_one(app, "SELECT count(*) FROM pg_sleep(5)", timeout=0.5)
    assert (result.passed, result.detail) == (False, "exceeded the 0.5 s query timeout")
    assert result.seconds < 2
    assert time.monotonic() - started < 2


def test_a_server_that_misses_its_timeout_and_the_cancel_is_hung_up_on(
    postgres: RunningPostgres, app: DatabaseConnection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The backend is stopped (SIGSTOP) mid-query: no statement timeout, no cancel can reach it."""
    monkeypatch.setattr(verification_module, "CANCEL_GRACE_SECONDS", 0.3)
    answer: list[QueryResult] = []
    started = time.monotonic()
    running = threading.Thread(
        target=lambda: answer.append(verify_one(app, "SELECT pg_sleep(30)", timeout=0.5))
    )
    running.start()
    backend = busy_backend(postgres, "pg_sleep(30)")
    os.kill(backend, signal.SIGSTOP)
    try:
        running.join(timeout=10)
    finally:
        os.kill(backend, signal.SIGCONT)
    assert answer and not answer[0].passed
    assert answer[0].detail.startswith("the connection was lost: "), answer[0].detail
    assert time.monotonic() - started < 3


def busy_backend(postgres: RunningPostgres, running_query: str) -> int:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        found = postgres.fetch(
            "postgres",
            "SELECT pid FROM pg_stat_activity WHERE application_name = 'release-drill-verification'"
            f" AND state = 'active' AND position('{running_query}' in query) > 0",
        )
        if found:
            return int(found[0][0])
        time.sleep(0.02)
    raise AssertionError(f"no backend is running {running_query}")


def test_each_query_runs_read_only_with_the_timeout_set_in_its_transaction(app: DatabaseConnection) -> None:
    queries = [
        query("SELECT setting::int FROM pg_settings WHERE name = 'statement_timeout'", name="timeout-ms"),
        query("SELECT (current_setting('transaction_read_only') = 'on')::int", name="read-only"),
    ]
    timeout_ms, read_only = verify_database(app, queries, 1.5).results
    assert (timeout_ms.value, read_only.value) == ("1500", "1")


WRITES = {
    "insert": "INSERT INTO accounts (email, updated_at) VALUES ('x@example.test', now())",
    "delete-in-a-cte": "WITH gone AS (DELETE FROM accounts RETURNING 1) SELECT count(*) FROM gone",
    "update": "UPDATE accounts SET email = 'x@example.test'",
    "sequence": "SELECT nextval('invoice_numbers')",
    "create-table-as": "CREATE TABLE copied AS SELECT * FROM accounts",
}


@pytest.mark.parametrize("sql", WRITES.values(), ids=WRITES.keys())
def test_a_query_that_tries_to_write_is_refused_and_the_data_is_unchanged(
    postgres: RunningPostgres, app: DatabaseConnection, sql: str
) -> None:
    result = verify_one(app, sql)
    assert (result.passed, result.detail) == (False, READ_ONLY_REFUSAL)
    assert postgres.fetch("app", "SELECT count(*), max(updated_at), min(email) FROM accounts") == [
        (3, NEWEST, "a@example.test")
    ]
    assert postgres.fetch("app", "SELECT last_value, is_called FROM invoice_numbers") == [(1, False)]
    assert postgres.fetch("app", "SELECT to_regclass('copied')") == [(None,)]


def test_a_query_cannot_switch_its_transaction_to_read_write(
    postgres: RunningPostgres, app: DatabaseConnection
) -> None:
    result = verify_one(app, "SELECT set_config('transaction_read_only', 'off', true)")
    assert not result.passed
    assert "read-write" in result.detail


def test_a_naive_timestamp_fails_so_the_rpo_is_not_off_by_a_time_zone(app: DatabaseConnection) -> None:
    result = verify_one(app, "SELECT max(happened_at) FROM naive_events", "newestWrite")
    assert not result.passed
    assert "use timestamptz so the RPO is not off by a time zone" in result.detail


SHAPES = {
    "null": ("SELECT NULL::int", "positive", "returned NULL"),
    "no-row": ("SELECT 1 WHERE false", "positive", "returned no row; expected one"),
    "two-rows": ("SELECT id FROM accounts", "positive", "returned more than one row; expected one"),
    "two-columns": ("SELECT 1, 2", "positive", "returned 2 columns; expected one"),
    "text": ("SELECT 'many'", "positive", "returned a text, not a number"),
    "boolean": ("SELECT true", "positive", "returned a bool, not a number"),
    "nan": ("SELECT 'NaN'::numeric", "positive", "returned NaN, not a number"),
    "negative": ("SELECT -1", "positive", "-1 is not above 0"),
    "a-date": ("SELECT current_date", "newestWrite", "returned a date, not a timestamptz"),
    "a-count": ("SELECT count(*) FROM accounts", "newestWrite", "returned a int8, not a timestamptz"),
}


@pytest.mark.parametrize(("sql", "expect", "detail"), SHAPES.values(), ids=SHAPES.keys())
def test_anything_but_one_row_one_fitting_column_fails_with_what_came_back(
    app: DatabaseConnection, sql: str, expect: str, detail: str
) -> None:
    result = verify_one(app, sql, expect)
    assert (result.passed, result.detail) == (False, detail)


def test_numbers_of_every_kind_pass_when_above_0(app: DatabaseConnection) -> None:
    for sql in ("SELECT 2::smallint", "SELECT 0.5::numeric", "SELECT 0.25::float8", "SELECT 10::bigint"):
        assert verify_one(app, sql).passed, sql


def refused(connection: DatabaseConnection) -> Verification:
    queries = [query("SELECT 1", name="first"), query("SELECT now()", "newestWrite", name="second")]
    return verify_database(connection, queries, TIMEOUT, connect_timeout_seconds=3)


def assert_every_query_failed_once_with(verification: Verification, words: str, secret: str) -> None:
    details = {result.detail for result in verification.results}
    assert len(details) == 1 and not verification.passed, details
    (detail,) = details
    assert words in detail and "\n" not in detail
    assert verification.seconds < 3.5
    text = "\n".join([json.dumps(verification.to_json()), repr(verification), str(verification)])
    assert secret not in text


def test_a_wrong_password_fails_every_query_clearly_fast_and_never_shows_the_password(
    postgres: RunningPostgres,
) -> None:
    wrong = "not-the-password-4d1e"
    connection = postgres.connection("app", password=wrong)
    verification = refused(connection)
    assert_every_query_failed_once_with(verification, "password authentication failed", wrong)
    assert verification.results[0].detail.startswith(
        f"could not connect to fixture_admin@127.0.0.1:{postgres.port}/app: "
    )
    assert wrong not in repr(connection) + str(connection)
    assert postgres.password not in repr(postgres)


def test_a_closed_port_fails_every_query_clearly_and_fast(postgres: RunningPostgres) -> None:
    closed = DatabaseConnection("127.0.0.1", 9, "app", "fixture_admin", "closed-port-secret", "disable")
    assert_every_query_failed_once_with(refused(closed), "Connection refused", "closed-port-secret")


def test_an_unknown_host_fails_every_query_clearly(postgres: RunningPostgres) -> None:
    unknown = DatabaseConnection("db.example.test", 5432, "app", "fixture_admin", "dns-secret", "disable")
    assert_every_query_failed_once_with(refused(unknown), "db.example.test", "dns-secret")


def test_tls_is_required_unless_said_otherwise(postgres: RunningPostgres) -> None:
    plain = postgres.connection("app")
    required = DatabaseConnection(plain.host, plain.port, plain.database, plain.user, plain.password)
    assert required.sslmode == "require"
    assert_every_query_failed_once_with(refused(required), "SSL", postgres.password)


def test_an_error_message_that_would_hold_the_password_masks_it(postgres: RunningPostgres) -> None:
    result = verify_one(postgres.connection("app"), f"SELECT '{postgres.password}'::int")
    assert result.detail == 'SQL error: 22P02 invalid input syntax for type integer: "***"'


def test_the_password_is_in_no_repr_or_str_of_a_connection() -> None:
    connection = DatabaseConnection("db.example.test", 5432, "app", "drill", "repr-secret")
    assert str(connection) == "drill@db.example.test:5432/app"
    assert "repr-secret" not in repr(connection)


def test_the_verification_json_is_plain_and_keeps_every_result(app: DatabaseConnection) -> None:
    queries = [query("SELECT max(updated_at) FROM accounts", "newestWrite", name="newest-write")]
    as_json = json.loads(json.dumps(verify_database(app, queries, TIMEOUT).to_json()))
    assert as_json["passed"] is True
    assert as_json["newestWrite"] == "2026-03-01T12:05:00+00:00"
    assert as_json["results"][0]["value"] == "2026-03-01T12:05:00+00:00"


START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
TARGET_TIME = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
TARGETS = RecoveryTargets(rto_minutes=30, rpo_minutes=15)


def figures_for(rto_seconds: float, rpo_seconds: float | None) -> RecoveryFigures:
    newest = None if rpo_seconds is None else TARGET_TIME - timedelta(seconds=rpo_seconds)
    return recovery_figures(START, START + timedelta(seconds=rto_seconds), TARGET_TIME, newest, TARGETS)


def test_recovery_within_both_targets_passes() -> None:
    figures = figures_for(1200, 300)
    assert figures.passed
    assert (figures.rto.seconds, figures.rpo.seconds) == (1200, 300)
    assert figures.rto.missed_by_seconds is None and figures.rpo.missed_by_seconds is None


def test_an_rto_over_its_target_fails_missed_by_the_difference() -> None:
    figures = figures_for(1800 + 95, 300)
    assert not figures.passed and not figures.rto.passed and figures.rpo.passed
    assert figures.rto.missed_by_seconds == 95


def test_an_rpo_over_its_target_fails_missed_by_the_difference() -> None:
    figures = figures_for(600, 900 + 60)
    assert (figures.passed, figures.rpo.passed, figures.rpo.missed_by_seconds) == (False, False, 60)


def test_a_newest_write_after_the_target_time_counts_as_0_and_says_so() -> None:
    figures = figures_for(600, -40)
    assert figures.passed and figures.rpo.seconds == 0
    assert figures.rpo.note == "the newest write is 40 s after the target time; counted as 0"


def test_an_unknown_newest_write_leaves_the_rpo_unknown_and_fails() -> None:
    figures = figures_for(600, None)
    assert not figures.passed and figures.rpo.seconds is None and figures.rpo.missed_by_seconds is None
    assert json.loads(json.dumps(figures.to_json()))["rpo"] == {
        "seconds": None,
        "targetSeconds": 900,
        "passed": False,
        "missedBySeconds": None,
        "note": "no verification query found a newest write",
    }


def test_naive_times_are_refused_rather_than_guessed() -> None:
    with pytest.raises(ValueError, match="time-zone-aware"):
        recovery_figures(START.replace(tzinfo=None), START, TARGET_TIME, None, TARGETS)


def test_the_report_table_shows_each_query_and_how_far_each_target_was_missed() -> None:
    verification = Verification(
        (
            QueryResult("accounts-rows", True, "1000", "above 0", 0.01),
            QueryResult("newest-write", False, None, "returned NULL", 0.01),
        ),
        None,
        0.02,
    )
    assert format_verification(verification, figures_for(1800 + 754, None)).splitlines() == [
        "query          value        verdict",
        "accounts-rows  1000         passed",
        "newest-write   -            FAILED: returned NULL",
        "",
        "RTO            42 min 34 s  MISSED by 12 min 34 s (target 30 min)",
        "RPO            unknown      MISSED (target 15 min); no verification query found a newest write",
    ]


def test_infinity_is_no_positive_count(app: DatabaseConnection) -> None:
    result = verify_one(app, "SELECT 'Infinity'::float8")
    assert not result.passed and "infinite" in result.detail


def test_a_huge_result_reaches_this_process_as_at_most_two_rows(app: DatabaseConnection) -> None:
    started = time.monotonic()
    result = verify_one(app, "SELECT repeat('x', 1000) FROM generate_series(1, 400000)")
    assert not result.passed and "more than one row" in result.detail
    assert time.monotonic() - started < 2  # the server sent two rows, not 400 MB


def test_a_write_hidden_in_a_cte_is_refused_as_a_write(app: DatabaseConnection) -> None:
    result = verify_one(app, "WITH gone AS (DELETE FROM accounts RETURNING 1) SELECT count(*) FROM gone")
    assert not result.passed and result.detail == READ_ONLY_REFUSAL


def test_a_newest_write_far_after_the_target_time_makes_the_rpo_unknown_not_met() -> None:
    now = MONDAY_MORNING
    figures = recovery_figures(
        now, now, now - timedelta(days=3), now + timedelta(days=300), RecoveryTargets()
    )
    assert not figures.rpo.passed and figures.rpo.seconds is None
    assert "query or a clock is wrong" in figures.rpo.note
