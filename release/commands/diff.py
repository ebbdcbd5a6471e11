"""`release diff <a> <b>`: every difference between two stacks, knob or parity violation (offline)."""

from __future__ import annotations

import argparse

from release.commands.options import Options, stack_argument
from release.commands.output import emit
from release.context import ReleaseContext
from release.offline import plan
from release.offline.summary import verdict


def add_parser(verbs: argparse._SubParsersAction, options: Options) -> None:
    parser = verbs.add_parser(
        "diff",
        parents=[options.shared],
        help="every difference between two stacks, knob or parity violation (offline); exit 1 on a violation",
    )
    stack_argument(parser, "stack_a", metavar="a", help="one stack, e.g. staging")
    stack_argument(parser, "stack_b", metavar="b", help="the stack to compare it with, e.g. production")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, ctx: ReleaseContext) -> int:
    report = plan.plan(ctx.project_dir, [args.stack_a, args.stack_b], compare=True, progress=lambda _: None)
    emit(args, plan.to_json(report), plan.render_differences(report, verdict(report)))
    return report.exit_code
