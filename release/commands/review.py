"""`release review <stack> <#> --note ...`: acknowledge someone else's break-glass release."""

from __future__ import annotations

import argparse

from core.errors import ExitCode
from core.text import one_line
from release.commands.options import Options, positive_int, stack_argument
from release.commands.output import emit
from release.context import ReleaseContext


def add_parser(verbs: argparse._SubParsersAction, options: Options) -> None:
    parser = verbs.add_parser(
        "review",
        parents=[options.shared, options.actor],
        help="acknowledge a break-glass release (someone else's)",
    )
    stack_argument(parser)
    parser.add_argument("number", type=positive_int, help="its number in `release audit`")
    parser.add_argument(
        "--note", required=True, help="what the review found (recorded, signed, with who reviewed)"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, ctx: ReleaseContext) -> int:
    from release.flows.promote import review

    record = review(ctx, args.stack, args.number, args.note, ctx.actor, ctx.signer)
    emit(
        args,
        record.to_json(),
        one_line(f"entry {args.number} of {args.stack} reviewed by {record.actor}") + "\n",
    )
    return ExitCode.OK
