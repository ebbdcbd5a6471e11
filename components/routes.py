"""A service's HTTPRoutes on its stable host (Gateway API), as plain specs so tests validate them
against the pinned CRD schemas, and the function that creates them.

- `<svc>` (the live route): every request to the stable Service (the live color) and the preview
  Service (the idle color) with weights `100 - canary_weight` and `canary_weight`
  (core.gateway.canary_weights). Weights are proportional, so the idle color gets exactly
  `canary_weight` percent; 0 outside a canary. A canary step, an abort and a rollback change only
  this route's weights.
- `<svc>-preview` (the preview route): a request carrying header `X-Preview-Token` equal to the
  stack's preview token goes to the preview Service. Gateway API gives a match on host + header
  precedence over the host-only match, so with the token every request reaches the idle color and
  without it none does. Its own object because the token is a secret: Pulumi keeps the whole spec
  that holds it encrypted, and the live route's weights stay readable in plans and previews.

Both attach to the stack Gateway's listener `https-<svc>` (components.gateway). The routes name
Services, not colors: a switch changes the Services' selectors and neither route.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from core.gateway import GATEWAY_API_VERSION, PREVIEW_HEADER, canary_weights, https_listener
from core.naming import preview_service_name

SERVICE_PORT = 80
EVERYTHING = {"path": {"type": "PathPrefix", "value": "/"}}


def _parent(gateway: str, service: str) -> list[dict[str, str]]:
    return [{"name": gateway, "sectionName": https_listener(service)}]


def live_route_spec(gateway: str, service: str, hostname: str, canary_weight: int) -> dict[str, Any]:
    live_weight, idle_weight = canary_weights(canary_weight)
    return {
        "parentRefs": _parent(gateway, service),
        "hostnames": [hostname],
        "rules": [
            {
                "name": "live",
                "matches": [EVERYTHING],
                "backendRefs": [
                    {"name": service, "port": SERVICE_PORT, "weight": live_weight},
                    {"name": preview_service_name(service), "port": SERVICE_PORT, "weight": idle_weight},
                ],
            }
        ],
    }


def preview_route_spec(gateway: str, service: str, hostname: str, token: Any) -> dict[str, Any]:
    return {
        "parentRefs": _parent(gateway, service),
        "hostnames": [hostname],
        "rules": [
            {
                "name": "preview",
                "matches": [
                    {**EVERYTHING, "headers": [{"type": "Exact", "name": PREVIEW_HEADER, "value": token}]}
                ],
                "backendRefs": [{"name": preview_service_name(service), "port": SERVICE_PORT}],
            }
        ],
    }


def service_routes(
    name: str,
    namespace: pulumi.Input[str],
    gateway: str,
    hostname: str,
    canary_weight: int,
    preview_token: pulumi.Input[str],
    opts: pulumi.ResourceOptions,
) -> tuple[k8s.apiextensions.CustomResource, k8s.apiextensions.CustomResource]:
    """The live route `<name>` and the preview route `<name>-preview` (`opts`: parent, and the two
    Services they send to as dependencies)."""
    live = k8s.apiextensions.CustomResource(
        name,
        api_version=GATEWAY_API_VERSION,
        kind="HTTPRoute",
        metadata=k8s.meta.v1.ObjectMetaArgs(name=name, namespace=namespace),
        spec=live_route_spec(gateway, name, hostname, canary_weight),
        opts=opts,
    )
    preview = k8s.apiextensions.CustomResource(
        preview_service_name(name),
        api_version=GATEWAY_API_VERSION,
        kind="HTTPRoute",
        metadata=k8s.meta.v1.ObjectMetaArgs(name=preview_service_name(name), namespace=namespace),
        spec=preview_route_spec(gateway, name, hostname, preview_token),
        opts=opts,
    )
    return live, preview
