"""`release deploy <stack> --service S [--image REPO@sha256:...] [--set-flag N=V] [--set-env N=V]`: a
blue-green release of one image, of config values, or of both together.

Only into an entry stage: a stack whose gate names a source receives digests by `release promote`
(which runs the same deploy flow after its gates), so this command refuses it before taking the lock.
"""

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
        "deploy",
        parents=[options.shared, options.actor],
        help="blue-green release of an image and/or config values; rolls back automatically on failure",
        description="Set the image (and the live color's config, with any --set-flag/--set-env) on the "
        "idle color and up (its migration runs first), check the preview URL, switch the active "
        "color and up, check the stable URL. Any failure restores the last settled state from stack "
        "history.",
    )
    stack_argument(parser)
    parser.add_argument("--service", required=True, help="the service to release, e.g. api")
    parser.add_argument(
        "--image",
        default="",
        help="<repository>@sha256:<digest> (default: the image live now, for a config-only release)",
    )
    config_options(parser)
    where_to_check_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, ctx: ReleaseContext) -> int:
    from release.flows.deploy import deploy
    from release.flows.deploy_request import DeployRequest
    from release.gates import refuse_deploy_into_promotion_stage
    from release.locking import release_lock

    refuse_deploy_into_promotion_stage(ctx.project, args.stack, args.service)
    request = DeployRequest(
        args.stack,
        args.service,
        args.image,
        ctx.actor,
        reason=args.reason,
        flags=assignments(args.flags, "--set-flag"),
        env=assignments(args.env, "--set-env"),
        preview_urls=list(args.preview_url),
        stable_urls=list(args.stable_url),
        prometheus_url=args.prometheus_url or "",
        run=ctx.run_url,
        signer=ctx.signer,
    )
    with release_lock(ctx.project_dir, args.stack, f"{ctx.actor}: release deploy {args.service}"):
        report = deploy(ctx, request)
    return emit_report(args, report, ctx.env)
