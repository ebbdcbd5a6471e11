"""`release drift <stack>`: changed outside Pulumi? Exit 0 no drift, 1 drift, 2 the check failed."""

from __future__ import annotations

import argparse

from core.errors import ExitCode, ReleaseError
from release import log
from release.commands.errors import json_refusal, problems_of
from release.commands.options import Options, stack_argument
from release.commands.output import emit
from release.context import ReleaseContext


def add_parser(verbs: argparse._SubParsersAction, options: Options) -> None:
    parser = verbs.add_parser(
        "drift",
        parents=[options.shared],
        help="refresh preview: exit 0 no drift, 1 drift (each resource and property listed), 2 error",
    )
    stack_argument(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, ctx: ReleaseContext) -> int:
    """Exit 2 on any error (not the usual codes), so a scheduled job tells drift (1) from a failed check."""
    from release.flows.drift import check_drift

    engine = ctx.engine
    try:
        report, notification = check_drift(engine, args.stack, ctx.notifier, ctx.run_url)
    except ReleaseError as error:
        message = f"drift check of '{args.stack}' failed: {error}"
        log.error(message)
        return json_refusal(args.json, (message, problems_of(error)), ExitCode.BAD_INPUT)
    if notification is not None and not notification.sent:
        log.error(f"drift notification not sent: {notification.error}")
    emit(args, report.to_json(), report.render())
    return report.exit_code
