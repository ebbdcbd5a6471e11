"""Shared set-up for release tests: a fake engine with fast health checks, and real HTTP servers
standing in for a service's stable and preview URLs.

The servers answer with whatever image the fake engine's deployed Services route to, so a switch or
a rollback changes what they serve exactly as it would change what a cluster serves.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field

from release.deploy import DeployRequest
from tests.fake_engine import FakeEngine
from tests.http_servers import Reply, serve

FAST_HEALTH_CHECK = {
    "versionField": "image",
    "intervalSeconds": 0.05,
    "timeoutSeconds": 0.5,
    "windowSeconds": 2,
    "successes": 2,
    "failures": 2,
    "maxLatencyMs": 400,
}
NEW_API = "registry.example.test/platform/api@sha256:" + "ab" * 32
NEWER_API = "registry.example.test/platform/api@sha256:" + "cd" * 32


def fake_engine(
    stack: str = "staging", numbered_versions: bool = False, **engine_kwargs: object
) -> FakeEngine:
    engine = FakeEngine(numbered_versions=numbered_versions, **engine_kwargs)  # type: ignore[arg-type]
    engine.add_stack(stack, edit={"platform:healthCheck": FAST_HEALTH_CHECK})
    return engine


@dataclass
class Cluster:
    """Which images fail, where. An image in `bad` fails everywhere; one in `bad_when_stable` passes
    the preview check but fails once it takes stable traffic."""

    engine: FakeEngine
    stack: str
    service: str
    bad: set[str] = field(default_factory=set)
    bad_when_stable: set[str] = field(default_factory=set)
    preview_url: str = ""
    stable_url: str = ""

    def answer(self, preview: bool) -> Reply:
        image = self.engine.serving(self.stack, self.service, preview=preview)
        if image in self.bad or (not preview and image in self.bad_when_stable):
            return 500, {"status": "error", "image": image}
        return 200, {"status": "ok", "image": image}

    def request(self, image: str, operator: str = "alice") -> DeployRequest:
        return DeployRequest(
            self.stack,
            self.service,
            image,
            operator,
            preview_urls=[self.preview_url],
            stable_urls=[self.stable_url],
        )


@contextmanager
def cluster(engine: FakeEngine, stack: str = "staging", service: str = "api") -> Iterator[Cluster]:
    double = Cluster(engine, stack, service)
    with ExitStack() as servers:
        double.preview_url = servers.enter_context(serve(lambda _: double.answer(preview=True)))
        double.stable_url = servers.enter_context(serve(lambda _: double.answer(preview=False)))
        yield double
