"""`release plan --out`: every stack's manifests are valid Kubernetes objects (oldest supported version)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from components.routes import live_route_spec, preview_route_spec
from core.config.base import SECRET_MARKER
from core.config.sources import secret_names_of
from core.gateway import GATEWAY_API_VERSION, GATEWAY_NAME, PREVIEW_TOKEN_SECRET
from release.cli import main
from release.offline.manifests import write_manifests
from tests import gateway_schemas
from tests.conftest import PROJECT, STACKS, TEST_SECRETS, baseline

OLDEST_SUPPORTED_KUBERNETES = "1.29.0"
"""The README's stated minimum; the schema is that version's OpenAPI, strict (unknown fields fail)."""
MONITORING_API = "monitoring.coreos.com/v1"


def _strict(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": required, "additionalProperties": False}


_STRING = {"type": "string"}
_LABELS = {"type": "object", "additionalProperties": _STRING}
_METADATA = _strict({"name": _STRING, "namespace": _STRING, "labels": _LABELS}, ["name", "namespace"])
_RULE = {
    "oneOf": [
        _strict({"record": _STRING, "expr": _STRING}, ["record", "expr"]),
        _strict(
            {"alert": _STRING, "expr": _STRING, "for": _STRING, "labels": _LABELS, "annotations": _LABELS},
            ["alert", "expr"],
        ),
    ]
}
OPERATOR_SCHEMAS = {
    "ServiceMonitor": _strict(
        {
            "apiVersion": _STRING,
            "kind": _STRING,
            "metadata": _METADATA,
            "spec": _strict(
                {
                    "selector": _strict({"matchLabels": _LABELS}, ["matchLabels"]),
                    "endpoints": {
                        "type": "array",
                        "minItems": 1,
                        "items": _strict(
                            {
                                "port": _STRING,
                                "path": _STRING,
                                "interval": {"type": "string", "pattern": "^[0-9]+(ms|s|m|h)$"},
                                "relabelings": {
                                    "type": "array",
                                    "items": _strict(
                                        {
                                            "sourceLabels": {"type": "array", "items": _STRING},
                                            "targetLabel": _STRING,
                                        },
                                        ["targetLabel"],
                                    ),
                                },
                            },
                            ["port"],
                        ),
                    },
                },
                ["selector", "endpoints"],
            ),
        },
        ["apiVersion", "kind", "metadata", "spec"],
    ),
    "PrometheusRule": _strict(
        {
            "apiVersion": _STRING,
            "kind": _STRING,
            "metadata": _METADATA,
            "spec": _strict(
                {
                    "groups": {
                        "type": "array",
                        "items": _strict(
                            {"name": _STRING, "rules": {"type": "array", "items": _RULE}}, ["name", "rules"]
                        ),
                    }
                },
                ["groups"],
            ),
        },
        ["apiVersion", "kind", "metadata", "spec"],
    ),
}
"""The Prometheus Operator's CRD fields the program uses (monitoring.coreos.com/v1), strict: a field
the operator does not know, or a mistyped one, fails. No package here ships the operator's schema."""


@pytest.mark.parametrize("stack", STACKS)
def test_every_manifest_of_every_stack_is_valid_for_the_oldest_supported_kubernetes(
    stack: str, tmp_path: Path
) -> None:
    files = write_manifests(baseline(stack), tmp_path, secret_names_of(PROJECT))
    manifests = [yaml.safe_load(path.read_text()) for path in files if path.name != "aws-resources.yaml"]
    # 40, NetworkPolicies, ServiceMonitors and PrometheusRules included, + 6 Gateway API objects: the
    # Gateway, its redirect route, and per service (api, web) a live and a preview route, + the two
    # services' dashboard ConfigMaps
    assert len(manifests) == 48
    for manifest in manifests:
        if manifest["apiVersion"] == MONITORING_API:
            jsonschema.validate(manifest, OPERATOR_SCHEMAS[manifest["kind"]])
        elif manifest["apiVersion"].startswith(gateway_schemas.GATEWAY_API_GROUP):
            gateway_schemas.validate(_with_preview_spec(manifest))
        else:
            kubernetes_validate.validate(manifest, OLDEST_SUPPORTED_KUBERNETES, strict=True)


def _with_preview_spec(manifest: dict[str, Any]) -> dict[str, Any]:
    """A preview route's spec holds the preview token, so the mock runtime records it as `[secret]`:
    validate the spec the program builds for it (components.routes), with a stand-in token."""
    if manifest["spec"] != SECRET_MARKER:
        return manifest
    name = manifest["metadata"]["name"].removesuffix("-preview")
    return {**manifest, "spec": preview_route_spec(GATEWAY_NAME, name, f"{name}.example.test", "token")}


@pytest.mark.parametrize("stack", STACKS)
def test_release_plan_declares_gateway_api_objects_and_no_ingress(stack: str, tmp_path: Path) -> None:
    files = write_manifests(baseline(stack), tmp_path, secret_names_of(PROJECT))
    kinds = [
        yaml.safe_load(path.read_text()).get("kind") for path in files if path.name != "aws-resources.yaml"
    ]
    assert "Ingress" not in kinds
    assert kinds.count("Gateway") == 1
    assert (
        kinds.count("HTTPRoute") == 5
    )  # the redirect, and per service (api, web) a live and a preview route


@pytest.mark.parametrize(
    "broken",
    [
        lambda spec: spec["rules"][0].update(
            timeout="5s"
        ),  # unknown field (standard channel names it `timeouts`)
        lambda spec: spec["rules"][0]["backendRefs"][0].update(weight=1000001),  # above the CRD's maximum
        lambda spec: spec["parentRefs"][0].update(gateway="platform"),  # unknown field
    ],
)
def test_the_pinned_schema_refuses_an_unknown_field_or_a_bad_weight(broken: Any) -> None:
    spec = live_route_spec(GATEWAY_NAME, "api", "api.example.test", 10)
    manifest = {
        "apiVersion": GATEWAY_API_VERSION,
        "kind": "HTTPRoute",
        "metadata": {"name": "api", "namespace": "n"},
    }
    gateway_schemas.validate({**manifest, "spec": spec})
    broken(spec)
    with pytest.raises(jsonschema.ValidationError):
        gateway_schemas.validate({**manifest, "spec": spec})


def test_no_secret_value_reaches_a_manifest(tmp_path: Path) -> None:
    files = write_manifests(baseline("production"), tmp_path, secret_names_of(PROJECT))
    text = "".join(path.read_text() for path in files)
    assert not any(value in text for value in TEST_SECRETS.values())
    secret = yaml.safe_load(next(path for path in files if "-secret-" in path.name).read_text())
    # the preview token is the routes', the smoke suites' secrets the release tool's: never mounted
    assert secret["stringData"] == dict.fromkeys(
        sorted(set(TEST_SECRETS) - {PREVIEW_TOKEN_SECRET, "SMOKE_ACCOUNT_TOKEN"}), "[secret]"
    )


def test_the_aws_summary_lists_the_database_with_its_engine_version(tmp_path: Path) -> None:
    files = write_manifests(baseline("staging"), tmp_path, secret_names_of(PROJECT))
    summary = yaml.safe_load((tmp_path / "staging" / "aws-resources.yaml").read_text())
    (database,) = [item for item in summary["resources"] if item["type"] == "aws:rds/instance:Instance"]
    assert database["inputs"]["engineVersion"] == "16.4"
    assert files[-1].name == "aws-resources.yaml"


def test_release_plan_all_out_writes_one_directory_per_stack(tmp_path: Path) -> None:
    assert main(["plan", "--all", "--out", str(tmp_path), "--project-dir", str(PROJECT)]) == 0
    assert sorted(path.name for path in tmp_path.iterdir()) == ["dev", "production", "staging"]
    assert (tmp_path / "production" / "01-namespace-platform-production.yaml").is_file()
