"""Gateway API names and values the program writes and the policy pack and the release tool read.

Strings and small pure functions only (no SDK import), so the tool and the policy pack share them.
"""

from __future__ import annotations

GATEWAY_API_VERSION = "gateway.networking.k8s.io/v1"
GATEWAY_TYPE = f"kubernetes:{GATEWAY_API_VERSION}:Gateway"
HTTPROUTE_TYPE = f"kubernetes:{GATEWAY_API_VERSION}:HTTPRoute"

GATEWAY_NAME = "platform"
"""The stack Gateway's name in the app namespace (one per stack)."""

CLUSTER_ISSUER = "cert-manager.io/cluster-issuer"
"""On the Gateway (mode certManager): cert-manager issues each HTTPS listener's certificate."""
TLS_TERMINATION = "platform.example.test/tls-termination"
"""Set to `upstream` on a Gateway whose TLS a load balancer in front terminates (tls.mode upstream)."""
UPSTREAM = "upstream"

HTTPS_LISTENER_PREFIX = "https-"
"""`https-<service>`: the HTTPS listener of a service's stable host."""
HTTP_LISTENER = "http"
"""The plain-HTTP listener: only the redirect route attaches to it (mode certManager)."""

PREVIEW_HEADER = "X-Preview-Token"
"""The header whose value must equal the stack's preview token for a request to reach the idle color."""
PREVIEW_TOKEN_SECRET = "PREVIEW_TOKEN"
"""The stack secret (`platform:appSecrets.PREVIEW_TOKEN`) holding the preview token."""

FORBIDDEN_ANNOTATION_PREFIX = "nginx.ingress.kubernetes.io/"
"""The retired Ingress controller's annotations: none may appear on any object."""


def https_listener(service: str) -> str:
    return f"{HTTPS_LISTENER_PREFIX}{service}"


def canary_weights(percent: int) -> tuple[int, int]:
    """The HTTPRoute backend weights (live color, idle color) for a canary step of `percent`.

    Gateway API weights are proportional (each backend gets weight / sum of the rule's weights), so
    writing `100 - percent` and `percent` makes the idle color's share exactly `percent` percent;
    outside a canary the idle color's weight is 0 (it gets nothing)."""
    if not 0 <= percent <= 100:
        raise ValueError(f"a canary weight is a percentage 0..100, not {percent}")
    return 100 - percent, percent
