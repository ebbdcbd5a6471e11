"""The pinned Gateway API v1.6.1 standard-channel CRD schemas (tests/schemas/gateway-api-v1.6.1/,
see its SOURCE), as strict JSON schemas: `additionalProperties: false` added to every object schema
that lists its properties and does not say otherwise, so an unknown or misspelt field fails."""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

SCHEMA_DIR = Path(__file__).parent / "schemas" / "gateway-api-v1.6.1"
GATEWAY_API_GROUP = "gateway.networking.k8s.io"
_METADATA = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "namespace": {"type": "string"},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
    },
    "required": ["name", "namespace"],
    "additionalProperties": False,
}


def _strict(schema: Any) -> Any:
    if isinstance(schema, dict):
        schema = {key: _strict(value) for key, value in schema.items()}
        if schema.get("type") == "object" and "properties" in schema and "additionalProperties" not in schema:
            schema["additionalProperties"] = False
        return schema
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    return schema


@cache
def strict_schema(kind: str, version: str = "v1") -> dict[str, Any]:
    """The served `version` of `kind`'s CRD, its openAPIV3Schema made strict (metadata: ours)."""
    for path in sorted(SCHEMA_DIR.glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        if crd["spec"]["names"]["kind"] != kind:
            continue
        (served,) = [v for v in crd["spec"]["versions"] if v["name"] == version and v.get("served")]
        schema = _strict(copy.deepcopy(served["schema"]["openAPIV3Schema"]))
        schema["properties"]["metadata"] = _METADATA
        schema["required"] = sorted({*schema.get("required", []), "apiVersion", "kind", "metadata", "spec"})
        return schema
    raise LookupError(f"no pinned Gateway API CRD for kind {kind}")


def validate(manifest: dict[str, Any]) -> None:
    """Raise jsonschema.ValidationError unless `manifest` is a valid Gateway API object (strict)."""
    group, _, version = manifest["apiVersion"].partition("/")
    assert group == GATEWAY_API_GROUP, manifest["apiVersion"]
    jsonschema.validate(manifest, strict_schema(manifest["kind"], version))
