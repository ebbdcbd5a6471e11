"""`release diff <a> <b>`: every difference between two stacks, knob or parity violation (offline)."""

from __future__ import annotations

import argparse

from core.stack_name import parse_stack_name
from release.commands.options import Options
from release.commands.output import emit
from release.context import ReleaseContext
from release.offline import plan


def add_parser(verbs: argparse._SubParsersAction, options: Options) -> None:
    parser = verbs.add_parser(
        "diff",
        parents=[options.shared],
        help="every difference between two stacks, knob or parity violation (offline); exit 1 on a violation",
    )
    parser.add_argument("stack_a", type=parse_stack_name)
    parser.add_argument("stack_b", type=parse_stack_name)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, ctx: ReleaseContext) -> int:
    report = plan.plan(ctx.project_dir, [args.stack_a, args.stack_b], compare=True, progress=lambda _: None)
    emit(args, plan.to_json(report), plan.render_differences(report))
    return report.exit_code
