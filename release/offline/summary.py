"""`release plan`'s summary, what it prints by default: the verdict first, then, in one screen, what
each stack declares in counts, the knobs that differ between the stacks (one line each, with each
stack's value) and what deserves a look. `--resources` prints every resource with its key settings
(`plan.render_resources`), `--json` everything.

Everything here is ordered by name, never by the order the program happened to register things
in, so two runs print the same bytes. Secrets are shown as the placeholder (`plan.redacted_config`).
"""

from __future__ import annotations

import itertools
import re
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from core.config.base import PROJECT_NAME, Color
from core.config.stack import STACK_KNOBS, StrategyType
from core.errors import ConfigError
from core.images import ImageRefError, parse_image
from policy.platform_policies import RULES
from release.offline.key_settings import kind_of
from release.offline.parity import flatten
from release.offline.plan import PlanReport, StackPlan

WIDTH = 118
"""Lines are wrapped at this width; a value wider than `VALUE_WIDTH` is shortened in the middle."""
VALUE_WIDTH = 22
KEY_WIDTH = 46
ABSENT = "-"
SIZE_KNOB = re.compile(
    r"database\.(instanceClass|allocatedStorageGb|multiAz)$|releases\.[^.]+\.(replicas|maxReplicas|idleReplicas)$"
)
"""The knobs that size a stack: where they differ, one stack's load test says little about another's."""
NO_BREAK = "\u00a0"
"""Keeps a kind and its count on one line when a line is wrapped (textwrap breaks at ASCII spaces only)."""
DETAILS = "more: --resources lists every resource with its key settings; --json has everything"


def render_summary(report: PlanReport) -> str:
    stacks = [plan.stack for plan in report.stacks]
    lines = [
        f"What the program DECLARES for {', '.join(stacks)}, offline: "
        "not what the cloud holds (`pulumi preview`)",
        *verdict(report),
        *_kinds(report.stacks),
    ]
    if report.compared:
        lines += knob_table(stacks, report.configs)
    for item in worth_a_look(report):
        lines += textwrap.wrap(item, WIDTH, initial_indent="look: ", subsequent_indent="      ")
    return "\n".join([*lines, DETAILS]) + "\n"


# --------------------------------------------------------------------------------------------------
# The verdict
# --------------------------------------------------------------------------------------------------


def verdict(report: PlanReport) -> list[str]:
    """What makes the plan exit non-zero, each named with its fix; else one OK line per check."""
    lines: list[str] = []
    for plan in report.stacks:
        if plan.error is not None and not (report.compared and plan.refused_for_parity_only):
            lines.append(f"config: stack {plan.stack} ({plan.file}) is REFUSED by the program (exit 2):")
            lines += _indented(_error_lines(plan), 2)
    if report.compared:
        lines += _parity_lines(report)
    lines += _policy_lines(report.stacks)
    return lines


def _error_lines(plan: StackPlan) -> list[str]:
    if isinstance(plan.error, ConfigError):
        return [line for problem in plan.error.problems for line in f"- {problem.render()}".splitlines()]
    return str(plan.error).splitlines()


def _parity_lines(report: PlanReport) -> list[str]:
    stacks = [plan.stack for plan in report.stacks]
    violations = report.parity_violations
    if not violations:
        return [f"parity: OK, every difference between {', '.join(stacks)} is a declared per-stack knob"]
    lines = [
        f"parity: {len(violations)} VIOLATION(S), differences no declared per-stack knob explains (exit 1):"
    ]
    for number, violation in enumerate(violations, start=1):
        values = "  ".join(f"{stack}={_cell(violation.values.get(stack))}" for stack in violation.values)
        lines.append(f"  {number}. {violation.name}: {values}")
        why = [f"the program refuses {problem.stack}: {problem.problem}" for problem in violation.refusals]
        why = why or [violation.reason]
        for text in dict.fromkeys(why):
            lines += textwrap.wrap(text, WIDTH, initial_indent="     ", subsequent_indent="       ")
        lines += textwrap.wrap(
            violation.fix, WIDTH, initial_indent="     fix: ", subsequent_indent="          "
        )
    return lines


def _policy_lines(stacks: Sequence[StackPlan]) -> list[str]:
    checked = [plan for plan in stacks if plan.run is not None]
    found = [(plan.stack, violation) for plan in checked for violation in plan.policy_violations]
    if not checked:
        return []
    if not found:
        where = (
            "in every stack"
            if len(checked) == len(stacks) > 1
            else f"in {', '.join(p.stack for p in checked)}"
        )
        return [f"policy: OK, the {len(RULES)} rules of policy/ hold {where}"]
    lines = [f"policy: {len(found)} VIOLATION(S) of policy/ (mandatory; exit 1):"]
    for stack, violation in sorted(found, key=lambda item: (item[0], item[1].rule, item[1].name)):
        lines += textwrap.wrap(
            f"{stack}: {violation.render()}", WIDTH, initial_indent="  - ", subsequent_indent="    "
        )
    return lines


def _indented(lines: Iterable[str], spaces: int) -> list[str]:
    return [" " * spaces + line for line in lines]


# --------------------------------------------------------------------------------------------------
# What each stack declares, in counts
# --------------------------------------------------------------------------------------------------


def _kinds(stacks: Sequence[StackPlan]) -> list[str]:
    """Resources by kind: one count where every stack has the same, else each stack's."""
    counted = {plan.stack: _counts(plan) for plan in stacks if plan.run is not None}
    refused = [plan.stack for plan in stacks if plan.run is None]
    if not counted:
        return ["resources: none evaluated (every stack is refused)"]
    totals = {stack: sum(counts.values()) for stack, counts in counted.items()}
    order = "/".join(counted)
    if len(set(totals.values())) == 1:
        header = f"{next(iter(totals.values()))} resources" + (" in each stack" if len(counted) > 1 else "")
    else:
        header = f"resources: {'/'.join(str(total) for total in totals.values())} ({order})"
    if refused:
        header += f" (none for {', '.join(refused)}: refused)"
    kinds = sorted({kind for counts in counted.values() for kind in counts}, key=str.lower)
    cells = []
    for kind in kinds:
        numbers = [counts.get(kind, 0) for counts in counted.values()]
        shown = str(numbers[0]) if len(set(numbers)) == 1 else "/".join(map(str, numbers))
        cells.append(f"{kind}{NO_BREAK}{shown}")
    if len(counted) > 1 and any("/" in cell for cell in cells):
        header += f" (where they differ: {order})"
    lines = textwrap.wrap(f"{header}: {', '.join(cells)}", WIDTH, subsequent_indent="  ")
    return [line.replace(NO_BREAK, " ") for line in lines]


def _counts(plan: StackPlan) -> dict[str, int]:
    counts: dict[str, int] = {}
    for resource in plan.run.resources if plan.run is not None else ():
        if resource.custom:
            kind = kind_of(resource.type)
            counts[kind] = counts.get(kind, 0) + 1
    return counts


# --------------------------------------------------------------------------------------------------
# The knobs that differ
# --------------------------------------------------------------------------------------------------


def knob_rows(stacks: Sequence[str], configs: Mapping[str, Mapping[str, Any]]) -> list[tuple[str, list[str]]]:
    """One row per knob value that differs between the stacks: its path (without `platform:`) and
    each stack's value as shown. A list of plain values is one value. Rows that differ in one part of
    their path only and show the same values are one row: `releases.{api,web}.activeColor`, or
    `releases.*.activeColor` when the part takes every value it has anywhere."""
    leaves = {stack: _knob_leaves(configs.get(stack, {})) for stack in stacks}
    paths = sorted({path for found in leaves.values() for path in found})
    rows = []
    for path in paths:
        values = [leaves[stack].get(path) for stack in stacks]
        if len({repr(value) for value in values}) > 1:
            rows.append((path, [_cell(value, path) for value in values]))
    return _merged(rows, paths)


def knob_table(stacks: Sequence[str], configs: Mapping[str, Mapping[str, Any]]) -> list[str]:
    rows = knob_rows(stacks, configs)
    if not rows:
        return [f"knobs: the same in {', '.join(stacks)}"]
    key_width = min(KEY_WIDTH, max(len(path) for path, _ in rows))
    widths = [
        max(len(stack), *(len(values[index]) for _, values in rows)) for index, stack in enumerate(stacks)
    ]
    header = f"knobs that differ ({len(rows)})"
    lines = [
        f"{header:<{key_width + 2}}  " + "  ".join(f"{s:<{w}}" for s, w in zip(stacks, widths, strict=True))
    ]
    for path, values in rows:
        cells = "  ".join(f"{value:<{width}}" for value, width in zip(values, widths, strict=True))
        lines.append(f"  {_shortened(path, key_width):<{key_width}}  {cells}")
    return [line.rstrip() for line in lines]


def _knob_leaves(config: Mapping[str, Any]) -> dict[str, Any]:
    knobs = {
        key.split(":", 1)[1]: value
        for key, value in config.items()
        if key.startswith(f"{PROJECT_NAME}:") and key.split(":", 1)[1] in STACK_KNOBS
    }
    return flatten(knobs, lists_of_values=True)


Parts = tuple[frozenset[str], ...]


def _merged(rows: list[tuple[str, list[str]]], paths: Sequence[str]) -> list[tuple[str, list[str]]]:
    """Merge rows with the same values whose paths differ in one part, until none do.

    Only rows with the same values and as many parts can merge, so each such group is merged on
    its own (`_merged_group`), and the rows that remain keep their order."""
    groups: dict[tuple[tuple[str, ...], int], list[tuple[int, Parts, list[str]]]] = {}
    for position, (path, values) in enumerate(rows):
        parts = tuple(frozenset([part]) for part in path.split("."))
        groups.setdefault((tuple(values), len(parts)), []).append((position, parts, values))
    found = sorted(row for group in groups.values() for row in _merged_group(group))
    everything = [path.split(".") for path in paths]
    return [(_path(parts, everything), values) for _, parts, values in found]


def _merged_group(
    group: list[tuple[int, Parts, list[str]]],
) -> list[tuple[int, Parts, list[str]]]:
    """The earliest pair of rows whose paths differ in one part becomes one row (in the first's
    place), again and again until no pair does."""
    found = list(group)
    merging = True
    while merging:
        merging = False
        for first, second in itertools.combinations(range(len(found)), 2):
            (position, a, values), (_, b, _) = found[first], found[second]
            different = [index for index in range(len(a)) if a[index] != b[index]]
            if len(different) == 1:
                at = different[0]
                found[first] = (position, (*a[:at], a[at] | b[at], *a[at + 1 :]), values)
                del found[second]
                merging = True
                break
    return found


def _path(parts: Parts, everything: Sequence[Sequence[str]]) -> str:
    shown = []
    for index, alternatives in enumerate(parts):
        if len(alternatives) == 1:
            shown.append(next(iter(alternatives)))
            continue
        siblings = {
            path[index]
            for path in everything
            if len(path) > index and all(path[i] in parts[i] for i in range(index))
        }
        shown.append("*" if alternatives == siblings else "{" + ",".join(sorted(alternatives)) + "}")
    return ".".join(shown)


IMAGE_KNOB = re.compile(r"releases\.[^.]+\.images\.")


def _cell(value: Any, path: str = "") -> str:
    """A value as one short cell: absent as '-'; an image (its knob names the service) as its digest,
    `sha256:<12 hex>`, or its tag, `main (tag)`."""
    if value is None:
        return ABSENT
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        whole = ",".join(_cell(item) for item in value) or "[]"
        if len(whole) <= VALUE_WIDTH:
            return whole
        return _shortened(f"{_cell(value[0])} (+{len(value) - 1})", VALUE_WIDTH)
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{key}: {_cell(item)}" for key, item in value.items()) + "}"
    text = str(value)
    if IMAGE_KNOB.match(path):
        try:
            image = parse_image(text)
        except ImageRefError:
            pass
        else:
            text = f"sha256:{image.fingerprint()}" if image.pinned else f"{image.tag or 'latest'} (tag)"
    return _shortened(text, VALUE_WIDTH)


def _shortened(text: str, width: int) -> str:
    if len(text) <= width:
        return text
    keep = width - 3
    return f"{text[: (keep + 1) // 2]}...{text[len(text) - keep // 2 :]}"


# --------------------------------------------------------------------------------------------------
# What deserves a look
# --------------------------------------------------------------------------------------------------


def worth_a_look(report: PlanReport) -> list[str]:
    """Not violations, but what a reviewer should know: images named by tag, stacks released without
    a canary or metric analysis, sizes that differ between the stacks, secrets not set yet."""
    per_stack: dict[str, list[str]] = {}  # one line per stack: its tags, then what guards it lacks
    for stack, item in _tags(report.stacks) + _unguarded(report.stacks):
        per_stack.setdefault(stack, []).append(item)
    items = [
        f"{plan.stack}: {'; '.join(per_stack[plan.stack])}"
        for plan in report.stacks
        if plan.stack in per_stack
    ]
    if report.compared:
        items += _sizes([plan.stack for plan in report.stacks], report.configs)
    return items + _unset_secrets(report.stacks)


def _tags(stacks: Sequence[StackPlan]) -> list[tuple[str, str]]:
    items = []
    for plan in stacks:
        found: dict[str, list[str]] = {}  # the color's role -> "api:main", ...
        for _, release in sorted(plan.config.settings.releases.items()) if plan.config else ():
            for color in Color:
                try:
                    image = parse_image(release.images.of(color))
                except ImageRefError:
                    continue
                if not image.pinned:
                    role = "live" if color is release.active_color else "idle"
                    found.setdefault(role, []).append(image.short())
        for role, images in sorted(found.items()):
            items.append((plan.stack, f"the {role} color runs a tag, not a digest: {', '.join(images)}"))
    return items


def _unguarded(stacks: Sequence[StackPlan]) -> list[tuple[str, str]]:
    items = []
    for plan in stacks:
        if plan.config is None:
            continue
        settings = plan.config.settings
        missing = []
        if settings.strategy.type is StrategyType.BLUE_GREEN:
            missing.append("no canary (blueGreen)")
        if settings.analysis is None:
            missing.append("no metric analysis")
        if missing:
            items.append((plan.stack, " and ".join(missing)))
    return items


def _sizes(stacks: Sequence[str], configs: Mapping[str, Mapping[str, Any]]) -> list[str]:
    sized: dict[str, set[str]] = {}  # the knob (database, releases) -> the sizes in it that differ
    for path, _ in knob_rows(stacks, configs):
        if SIZE_KNOB.search(path):
            sized.setdefault(path.split(".", 1)[0], set()).add(path.rsplit(".", 1)[1])
    named = ", ".join(f"{knob} ({', '.join(sorted(sizes))})" for knob, sizes in sorted(sized.items()))
    return [f"sizes differ: {named}"] if named else []


def _one_or_any(stacks: Sequence[str]) -> str:
    return stacks[0] if len(stacks) == 1 else "<stack>"


def _unset_secrets(stacks: Sequence[StackPlan]) -> list[str]:
    by_names: dict[tuple[str, ...], list[str]] = {}
    for plan in stacks:
        if plan.unset_secrets:
            by_names.setdefault(tuple(plan.unset_secrets), []).append(plan.stack)
    return [
        f"unset secrets in {'every stack' if len(where) == len(stacks) > 1 else ', '.join(where)}, "
        f"`pulumi up` refuses: {', '.join(names)}: "
        f"`pulumi config set --secret --path 'appSecrets.<NAME>' <value> -s {_one_or_any(where)}`"
        for names, where in by_names.items()
    ]
