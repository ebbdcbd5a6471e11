"""Real HTTP servers on 127.0.0.1 for health-check tests: one per behaviour, each on its own port."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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
def serve(behaviour: Behaviour, received: list[Any] | None = None) -> Iterator[str]:
    """Start a server answering every GET and POST with `behaviour`; yields its base URL.

    The JSON body of every POST is appended to `received` (a webhook test reads what was sent)."""
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

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def refused_url() -> str:
    """A URL on 127.0.0.1 where nothing listens (the port was bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/healthz"
