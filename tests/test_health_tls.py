"""The health checker always verifies certificates: against a real HTTPS server on 127.0.0.1 whose
certificate a throwaway test CA signed (tests/tls_certs.py)."""

from __future__ import annotations

import pytest

from core.config.stack import HealthCheckSettings
from core.health import ProbeKind, check_sync
from tests.http_servers import healthy, serve
from tests.tls_certs import other_authority_pem, throwaway_authority

FAST = HealthCheckSettings(
    interval_seconds=0.05, timeout_seconds=1, window_seconds=3, successes=2, failures=2, max_latency_ms=900
)


def test_a_host_signed_by_the_stacks_private_ca_is_healthy_when_the_ca_bundle_names_it() -> None:
    authority = throwaway_authority()
    settings = FAST.model_copy(update={"ca_bundle": authority.ca_pem})
    with serve(healthy(), tls=authority.server_context) as url:
        verdict = check_sync([url], settings)
    assert verdict.healthy and url.startswith("https://")


def test_without_the_ca_bundle_the_private_certificate_fails_as_a_tls_failure() -> None:
    with serve(healthy(), tls=throwaway_authority().server_context) as url:
        verdict = check_sync([url], FAST)
    assert not verdict.healthy
    assert {probe.kind for probe in verdict.probes} == {ProbeKind.TLS}
    assert "certificate did not verify" in verdict.probes[0].detail


def test_a_bundle_of_another_ca_fails_too() -> None:
    settings = FAST.model_copy(update={"ca_bundle": other_authority_pem()})
    with serve(healthy(), tls=throwaway_authority().server_context) as url:
        verdict = check_sync([url], settings)
    assert not verdict.healthy and verdict.probes[0].kind == ProbeKind.TLS


@pytest.mark.parametrize(
    "pem", ["not a certificate", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"]
)
def test_a_ca_bundle_that_is_not_pem_certificates_is_refused(pem: str) -> None:
    with pytest.raises(ValueError, match="PEM"):
        HealthCheckSettings(ca_bundle=pem)
