"""The preview header, end to end on the engine double: a request reaches the idle color only with
the stack's preview token, and a release's preview checks send it to whatever URL they probe.

`gateway` is a test HTTP server that routes like the stack Gateway would route the service's host:
the preview route the program builds for the stack's token (components.routes) wins when its
header matches exactly; otherwise the deployed live route's weights decide (idle weight 0: the
live color). It answers with the image of the color it chose, from what the double deployed.

What this proves: the program's routes, read as Gateway API's precedence rules say (a header match
beats the host-only match), keep the idle color away from a request without the token; the
health checker sends the header; a release judges its new color through the same host as users.
What it does not prove: that a given Gateway implementation honours that precedence, terminates TLS
with the right certificate, or applies weights exactly; those need a conformant implementation
(Gateway API's conformance suite covers header matching and weighted backends)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from components.routes import preview_route_spec
from core.config.stack import HealthCheckSettings
from core.errors import ConfigError
from core.gateway import GATEWAY_NAME, PREVIEW_HEADER, PREVIEW_TOKEN_SECRET
from core.health import check_sync
from release.context import ReleaseContext
from release.flows.deploy import deploy
from release.flows.deploy_request import DeployRequest
from release.testing.fake_engine import FakeEngine
from tests.conftest import TEST_SECRETS
from tests.http_servers import Answer, Request, serve_app
from tests.release_doubles import FAST_HEALTH_CHECK, NEW_API, TEST_SIGNER, app_double, fake_engine

ROUTE = "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute"
TOKEN = TEST_SECRETS[PREVIEW_TOKEN_SECRET]
SETTINGS = HealthCheckSettings.model_validate(FAST_HEALTH_CHECK)


def _goes_to_preview(engine: FakeEngine, request: Request) -> bool:
    preview_rule = preview_route_spec(GATEWAY_NAME, "api", "api.example.test", TOKEN)["rules"][0]
    for match in preview_rule["matches"]:
        if all(request.header(header["name"]) == header["value"] for header in match["headers"]):
            return True
    live = next(
        inputs for urn, inputs in engine.stacks["staging"].deployed.items() if urn.endswith(f"{ROUTE}::api")
    )
    _live_weight, idle_weight = (ref["weight"] for ref in live["spec"]["rules"][0]["backendRefs"])
    assert idle_weight == 0, "this emulator only routes outside a canary"
    return False


@contextmanager
def gateway(engine: FakeEngine, received: list[Request] | None = None) -> Iterator[str]:
    """Routes each request like the stack Gateway, then answers as that color's app would (its
    readiness JSON, and the endpoints its smoke suite calls)."""

    def routed(request: Request) -> Answer:
        preview = _goes_to_preview(engine, request)
        image = engine.serving("staging", "api", preview=preview)
        return app_double("api", lambda: (200, {"status": "ok", "image": image}))(request)

    with serve_app(routed, received) as origin:
        yield f"{origin}/healthz/ready"


def test_a_probe_without_the_preview_token_gets_the_live_color_and_with_it_the_idle_color() -> None:
    engine = fake_engine()
    live, idle = engine.serving("staging", "api"), engine.serving("staging", "api", preview=True)
    assert live != idle
    with gateway(engine) as url:
        assert check_sync([url], SETTINGS, {"image": live}).healthy
        assert check_sync([url], SETTINGS, {"image": idle}, headers={PREVIEW_HEADER: TOKEN}).healthy
        assert (
            check_sync([url], SETTINGS, {"image": idle}, headers={PREVIEW_HEADER: "guess"}).healthy is False
        )


def test_a_release_judges_its_new_color_on_the_stable_url_by_sending_the_preview_header() -> None:
    engine = fake_engine()
    with gateway(engine) as url:
        request = DeployRequest(
            "staging", "api", NEW_API, "alice", preview_urls=[url], stable_urls=[url], signer=TEST_SIGNER
        )
        report = deploy(ReleaseContext.for_tests(engine, engine.project_dir), request)
    assert report.phase == "Healthy", report.failure
    assert engine.serving("staging", "api") == NEW_API
    assert ("preview_token", "staging") in engine.calls


def test_a_stack_whose_preview_token_the_engine_cannot_read_is_refused_before_any_change() -> None:
    # Without the token every preview check would reach the live color and pass for the wrong one.
    engine = fake_engine()
    engine.preview_token = lambda stack: None  # type: ignore[method-assign]
    request = DeployRequest("staging", "api", NEW_API, "alice", signer=TEST_SIGNER)
    with pytest.raises(ConfigError) as raised:
        deploy(ReleaseContext.for_tests(engine, engine.project_dir), request)
    assert "platform:appSecrets.PREVIEW_TOKEN" in str(raised.value)
    assert "pulumi config set --secret" in str(raised.value)
    assert [call for call in engine.calls if call[0] == "up"] == []
