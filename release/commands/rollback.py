"""`release rollback <stack> [--to-version N] [--dry-run]`: restore a settled state from stack history."""

from __future__ import annotations

import argparse

from release.commands.options import (
    Options,
    confirm_change,
    positive_int,
    require_reason_with_force,
    restore_options,
    stack_argument,
)
from release.commands.output import emit_report
from release.context import ReleaseContext


def add_parser(verbs: argparse._SubParsersAction, options: Options) -> None:
    parser = verbs.add_parser(
        "rollback",
        parents=[options.shared, options.actor],
        help="restore the previous succeeded update (or entry N of `release history`) and up",
    )
    stack_argument(parser)
    parser.add_argument(
        "--to-version", type=positive_int, default=None, metavar="N", help="entry N of `release history`"
    )
    restore_options(parser, "roll back")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, ctx: ReleaseContext) -> int:
    from release.flows.rollback import RollbackRequest, rollback
    from release.locking import release_lock_unless

    require_reason_with_force(args)
    confirm_change(args, ctx, "rollback")
    request = RollbackRequest(
        args.stack,
        ctx.actor,
        to_number=args.to_version,
        dry_run=args.dry_run,
        force=args.force,
        reason=args.reason,
        health_check=not args.no_health_check,
        stable_urls=list(args.stable_url),
        signer=ctx.signer,
        run=ctx.run_url,
    )
    with release_lock_unless(args.dry_run, ctx.project_dir, args.stack, f"{ctx.actor}: release rollback"):
        report = rollback(ctx, request)
    return emit_report(args, report, ctx.env)
