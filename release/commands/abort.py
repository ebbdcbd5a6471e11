"""`release abort <stack> --service S`: finish an unfinished release by restoring the state before it."""

from __future__ import annotations

import argparse

from release.commands.options import (
    Options,
    confirm_change,
    require_reason_with_force,
    restore_options,
    stack_argument,
)
from release.commands.output import emit_report
from release.context import ReleaseContext


def add_parser(verbs: argparse._SubParsersAction, options: Options) -> None:
    parser = verbs.add_parser(
        "abort",
        parents=[options.shared, options.actor],
        help="finish an unfinished release of a service: restore it as it was before that release",
        description="A release killed after its stage or switch is unfinished, and every later release "
        "into the stack is refused until it is finished. Abort restores the service's release from the "
        "state before it (other services stay as they are), records that it finished, and checks the "
        "stable URL.",
    )
    stack_argument(parser)
    parser.add_argument(
        "--service", required=True, help="the service whose unfinished release to finish, e.g. api"
    )
    restore_options(parser, "abort")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, ctx: ReleaseContext) -> int:
    from release.flows.abort import AbortRequest, abort
    from release.locking import release_lock_unless

    require_reason_with_force(args)
    confirm_change(args, ctx, "abort")
    request = AbortRequest(
        args.stack,
        args.service,
        ctx.actor,
        reason=args.reason,
        force=args.force,
        dry_run=args.dry_run,
        health_check=not args.no_health_check,
        stable_urls=list(args.stable_url),
        signer=ctx.signer,
        run=ctx.run_url,
    )
    with release_lock_unless(
        args.dry_run, ctx.project_dir, args.stack, f"{ctx.actor}: release abort {args.service}"
    ):
        report = abort(ctx, request)
    return emit_report(args, report, ctx.env)
