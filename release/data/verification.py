"""Proving a restored database is usable: the project's verification queries (`dataSafety` in
Pulumi.yaml) run against it, and the drill's RTO and RPO measured against the recovery targets.

Each query runs alone in a READ ONLY transaction that is always rolled back, so a drill can never
change what it verifies: a query that tries to write is refused by PostgreSQL and reported as a failed
check. Nothing waits forever: the connection has `connect_timeout`; each transaction sets its own
`statement_timeout` (SET LOCAL, and the session a default one); should the server miss it, the client cancels
the query a little later, and hangs up if even that goes unanswered; TCP keepalives end a connection
whose network went silent.

A check never raises: an SQL error, a timeout or a refused connection is a failed QueryResult with a
one-line detail. The password is never in a detail, a repr, a str or the JSON.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import psycopg

from core.config.data_safety import RecoveryTargets, VerificationExpect, VerificationQuery
from core.text import one_line

CANCEL_GRACE_SECONDS = 2.0
"""How long after the statement timeout the client cancels a query itself (a server that missed
it), and how long after that it hangs up."""
MAX_SHOWN_CHARS = 200
"""The longest value or error message a result keeps (an odd column must not bloat a record)."""
SCRUBBED_PASSWORD_CHARS = 8
"""Passwords this long are masked wherever a message holds them (PostgreSQL's never should; RDS
requires 8 or more characters). A shorter one would only match by chance and mangle the message."""
READ_ONLY_REFUSAL = "refused: the query tried to write; verification runs read-only"


@dataclass(frozen=True)
class DatabaseConnection:
    """Where the restored database answers. `sslmode` is `require` unless a test says otherwise: the
    drill's password never crosses a network in clear."""

    host: str
    port: int
    database: str
    user: str
    password: str = field(repr=False)
    sslmode: str = "require"

    def __str__(self) -> str:
        return f"{self.user}@{self.host}:{self.port}/{self.database}"


@dataclass(frozen=True)
class QueryResult:
    name: str
    passed: bool
    value: str | None
    detail: str
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "passed": self.passed,
            "value": self.value,
            "detail": self.detail,
            "seconds": round(self.seconds, 3),
        }


@dataclass(frozen=True)
class Verification:
    results: tuple[QueryResult, ...]
    newest_write: datetime | None
    """The newest write any passing newestWrite query found (UTC); None when none did."""
    seconds: float

    @property
    def passed(self) -> bool:
        return all(result.passed for result in self.results)

    def to_json(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "newestWrite": _iso(self.newest_write),
            "seconds": round(self.seconds, 3),
            "results": [result.to_json() for result in self.results],
        }


def verify_database(
    connection: DatabaseConnection,
    queries: Sequence[VerificationQuery],
    timeout_seconds: float,
    connect_timeout_seconds: float = 10,
) -> Verification:
    """Every query in `queries`, each in its own read-only transaction with `timeout_seconds`; when
    the database cannot be reached, every query fails with that one connection error."""
    started = time.monotonic()
    try:
        session = _connect(connection, timeout_seconds, connect_timeout_seconds)
    except psycopg.Error as error:
        detail = f"could not connect to {connection}: {_message(error, connection)}"
        failed = tuple(QueryResult(query.name, False, None, detail, 0.0) for query in queries)
        return Verification(failed, None, time.monotonic() - started)
    with session:
        checked = [_run(session, query, timeout_seconds, connection) for query in queries]
    writes = [written for _, written in checked if written is not None]
    return Verification(
        tuple(result for result, _ in checked), max(writes, default=None), time.monotonic() - started
    )


def _connect(
    connection: DatabaseConnection, timeout_seconds: float, connect_timeout_seconds: float
) -> psycopg.Connection[Any]:
    session = psycopg.connect(
        host=connection.host,
        port=connection.port,
        dbname=connection.database,
        user=connection.user,
        password=connection.password,
        sslmode=connection.sslmode,
        connect_timeout=max(1, math.ceil(connect_timeout_seconds)),
        options=f"-c statement_timeout={_milliseconds(timeout_seconds)} -c default_transaction_read_only=on",
        application_name="release-drill-verification",
        keepalives=1,
        keepalives_idle=10,
        keepalives_interval=5,
        keepalives_count=3,
    )
    session.read_only = True
    return session


def _run(
    session: psycopg.Connection[Any],
    query: VerificationQuery,
    timeout_seconds: float,
    connection: DatabaseConnection,
) -> tuple[QueryResult, datetime | None]:
    started = time.monotonic()

    def result(passed: bool, value: str | None, detail: str) -> QueryResult:
        return QueryResult(query.name, passed, value, detail, time.monotonic() - started)

    try:
        with (
            _ClientDeadline(session, timeout_seconds),
            session.transaction(force_rollback=True),
            session.cursor() as cursor,
        ):
            cursor.execute(
                "SELECT set_config('statement_timeout', %s, true)", (str(_milliseconds(timeout_seconds)),)
            )
            cursor.execute(_at_most_two_rows(query.sql))  # the project's own declared SQL, one statement
            columns = cursor.description
            rows = cursor.fetchmany(2) if columns is not None else []
            type_names = [_type_name(cursor, column.type_code) for column in columns or []]
    except psycopg.errors.ReadOnlySqlTransaction:
        return result(False, None, READ_ONLY_REFUSAL), None
    except psycopg.errors.FeatureNotSupported as error:
        if "data-modifying" in str(error):  # a WITH ... (DELETE ...) inside the row limit
            return result(False, None, READ_ONLY_REFUSAL), None
        return result(False, None, f"SQL error: {_message(error, connection)}"), None
    except psycopg.errors.QueryCanceled:
        return result(False, None, f"exceeded the {timeout_seconds:g} s query timeout"), None
    except psycopg.Error as error:
        said = "the connection was lost" if session.closed else "SQL error"
        return result(False, None, f"{said}: {_message(error, connection)}"), None
    problem = _shape_problem(columns is not None, len(type_names), rows)
    if problem:
        return result(False, None, problem), None
    value = rows[0][0]
    if query.expect is VerificationExpect.POSITIVE:
        return result(*_positive(value, type_names[0])), None
    written = _newest_write(value, type_names[0])
    if isinstance(written, str):
        return result(False, _shown(value), written), None
    return result(True, written.isoformat(), "the newest write the restored data holds"), written


def _shape_problem(returns_rows: bool, columns: int, rows: list[Any]) -> str | None:
    if not returns_rows:
        return "returned no rows (not a query): expected one row, one column"
    if columns != 1:
        return f"returned {columns} columns; expected one"
    if not rows:
        return "returned no row; expected one"
    if len(rows) > 1:
        return "returned more than one row; expected one"
    if rows[0][0] is None:
        return "returned NULL"
    return None


def _positive(value: Any, type_name: str) -> tuple[bool, str | None, str]:
    shown = _shown(value)
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        return False, shown, f"returned a {type_name}, not a number"
    if value != value:  # NaN, float or numeric
        return False, shown, "returned NaN, not a number"
    if value in (math.inf, -math.inf):  # infinite: no count of rows
        return False, shown, "returned an infinite value, not a count"
    if value > 0:
        return True, shown, "above 0"
    return False, shown, f"{shown} is not above 0"


def _newest_write(value: Any, type_name: str) -> datetime | str:
    """The value as a UTC time, or why it is not a newest write."""
    if not isinstance(value, datetime):
        return f"returned a {type_name}, not a timestamptz"
    if value.tzinfo is None:
        return "returned a timestamp without time zone: use timestamptz so the RPO is not off by a time zone"
    return value.astimezone(UTC)


class _ClientDeadline:
    """The client's own deadline on one query, for a server that misses its statement_timeout: a
    grace after the timeout the query is cancelled; a grace after that (a server that ignores the
    cancel, or a network that swallows it) the socket is shut down, so the query fails at once with
    the connection lost."""

    def __init__(self, session: psycopg.Connection[Any], timeout_seconds: float) -> None:
        self._session = session
        self._timeout_seconds = timeout_seconds
        self._finished = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name="drill-query-deadline", daemon=True)

    def __enter__(self) -> None:
        self._watcher.start()

    def __exit__(self, *_: object) -> None:
        self._finished.set()
        self._watcher.join()

    def _watch(self) -> None:
        if self._finished.wait(self._timeout_seconds + CANCEL_GRACE_SECONDS):
            return
        with contextlib.suppress(psycopg.Error):
            self._session.cancel_safe(timeout=CANCEL_GRACE_SECONDS)
        if self._finished.wait(CANCEL_GRACE_SECONDS):
            return
        with contextlib.suppress(OSError, psycopg.Error):
            descriptor = os.dup(self._session.pgconn.socket)
            with socket.socket(fileno=descriptor) as hung:
                hung.shutdown(socket.SHUT_RDWR)


def _type_name(cursor: psycopg.Cursor[Any], oid: int) -> str:
    info = cursor.adapters.types.get(oid)
    return info.name if info is not None else f"value of type oid {oid}"


def _milliseconds(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def _message(error: psycopg.Error, connection: DatabaseConnection) -> str:
    """One line of PostgreSQL's message (its SQLSTATE first where there is one), never the password."""
    primary = error.diag.message_primary if error.diag.sqlstate else None
    text = " ".join(str(primary or error).split())
    if error.sqlstate:
        text = f"{error.sqlstate} {text}"
    if len(connection.password) >= SCRUBBED_PASSWORD_CHARS:
        text = text.replace(connection.password, "***")
    return _clipped(one_line(text))


def _shown(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    return _clipped(one_line(value))


def _clipped(text: str) -> str:
    return text if len(text) <= MAX_SHOWN_CHARS else text[: MAX_SHOWN_CHARS - 1] + "…"


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


@dataclass(frozen=True)
class RecoveryFigure:
    """One recovery objective as the drill measured it: `seconds` (None when it could not be measured)
    against `target_seconds`."""

    name: str
    seconds: float | None
    target_seconds: int
    note: str = ""

    @property
    def passed(self) -> bool:
        return self.seconds is not None and self.seconds <= self.target_seconds

    @property
    def missed_by_seconds(self) -> float | None:
        if self.seconds is None or self.seconds <= self.target_seconds:
            return None
        return self.seconds - self.target_seconds

    def to_json(self) -> dict[str, Any]:
        missed = self.missed_by_seconds
        return {
            "seconds": None if self.seconds is None else round(self.seconds, 3),
            "targetSeconds": self.target_seconds,
            "passed": self.passed,
            "missedBySeconds": None if missed is None else round(missed, 3),
            "note": self.note or None,
        }


@dataclass(frozen=True)
class RecoveryFigures:
    rto: RecoveryFigure
    """From the drill's start to its verified restore."""
    rpo: RecoveryFigure
    """From the newest write the restored data holds to the time the drill restored to."""

    @property
    def passed(self) -> bool:
        return self.rto.passed and self.rpo.passed

    def to_json(self) -> dict[str, Any]:
        return {"passed": self.passed, "rto": self.rto.to_json(), "rpo": self.rpo.to_json()}


CLOCK_SKEW_SECONDS = 60
"""How far a newest write may lie after the target time (clocks, the seconds between a snapshot's
requested and actual time) before the RPO is called unknown."""


def recovery_figures(
    started_at: datetime,
    verified_at: datetime,
    target_time: datetime,
    newest_write: datetime | None,
    targets: RecoveryTargets,
) -> RecoveryFigures:
    """RTO = verified_at - started_at; RPO = target_time - newest_write, each against its target. A
    newest write after the target time counts as 0 (and says so); no newest write: the RPO is
    unknown, which fails."""
    moments = (started_at, verified_at, target_time, newest_write)
    if any(moment is not None and moment.tzinfo is None for moment in moments):
        raise ValueError("recovery figures need time-zone-aware times")
    rto = RecoveryFigure("RTO", (verified_at - started_at).total_seconds(), targets.rto_minutes * 60)
    rpo_target = targets.rpo_minutes * 60
    if newest_write is None:
        rpo = RecoveryFigure("RPO", None, rpo_target, "no verification query found a newest write")
    else:
        lost = (target_time - newest_write).total_seconds()
        if lost < -CLOCK_SKEW_SECONDS:
            # Restored data cannot hold a write after the point it was restored to: the query or a
            # clock is wrong, and a pass would hide any loss.
            note = (
                f"the newest write is {-lost:g} s after the target time (more than the "
                f"{CLOCK_SKEW_SECONDS} s a clock may be off): the newestWrite query or a clock is wrong"
            )
            rpo = RecoveryFigure("RPO", None, rpo_target, note)
        else:
            note = f"the newest write is {-lost:g} s after the target time; counted as 0" if lost < 0 else ""
            rpo = RecoveryFigure("RPO", max(lost, 0.0), rpo_target, note)
    return RecoveryFigures(rto, rpo)


def format_verification(verification: Verification, figures: RecoveryFigures) -> str:
    """The drill's verification for its report: one row a query (value and verdict), then the RTO and
    RPO against their targets."""
    rows = [("query", "value", "verdict")] + [
        (result.name, result.value or "-", "passed" if result.passed else f"FAILED: {result.detail}")
        for result in verification.results
    ]
    rows += [("", "", "")] + [_figure_row(figure) for figure in (figures.rto, figures.rpo)]
    widths = [max(len(row[column]) for row in rows) for column in (0, 1)]
    lines = [f"{row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]}".rstrip() for row in rows]
    return "\n".join(lines)


def _figure_row(figure: RecoveryFigure) -> tuple[str, str, str]:
    measured = "unknown" if figure.seconds is None else _duration(figure.seconds)
    missed = figure.missed_by_seconds
    if figure.passed:
        verdict = f"met (target {_duration(figure.target_seconds)})"
    elif missed is not None:
        verdict = f"MISSED by {_duration(missed)} (target {_duration(figure.target_seconds)})"
    else:
        verdict = f"MISSED (target {_duration(figure.target_seconds)})"
    return figure.name, measured, verdict + (f"; {figure.note}" if figure.note else "")


def _duration(seconds: float) -> str:
    """`0.4 s`, `95 s` or `12 min 5 s`: tenths below 10 s, minutes where they help."""
    if seconds < 10:
        return f"{round(seconds, 1):g} s"
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    minutes, rest = divmod(whole, 60)
    return f"{minutes} min {rest} s" if rest else f"{minutes} min"


_READS = re.compile(r"\s*(select|with|values|table)\b", re.IGNORECASE)


def _at_most_two_rows(sql: str) -> str:
    """A query that reads is wrapped so the server sends at most two rows (one is expected; a second
    says there are more): a query that returns millions never reaches this process whole. Anything
    else runs as declared, and a write is refused by the read-only transaction."""
    return f"SELECT * FROM ({sql}) AS verified LIMIT 2" if _READS.match(sql) else sql
