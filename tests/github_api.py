"""A real HTTP server on 127.0.0.1 that answers like GitHub's REST API for a run's review history.

`serve_api(reply)` answers `GET [/api/v3]/repos/{owner}/{repo}/actions/runs/{id}/approvals` with
`reply` (approved, rejected or pending reviews, an error status, a trickle, an oversized or a
malformed body), `GET [/api/v3]/repos/{owner}/{repo}/commits/{sha}` with `commit` (by default a
commit GitHub links to alice's account) and every other path with GitHub's 404. Each request is
recorded (path and headers) so a test can check what was asked, and how the token was sent.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

APPROVALS_PATH = re.compile(r"(/api/v3)?/repos/[^/]+/[^/]+/actions/runs/[0-9]+/approvals")
COMMIT_PATH = re.compile(r"(/api/v3)?/repos/[^/]+/[^/]+/commits/(?P<sha>[0-9a-f]{40})")
DOCS = "https://docs.github.com/rest/actions/workflow-runs#get-the-review-history-for-a-workflow-run"
CHUNK = 64 * 1024


@dataclass(frozen=True)
class ReceivedRequest:
    path: str
    authorization: str | None
    accept: str | None
    api_version: str | None


class Answer:
    """How a reply writes its answer; `stop` is set when the server shuts down."""

    def __init__(self, handler: BaseHTTPRequestHandler, stop: threading.Event) -> None:
        self.handler = handler
        self.stop = stop
        self.request = ReceivedRequest(
            handler.path,
            handler.headers.get("Authorization"),
            handler.headers.get("Accept"),
            handler.headers.get("X-GitHub-Api-Version"),
        )

    def head(self, status: int, length: int | None = None, headers: dict[str, str] | None = None) -> None:
        self.handler.send_response(status)
        self.handler.send_header("Content-Type", "application/json; charset=utf-8")
        if length is not None:
            self.handler.send_header("Content-Length", str(length))
        for name, value in (headers or {}).items():
            self.handler.send_header(name, value)
        self.handler.end_headers()

    def body(self, status: int, payload: bytes, headers: dict[str, str] | None = None) -> None:
        self.head(status, len(payload), headers)
        self.handler.wfile.write(payload)

    def json(self, status: int, document: Any, headers: dict[str, str] | None = None) -> None:
        self.body(status, json.dumps(document).encode(), headers)

    def write(self, data: bytes) -> None:
        self.handler.wfile.write(data)


Reply = Callable[[Answer], None]


def review(state: str, login: str, environment: str = "production", comment: str = "") -> dict[str, Any]:
    """One entry of the review history, shaped like GitHub's."""
    return {
        "environments": [{"id": 161088068, "name": environment, "url": "https://api.github.test/env"}],
        "state": state,
        "user": {"login": login, "id": 1, "type": "User"},
        "comment": comment,
    }


def commit_by(login: str | None, name: str = "Alice Example") -> Reply:
    """200 with the asked commit, shaped like GitHub's: its git author `name`, linked to the GitHub
    account `login` (None: GitHub links the author's email to no account, and says `"author": null`)."""

    def reply(answer: Answer) -> None:
        match = COMMIT_PATH.fullmatch(answer.request.path)
        sha = match.group("sha") if match else ""
        git_author = {"name": name, "email": "author@example.test", "date": "2026-11-23T08:00:00Z"}
        answer.json(
            200,
            {
                "sha": sha,
                "commit": {"author": git_author, "committer": git_author, "message": "Ship it"},
                "author": {"login": login, "id": 2, "type": "User"} if login is not None else None,
                "committer": {"login": "web-flow", "id": 3, "type": "User"},
            },
        )

    return reply


def approvals(*entries: dict[str, Any]) -> Reply:
    """200 with these review entries."""
    return lambda answer: answer.json(200, list(entries))


def error(status: int, message: str, headers: dict[str, str] | None = None) -> Reply:
    """An error status with GitHub's error body."""
    return lambda answer: answer.json(status, {"message": message, "documentation_url": DOCS}, headers)


def echo_token(status: int) -> Reply:
    """A hostile (or broken) server: its error message quotes the Authorization header it was sent."""

    def reply(answer: Answer) -> None:
        answer.json(status, {"message": f"not accepted: {answer.request.authorization}"})

    return reply


def malformed(payload: bytes) -> Reply:
    """200 with this body, whatever it is."""
    return lambda answer: answer.body(200, payload)


def not_http() -> Reply:
    """Bytes that are no HTTP response at all."""
    return lambda answer: answer.write(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")


def redirect(location: str) -> Reply:
    return lambda answer: answer.json(302, {}, {"Location": location})


class Trickle:
    """200 whose body arrives one byte per `interval` seconds: never done, never silent for long.

    Bounded: it stops after `max_seconds`, when the client goes away, or when the server stops.
    """

    def __init__(self, interval: float = 0.05, max_seconds: float = 10.0) -> None:
        self.interval = interval
        self.max_seconds = max_seconds
        self.bytes_sent = 0

    def __call__(self, answer: Answer) -> None:
        answer.head(200, length=4096)
        answer.write(b"[")
        for _ in range(int(self.max_seconds / self.interval)):
            if answer.stop.wait(self.interval):
                return
            answer.write(b" ")
            self.bytes_sent += 1


class Oversized:
    """200 with `total_bytes` of review entries, generated chunk by chunk as they are sent.

    Without `declare_length` the body has no Content-Length (it ends when the connection closes), so
    only counting what arrives can catch it. `bytes_sent` counts what left before the client hung up.
    """

    def __init__(self, total_bytes: int, declare_length: bool = False) -> None:
        self.total_bytes = total_bytes
        self.declare_length = declare_length
        self.bytes_sent = 0

    def __call__(self, answer: Answer) -> None:
        entry = (json.dumps(review("approved", "bob")) + ",").encode()
        chunk = entry * (CHUNK // len(entry))
        answer.head(200, self.total_bytes if self.declare_length else None)
        answer.write(b"[")
        self.bytes_sent = 1
        while self.bytes_sent < self.total_bytes and not answer.stop.is_set():
            piece = chunk[: self.total_bytes - self.bytes_sent]
            answer.write(piece)
            self.bytes_sent += len(piece)


@contextmanager
def serve_api(
    reply: Reply, received: list[ReceivedRequest] | None = None, commit: Reply | None = None
) -> Iterator[str]:
    """Start the API on 127.0.0.1; yields its base URL (what GITHUB_API_URL would be).

    Every request is appended to `received`. On exit the stop event ends any trickle, then the
    server shuts down."""
    stop = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        timeout = 5  # a client that connects and says nothing does not hold a thread for long

        def do_GET(self) -> None:
            answer = Answer(self, stop)
            if received is not None:
                received.append(answer.request)
            try:
                if APPROVALS_PATH.fullmatch(self.path):
                    reply(answer)
                elif COMMIT_PATH.fullmatch(self.path):
                    (commit or commit_by("alice"))(answer)
                else:
                    answer.json(404, {"message": "Not Found", "documentation_url": DOCS})
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (a deadline, a size cap): what these tests want

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        stop.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
