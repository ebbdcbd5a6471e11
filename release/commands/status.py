"""`release status`: per stack and service, the colors, digests, verified, and what waits; per stack
the head of its chain of records."""

from __future__ import annotations

import argparse

from core.config.sources import stack_names
from release.commands.options import Options
from release.commands.output import emit_unless_failed
from release.context import ReleaseContext


def add_parser(verbs: argparse._SubParsersAction, options: Options) -> None:
    parser = verbs.add_parser(
        "status", parents=[options.shared], help="per stack and service: colors, digests, verified, waiting"
    )
    parser.add_argument("--markdown", action="store_true", help="a markdown table")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, ctx: ReleaseContext) -> int:
    from release.report.audit import read_status, render_status

    project = ctx.project
    status = read_status(ctx.engine, project, stack_names(ctx.project_dir), ctx.clock())
    heads = {check.stack: check for check in status.chains}
    rows = [
        {**row.to_json(), "chain": {"head": heads[row.stack].head, "length": heads[row.stack].length}}
        for row in status.rows
    ]
    text = render_status(status.rows, markdown=args.markdown, chains=status.chains)
    return emit_unless_failed(args, rows, text, status.failures)
