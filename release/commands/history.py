"""`release history <stack>`: the stack's updates, newest first: who released what, when."""

from __future__ import annotations

import argparse

from core.errors import ExitCode
from release.commands.options import Options, non_negative_int, stack_argument
from release.commands.output import emit
from release.context import ReleaseContext


def add_parser(verbs: argparse._SubParsersAction, options: Options) -> None:
    parser = verbs.add_parser("history", parents=[options.shared], help="the stack's updates, newest first")
    stack_argument(parser)
    parser.add_argument("--limit", type=non_negative_int, default=20, help="show at most N entries (0: all)")
    parser.add_argument(
        "--wide", action="store_true", help="every field: all digests and each record's signed fields"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, ctx: ReleaseContext) -> int:
    from release.history.entries import read_history, render_history, render_history_compact

    entries = read_history(ctx.engine, args.stack, ctx.project)
    shown = entries[: args.limit] if args.limit else entries
    render = render_history if args.wide else render_history_compact
    emit(args, [entry.to_json() for entry in shown], render(args.stack, shown, ctx.clock()))
    return ExitCode.OK
