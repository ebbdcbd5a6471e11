"""TLS everywhere a user connects, as the program declares it under the mock runtime: the stack
Gateway has an HTTPS listener per service host with a certificate cert-manager issues from the
stack's ClusterIssuer, plain HTTP only redirects, and every route reaching a backend is on its
host's HTTPS listener. In mode upstream a load balancer in front terminates TLS instead."""

from __future__ import annotations

from typing import Any

import pytest

from core.errors import ConfigError
from core.gateway import GATEWAY_TYPE, HTTPROUTE_TYPE
from policy.platform_policies import violations_of
from tests.conftest import STACKS, baseline, run_program, with_knob
from tests.test_policies import engine_args

ISSUER = "cert-manager.io/cluster-issuer"


@pytest.mark.parametrize("stack", STACKS)
def test_every_service_host_has_an_https_listener_with_a_certificate_from_the_stacks_issuer(
    stack: str,
) -> None:
    (gateway,) = baseline(stack).of_type(GATEWAY_TYPE)
    issuer = "platform-internal-ca" if stack == "dev" else "letsencrypt"
    assert gateway.inputs["metadata"]["annotations"] == {ISSUER: issuer}
    listeners = {listener["name"]: listener for listener in gateway.inputs["spec"]["listeners"]}
    assert sorted(listeners) == ["http", "https-api", "https-web"]
    for service in ("api", "web"):
        listener = listeners[f"https-{service}"]
        assert (listener["protocol"], listener["port"]) == ("HTTPS", 443)
        assert listener["hostname"].startswith(f"{service}.")
        assert listener["tls"] == {
            "mode": "Terminate",
            "certificateRefs": [{"kind": "Secret", "name": f"{service}-tls"}],
        }
    assert "hostname" not in listeners["http"] and listeners["http"]["protocol"] == "HTTP"


def test_plain_http_only_redirects_to_https_and_reaches_no_backend() -> None:
    run = baseline("production")
    redirect = run.named(HTTPROUTE_TYPE, "platform-redirect-to-https").inputs["spec"]
    assert redirect["parentRefs"] == [{"name": "platform", "sectionName": "http"}]
    [rule] = redirect["rules"]
    assert "backendRefs" not in rule
    assert rule["filters"] == [
        {"type": "RequestRedirect", "requestRedirect": {"scheme": "https", "statusCode": 301}}
    ]
    for route in run.of_type(HTTPROUTE_TYPE):
        spec = route.inputs["spec"]
        if isinstance(spec, dict) and route.name != "platform-redirect-to-https":
            assert spec["parentRefs"][0]["sectionName"] == f"https-{route.name}"


def test_upstream_mode_leaves_tls_to_the_load_balancer_on_http_listeners_per_host() -> None:
    run = run_program("production", edit=with_knob("tls", mode="upstream", clusterIssuer=None))
    (gateway,) = run.of_type(GATEWAY_TYPE)
    assert gateway.inputs["metadata"]["annotations"] == {"platform.example.test/tls-termination": "upstream"}
    listeners = gateway.inputs["spec"]["listeners"]
    assert [(item["name"], item["protocol"], item["port"]) for item in listeners] == [
        ("https-api", "HTTP", 80),
        ("https-web", "HTTP", 80),
    ]
    assert all("tls" not in listener for listener in listeners)
    # no redirect route: the load balancer redirects; the service routes attach as before
    assert sorted(route.name for route in run.of_type(HTTPROUTE_TYPE)) == [
        "api",
        "api-preview",
        "web",
        "web-preview",
    ]
    assert violations_of(engine_args(gateway)) == []


@pytest.mark.parametrize(
    ("changes", "value", "fix"),
    [
        ({"clusterIssuer": None}, None, "pulumi config set --path 'tls.clusterIssuer'"),
        ({"mode": "upstream"}, "letsencrypt", "pulumi config rm --path 'tls.clusterIssuer'"),
    ],
)
def test_the_cluster_issuer_is_required_with_cert_manager_and_refused_upstream(
    changes: dict[str, Any], value: Any, fix: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        run_program("staging", edit=with_knob("tls", **changes))
    [problem] = raised.value.problems
    assert (problem.stack, problem.key, problem.value) == ("staging", "platform:tls.clusterIssuer", value)
    assert fix in problem.fix


def test_an_unknown_tls_mode_and_the_retired_preview_ranges_are_refused_together() -> None:
    with pytest.raises(ConfigError) as raised:
        run_program("staging", edit=with_knob("tls", mode="acm", previewSourceRanges=["10.0.0.0/8"]))
    assert sorted(problem.key for problem in raised.value.problems) == [
        "platform:tls.mode",
        "platform:tls.previewSourceRanges",
    ]
