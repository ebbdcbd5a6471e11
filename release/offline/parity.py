"""Parity: every difference between stacks must come from a declared per-stack knob.

Two layers, both reported as `Difference`s:

- **config**: every config leaf whose value differs between stack files. A leaf under a declared knob
  (`platform:releases...`, `platform:database...`) is a knob; anything else (a project-level value
  overridden in a stack, an unknown or foreign key) is a parity violation.
- **resources**: the program is evaluated per stack under the mock runtime; the stacks must register
  the same resources (type and Pulumi name) with the same parents, providers and dependency edges,
  and every property that differs must be *explained by one knob*: in every stack, the property's
  value is that stack's knob value (or a documented derivation of it: release.offline.explain),
  possibly inside a longer string. A difference no knob explains is a violation: the program took another
  code path, or derived a value from something that is not a knob.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from core.config.base import PROJECT_NAME, Color, config_texts, full_key
from core.config.project import PostgresSpec, ServiceSpec
from core.config.stack import (
    STACK_KNOBS,
    misplaced_project_key,
    pod_config,
    releases_of,
)
from release.offline.explain import STACK_NAME_KNOB, KnobIndex, explain
from release.offline.mock_runtime import ProgramRun, RegisteredResource

RESOURCE_PRESENCE = "(registered)"


class Layer(StrEnum):
    """Where a difference between stacks is: in their config, or in the resources the program declares."""

    CONFIG = "config"
    RESOURCE = "resource"


@dataclass(frozen=True)
class Difference:
    """One value that differs between stacks, and whether a declared knob explains it."""

    layer: Layer
    where: str  # the config key's top level, or "<type> <name>"
    path: str
    values: dict[str, Any]  # stack -> value (None: absent in that stack)
    knobs: tuple[str, ...]  # the knob(s) that explain it; empty for a violation
    reason: str = ""
    fix: str = ""  # for a violation: what to change

    @property
    def is_violation(self) -> bool:
        return not self.knobs

    @property
    def name(self) -> str:
        """How people name it: the config key, or the resource and its property."""
        return self.path if self.layer is Layer.CONFIG else f"{self.where} {self.path}"

    def to_json(self) -> dict[str, Any]:
        return {
            "layer": self.layer,
            "where": self.where,
            "path": self.path,
            "values": self.values,
            "classification": "violation" if self.is_violation else "knob",
            "knobs": list(self.knobs),
            "reason": self.reason,
            "fix": self.fix,
        }


def flatten(value: Any, prefix: str = "", lists_of_values: bool = False) -> dict[str, Any]:
    """`{"a": {"b": [1]}}` -> `{"a.b[0]": 1}`; empty containers are kept as leaves. With
    `lists_of_values`, a list holding no container is one leaf: `{"a.b": [1]}`."""
    if isinstance(value, Mapping) and value:
        leaves: dict[str, Any] = {}
        for key, item in value.items():
            leaves.update(flatten(item, f"{prefix}.{key}" if prefix else str(key), lists_of_values))
        return leaves
    if isinstance(value, list) and value:
        if lists_of_values and not any(isinstance(item, Mapping | list) for item in value):
            return {prefix: value}
        leaves = {}
        for index, item in enumerate(value):
            leaves.update(flatten(item, f"{prefix}[{index}]", lists_of_values))
        return leaves
    return {prefix: value}


def _text_lists(value: Any, prefix: str = "") -> dict[str, list[str]]:
    """Every non-empty list of texts under `value`, by path: a program may join one into one text (a
    comma-separated annotation), which only the whole list explains."""
    if isinstance(value, Mapping):
        found: dict[str, list[str]] = {}
        for key, item in value.items():
            found.update(_text_lists(item, f"{prefix}.{key}" if prefix else str(key)))
        return found
    if isinstance(value, list) and value and all(isinstance(item, str) for item in value):
        return {prefix: list(value)}
    return {}


def _differing(per_stack: Mapping[str, Mapping[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    paths = sorted({path for leaves in per_stack.values() for path in leaves})
    for path in paths:
        values = {stack: leaves.get(path) for stack, leaves in per_stack.items()}
        if len({repr(value) for value in values.values()}) > 1:
            yield path, values


# --------------------------------------------------------------------------------------------------
# Config layer
# --------------------------------------------------------------------------------------------------


def config_differences(
    configs: Mapping[str, Mapping[str, Any]], plaintext_secrets: Mapping[str, Sequence[str]] | None = None
) -> list[Difference]:
    """`configs` maps stack -> {full key: value} as merged for the engine (secrets as placeholders).

    `plaintext_secrets` maps stack -> the paths of secrets its file holds in plain text
    (`platform:appSecrets.NAME`); a difference at or under one is a violation, never a knob.
    """
    per_stack = {stack: flatten(dict(values)) for stack, values in configs.items()}
    plaintext = {stack: list(paths) for stack, paths in (plaintext_secrets or {}).items() if paths}
    differences = []
    for path, values in _differing(per_stack):
        namespace, _, rest = path.partition(":")
        top = rest.split(".", 1)[0].split("[", 1)[0]
        in_plain_text = sorted(stack for stack, paths in plaintext.items() if _under_any(path, paths))
        if in_plain_text:
            files = _files(in_plain_text)
            differences.append(
                Difference(
                    Layer.CONFIG,
                    top or path,
                    path,
                    values,
                    (),
                    f"a secret stored in plain text in {files} (value not shown): remove it and set it "
                    "with `pulumi config set --secret --path`",
                    f"remove it from {files} and set it encrypted: `pulumi config set --secret --path "
                    f"'{rest}' <value> -s <stack>`",
                )
            )
        elif namespace == PROJECT_NAME and (twin := _misplaced(top, rest)):
            differences.append(
                Difference(
                    Layer.CONFIG,
                    top,
                    path,
                    values,
                    (),
                    f"a project-level value ({twin} in Pulumi.yaml) set under the per-stack knob '{top}'",
                    f"remove {rest} from {_files(_odd_ones(values))}; change {twin} in Pulumi.yaml if "
                    "every stack should change",
                )
            )
        elif namespace == PROJECT_NAME and top in STACK_KNOBS:
            differences.append(Difference(Layer.CONFIG, top, path, values, (rest,)))
        else:
            differences.append(
                Difference(
                    Layer.CONFIG,
                    top or path,
                    path,
                    values,
                    (),
                    "not a per-stack knob: a project-level value overridden in a stack file, or a "
                    f"key the program does not declare (per-stack knobs: {', '.join(STACK_KNOBS)})",
                    f"remove it from {_files(_odd_ones(values))}; to change it for every stack, change "
                    "Pulumi.yaml; to let stacks differ, declare a per-stack knob in core/config/stack.py",
                )
            )
    return differences


def _files(stacks: Sequence[str]) -> str:
    return ", ".join(f"Pulumi.{stack}.yaml" for stack in stacks)


def _odd_ones(values: Mapping[str, Any]) -> list[str]:
    """The stacks whose value is not the one most stacks have (each stack that sets one, if none is
    shared): where a value that must not differ was changed."""
    shown = {stack: repr(value) for stack, value in values.items()}
    counts = {text: list(shown.values()).count(text) for text in shown.values()}
    most = max(counts.values())
    if most == 1:
        return [stack for stack, value in values.items() if value is not None]
    usual = next(text for text, count in counts.items() if count == most)
    return [stack for stack, text in shown.items() if text != usual]


def _misplaced(knob: str, path: str) -> str | None:
    """`postgres.parameters` for `database.parameters.max_connections` (core.config.stack's table)."""
    key = path.split(".", 2)[1].split("[", 1)[0] if "." in path else ""
    return misplaced_project_key(knob, key)


def _under_any(path: str, prefixes: Sequence[str]) -> bool:
    return any(path == prefix or path.startswith((f"{prefix}.", f"{prefix}[")) for prefix in prefixes)


# --------------------------------------------------------------------------------------------------
# Resource layer
# --------------------------------------------------------------------------------------------------


def knob_leaves(configs: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """stack -> {knob path: value} for every per-stack knob leaf, plus the stack name itself."""
    leaves: dict[str, dict[str, Any]] = {}
    for stack, values in configs.items():
        knobs = {
            key.split(":", 1)[1]: value
            for key, value in values.items()
            if key.startswith(f"{PROJECT_NAME}:") and key.split(":", 1)[1] in STACK_KNOBS
        }
        leaves[stack] = {
            **flatten(knobs),
            **_text_lists(knobs),
            **_color_configs(values),
            STACK_NAME_KNOB: stack,
        }
    return leaves


def _color_configs(values: Mapping[str, Any]) -> dict[str, Any]:
    """What each color's knobs make of Pulumi.yaml's declarations: every flag's and env var's value
    in that color (`releases.<svc>.config.<color>`, else the default; `core.config.stack.pod_config`),
    the fingerprint of the whole, and the color's size and autoscaling bounds (`replicas`,
    `maxReplicas`, `idleReplicas` and whether the idle color is scaled down). Nothing when the
    declarations do not validate: the stack's own errors say why."""
    flags = config_texts(values.get(full_key("featureFlags")) or {})
    try:
        specs = [ServiceSpec.model_validate(spec) for spec in values.get(full_key("services")) or []]
        postgres = PostgresSpec.model_validate(values.get(full_key("postgres")))
    except (ValueError, TypeError):
        return {}
    if not isinstance(flags, Mapping):
        return {}
    declared = {str(name): str(value) for name, value in flags.items()}
    releases = releases_of(values.get(full_key("releases")))
    leaves: dict[str, Any] = {}
    for spec in specs:
        for color in Color if spec.name in releases else ():
            config = pod_config(spec, declared, postgres, releases[spec.name].config.of(color))
            key = f"releases.{spec.name}.config.{color}"
            leaves[f"{key} (fingerprint)"] = config.fingerprint
            size = f"releases.{spec.name}.replicas of {color}"
            leaves[size] = releases[spec.name].replicas_of(color)
            leaves[f"{size} (autoscaling min)"], leaves[f"{size} (autoscaling max)"] = releases[
                spec.name
            ].autoscaling_of(color)
            leaves.update({f"{key}.flags.{name}": value for name, value in config.flags.items()})
            leaves.update({f"{key}.env.{name}": value for name, value in config.env.items()})
    return leaves


def resource_differences(
    runs: Mapping[str, ProgramRun], knobs: Mapping[str, Mapping[str, Any]]
) -> list[Difference]:
    """Compare the resource graphs of several stacks; classify every difference."""
    stacks = list(runs)
    by_key = {stack: run.by_key() for stack, run in runs.items()}
    by_urn = {stack: run.by_urn() for stack, run in runs.items()}
    index = KnobIndex(knobs, stacks)
    differences: list[Difference] = []

    all_keys = sorted({key for resources in by_key.values() for key in resources})
    for key in all_keys:
        present = {stack: key in by_key[stack] for stack in stacks}
        if not all(present.values()):
            differences.append(
                Difference(
                    Layer.RESOURCE,
                    _label(key),
                    RESOURCE_PRESENCE,
                    {stack: "yes" if there else None for stack, there in present.items()},
                    (),
                    "the stacks register different resources: the program takes another code path",
                    "register it in every stack or in none (only in "
                    f"{', '.join(stack for stack, there in present.items() if there)} now): what differs "
                    "between stacks comes from a knob's value, never from a code path",
                )
            )
            continue
        resources = {stack: by_key[stack][key] for stack in stacks}
        differences += _edge_differences(key, resources, by_urn)
        leaves = {stack: _property_leaves(resource) for stack, resource in resources.items()}
        for path, values in _differing(leaves):
            explaining = explain(values, knobs, resources[stacks[0]].name, index)
            differences.append(
                Difference(
                    Layer.RESOURCE,
                    _label(key),
                    path,
                    values,
                    explaining,
                    "" if explaining else "no per-stack knob explains this value in every stack",
                    ""
                    if explaining
                    else "derive it from a per-stack knob's value (declared in core/config/stack.py), "
                    "or make it the same in every stack",
                )
            )
    return differences


def _label(key: str) -> str:
    type_token, _, name = key.partition("::")
    return f"{type_token} {name}"


def _property_leaves(resource: RegisteredResource) -> dict[str, Any]:
    return {**flatten(resource.inputs), "(protect)": resource.protect}


def _edge_differences(
    key: str,
    resources: Mapping[str, RegisteredResource],
    by_urn: Mapping[str, Mapping[str, RegisteredResource]],
) -> list[Difference]:
    """Parent, provider and dependency edges, compared by resource key (URNs embed the stack name)."""
    edges: dict[str, dict[str, Any]] = {}
    for stack, resource in resources.items():
        urns = by_urn[stack]
        edges[stack] = {
            "(parent)": urns[resource.parent].key if resource.parent in urns else "(stack)",
            "(provider)": resource.provider,
            "(dependsOn)": sorted(urns[urn].key for urn in resource.dependencies if urn in urns),
        }
    return [
        Difference(
            Layer.RESOURCE,
            _label(key),
            path,
            values,
            (),
            "the dependency graph differs between stacks",
            "give it the same parent, provider and dependsOn in every stack",
        )
        for path, values in _differing(edges)
    ]
