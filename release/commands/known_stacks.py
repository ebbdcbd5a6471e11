"""Every stack a command names must be one of the project's (a Pulumi.<stack>.yaml): an unknown one
is answered with the known stacks and the closest match, before any engine call."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from core.config.sources import stack_names
from core.errors import UsageError
from release.context import ReleaseContext


def require_known_stacks(ctx: ReleaseContext, named: Iterable[str | list[str] | None]) -> None:
    """`named`: each stack argument's value (a name, a list of names, or None when left out)."""
    given = [
        name
        for value in named
        if value is not None
        for name in ([value] if isinstance(value, str) else value)
    ]
    if not given:
        return
    known = stack_names(ctx.project_dir)
    unknown = [name for name in given if name not in known]
    if unknown:
        raise UsageError("; ".join(unknown_stack_message(name, known) for name in unknown))


def unknown_stack_message(name: str, known: list[str]) -> str:
    listed = ", ".join(known) if known else "none (no Pulumi.<stack>.yaml in the project)"
    guess = closest_stack(name, known)
    if guess:
        hint = f"; did you mean '{guess}'?"
    else:  # no near miss: perhaps a stack not made yet
        hint = f" (a new stack needs its Pulumi.{name}.yaml, made by `pulumi stack init {name}`)"
    return f"stack '{name}' is not one of this project's stacks: {listed}{hint}"


def closest_stack(name: str, known: list[str]) -> str | None:
    """The known stack `name` most likely meant: the one it abbreviates (`prod`), else the nearest
    spelling (`stagng`), else None."""
    lowered = name.lower()
    prefixed = [stack for stack in known if stack.lower().startswith(lowered)]
    if len(prefixed) == 1:
        return prefixed[0]
    close = difflib.get_close_matches(lowered, [stack.lower() for stack in known], n=1, cutoff=0.6)
    return next((stack for stack in known if close and stack.lower() == close[0]), None)
