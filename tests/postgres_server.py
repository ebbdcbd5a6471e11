"""A real PostgreSQL (Debian's binaries) on 127.0.0.1 at a free port, in a temporary directory: the
database the drill verification tests and bench/drill_bench.py run their queries against.

TCP logins use scram-sha-256 with a password made for this server, so the tests exercise a real
login. initdb refuses to run as root: as root, the server runs as an unprivileged system user
(`pgtest`, created if missing) that owns the data directory. Durability is off (fsync, full pages):
the data lives as long as the test, and startup takes a second or two.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest

from release.data.verification import DatabaseConnection

MISSING = (
    "PostgreSQL's initdb/postgres are not installed (Debian's `postgresql` package; .ci/run installs it)"
)
SERVER_USER = "pgtest"
SUPERUSER = "fixture_admin"
READY_SECONDS = 30
STOP_SECONDS = 10


def server_binaries() -> tuple[str, str] | None:
    """initdb and postgres from PATH, else from /usr/lib/postgresql/<newest>/bin; None when missing."""
    found = shutil.which("initdb"), shutil.which("postgres")
    if found[0] and found[1]:
        return found[0], found[1]
    for bin_dir in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version, reverse=True):
        initdb, postgres = Path(bin_dir, "initdb"), Path(bin_dir, "postgres")
        if initdb.exists() and postgres.exists():
            return str(initdb), str(postgres)
    return None


def binaries() -> tuple[str, str]:
    """The two binaries; where they are missing, a skip with the reason (a failure under CI=true)."""
    found = server_binaries()
    if found:
        return found
    if os.environ.get("CI") == "true":
        pytest.fail(MISSING)
    pytest.skip(MISSING)


def _version(bin_dir: str) -> int:
    version = Path(bin_dir).parent.name
    return int(version) if version.isdigit() else 0


@dataclass(frozen=True)
class RunningPostgres:
    host: str
    port: int
    password: str = field(repr=False)
    """The superuser's (SUPERUSER) password, made for this server."""

    def connection(self, database: str = "postgres", password: str | None = None) -> DatabaseConnection:
        """How the verification reaches `database` as the superuser (no TLS on this local server)."""
        chosen = self.password if password is None else password
        return DatabaseConnection(self.host, self.port, database, SUPERUSER, chosen, sslmode="disable")

    def execute(self, database: str, *statements: str) -> None:
        """Fixture SQL as the superuser, committed (autocommit, so CREATE DATABASE works too)."""
        with self.session(database) as session:
            for statement in statements:
                session.execute(statement)

    def fetch(self, database: str, query: str) -> list[tuple[Any, ...]]:
        with self.session(database) as session:
            return session.execute(query).fetchall()

    def create_database(self, name: str, *statements: str) -> DatabaseConnection:
        self.execute("postgres", f"CREATE DATABASE {name}")
        self.execute(name, *statements)
        return self.connection(name)

    def session(self, database: str) -> psycopg.Connection[tuple[Any, ...]]:
        return psycopg.connect(
            host=self.host,
            port=self.port,
            dbname=database,
            user=SUPERUSER,
            password=self.password,
            sslmode="disable",
            autocommit=True,
            connect_timeout=5,
        )


@contextmanager
def postgres_server(timezone: str = "UTC") -> Iterator[RunningPostgres]:
    """A fresh PostgreSQL whose sessions use `timezone`; stopped (killed if it does not stop within
    STOP_SECONDS) when the block ends, however it ends."""
    initdb, postgres = binaries()
    password = secrets.token_urlsafe(24)
    owner = _server_user()
    with tempfile.TemporaryDirectory(prefix="pgtest-") as scratch:
        directory = Path(scratch)
        data = directory / "data"
        (directory / "password").write_text(password)
        _hand_over(directory, owner)
        _run_as(
            owner,
            [
                initdb,
                "-D",
                str(data),
                "-U",
                SUPERUSER,
                "--pwfile",
                str(directory / "password"),
                "--auth=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
            directory,
        )
        (directory / "password").unlink()
        port = _free_port()
        log = (directory / "server.log").open("w")
        server = subprocess.Popen(
            [
                postgres,
                "-D",
                str(data),
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-k",
                "",
                "-c",
                "fsync=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                f"timezone={timezone}",
                "-c",
                "max_connections=40",
            ],
            cwd=directory,
            stdout=log,
            stderr=subprocess.STDOUT,
            **_as_user(owner),
        )
        try:
            running = RunningPostgres("127.0.0.1", port, password)
            _wait_ready(running, server, directory / "server.log")
            yield running
        finally:
            server.terminate()
            try:
                server.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
            log.close()


def _server_user() -> str | None:
    """Who runs initdb and postgres: this user, or SERVER_USER when this is root."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SERVER_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SERVER_USER],
            check=True,
            capture_output=True,
            timeout=30,
        )
    return SERVER_USER


def _as_user(owner: str | None) -> dict[str, Any]:
    return {} if owner is None else {"user": owner, "group": pwd.getpwnam(owner).pw_gid, "extra_groups": []}


def _hand_over(directory: Path, owner: str | None) -> None:
    if owner is None:
        return
    account = pwd.getpwnam(owner)
    for path in (directory, *directory.rglob("*")):
        os.chown(path, account.pw_uid, account.pw_gid)


def _run_as(owner: str | None, command: list[str], cwd: Path) -> None:
    done = subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, timeout=120, check=False, **_as_user(owner)
    )
    if done.returncode != 0:
        raise RuntimeError(f"{Path(command[0]).name} failed: {done.stdout}{done.stderr}")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_ready(running: RunningPostgres, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"postgres exited with {server.returncode}: {log.read_text()[-2000:]}")
        try:
            with running.session("postgres"):
                return
        except psycopg.OperationalError:
            time.sleep(0.05)
    raise RuntimeError(f"PostgreSQL on port {running.port} was not ready within {READY_SECONDS} s")
