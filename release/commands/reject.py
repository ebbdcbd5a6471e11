"""`release reject <stack> --service S --digest D --reason ...`: never promote that digest again."""

from __future__ import annotations

import argparse

from core.errors import ExitCode
from release.commands.options import Options, require_reason_with_force, stack_argument
from release.commands.output import emit
from release.context import ReleaseContext


def add_parser(verbs: argparse._SubParsersAction, options: Options) -> None:
    parser = verbs.add_parser(
        "reject", parents=[options.shared, options.actor], help="mark a digest as never to be promoted again"
    )
    stack_argument(parser)
    parser.add_argument("--service", required=True, help="the service the digest was built for, e.g. api")
    parser.add_argument("--digest", required=True, help="sha256:<64 hex> or the full image reference")
    parser.add_argument(
        "--force",
        action="store_true",
        help="reject a digest this stack never ran (to block it before it arrives); give --reason",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, ctx: ReleaseContext) -> int:
    from release.flows.promote import reject

    require_reason_with_force(args)
    record = reject(
        ctx,
        args.stack,
        args.service,
        args.digest,
        args.reason,
        ctx.actor,
        signer=ctx.signer,
        force=args.force,
    )
    emit(args, record.to_json(), f"rejected {', '.join(record.revokes)} in {args.stack}\n")
    return ExitCode.OK
