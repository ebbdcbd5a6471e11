"""How an Ingress gets HTTPS, by the stack's `tls.mode` (core.config.stack.TlsSettings).

- `certManager`: a `tls` entry per host with cert-manager's certificate (from `tls.clusterIssuer`)
  in `<ingress>-tls`; ingress-nginx terminates TLS, redirects HTTP and adds HSTS.
- `upstream`: a load balancer in front terminates TLS with its own certificate and forwards plain
  HTTP with `X-Forwarded-Proto`. No `tls` entry (one without a certificate would make ingress-nginx
  serve its self-signed default on 443) and no cert-manager annotation; the redirect stays, decided
  on `X-Forwarded-Proto` (the controller needs `use-forwarded-headers`, see docs/configuration.md).
"""

from __future__ import annotations

import pulumi_kubernetes as k8s

from core.config.stack import TlsMode, TlsSettings
from core.ingress import CLUSTER_ISSUER, FORCE_SSL_REDIRECT, TLS_TERMINATION, UPSTREAM


def tls_annotations(tls: TlsSettings) -> dict[str, str]:
    redirect = {FORCE_SSL_REDIRECT: "true"}
    if tls.mode is TlsMode.UPSTREAM:
        return {**redirect, TLS_TERMINATION: UPSTREAM}
    return {CLUSTER_ISSUER: str(tls.cluster_issuer), **redirect}


def tls_entries(
    tls: TlsSettings, hostname: str, secret_name: str
) -> list[k8s.networking.v1.IngressTLSArgs] | None:
    if tls.mode is TlsMode.UPSTREAM:
        return None
    return [k8s.networking.v1.IngressTLSArgs(hosts=[hostname], secret_name=secret_name)]
