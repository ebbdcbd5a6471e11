"""Real HTTP servers on 127.0.0.1 for health-check tests: one per behaviour, each on its own port."""

from __future__ import annotations

import json
import socket
import socketserver
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Reply = tuple[int, dict[str, object]]
Behaviour = Callable[[int], Reply]
"""Given the 0-based request number, the status and JSON body to answer with."""


def healthy(version: str = "1.4.2") -> Behaviour:
    return lambda _: (200, {"status": "ok", "version": version})


def failing(status: int = 500) -> Behaviour:
    return lambda _: (status, {"status": "error"})


def slow(seconds: float, version: str = "1.4.2") -> Behaviour:
    def reply(_: int) -> Reply:
        time.sleep(seconds)
        return 200, {"status": "ok", "version": version}

    return reply


def flapping(version: str = "1.4.2") -> Behaviour:
    """Good, bad, good, bad, ...: never enough in a row either way."""
    return lambda count: (200, {"status": "ok", "version": version}) if count % 2 == 0 else (503, {})


def sequence(*statuses: int) -> Behaviour:
    """Answer with these statuses in turn, then keep answering with the last one."""
    return lambda count: (statuses[min(count, len(statuses) - 1)], {"status": "ok", "version": "1.4.2"})


@contextmanager
def serve(
    behaviour: Behaviour, received: list[Any] | None = None, tls: ssl.SSLContext | None = None
) -> Iterator[str]:
    """Start a server answering every GET and POST with `behaviour`; yields its base URL.

    The JSON body of every POST is appended to `received` (a webhook test reads what was sent).
    With `tls`, it speaks HTTPS with that server context (tests/tls_certs.py)."""
    counter = {"requests": 0}
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            with lock:
                number = counter["requests"]
                counter["requests"] += 1
            status, body = behaviour(number)
            payload = json.dumps(body).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the checker gave up on a slow answer

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            if received is not None:
                received.append(json.loads(body or b"null"))
            self.do_GET()

        def log_message(self, format: str, *args: object) -> None:
            pass

    with _running(Handler, tls) as url:
        yield url


@contextmanager
def _running(handler: type[BaseHTTPRequestHandler], tls: ssl.SSLContext | None = None) -> Iterator[str]:
    """A threading HTTP server on 127.0.0.1 with `handler` (HTTPS with `tls`), until the block ends."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield f"{'https' if tls else 'http'}://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@dataclass(frozen=True)
class Request:
    """What an app double received: method, path (with its query), headers and body."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def header(self, name: str) -> str:
        return next((value for key, value in self.headers.items() if key.lower() == name.lower()), "")


Answer = tuple[int, dict[str, str], bytes]
App = Callable[[Request], Answer]
"""Given a request, the status, headers and body to answer with (an app double routing by path)."""


def json_answer(status: int, body: object) -> Answer:
    return status, {"Content-Type": "application/json"}, json.dumps(body).encode()


@contextmanager
def serve_app(app: App, received: list[Request] | None = None) -> Iterator[str]:
    """Start a server answering every request with `app`; yields its base URL. Every request is
    appended to `received` (a test reads what was sent)."""

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            request = Request(self.command, self.path, dict(self.headers.items()), self.rfile.read(length))
            if received is not None:
                received.append(request)
            status, headers, body = app(request)
            try:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up on a slow answer

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _answer  # noqa: N815

        def log_message(self, format: str, *args: object) -> None:
            pass

    with _running(Handler) as url:
        yield url


def refused_url() -> str:
    """A URL on 127.0.0.1 where nothing listens (the port was bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/healthz"


# Raw-socket servers: for answers a well-behaved HTTP server cannot give (a trickle, a 100 MB body,
# JSON too deep to serialise, a redirect loop). Each connection answers one request and closes.

RawBehaviour = Callable[[socket.socket, threading.Event], None]
"""Writes the whole answer to the connection; returns early once the event (the test ended) is set."""

SOCKET_TIMEOUT_SECONDS = 5.0
"""No read or write on a raw connection blocks longer than this, even if the client stalls."""


def _answer_head(status: str, headers: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status}", *(f"{name}: {value}" for name, value in headers.items())]
    return ("\r\n".join([*lines, "Connection: close"]) + "\r\n\r\n").encode()


def raw_answer(status: str, body: bytes, headers: dict[str, str] | None = None) -> RawBehaviour:
    """Answer with exactly these bytes as the body (with a Content-Length)."""
    head = _answer_head(status, {**(headers or {}), "Content-Length": str(len(body))})

    def answer(connection: socket.socket, _: threading.Event) -> None:
        connection.sendall(head + body)

    return answer


def deep_json(levels: int = 100_000) -> RawBehaviour:
    """200 with a JSON array nested `levels` deep (valid JSON; `json.loads` recurses once per level)."""
    body = b"[" * levels + b"]" * levels
    return raw_answer("200 OK", body, {"Content-Type": "application/json"})


def redirect_loop() -> RawBehaviour:
    """302 to the same path, forever (one answer per request)."""
    return raw_answer("302 Found", b"", {"Location": "/loop"})


def huge_body(total_bytes: int = 100 * 1024 * 1024, chunk_bytes: int = 64 * 1024) -> RawBehaviour:
    """200 announcing `total_bytes`, sent lazily one reused chunk at a time (never all in memory).

    Stops when the client disconnects (the write fails), the test ends, or every chunk is sent."""
    head = _answer_head("200 OK", {"Content-Type": "application/json", "Content-Length": str(total_bytes)})
    chunk = b" " * chunk_bytes

    def answer(connection: socket.socket, stop: threading.Event) -> None:
        connection.sendall(head)
        for _ in range(total_bytes // chunk_bytes):
            if stop.is_set():
                return
            connection.sendall(chunk)

    return answer


def trickle(every_seconds: float = 0.1, for_seconds: float = 10.0, version: str = "1.4.2") -> RawBehaviour:
    """200, then one more header line every `every_seconds` for `for_seconds`, then a healthy body.

    No single read ever waits longer than `every_seconds`, so only a deadline on the whole request
    ends it sooner. Stops when the client disconnects or the test ends; `for_seconds` bounds it."""
    body = json.dumps({"status": "ok", "version": version}).encode()
    tail = f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body

    def answer(connection: socket.socket, stop: threading.Event) -> None:
        connection.sendall(b"HTTP/1.1 200 OK\r\n")
        for line in range(round(for_seconds / every_seconds)):
            if stop.wait(every_seconds):
                return
            connection.sendall(f"X-Trickle-{line}: .\r\n".encode())
        connection.sendall(tail)

    return answer


def _read_request(connection: socket.socket) -> None:
    """Read one request's head and its Content-Length body (at most 1 MiB), or until the client stops."""
    data = b""
    while b"\r\n\r\n" not in data and len(data) < 1024 * 1024:
        received = connection.recv(65536)
        if not received:
            return
        data += received
    head, _, body = data.partition(b"\r\n\r\n")
    lengths = [
        line.split(b":", 1)[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")
    ]
    remaining = min(int(lengths[0]) if lengths else 0, 1024 * 1024) - len(body)
    while remaining > 0:
        received = connection.recv(min(remaining, 65536))
        if not received:
            return
        remaining -= len(received)


@contextmanager
def serve_raw(behaviour: RawBehaviour) -> Iterator[str]:
    """Start a raw-socket server answering every request with `behaviour`; yields its base URL.

    On exit it tells every answer in progress to stop, and waits for their threads to end."""
    stop = threading.Event()

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            connection: socket.socket = self.request
            connection.settimeout(SOCKET_TIMEOUT_SECONDS)
            try:
                _read_request(connection)
                behaviour(connection, stop)
            except OSError:
                pass  # the client went away (as a bounded client should), or stalled past the timeout

    class Server(socketserver.ThreadingTCPServer):
        daemon_threads = False
        block_on_close = True  # server_close() joins every answer's thread (each is bounded)

    server = Server(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        stop.set()
        server.shutdown()
        server.server_close()
        thread.join(SOCKET_TIMEOUT_SECONDS)
