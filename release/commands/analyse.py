"""`release analyse <stack> --service S [--color C]`: what the metric gate would say now.

Runs the stack's metric analysis (release.analysis) on one color of a service: the live one by
default (its absolute limits only: the idle color has no traffic to compare with), or with
`--color` the idle one, compared with the live color over the same window. Exit 0 Successful, 1
Failed or Inconclusive, 2 when the stack declares no `analysis` knob.
"""

from __future__ import annotations

import argparse

from core.config.base import Color
from core.errors import ExitCode, UsageError
from release.commands.options import Options, color_option, service_release, stack_argument
from release.commands.output import emit
from release.context import ReleaseContext


def add_parser(verbs: argparse._SubParsersAction, options: Options) -> None:
    parser = verbs.add_parser(
        "analyse",
        parents=[options.shared],
        help="run the metric analysis of one color now: exit 0 Successful, 1 Failed or Inconclusive",
    )
    stack_argument(parser)
    parser.add_argument("--service", required=True, help="the service to analyse, e.g. api")
    color_option(parser, "default: the live color, on its limits alone; the idle one is compared with it")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, ctx: ReleaseContext) -> int:
    from release.analysis import analyse, prometheus_query

    stack_config, release = service_release(ctx, args.stack, args.service)
    settings = stack_config.settings.analysis
    if settings is None:
        raise UsageError(
            f"stack '{args.stack}' declares no metric analysis; set platform:analysis.prometheusUrl "
            f"(docs/observability.md): `pulumi config set --path 'analysis.prometheusUrl' <url> "
            f"-s {args.stack}`"
        )
    color = Color(args.color) if args.color else release.active_color
    live = color is release.active_color  # the other color takes no traffic: nothing to compare with
    analysis = analyse(
        settings,
        args.service,
        color.value,
        color.other.value,
        prometheus_query(settings),
        ctx.clock(),
        compare=not live,
    )
    lines = [f"{args.service} {color} on {args.stack}: {analysis.outcome}"]
    lines += [
        f"  {m.name:15} {'-' if m.value is None else f'{m.value:.4g}':>10}  {m.limit:28} {m.outcome}"
        + (f" ({m.reason})" if m.reason else "")
        for m in analysis.measurements
    ]
    emit(args, analysis.to_json(), "\n".join(lines) + "\n")
    return ExitCode.OK if analysis.passed else ExitCode.FINDING
