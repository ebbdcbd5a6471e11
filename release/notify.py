"""Notifications: a Slack-compatible incoming-webhook message for the events people must hear about.

Promotion, failed release, automatic rollback and break-glass each post `{"text": ...}` with the
digest, the actor and a link to the run. The webhook URL is a secret: it comes from the environment
(`RELEASE_WEBHOOK_URL`, a CI secret), and is never printed, logged or recorded (errors name only the
kind of failure). A notification never fails or blocks a release: a send never raises, whatever the
URL or the server does, and takes at most `timeout_seconds` (2 s by default) end to end: connecting,
posting and the answer's status line and headers, however slowly the server trickles them (the
answer's body is not read). Its outcome is reported (`NotificationResult`) and recorded where a
record follows it.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Coroutine, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx

WEBHOOK_ENV = "RELEASE_WEBHOOK_URL"
TIMEOUT_SECONDS = 2.0

T = TypeVar("T")


@dataclass(frozen=True)
class NotificationResult:
    event: str
    sent: bool
    error: str = ""
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {"event": self.event, "sent": self.sent}
        if self.error:
            document["error"] = self.error
        return document


class Notifier:
    """Posts to one webhook; `Notifier(None)` notifies nobody and says so."""

    def __init__(self, webhook_url: str | None, timeout_seconds: float = TIMEOUT_SECONDS) -> None:
        self._url = webhook_url
        self.timeout_seconds = timeout_seconds

    @classmethod
    def from_environment(cls, env: Mapping[str, str]) -> Notifier:
        return cls(env.get(WEBHOOK_ENV) or None)

    def send(self, event: str, text: str) -> NotificationResult:
        """Post `text`; never raises, and returns within `timeout_seconds` (see the module docstring).

        Not sent, with the kind of failure, when the webhook times out, its URL is invalid, it is
        unreachable or it answers with a status of 300 or more; the URL is never in the outcome."""
        if not self._url:
            return NotificationResult(event, False, f"no webhook configured (${WEBHOOK_ENV})")
        started = time.monotonic()
        error = post_json(self._url, {"text": text}, self.timeout_seconds, what="webhook")
        return NotificationResult(event, not error, error, time.monotonic() - started)

    def start(self, event: str, text: str) -> PendingNotification:
        """Send in the background: whoever waits on it never waits longer than they choose."""
        return PendingNotification(self, event, text)


def post_json(
    url: str,
    payload: Any,
    timeout_seconds: float,
    headers: Mapping[str, str] | None = None,
    what: str = "webhook",
) -> str:
    """POST `payload` as JSON within `timeout_seconds`, end to end; never raises: '' when the server
    accepted it (a status below 300), else the kind of failure, naming `what` (never the URL or a
    header: an error's message may quote the URL, a header may hold a token)."""
    return _run_to_completion(_post(url, payload, timeout_seconds, dict(headers or {}), what))


async def _post(url: str, payload: Any, timeout_seconds: float, headers: dict[str, str], what: str) -> str:
    try:
        async with asyncio.timeout(timeout_seconds):
            async with (
                httpx.AsyncClient(timeout=timeout_seconds) as client,
                client.stream("POST", url, json=payload, headers=headers) as response,
            ):
                status = response.status_code
    except (TimeoutError, httpx.TimeoutException):
        return f"{what} timed out after {timeout_seconds:g}s"
    except (httpx.InvalidURL, httpx.UnsupportedProtocol):
        return f"{what} URL is invalid"
    except httpx.HTTPError as error:
        return f"{what} unreachable ({type(error).__name__})"
    except Exception as error:  # noqa: BLE001 - a post reports every failure, never raises
        return f"{what} failed ({type(error).__name__})"
    return f"{what} answered {status}" if status >= 300 else ""


def _run_to_completion(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run `coroutine` on a private event loop; in a worker thread if this thread runs a loop already.

    The thread's own loop (Pulumi's, under the mock runtime) is left alone, as in `check_sync`."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return _run_on_new_loop(coroutine)
    with ThreadPoolExecutor(max_workers=1) as worker:
        return worker.submit(_run_on_new_loop, coroutine).result()


def _run_on_new_loop(coroutine: Coroutine[Any, Any, T]) -> T:
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coroutine)
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


class PendingNotification:
    def __init__(self, notifier: Notifier, event: str, text: str) -> None:
        self.event = event
        self._result: NotificationResult | None = None
        self._thread = threading.Thread(target=self._run, args=(notifier, text), daemon=True)
        self._thread.start()

    def _run(self, notifier: Notifier, text: str) -> None:
        self._result = notifier.send(self.event, text)

    def result(self, wait_seconds: float) -> NotificationResult | None:
        """The outcome, or None if it is still being sent after `wait_seconds`."""
        self._thread.join(wait_seconds)
        return self._result


def message(event: str, stack: str, service: str, image: str, actor: str, run: str, detail: str = "") -> str:
    """The text every notification carries: what, where, which digest, who, and the run link."""
    digest = image.split("@", 1)[1] if "@" in image else image
    lines = [f"*{event}* {service} on {stack}: `{digest}` by {actor}"]
    if detail:
        lines.append(detail)
    if run:
        lines.append(f"run: {run}")
    return "\n".join(lines)


NO_NOTIFIER = Notifier(None)
