"""Parity: every difference between stacks must come from a declared per-stack knob.

Two layers, both reported as `Difference`s:

- **config**: every config leaf whose value differs between stack files. A leaf under a declared knob
  (`platform:releases...`, `platform:database...`) is a knob; anything else (a project-level value
  overridden in a stack, an unknown or foreign key) is a parity violation.
- **resources**: the program is evaluated per stack under the mock runtime; the stacks must register
  the same resources (type and Pulumi name) with the same parents, providers and dependency edges,
  and every property that differs must be *explained by one knob*: in every stack, the property's
  value is that stack's knob value (or a documented derivation of it, see `_knob_forms`), possibly
  inside a longer string. A difference no knob explains is a violation: the program took another
  code path, or derived a value from something that is not a knob.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from core.config.base import PROJECT_NAME, Color, config_texts, full_key
from core.config.project import PostgresSpec, ServiceSpec
from core.config.stack import (
    STACK_KNOBS,
    free_storage_alarm_bytes,
    misplaced_project_key,
    pod_config,
    releases_of,
)
from core.images import digest_of, fingerprint_of, image_pull_policy, is_image
from release.offline.mock_runtime import ProgramRun, RegisteredResource

STACK_NAME_KNOB = "(stack name)"
MIN_SUBSTRING = 3
COLORS = frozenset(color.value for color in Color)
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


def _distinctive(form: str) -> bool:
    """Whether a knob's text is specific enough to be credited inside another text: not a boolean,
    not a bare number, not a word of three letters (a flag's "true" must not explain a "true")."""
    return len(form) > MIN_SUBSTRING and form.lower() not in {"true", "false"} and not form.isdigit()


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


class KnobIndex:
    """The knobs of some stacks, prepared once for every `explain` over them: the knob paths whose
    value differs between those stacks, each knob's forms (`_knob_forms`) per stack, and per stack
    which knobs can change a given value at all (`changing`)."""

    def __init__(self, knobs: Mapping[str, Mapping[str, Any]], stacks: Sequence[str]) -> None:
        self.knobs = knobs
        self.stacks = tuple(stacks)
        paths = sorted({path for leaves in knobs.values() for path in leaves})
        self.differing = [path for path in paths if len({repr(knobs[s].get(path)) for s in stacks}) > 1]
        self._forms: dict[tuple[str, str], list[tuple[Any, str]]] = {}
        self._finders: dict[str, _FormFinder] = {}

    def forms(self, stack: str, path: str) -> list[tuple[Any, str]]:
        key = (stack, path)
        if key not in self._forms:
            self._forms[key] = _knob_forms(path, self.knobs[stack].get(path))
        return self._forms[key]

    def changing(self, values: Mapping[str, Any]) -> set[str] | None:
        """The differing knobs whose `_normalise` changes the value of every stack (None: any may
        explain them: values that are all the same, or one that cannot be hashed).

        Only such a knob can explain values that differ on its own: in a stack it leaves alone, the
        value keeps no token of it (tokens are `{...}`), so it cannot equal the others' (unless a
        value holds a `{` itself: then any knob that changes some stack's value may)."""
        if _all_the_same(list(values.values())):  # every knob leaves them equal: each explains them
            return None
        per_stack: list[set[str]] = []
        for stack, value in values.items():
            if stack not in self._finders:
                self._finders[stack] = _FormFinder(stack, self)
            changing = self._finders[stack].changing(value)
            if changing is None:
                return None
            per_stack.append(changing)
        if any(isinstance(value, str) and "{" in value for value in values.values()):
            return set().union(*per_stack)
        return set.intersection(*per_stack)


class _FormFinder:
    """One stack's knob forms, indexed by what `_normalise` compares: a whole value (type and value),
    a knob's text inside a longer text (by its first characters, then by its length and text), a
    missing list item."""

    def __init__(self, stack: str, index: KnobIndex) -> None:
        self.whole: dict[tuple[type, Any], set[str]] = {}
        self.texts: dict[str, dict[int, dict[str, set[str]]]] = {}
        """first characters -> length -> the whole text -> the knobs it is a form of"""
        self.missing_items: set[str] = set()
        for path in index.differing:
            if index.knobs[stack].get(path) is None:
                if path.endswith("]"):
                    self.missing_items.add(path)
                continue
            for form, _ in index.forms(stack, path):
                if isinstance(form, str) and _distinctive(form):
                    by_length = self.texts.setdefault(form[:_PREFIX], {})
                    by_length.setdefault(len(form), {}).setdefault(form, set()).add(path)
                with suppress(TypeError):  # a list or a mapping: equal to no value that can be hashed
                    self.whole.setdefault((type(form), form), set()).add(path)
        # where in a text some knob's text may start: every position, overlapping ones too, in one scan
        self.starts = (
            re.compile(f"(?=({'|'.join(map(re.escape, sorted(self.texts)))}))") if self.texts else None
        )

    def changing(self, value: Any) -> set[str] | None:
        try:
            found = set(self.whole.get((type(value), value), ()))
        except TypeError:
            return None
        if value is None:
            found |= self.missing_items
        if isinstance(value, str) and self.starts is not None:
            for match in self.starts.finditer(value):
                start = match.start()
                for length, forms in self.texts[match.group(1)].items():
                    found.update(forms.get(value[start : start + length], ()))
        return found


_PREFIX = MIN_SUBSTRING + 1
"""The length of the shortest text `_distinctive` accepts: the key of `_FormFinder.texts`."""


def explain(
    values: Mapping[str, Any],
    knobs: Mapping[str, Mapping[str, Any]],
    resource_name: str = "",
    index: KnobIndex | None = None,
) -> tuple[str, ...]:
    """The knobs that, in every stack, account for that stack's value (empty: none does).

    When several knobs explain a value, the most specific win: the one whose value matched the
    longest text (`namespace` "platform-dev" over the stack name "dev"), then the one whose path
    names the resource (`releases.api...` for `api-blue`), then a declared knob over the stack name.
    Ties are all reported. `index` is `KnobIndex(knobs, values' stacks)`, when the caller has one.
    """
    stacks = list(values)
    if index is None or index.stacks != tuple(stacks):
        index = KnobIndex(knobs, stacks)
    candidates = _candidates(index, index.changing(values), resource_name)
    scored: list[tuple[tuple[int, int, int], str]] = []
    name_parts = set(resource_name.split("-"))
    for path in candidates:
        normalised = {
            stack: _normalise(values[stack], path, knobs[stack].get(path), index.forms(stack, path))
            for stack in stacks
        }
        if _all_the_same([value for value, _ in normalised.values()]):
            matched = sum(length for _, length in normalised.values())
            names_resource = len(name_parts & set(path.replace("[", ".").split(".")))
            declared = 0 if path == STACK_NAME_KNOB else 1 if " " in path else 2  # derived leaves: spaces
            scored.append(((matched, names_resource, declared), path))
    if not scored:
        # every knob: one knob's text may show only once another's is replaced by its token
        return _explained_together(values, index, _candidates(index, None, resource_name), name_parts)
    best = max(score for score, _ in scored)
    return tuple(path for score, path in scored if score == best)


def _all_the_same(values: Sequence[Any]) -> bool:
    """Whether the values are one value, type included (`1` is not `1.0`): texts compared as they
    are, anything else by its repr."""
    if all(type(value) is str for value in values):
        return len(set(values)) == 1
    return len({repr(value) for value in values}) == 1


def _candidates(index: KnobIndex, changing: set[str] | None, resource_name: str) -> list[str]:
    """The differing knobs among `changing` (None: all) that may explain a value of the resource, in
    the index's order (sorted, as `index.differing`)."""
    paths = index.differing if changing is None else sorted(changing)
    return [path for path in paths if _may_explain(path, resource_name)]


COLOR_KNOB = re.compile(r"releases\.([^.]+)\.(?:config\.|replicas of )(blue|green)\b")


def _may_explain(path: str, resource_name: str) -> bool:
    """A color's own knob (its config values, its size) explains only that color's resources
    (`api-blue`, `api-config-blue`, `api-migrate-blue`): a value that merely equals it elsewhere is
    another code path, not that knob."""
    found = COLOR_KNOB.match(path)
    if found is None:
        return True
    service, color = found.groups()
    return resource_name.startswith(f"{service}-") and color in resource_name.split("-")


def _explained_together(
    values: Mapping[str, Any],
    index: KnobIndex,
    candidates: Sequence[str],
    name_parts: set[str],
) -> tuple[str, ...]:
    """The knobs that together account for a text value in every stack (empty: they do not).

    One text can hold several knobs (an IAM trust policy names the cluster's OIDC provider and the
    namespace): each stack's knob values are replaced by tokens naming them, longest first, and the
    results must then be equal in every stack. A color's name inside a text is the resource's own
    color (`api-migrate-blue-...`), never credited to the active-color knob.
    """
    used: set[str] = set()
    normalised = set()
    for stack, value in values.items():
        if not isinstance(value, str):
            return ()
        forms = sorted(
            (
                (form, token, path)
                for path in candidates
                for form, token in index.forms(stack, path)
                if isinstance(form, str) and _distinctive(form) and form not in COLORS
            ),
            # Longest first; of equal texts, the knob whose path names the resource (`config.green`
            # for `api-migrate-green-...`, when both colors hold the same config).
            key=lambda found: (-len(found[0]), -len(name_parts & set(re.split(r"[.\[\] ]", found[2])))),
        )
        for form, token, path in forms:
            if form in value:
                value = value.replace(form, token)
                used.add(path)
        normalised.add(value)
    return tuple(sorted(used)) if len(normalised) == 1 and used else ()


def _normalise(value: Any, path: str, knob_value: Any, forms: Sequence[tuple[Any, str]]) -> tuple[Any, int]:
    """Replace the knob's value (or a derivation of it: `forms`, its `_knob_forms`) in `value` by a
    token naming the knob.

    Returns the normalised value and how many characters of `value` the knob accounted for.
    """
    if knob_value is None:
        # A list knob shorter in this stack: its missing element explains a missing list item.
        return (f"{{{path}}}", 0) if value is None and path.endswith("]") else (value, 0)
    for form, token in forms:
        if value == form and type(value) is type(form):
            return token, len(str(form))
        if isinstance(value, str) and isinstance(form, str) and form in value and _distinctive(form):
            return value.replace(form, token), len(form)
    return value, 0


def _knob_forms(path: str, knob_value: Any) -> list[tuple[Any, str]]:
    """The values a knob shows up as in resources: itself, and the derivations the program makes."""
    forms: list[tuple[Any, str]] = [(knob_value, f"{{{path}}}")]
    if isinstance(knob_value, str) and knob_value in {color.value for color in Color}:
        forms.append((Color(knob_value).other.value, f"{{other color of {path}}}"))
    if isinstance(knob_value, list):
        forms.append((",".join(knob_value), f"{{{path}, joined}}"))
    if path == "database.allocatedStorageGb" and isinstance(knob_value, int):
        forms.append((free_storage_alarm_bytes(knob_value), f"{{free-storage alarm threshold of {path}}}"))
    if isinstance(knob_value, str) and ":oidc-provider/" in knob_value:
        forms.append((knob_value.split(":oidc-provider/", 1)[1], f"{{issuer of {path}}}"))
    if isinstance(knob_value, str) and is_image(knob_value) and "/" in knob_value:
        forms.append((fingerprint_of(knob_value), f"{{fingerprint of {path}}}"))
        forms.append((image_pull_policy(knob_value), f"{{pull policy of {path}}}"))
        if digest_of(knob_value):
            forms.append((digest_of(knob_value), f"{{digest of {path}}}"))
    return forms
