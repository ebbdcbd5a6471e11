"""`release audit [<stack>] [--since DATE] [--markdown] [--verify]`: who did what, when, from stack
history; with --verify, each stack's chain of records walked (exit 1 when one breaks)."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from core.config.sources import stack_names
from core.errors import ExitCode, UsageError
from release.commands.options import Options, stack_argument
from release.commands.output import emit_unless_failed
from release.context import ReleaseContext


def add_parser(verbs: argparse._SubParsersAction, options: Options) -> None:
    parser = verbs.add_parser(
        "audit",
        parents=[options.shared],
        help="who did what, when: every release, promotion, rollback, verification",
    )
    stack_argument(parser, optional=True, help="one stack (default: every Pulumi.<stack>.yaml)")
    parser.add_argument("--since", help="only entries on or after this date (YYYY-MM-DD, UTC)")
    parser.add_argument("--markdown", action="store_true", help="a markdown table (every field)")
    parser.add_argument("--wide", action="store_true", help="every field: before and after, the whole reason")
    parser.add_argument(
        "--verify",
        action="store_true",
        help="walk each stack's chain of records: its head, length, first break (exit 1 on a break)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, ctx: ReleaseContext) -> int:
    from release.report.audit import read_audit, render_audit

    stacks = [args.stack] if args.stack else stack_names(ctx.project_dir)
    since = None
    if args.since:
        try:
            since = datetime.strptime(args.since, "%Y-%m-%d").replace(tzinfo=UTC)
        except ValueError as error:
            raise UsageError(f"--since {args.since!r}: use YYYY-MM-DD") from error
    audit = read_audit(ctx.engine, ctx.project, stacks, since, ctx.clock())
    text = render_audit(audit.rows, audit.unreviewed, markdown=args.markdown, wide=args.wide)
    if args.verify:
        text += "\n" + "".join(check.render() for check in audit.chains)
    failed = emit_unless_failed(args, audit.to_json(verify=args.verify), text, audit.failures)
    if failed:
        return failed
    broken = args.verify and not all(check.intact for check in audit.chains)
    return ExitCode.FINDING if broken else ExitCode.OK
