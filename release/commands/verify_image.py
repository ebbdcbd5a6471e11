"""`release verify-image <stack> --image REF`: the stack's supply-chain verdict on an image, without
releasing it: exit 0 every requirement met, 1 one or more unmet, 2 bad usage (no policy, a bad
reference)."""

from __future__ import annotations

import argparse

from core.errors import ExitCode, UsageError
from core.images import ImageRefError, parse_pinned_image
from release.commands.options import Options, stack_argument
from release.commands.output import emit
from release.context import ReleaseContext


def add_parser(verbs: argparse._SubParsersAction, options: Options) -> None:
    parser = verbs.add_parser(
        "verify-image",
        parents=[options.shared],
        help="an image's signature, provenance, vulnerability verdict and SBOM against the stack's "
        "supplyChain policy, without releasing: exit 0 met, 1 unmet, 2 bad usage",
    )
    stack_argument(parser)
    parser.add_argument("--image", required=True, help="<registry>/<repository>@sha256:<64 hex>")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, ctx: ReleaseContext) -> int:
    project = ctx.project
    policy = project.stack_policies.get(args.stack)
    if project.supply_chain is None or policy is None or policy.supply_chain is None:
        raise UsageError(
            f"stack '{args.stack}' verifies no images: Pulumi.yaml declares no supplyChain policy"
            f"{'' if project.supply_chain is None else f' for it (stackPolicies.{args.stack}.supplyChain)'}"
            "; see docs/supply-chain.md#the-policy"
        )
    try:
        image = str(parse_pinned_image(args.image))
    except ImageRefError as error:
        raise UsageError(f"--image {error}") from error
    verdict = ctx.images.verify(image, project.supply_chain, policy.supply_chain, ctx.clock())
    state = "passed" if verdict.passed else f"{len(verdict.unmet)} requirement(s) unmet"
    lines = [
        f"{image} in {args.stack} ({verdict.mode.value}): {state}",
        *(f"  {line}" for line in verdict.lines()),
    ]
    emit(args, {"image": image, "stack": args.stack, **verdict.to_json()}, "\n".join(lines) + "\n")
    return ExitCode.OK if verdict.passed else ExitCode.FINDING
