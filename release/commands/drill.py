"""`release drill <stack> [--at TIME] [--keep]`: restore the stack's database into a scratch
instance, verify it, measure RTO and RPO against the project's targets, remove it, record it."""

from __future__ import annotations

import argparse
from datetime import datetime

from release.commands.options import Options, stack_argument
from release.commands.output import emit
from release.context import ReleaseContext


def add_parser(verbs: argparse._SubParsersAction, options: Options) -> None:
    parser = verbs.add_parser(
        "drill",
        parents=[options.shared, options.actor],
        help="a restore drill: restore the database into a scratch instance, verify it, measure RTO/RPO",
        description="Restores the newest snapshot the release tool took (or the database at --at) into a "
        "scratch instance like the source, runs the project's read-only verification queries, measures "
        "RTO (start to verified) and RPO (target time - newest write) against dataSafety.targets, removes "
        "the instance even when a step fails, and writes a signed drill record. Exit 0 when the drill "
        "passed, 1 when it failed (the report says by how much a target was missed).",
    )
    stack_argument(parser)
    parser.add_argument("--at", type=_utc_time, help="a point in time to restore (UTC, ISO 8601 with zone)")
    parser.add_argument("--keep", action="store_true", help="leave the scratch instance for inspection")
    parser.add_argument(
        "--sslmode",
        choices=["require", "verify-ca", "verify-full", "disable"],
        default="require",
        help="TLS to the scratch instance (libpq sslmode; disable only for a local test server)",
    )
    parser.set_defaults(run=run)


def _utc_time(text: str) -> datetime:
    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not an ISO 8601 time: {text[:60]!r}; e.g. 2026-11-30T08:00:00Z"
        ) from None
    if at.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text[:60]!r} has no time zone; e.g. 2026-11-30T08:00:00Z")
    return at


def run(args: argparse.Namespace, ctx: ReleaseContext) -> int:
    from release.flows.drill import DrillRequest, drill
    from release.locking import release_lock

    request = DrillRequest(
        args.stack,
        ctx.actor,
        at=args.at,
        keep=args.keep,
        reason=args.reason,
        run=ctx.run_url,
        signer=ctx.signer,
        sslmode=args.sslmode,
    )
    with release_lock(ctx.project_dir, args.stack, f"{ctx.actor}: release drill"):
        report = drill(ctx, request)
    emit(args, report.to_json(), report.render())
    return int(report.exit_code)
