"""The post-deploy health hook: the release tool's health checker, bound to a stable Service.

Bound as `after_create` and `after_update` resource hooks, so a plain `pulumi up -s staging` fails
when the service does not answer healthy once its stable Service points at a color, and
`release rollback` restores the last good config. Since Pulumi CLI v3.238.0 an exception in an
`after_*` hook fails the update (the resource's new state is still saved); before that it only
logged a warning, hence `requiredPulumiVersion` in Pulumi.yaml. Hooks do not run during preview
(`on_dry_run=False`), and the mock runtime never calls them: tests call `health_hook_function`'s
result directly, against real HTTP servers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence

import pulumi

from core.config.stack import HealthCheckSettings
from core.errors import UnhealthyError
from core.health import check

HookFunction = Callable[[pulumi.ResourceHookArgs], Awaitable[None]]


def health_hook_function(
    urls: Sequence[str], settings: HealthCheckSettings, expect_json: Mapping[str, str] | None = None
) -> HookFunction:
    """The hook's body: probe `urls`; raise UnhealthyError (failing the update) unless Healthy."""

    async def verify_health(args: pulumi.ResourceHookArgs) -> None:
        verdict = await check(list(urls), settings, expect_json)
        where = f"post-deploy health check of {args.name} ({', '.join(urls)})"
        if not verdict.healthy:
            raise UnhealthyError(where, verdict)
        pulumi.log.info(f"{where}: {verdict.phase}, {verdict.reason}")

    return verify_health


def post_deploy_health_hook(
    name: str,
    urls: Sequence[str],
    settings: HealthCheckSettings,
    expect_json: Mapping[str, str] | None = None,
) -> pulumi.ResourceHookBinding:
    """A binding that runs the health check after the resource is created or updated."""
    hook = pulumi.ResourceHook(
        name,
        health_hook_function(urls, settings, expect_json),
        pulumi.ResourceHookOptions(on_dry_run=False, ignore_errors=False),
    )
    return pulumi.ResourceHookBinding(after_create=[hook], after_update=[hook])
