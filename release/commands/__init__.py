"""One module per verb, each with `add_parser(verbs, options)` and `run(args, ctx) -> exit code`.

`COMMANDS` is the order `release --help` lists them in.
"""

from __future__ import annotations

from types import ModuleType

from release.commands import (
    abort,
    analyse,
    audit,
    deploy,
    diff,
    drift,
    drill,
    health_check,
    history,
    keygen,
    metrics,
    page,
    plan,
    promote,
    reject,
    review,
    rollback,
    smoke,
    status,
    verify_image,
)

COMMANDS: tuple[ModuleType, ...] = (
    plan,
    deploy,
    rollback,
    abort,
    keygen,
    promote,
    reject,
    review,
    audit,
    status,
    metrics,
    page,
    diff,
    drift,
    drill,
    history,
    health_check,
    analyse,
    smoke,
    verify_image,
)
