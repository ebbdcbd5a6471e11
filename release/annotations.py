"""Release annotations in Grafana: one per step of a release (stage, each check, each canary step,
the switch, verify, the record, the rollback), so the dashboards (components.dashboards) show when a
release moved what, beside the numbers it moved.

Set `GRAFANA_URL` (the Grafana base URL) and `GRAFANA_TOKEN` (a service account token with the
annotations:write permission; a CI secret) and every release posts
`POST <GRAFANA_URL>/api/annotations` with `Authorization: Bearer <token>`: a region from the step's
start to its end, its text (`deploy api sha256:abab…: switch ok (2 resource(s) changed)`) and the
tags the service's dashboard shows (`release`, `service:<svc>`, `namespace:<namespace>`, plus
`stack:<stack>` and `step:<name>`).

Never a reason for a release to fail or wait: posts go out in order from one background thread,
each bounded by `timeout_seconds` end to end; after a post that times out or finds Grafana
unreachable the rest are skipped; at most MAX_ANNOTATIONS per release; and the release waits for
what is still sending at most `timeout_seconds` once, at its end. The report says how many were
posted. The token and the URL are never printed (a failure names only its kind).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from core.dashboards import annotation_tags
from core.text import one_line
from release.clock import Clock
from release.notify import post_json
from release.report.release_report import ReleaseReport

URL_ENV = "GRAFANA_URL"
TOKEN_ENV = "GRAFANA_TOKEN"
TIMEOUT_SECONDS = 2.0
MAX_ANNOTATIONS = 40
MAX_TEXT = 400
GIVE_UP = ("timed out", "unreachable", "URL is invalid")
"""Failures after which the rest are skipped: Grafana is not answering, so each would wait too."""


@dataclass(frozen=True)
class Annotation:
    """One region on the dashboards: from `started` to `ended`, with its text and tags."""

    started: datetime
    ended: datetime
    text: str
    tags: tuple[str, ...]

    def payload(self) -> dict[str, Any]:
        return {
            "time": int(self.started.timestamp() * 1000),
            "timeEnd": int(self.ended.timestamp() * 1000),
            "tags": list(self.tags),
            "text": one_line(self.text)[:MAX_TEXT],
        }


@dataclass
class AnnotationOutcome:
    """How a release's annotations went: how many were posted, and why the others were not."""

    posted: int = 0
    total: int = 0
    errors: list[str] = field(default_factory=list)

    def describe(self) -> str:
        text = f"Grafana annotations: {self.posted} of {self.total} posted"
        return text + (f" (not posted: {'; '.join(dict.fromkeys(self.errors))})" if self.errors else "")


class Annotator:
    """Posts a release's annotations to one Grafana; `Annotator(None, None)` posts nothing."""

    def __init__(self, url: str | None, token: str | None, timeout_seconds: float = TIMEOUT_SECONDS) -> None:
        self._url = f"{url.rstrip('/')}/api/annotations" if url else None
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.timeout_seconds = timeout_seconds
        self._queue: queue.Queue[Annotation | None] = queue.Queue()
        self._outcome = AnnotationOutcome()
        self._lock = threading.Lock()
        self._worker: threading.Thread | None = None
        self._given_up = ""

    @classmethod
    def from_environment(cls, env: Mapping[str, str]) -> Annotator:
        return cls(env.get(URL_ENV) or None, env.get(TOKEN_ENV) or None)

    @property
    def enabled(self) -> bool:
        return self._url is not None

    def __repr__(self) -> str:
        return f"Annotator(enabled={self.enabled})"  # never the URL or the token

    def annotate(self, annotation: Annotation) -> None:
        """Queue one annotation; returns at once and never raises."""
        if self._url is None:
            return
        with self._lock:
            if self._outcome.total >= MAX_ANNOTATIONS:
                return
            self._outcome.total += 1
            if self._worker is None:
                self._worker = threading.Thread(target=self._post_all, daemon=True)
                self._worker.start()
        self._queue.put(annotation)

    def finish(self) -> AnnotationOutcome | None:
        """Wait for what is still sending, at most `timeout_seconds`; how it went (None: disabled)."""
        if self._url is None:
            return None
        self._queue.put(None)
        if self._worker is not None:
            self._worker.join(self.timeout_seconds)
        with self._lock:
            outcome = AnnotationOutcome(self._outcome.posted, self._outcome.total, list(self._outcome.errors))
        unsent = outcome.total - outcome.posted - len(outcome.errors)
        if unsent > 0:
            outcome.errors.append(f"{unsent} still sending when the release ended")
        return outcome

    def _post_all(self) -> None:
        while True:
            annotation = self._queue.get()
            if annotation is None:
                return
            if self._given_up:
                error = f"skipped after: {self._given_up}"
            else:
                assert self._url is not None
                error = post_json(
                    self._url, annotation.payload(), self.timeout_seconds, self._headers, what="Grafana"
                )
                if any(reason in error for reason in GIVE_UP):
                    self._given_up = error
            with self._lock:
                if error:
                    self._outcome.errors.append(error)
                else:
                    self._outcome.posted += 1


NO_ANNOTATOR = Annotator(None, None)


def release_tags(services: Sequence[str], namespace: str, stack: str) -> tuple[str, ...]:
    """The tags of a release's annotations: those each service's dashboard shows (core.dashboards),
    and the stack's name."""
    tags = [tag for service in services for tag in annotation_tags(service, namespace)]
    return (*dict.fromkeys(tags), f"stack:{stack}")


class StepAnnotations:
    """Each step of a report as an annotation, posted in the background as soon as the step is in
    the report (`new_steps`); `finished` adds how they went to the report's notes."""

    def __init__(
        self,
        annotator: Annotator,
        clock: Clock,
        report: ReleaseReport,
        what: str,
        image: str,
        tags: tuple[str, ...],
    ) -> None:
        self._annotator, self._clock, self._report = annotator, clock, report
        self._what, self._image, self._tags = what, image, tags
        self._done = len(report.steps)

    def new_steps(self, started: datetime) -> None:
        """Annotate the steps added since the last call, as regions from `started` to now."""
        ended = self._clock()
        for step in self._report.steps[self._done :]:
            text = step_text(self._what, self._image, step.name, step.succeeded, step.detail)
            self._annotator.annotate(Annotation(started, ended, text, (*self._tags, f"step:{step.name}")))
        self._done = len(self._report.steps)

    def finished(self) -> ReleaseReport:
        """The report, with how the annotations went (waiting for them at most once, bounded)."""
        outcome = self._annotator.finish()
        if outcome is not None:
            self._report.notes.append(outcome.describe())
        return self._report


def step_text(what: str, image: str, step: str, succeeded: bool, detail: str) -> str:
    """What an annotation says: what ran (`deploy api`), its digest, the step and how it went."""
    digest = image.split("@", 1)[1][:19] + "…" if "@" in image else image
    return f"{what} {digest}: {step} {'ok' if succeeded else 'FAILED'} ({detail})"
