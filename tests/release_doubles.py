"""Shared set-up for release tests: a fake engine with fast health checks, and real HTTP servers
standing in for a service's stable and preview URLs.

The servers answer with whatever image the fake engine's deployed Services route to, so a switch or
a rollback changes what they serve exactly as it would change what a cluster serves.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

from core.config.sources import project_settings
from core.config.stack import HealthCheckSettings
from core.gateway import PREVIEW_HEADER
from core.health import Verdict, check_sync
from release.flows.deploy_request import DeployRequest
from release.history.entries import HistoryEntry, read_history
from release.history.records import Event, ReleaseRecord, record_time
from release.history.signing import Signer, generate_key_pair
from release.history.writer import RecordChains
from release.report.release_report import Checker
from release.testing.fake_engine import FakeEngine
from tests.conftest import TEST_SECRETS, copy_project, edit_yaml
from tests.http_servers import Answer, App, Reply, Request, json_answer, serve_app

TEST_KEYS = generate_key_pair()
"""A throwaway signing key made for this test session; its private half lives only in memory."""
TEST_SIGNER = Signer.from_text(TEST_KEYS.private_key)


def trust_key(project_dir: Path, name: str, public_key: str) -> None:
    """Add a trusted signing key to a project copy's Pulumi.yaml (as a team adds its CI key)."""

    def add(document: dict[str, Any]) -> None:
        keys = document["config"]["releaseSigning"]["value"]["trustedKeys"]
        keys.append({"name": name, "publicKey": public_key})

    edit_yaml(project_dir / "Pulumi.yaml", add)


def signed_project_copy(destination: Path) -> Path:
    """A copy of the project whose Pulumi.yaml trusts TEST_KEYS, and nothing else changed."""
    copy_project(destination)
    trust_key(destination, "test-session", TEST_KEYS.public_key)
    return destination


@cache
def signed_project() -> Path:
    """One signed project copy for the whole session (release tests run against it)."""
    directory = Path(tempfile.mkdtemp(prefix="signed-project-"))
    atexit.register(shutil.rmtree, directory, True)
    return signed_project_copy(directory)


FAST_HEALTH_CHECK = {
    "versionField": "image",
    "intervalSeconds": 0.05,
    "timeoutSeconds": 0.5,
    "windowSeconds": 2,
    "successes": 2,
    "failures": 2,
    "maxLatencyMs": 400,
}
FAST_BLUE_GREEN: dict[str, Any] = {
    "platform:healthCheck": FAST_HEALTH_CHECK,
    "platform:strategy": None,
    "platform:analysis": None,
}
"""A stack edit for tests of the blue-green release itself: fast health checks, one switch, no
metric analysis (staging and production declare a canary judged by their Prometheus; the canary
and analysis tests run those against a real Prometheus)."""
RELEASE_STEPS = ["preview", "analyse", "smoke preview", "switch", "smoke stable", "verify", "record"]
"""The steps of a healthy blue-green release of api (its smoke suite runs before and after the switch)."""
NEW_API = "registry.example.test/platform/api@sha256:" + "ab" * 32
NEWER_API = "registry.example.test/platform/api@sha256:" + "cd" * 32


def fake_engine(
    stack: str = "staging", numbered_versions: bool = False, project_dir: Path | None = None
) -> FakeEngine:
    """An engine double on the signed project copy, holding `stack` released blue-green with fast
    health checks."""
    engine = FakeEngine(project_dir=project_dir or signed_project(), numbered_versions=numbered_versions)
    engine.add_stack(stack, edit=FAST_BLUE_GREEN)
    return engine


SMOKE_TOKEN = TEST_SECRETS["SMOKE_ACCOUNT_TOKEN"]


def app_double(service: str, health: Callable[[], Reply], broken: Callable[[], set[str]] = set) -> App:
    """The service as Pulumi.yaml's smoke suite expects it: `/v1/account` with the stack's smoke token
    (401 without it), `POST /v1/search`, web's home page; every other path answers `health()` (the
    readiness JSON). A path in `broken()` answers 500 with a careless error page that echoes the
    request's credentials (a release must never show them)."""

    def answer(request: Request) -> Answer:
        if request.path in broken():
            echoed = {name: request.header(name) for name in ("Authorization", PREVIEW_HEADER)}
            return json_answer(500, {"error": "internal", "request": echoed})
        if request.path == "/v1/account":
            if request.header("Authorization") != f"Bearer {SMOKE_TOKEN}":
                return json_answer(401, {"error": "unauthenticated"})
            return json_answer(200, {"account": {"id": "acct-smoke", "plan": "smoke"}})
        if request.path == "/v1/search" and request.method == "POST":
            return json_answer(200, {"results": []})
        if service == "web" and request.path == "/":
            return 200, {"Content-Type": "text/html"}, b"<html><head><title>web</title></head></html>"
        return json_answer(*health())

    return answer


@dataclass
class Cluster:
    """Which images fail, where. An image in `bad` fails its health checks everywhere; one in
    `bad_when_stable` passes the preview check but fails once it takes stable traffic. `broken`
    (image -> paths) fails single smoke checks everywhere, `broken_when_stable` once stable."""

    engine: FakeEngine
    stack: str
    service: str
    bad: set[str] = field(default_factory=set)
    bad_when_stable: set[str] = field(default_factory=set)
    broken: dict[str, set[str]] = field(default_factory=dict)
    broken_when_stable: dict[str, set[str]] = field(default_factory=dict)
    preview_url: str = ""
    stable_url: str = ""
    received: list[Request] = field(default_factory=list)
    """Every request either URL received (preview and stable)."""

    def answer(self, preview: bool) -> Reply:
        image = self.engine.serving(self.stack, self.service, preview=preview)
        if image in self.bad or (not preview and image in self.bad_when_stable):
            return 500, {"status": "error", "image": image}
        return 200, {"status": "ok", "image": image}

    def broken_paths(self, preview: bool) -> set[str]:
        image = self.engine.serving(self.stack, self.service, preview=preview)
        stable = set() if preview else self.broken_when_stable.get(image, set())
        return self.broken.get(image, set()) | stable

    def app(self, preview: bool) -> App:
        return app_double(self.service, lambda: self.answer(preview), lambda: self.broken_paths(preview))

    def request(self, image: str, actor: str = "alice") -> DeployRequest:
        return DeployRequest(
            self.stack,
            self.service,
            image,
            actor,
            preview_urls=[self.preview_url],
            stable_urls=[self.stable_url],
            signer=TEST_SIGNER,
        )


@contextmanager
def cluster(engine: FakeEngine, stack: str = "staging", service: str = "api") -> Iterator[Cluster]:
    double = Cluster(engine, stack, service)
    with ExitStack() as servers:
        double.preview_url = servers.enter_context(serve_app(double.app(preview=True), double.received))
        double.stable_url = servers.enter_context(serve_app(double.app(preview=False), double.received))
        yield double


def history_of(engine: FakeEngine, stack: str) -> list[HistoryEntry]:
    """The stack's history as the release tool reads it (records judged by the project's rules)."""
    return read_history(engine, stack, project_settings(engine.project_dir))


def chained_message(
    engine: FakeEngine, stack: str, record: ReleaseRecord, summary: str, signer: Signer | None = TEST_SIGNER
) -> str:
    """The update message the tool writes for `record` on `stack` now: chained onto the head of the
    stack's chain as its history holds it, signed (release.history.writer)."""
    linked = RecordChains(lambda name: history_of(engine, name)).link(stack, record, engine.clock())
    return linked.message(summary, signer, engine.clock())


def dies_on_check(number: int) -> Checker:
    """A health checker whose process dies (SystemExit 137, as `kill -9` would end it: no `except
    Exception` catches it) on its `number`th check; the checks before it are real."""
    calls = {"checks": 0}

    def checker(urls: Sequence[str], settings: HealthCheckSettings, expect: Mapping[str, str]) -> Verdict:
        calls["checks"] += 1
        if calls["checks"] == number:
            raise SystemExit(137)
        return check_sync(urls, settings, expect)

    return checker


def record_drill(engine: FakeEngine, stack: str, verdict: str = "Passed", at: datetime | None = None) -> None:
    """A signed `drill` record in `stack`'s history, as `release drill` writes one (the promotion
    gate `requireDrillWithinDays` reads it); `at` is when it was signed (default: an hour before the
    engine double's clock, so before any promotion a test makes)."""
    record = ReleaseRecord(
        event=Event.DRILL,
        stack=stack,
        actor="drill-bot",
        time=record_time(at or engine.clock() - timedelta(hours=1)),
        data={"drill": {"verdict": verdict, "restoredFrom": "snapshot release-test"}},
    )
    engine.up(stack, {}, chained_message(engine, stack, record, f"release drill {stack}: {verdict}"))
    engine.ups.clear()
    engine.calls.clear()
