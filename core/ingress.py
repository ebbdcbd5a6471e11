"""The ingress-nginx and cert-manager annotations the program sets and the policy pack checks."""

from __future__ import annotations

CLUSTER_ISSUER = "cert-manager.io/cluster-issuer"
FORCE_SSL_REDIRECT = "nginx.ingress.kubernetes.io/force-ssl-redirect"
SOURCE_RANGES = "nginx.ingress.kubernetes.io/whitelist-source-range"
TLS_TERMINATION = "platform.example.test/tls-termination"
"""Set to `upstream` on an Ingress whose TLS a load balancer in front terminates (tls.mode upstream)."""
UPSTREAM = "upstream"
CANARY = "nginx.ingress.kubernetes.io/canary"
CANARY_WEIGHT = "nginx.ingress.kubernetes.io/canary-weight"
"""On the canary Ingress: the percentage of the stable host's requests it takes (0 to 100)."""
