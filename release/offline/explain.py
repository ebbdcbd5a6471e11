"""Which per-stack knob explains a value that differs between stacks (release.offline.parity).

A value is explained when, in every stack, replacing that stack's knob value (or a derivation of it:
`_knob_forms`) by a token naming the knob leaves the same thing. `KnobIndex` prepares the knobs of
some stacks once for every `explain` over them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from contextlib import suppress
from typing import Any

from core.config.base import Color
from core.config.stack import free_storage_alarm_bytes
from core.images import digest_of, fingerprint_of, image_pull_policy, is_image

STACK_NAME_KNOB = "(stack name)"
MIN_SUBSTRING = 3
COLORS = frozenset(color.value for color in Color)


def _distinctive(form: str) -> bool:
    """Whether a knob's text is specific enough to be credited inside another text: not a boolean,
    not a bare number, not a word of three letters (a flag's "true" must not explain a "true")."""
    return len(form) > MIN_SUBSTRING and form.lower() not in {"true", "false"} and not form.isdigit()


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
