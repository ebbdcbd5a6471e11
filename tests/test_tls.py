"""TLS everywhere a user connects, as the program declares it under the mock runtime: every Ingress
host (stable and preview) has a certificate from the stack's cert-manager ClusterIssuer, HTTP is
redirected, and preview hosts accept only the stack's source ranges."""

from __future__ import annotations

from typing import Any

import pytest

from core.errors import ConfigError
from policy.platform_policies import violations_of
from tests.conftest import STACKS, baseline, run_program, with_knob
from tests.test_policies import engine_args

INGRESS = "kubernetes:networking.k8s.io/v1:Ingress"
ISSUER = "cert-manager.io/cluster-issuer"
SOURCE_RANGES = "nginx.ingress.kubernetes.io/whitelist-source-range"


@pytest.mark.parametrize("stack", STACKS)
def test_every_ingress_host_has_a_certificate_from_the_stacks_issuer_and_redirects_to_https(
    stack: str,
) -> None:
    ingresses = baseline(stack).of_type(INGRESS)
    assert sorted(ingress.name for ingress in ingresses) == [
        "api",
        "api-canary",
        "api-preview",
        "web",
        "web-canary",
        "web-preview",
    ]
    for ingress in ingresses:
        spec, annotations = ingress.inputs["spec"], ingress.inputs["metadata"]["annotations"]
        hosts = [rule["host"] for rule in spec["rules"]]
        # a canary Ingress serves its stable host with the stable Ingress's certificate
        certificate = ingress.name.removesuffix("-canary")
        assert spec["tls"] == [{"hosts": hosts, "secretName": f"{certificate}-tls"}]
        if not ingress.name.endswith("-canary"):  # which the stable Ingress alone asks cert-manager for
            assert annotations[ISSUER] == ("platform-internal-ca" if stack == "dev" else "letsencrypt")
        assert annotations["nginx.ingress.kubernetes.io/force-ssl-redirect"] == "true"


def test_only_preview_hosts_are_limited_to_the_stacks_source_ranges() -> None:
    run = baseline("production")
    preview = run.named(INGRESS, "api-preview").inputs["metadata"]["annotations"]
    assert preview[SOURCE_RANGES] == "10.20.0.0/16,192.0.2.0/24"
    assert SOURCE_RANGES not in run.named(INGRESS, "api").inputs["metadata"]["annotations"]


def _with_ranges(ranges: list[str]) -> Any:
    def edit(values: dict[str, Any]) -> None:
        values["platform:tls"] = {**values["platform:tls"], "previewSourceRanges": ranges}

    return edit


@pytest.mark.parametrize(
    "ranges", [["0.0.0.0/0"], ["10.20.0.0/16", "::/0"], ["0.0.0.0/1", "128.0.0.0/1"], ["8.0.0.0/8"]]
)
def test_a_production_preview_open_to_the_internet_is_refused_naming_the_rule(ranges: list[str]) -> None:
    with pytest.raises(ConfigError) as raised:
        run_program("production", edit=_with_ranges(ranges))
    [problem] = raised.value.problems
    assert problem.key == "platform:tls.previewSourceRanges" and "requirePrivatePreview" in problem.problem
    assert "pulumi config set" in problem.fix


def test_dev_may_open_its_previews_because_its_policy_allows_it() -> None:
    assert run_program("dev", edit=_with_ranges(["0.0.0.0/0"])).of_type(INGRESS)


@pytest.mark.parametrize("ranges", [[], ["10.20.0.0/33"], ["10.20.0.1/16"], ["office"]])
def test_preview_source_ranges_must_be_cidr_ranges_and_at_least_one(ranges: list[str]) -> None:
    with pytest.raises(ConfigError) as raised:
        run_program("staging", edit=_with_ranges(ranges))
    assert [problem.key for problem in raised.value.problems] == ["platform:tls.previewSourceRanges"]


def test_upstream_mode_leaves_tls_to_the_load_balancer_and_keeps_the_https_redirect() -> None:
    run = run_program("production", edit=with_knob("tls", mode="upstream", clusterIssuer=None))
    for ingress in run.of_type(INGRESS):
        annotations = ingress.inputs["metadata"]["annotations"]
        assert "tls" not in ingress.inputs["spec"] and ISSUER not in annotations
        assert annotations["nginx.ingress.kubernetes.io/force-ssl-redirect"] == "true"
        assert annotations["platform.example.test/tls-termination"] == "upstream"
        assert violations_of(engine_args(ingress)) == []
    preview = run.named(INGRESS, "api-preview").inputs["metadata"]["annotations"]
    assert preview[SOURCE_RANGES] == "10.20.0.0/16,192.0.2.0/24"


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


def test_an_unknown_tls_mode_is_refused_with_the_other_problems() -> None:
    with pytest.raises(ConfigError) as raised:
        run_program("staging", edit=with_knob("tls", mode="acm", previewSourceRanges=["office"]))
    assert sorted(problem.key for problem in raised.value.problems) == [
        "platform:tls.mode",
        "platform:tls.previewSourceRanges",
    ]
