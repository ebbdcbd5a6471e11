"""`release plan --out`: every stack's manifests are valid Kubernetes objects (oldest supported version)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from core.config.sources import secret_names_of
from release.cli import main
from release.offline.manifests import write_manifests
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
    assert len(manifests) == 46  # 31 + 9 NetworkPolicies + per service a ServiceMonitor, a PrometheusRule
    # and a canary Ingress
    for manifest in manifests:
        if manifest["apiVersion"] == MONITORING_API:
            jsonschema.validate(manifest, OPERATOR_SCHEMAS[manifest["kind"]])
        else:
            kubernetes_validate.validate(manifest, OLDEST_SUPPORTED_KUBERNETES, strict=True)


def test_no_secret_value_reaches_a_manifest(tmp_path: Path) -> None:
    files = write_manifests(baseline("production"), tmp_path, secret_names_of(PROJECT))
    text = "".join(path.read_text() for path in files)
    assert not any(value in text for value in TEST_SECRETS.values())
    secret = yaml.safe_load(next(path for path in files if "-secret-" in path.name).read_text())
    assert secret["stringData"] == dict.fromkeys(sorted(TEST_SECRETS), "[secret]")


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
