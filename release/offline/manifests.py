"""`release plan <stack> --out DIR`: the Kubernetes manifests a stack declares, as YAML, offline.

One file per Kubernetes resource the program registers (`<stack>/<nn>-<kind>-<name>.yaml`), ready for
`kubectl apply --dry-run=server -f` or any validator, plus `<stack>/aws-resources.yaml`, a summary of
the AWS resources. Secret values never reach a file: each Secret's keys are listed with the
placeholder `[secret]` (the mock runtime redacts them as it records them). These are what the
program declares, not what a cluster holds; Pulumi-only annotations (`pulumi.com/...`) are kept, as
the engine sends them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from core.config.base import SECRET_MARKER
from release.offline.mock_runtime import ProgramRun, RegisteredResource

KUBERNETES_PREFIX = "kubernetes:"
APPLY_ORDER = (
    "Namespace",
    "NetworkPolicy",
    "ConfigMap",
    "Secret",
    "Job",
    "Deployment",
    "PodDisruptionBudget",
    "Service",
    "Gateway",
    "HTTPRoute",
)
"""Kinds in the order `kubectl apply -f DIR` should meet them; the file numbers follow it."""
AWS_PREFIX = "aws:"


def manifest_of(resource: RegisteredResource, secret_names: Sequence[str]) -> dict[str, Any] | None:
    """The resource as a Kubernetes object, or None for what is not one (providers, components)."""
    if not resource.custom or not resource.type.startswith(KUBERNETES_PREFIX):
        return None
    manifest = _without_nones(dict(resource.inputs))
    if manifest.get("kind") == "Secret":
        for field in ("stringData", "data"):
            if manifest.get(field) == SECRET_MARKER:
                manifest[field] = dict.fromkeys(secret_names, SECRET_MARKER)
    return {"apiVersion": manifest.pop("apiVersion"), "kind": manifest.pop("kind"), **manifest}


def write_manifests(run: ProgramRun, out_dir: Path, secret_names: Sequence[str]) -> list[Path]:
    """Write the stack's manifests and AWS summary under `out_dir/<stack>/`; returns the files."""
    stack_dir = out_dir / run.stack
    stack_dir.mkdir(parents=True, exist_ok=True)
    for stale in stack_dir.glob("*.yaml"):
        stale.unlink()
    written = []
    manifests = sorted(
        (manifest for manifest in (manifest_of(r, secret_names) for r in run.resources) if manifest),
        key=lambda manifest: (_kind_rank(manifest["kind"]), manifest.get("metadata", {}).get("name", "")),
    )
    for index, manifest in enumerate(manifests, start=1):
        name = _slug(f"{index:02d}-{manifest['kind']}-{manifest.get('metadata', {}).get('name', 'unnamed')}")
        path = stack_dir / f"{name}.yaml"
        path.write_text(yaml.safe_dump(manifest, sort_keys=False))
        written.append(path)
    summary = [
        {"type": resource.type, "name": resource.name, "inputs": _without_nones(resource.inputs)}
        for resource in run.resources
        if resource.custom and resource.type.startswith(AWS_PREFIX)
    ]
    aws_path = stack_dir / "aws-resources.yaml"
    aws_path.write_text(yaml.safe_dump({"stack": run.stack, "resources": summary}, sort_keys=False))
    return [*written, aws_path]


def _kind_rank(kind: str) -> int:
    return APPLY_ORDER.index(kind) if kind in APPLY_ORDER else len(APPLY_ORDER)


def _without_nones(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _without_nones(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [_without_nones(item) for item in value]
    return value


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).lower()
