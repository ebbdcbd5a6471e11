"""`release promote <from> <to> --service S [--digest sha256:...]`: release the digest verified in one
stack to the next, if the target's promotion gate allows."""

from __future__ import annotations

import argparse

from release.commands.options import (
    Options,
    assignments,
    config_options,
    stack_argument,
    where_to_check_options,
)
from release.commands.output import emit_report
from release.context import ReleaseContext


def add_parser(verbs: argparse._SubParsersAction, options: Options) -> None:
    parser = verbs.add_parser(
        "promote",
        parents=[options.shared, options.actor],
        help="release the digest verified in one stack to the next, if its gates allow",
        description="Take the digest live and verified in <from> (or --digest, which must be verified "
        "there) and run the blue-green release on <to>, after checking <to>'s promotion gate in "
        "Pulumi.yaml (stage, verified, soak, freshness, approval, four eyes, freeze windows).",
    )
    stack_argument(parser, "source", metavar="from", help="the stack the digest is verified in, e.g. staging")
    stack_argument(parser, "target", metavar="to", help="the stack to release it to, e.g. production")
    parser.add_argument("--service", required=True, help="the service whose digest to promote, e.g. api")
    parser.add_argument("--digest", help="sha256:<64 hex> (default: the one live in <from>)")
    parser.add_argument("--approval", help="the approval reference: a change ticket, a review URL")
    parser.add_argument("--approver", help="who approved (must differ from the actor where four eyes apply)")
    parser.add_argument(
        "--break-glass",
        action="store_true",
        help="skip the verified, soak and freeze gates (never approval, never the record); needs --reason",
    )
    config_options(parser)
    where_to_check_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, ctx: ReleaseContext) -> int:
    from release.flows.promote import PromoteRequest, promote
    from release.locking import release_lock

    request = PromoteRequest(
        args.source,
        args.target,
        args.service,
        ctx.actor,
        digest=args.digest,
        approval_ref=args.approval,
        approver=args.approver,
        break_glass_reason=args.reason if args.break_glass else None,
        reason="" if args.break_glass else args.reason,
        preview_urls=list(args.preview_url),
        stable_urls=list(args.stable_url),
        prometheus_url=args.prometheus_url or "",
        flags=assignments(args.flags, "--set-flag"),
        env=assignments(args.env, "--set-env"),
    )  # refuses --break-glass without --reason first, before the signing key is read
    request.signer = ctx.signer
    holder = f"{ctx.actor}: release promote {args.source} -> {args.target} {args.service}"
    with release_lock(ctx.project_dir, args.target, holder):
        report = promote(ctx, request)
    return emit_report(args, report, ctx.env)
