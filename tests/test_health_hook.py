"""The post-deploy health hook: bound on each stable Service, and its function run for real.

The mock runtime registers hooks but never calls them (see docs/engine-facts.md#resource-hooks), so
the binding is checked on what the program registers, and the function is called directly against
real HTTP servers on 127.0.0.1.
"""

from __future__ import annotations

import asyncio

import pulumi
import pytest

from components.health_hook import HookFunction, health_hook_function
from core.config.base import PROJECT_NAME
from core.config.stack import HealthCheckSettings
from core.errors import UnhealthyError
from core.naming import service_urns
from tests.conftest import STACKS, baseline
from tests.http_servers import failing, healthy, serve

FAST = HealthCheckSettings(interval_seconds=0.05, timeout_seconds=0.5, window_seconds=2, failures=2)
SERVICE = "kubernetes:core/v1:Service"


def run_hook(hook: HookFunction) -> None:
    """Call the hook as the engine would, on a private loop (the thread's loop stays Pulumi's)."""
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(
            hook(pulumi.ResourceHookArgs(urn="urn:test", id="api", name="api", type=SERVICE))
        )
    finally:
        loop.close()


@pytest.mark.parametrize("stack", STACKS)
def test_every_stable_service_runs_the_health_hook_after_create_and_after_update(stack: str) -> None:
    run = baseline(stack)
    for name in ("api", "web"):
        assert run.named(SERVICE, name).hooks == (
            ("after_create", f"{name}-post-deploy-health"),
            ("after_update", f"{name}-post-deploy-health"),
        )
        assert run.named(SERVICE, f"{name}-preview").hooks == ()


def test_the_rollback_targets_are_the_urns_the_program_registers() -> None:
    registered = {resource.urn for resource in baseline("staging").of_type(SERVICE)}
    for name in ("api", "web"):
        assert set(service_urns("staging", PROJECT_NAME, name)) <= registered


def test_the_hook_passes_when_the_service_answers_healthy_with_the_expected_image() -> None:
    with serve(healthy(version="img@sha256:aa")) as url:
        hook = health_hook_function([url], FAST, {"version": "img@sha256:aa"})
        run_hook(hook)


def test_the_hook_fails_the_update_when_the_service_answers_500() -> None:
    with serve(failing(500)) as url:
        hook = health_hook_function([url], FAST)
        with pytest.raises(UnhealthyError, match="post-deploy health check of api") as raised:
            run_hook(hook)
    assert raised.value.verdict.failure_kinds == ["status"]


def test_the_hook_fails_the_update_when_the_old_image_still_answers() -> None:
    with serve(healthy(version="img@sha256:old")) as url:
        hook = health_hook_function([url], FAST, {"version": "img@sha256:new"})
        with pytest.raises(UnhealthyError) as raised:
            run_hook(hook)
    assert raised.value.verdict.failure_kinds == ["body"]
