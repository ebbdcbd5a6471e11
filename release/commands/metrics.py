"""`release metrics [STACK...] [--service S] [--since 30d]`: DORA's metrics from the records that count
in each stack's history (docs/metrics.md); `--json` lists the releases behind each figure."""

from __future__ import annotations

import argparse

from core.config.sources import stack_names
from core.errors import ReleaseError
from release.commands.options import Options, stack_argument
from release.commands.output import emit_unless_failed
from release.context import ReleaseContext


def add_parser(verbs: argparse._SubParsersAction, options: Options) -> None:
    parser = verbs.add_parser(
        "metrics",
        parents=[options.shared],
        help="DORA metrics (frequency, lead time, failure rate, recovery, rework) from counted records",
    )
    stack_argument(parser, "stacks", many=True, help="stacks (default: every Pulumi.<stack>.yaml)")
    parser.add_argument("--service", help="one service's figures only")
    parser.add_argument("--since", default="30d", help="the window: 30d, 12w or YYYY-MM-DD (default: 30d)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, ctx: ReleaseContext) -> int:
    from release.history.entries import HistoryEntry, read_history
    from release.report.metrics import compute_metrics, format_metrics, parse_since

    now = ctx.clock()
    since = parse_since(args.since, now)
    stacks = args.stacks or stack_names(ctx.project_dir)
    histories: dict[str, list[HistoryEntry]] = {}
    failures: list[tuple[str, ReleaseError]] = []
    for stack in stacks:
        try:
            histories[stack] = read_history(ctx.engine, stack, ctx.project)
        except ReleaseError as error:
            failures.append((stack, error))
    metrics = compute_metrics(histories, since, now, args.service)
    return emit_unless_failed(args, metrics.to_json(), format_metrics(metrics), failures)
