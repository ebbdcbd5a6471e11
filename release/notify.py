"""Notifications: a Slack-compatible incoming-webhook message for the events people must hear about.

Promotion, failed release, automatic rollback and break-glass each post `{"text": ...}` with the
digest, the actor and a link to the run. The webhook URL is a secret: it comes from the environment
(`RELEASE_WEBHOOK_URL`, a CI secret), and is never printed, logged or recorded (errors name only the
kind of failure). A notification never fails or blocks a release: every send is bounded by a short
timeout, its outcome is reported (`NotificationResult`) and recorded where a record follows it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

WEBHOOK_ENV = "RELEASE_WEBHOOK_URL"
TIMEOUT_SECONDS = 2.0


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
        """Post `text`; never raises."""
        if not self._url:
            return NotificationResult(event, False, f"no webhook configured (${WEBHOOK_ENV})")
        started = time.monotonic()
        try:
            response = httpx.post(self._url, json={"text": text}, timeout=self.timeout_seconds)
        except httpx.TimeoutException:
            return NotificationResult(
                event, False, f"webhook timed out after {self.timeout_seconds:g}s", time.monotonic() - started
            )
        except httpx.HTTPError as error:
            return NotificationResult(event, False, f"webhook unreachable ({type(error).__name__})")
        seconds = time.monotonic() - started
        if response.status_code >= 300:
            return NotificationResult(event, False, f"webhook answered {response.status_code}", seconds)
        return NotificationResult(event, True, seconds=seconds)

    def start(self, event: str, text: str) -> PendingNotification:
        """Send in the background: whoever waits on it never waits longer than they choose."""
        return PendingNotification(self, event, text)


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
