"""What one resource's key settings are, for people: the image, replicas, active color, engine
version or instance size a reviewer looks for, a kind for each type, and the order resources are
listed in (component, kind, name), the same in every stack. `release plan` shows them
(release.offline.plan, release.offline.summary)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from core.config.base import SECRET_MARKER
from core.dashboards import DASHBOARD_LABEL
from core.gateway import GATEWAY_TYPE, HTTPROUTE_TYPE
from core.naming import CONFIG_FINGERPRINT_ANNOTATION
from release.offline.mock_runtime import ProgramRun, RegisteredResource


def _get(inputs: dict[str, Any], *path: str | int) -> Any:
    value: Any = inputs
    for part in path:
        if isinstance(part, int):
            value = value[part] if isinstance(value, list) and len(value) > part else None
        else:
            value = value.get(part) if isinstance(value, dict) else None
    return value


def key_settings(resource: RegisteredResource) -> dict[str, Any]:
    """The few settings a reviewer looks at first, per resource kind."""
    inputs = resource.inputs
    kind = resource.type
    if kind == "kubernetes:apps/v1:Deployment":
        annotations = _get(inputs, "spec", "template", "metadata", "annotations") or {}
        return {
            "image": _get(inputs, "spec", "template", "spec", "containers", 0, "image"),
            "config": annotations.get(CONFIG_FINGERPRINT_ANNOTATION),
            "replicas": _get(inputs, "spec", "replicas"),
        }
    if kind == "kubernetes:core/v1:Service":
        selector = _get(inputs, "spec", "selector") or {}
        return {"selects color": selector.get("platform.example.test/color")}
    if kind == "kubernetes:batch/v1:Job":
        return {
            "job": _get(inputs, "metadata", "name"),
            "image": _get(inputs, "spec", "template", "spec", "containers", 0, "image"),
        }
    if kind == HTTPROUTE_TYPE:
        return route_settings(inputs)
    if kind == GATEWAY_TYPE:
        return {
            "class": _get(inputs, "spec", "gatewayClassName"),
            "listeners": [listener.get("name") for listener in _get(inputs, "spec", "listeners") or []],
        }
    if kind == "aws:rds/instance:Instance":
        return {
            "engine": f"{inputs.get('engine')} {inputs.get('engineVersion')}",
            "instance size": inputs.get("instanceClass"),
            "storage GiB": inputs.get("allocatedStorage"),
            "multi-AZ": inputs.get("multiAz"),
            "deletion protection": inputs.get("deletionProtection"),
        }
    if kind == "kubernetes:core/v1:ConfigMap" and DASHBOARD_LABEL in (
        _get(inputs, "metadata", "labels") or {}
    ):
        return dashboard_settings(inputs)
    if kind in ("kubernetes:core/v1:ConfigMap", "kubernetes:core/v1:Secret"):
        data = inputs.get("data") or inputs.get("stringData") or {}
        return {"keys": sorted(data) if isinstance(data, dict) else SECRET_MARKER}
    if kind == "kubernetes:core/v1:Namespace":
        return {"name": _get(inputs, "metadata", "name")}
    if kind == "kubernetes:policy/v1:PodDisruptionBudget":
        return {"maxUnavailable": _get(inputs, "spec", "maxUnavailable")}
    if kind == "pulumi:providers:kubernetes":
        return {"context": inputs.get("context"), "namespace": inputs.get("namespace")}
    if kind == "pulumi:providers:aws":
        return {"region": inputs.get("region")}
    return {}


PART_OF = "app.kubernetes.io/part-of"


def dashboard_settings(inputs: dict[str, Any]) -> dict[str, Any]:
    """A dashboard ConfigMap (components.dashboards): the dashboard's title, its panels, the datasource
    they query, and the sidecar label and folder annotation Grafana loads it by."""
    labels = _get(inputs, "metadata", "labels") or {}
    documents = [text for text in (inputs.get("data") or {}).values() if isinstance(text, str)]
    try:
        document = json.loads(documents[0]) if documents else {}
    except ValueError:
        document = {}
    panels = [panel for panel in document.get("panels") or [] if panel.get("type") != "row"]
    sources = {
        str((target.get("datasource") or {}).get("uid"))
        for panel in panels
        for target in panel.get("targets") or []
    }
    return {
        "dashboard": document.get("title"),
        "panels": len(panels),
        "datasource": ",".join(sorted(sources)),
        "sidecar": ",".join(
            f"{key}={value}" for key, value in sorted(labels.items()) if key not in (DASHBOARD_LABEL, PART_OF)
        ),
        "folder": ",".join(str(value) for value in (_get(inputs, "metadata", "annotations") or {}).values()),
    }


def short_type(type_token: str) -> str:
    return type_token.rsplit(":", 1)[-1]


def kind_of(type_token: str) -> str:
    """`Deployment` for `kubernetes:apps/v1:Deployment`; `aws provider` for `pulumi:providers:aws`."""
    if type_token.startswith(PROVIDER_PREFIX):
        return f"{type_token[len(PROVIDER_PREFIX) :]} provider"
    return short_type(type_token)


PROVIDER_PREFIX = "pulumi:providers:"


def grouped_by_component(run: ProgramRun) -> list[tuple[RegisteredResource | None, list[RegisteredResource]]]:
    """Top-level components, each with the custom resources under it, in the same order in every
    stack and every run: the stack's own resources first, then by component (kind, name), and
    within one by resource (kind, name). (The order the program registers them in is not stable:
    it follows the order its outputs resolve in.)"""
    urns = run.by_urn()

    def top_level(resource: RegisteredResource) -> RegisteredResource | None:
        current = resource
        while current.parent in urns:
            current = urns[current.parent]
        return None if current is resource and resource.custom else current

    groups: dict[str, tuple[RegisteredResource | None, list[RegisteredResource]]] = {}
    for resource in run.resources:  # a component registers before its children
        top = top_level(resource)
        group = groups.setdefault(top.urn if top is not None else "(stack)", (top, []))
        if resource.custom:
            group[1].append(resource)
    return [
        (top, sorted(resources, key=_order))
        for top, resources in sorted(
            groups.values(), key=lambda group: (0, ("", "")) if group[0] is None else (1, _order(group[0]))
        )
    ]


def _order(resource: RegisteredResource) -> tuple[str, str]:
    return kind_of(resource.type).lower(), resource.name


def route_settings(inputs: dict[str, Any]) -> dict[str, Any]:
    """An HTTPRoute's host, listener and, per rule, its backends with their weights (a preview
    route's spec holds the preview token: shown as redacted)."""
    spec = inputs.get("spec")
    if not isinstance(spec, Mapping):
        return {"spec": SECRET_MARKER}
    backends = [
        " ".join(f"{ref.get('name')}={ref.get('weight', 1)}" for ref in rule.get("backendRefs") or [])
        or "redirect"
        for rule in spec.get("rules") or []
    ]
    settings = {
        "host": _get(inputs, "spec", "hostnames", 0),
        "listener": _get(inputs, "spec", "parentRefs", 0, "sectionName"),
        "weights": "; ".join(backends),
    }
    return {key: value for key, value in settings.items() if value is not None}
