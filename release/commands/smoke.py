"""`release smoke <stack> --service S [--color C] [--url URL]`: run a service's smoke suite now.

The live color by default, on the stable host; `--color <idle>` runs it against the idle color
through the preview route (the stable host with the preview header, as a release does before any
traffic moves). `--url` points it at another origin (a port-forward); the paths are the suite's.
Exit 0 when every check passes, 1 when one fails, 2 when the service declares no suite.
"""

from __future__ import annotations

import argparse

from core.config.base import Color
from core.errors import ConfigError, ExitCode, UsageError
from core.gateway import PREVIEW_HEADER
from release.commands.options import Options, color_option, service_release, stack_argument
from release.commands.output import emit
from release.context import ReleaseContext


def add_parser(verbs: argparse._SubParsersAction, options: Options) -> None:
    parser = verbs.add_parser(
        "smoke",
        parents=[options.shared],
        help="run a service's smoke suite now: exit 0 all passed, 1 a check failed, 2 no suite",
    )
    stack_argument(parser)
    parser.add_argument("--service", required=True, help="the service whose suite to run, e.g. api")
    color_option(parser, "default: the live color (stable host); the idle one, through the preview route")
    parser.add_argument("--url", default=None, help="another origin to send the suite's paths to")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, ctx: ReleaseContext) -> int:
    from release.report.release_report import health_urls
    from release.smoke import origin_of, run_suite_sync, suite_for, unreadable_secret

    stack_config, release = service_release(ctx, args.stack, args.service)
    suite, unread = suite_for(ctx.engine, stack_config, args.service)
    color = Color(args.color) if args.color else release.active_color
    preview = color is not release.active_color
    headers: dict[str, str] = {}
    if preview:
        token = ctx.engine.preview_token(args.stack)
        if token is None or not token.reveal():
            unread.insert(0, unreadable_secret(args.stack))
        else:
            headers[PREVIEW_HEADER] = token.reveal()
    if unread:
        raise ConfigError(args.stack, unread)
    if suite is None:
        raise UsageError(
            f"{args.service} declares no smoke suite; declare one under smoke.suites.{args.service} in "
            "Pulumi.yaml (docs/observability.md#smoke-suites)"
        )
    url = args.url or health_urls(stack_config, ctx.engine.outputs(args.stack), args.service, preview, [])[0]
    target = "preview" if preview else "stable"
    result = run_suite_sync(suite, target, origin_of(url), headers)
    lines = [f"{args.service} {color} ({target}) on {args.stack}: {result.headline()}"]
    for check in result.checks:
        status = "-" if check.status is None else str(check.status)
        mark = "ok  " if check.passed else "FAIL"
        lines.append(f"  {mark} {check.name:24} {status:>4} {check.latency_ms:7.0f} ms")
        lines += [f"       {failure}" for failure in check.failures]
        if check.excerpt:
            lines.append(f"       body: {check.excerpt}")
    emit(args, result.to_json(), "\n".join(lines) + "\n")
    return ExitCode.OK if result.passed else ExitCode.FINDING
