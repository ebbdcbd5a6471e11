"""`release health-check --url URL ...`: one health check: exit 0 healthy, 1 unhealthy, 2 bad usage."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from core.config.sources import health_check_settings
from core.errors import ExitCode, UsageError
from release import log
from release.commands.options import Options, stack_argument
from release.commands.output import emit
from release.context import ReleaseContext

if TYPE_CHECKING:
    from core.health import Probe


def add_parser(verbs: argparse._SubParsersAction, options: Options) -> None:
    parser = verbs.add_parser(
        "health-check",
        parents=[options.shared],
        help="probe URLs until healthy or unhealthy: exit 0 healthy, 1 unhealthy, 2 bad usage",
    )
    parser.add_argument("--url", action="append", required=True, help="repeatable; probed concurrently")
    stack_argument(parser, optional=True, help="take the defaults from this stack's healthCheck knob")
    parser.add_argument(
        "--expect-status", type=int, help="the HTTP status a good probe answers (default 200)"
    )
    parser.add_argument(
        "--expect-json",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a top-level JSON field a good answer holds with this value; repeatable",
    )
    parser.add_argument("--timeout", type=float, help="seconds per probe")
    parser.add_argument("--interval", type=float, help="seconds between probes of one URL")
    parser.add_argument("--window", type=float, help="seconds before an undecided check is unhealthy")
    parser.add_argument("--successes", type=int, help="consecutive good probes for Healthy")
    parser.add_argument("--failures", type=int, help="consecutive bad probes for Degraded")
    parser.add_argument("--max-latency-ms", type=int, help="a slower answer is a bad probe")
    parser.add_argument(
        "--follow-redirects",
        action="store_true",
        help="follow redirects (default: a redirect is a bad probe)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, ctx: ReleaseContext) -> int:
    from core.health import check_sync, parse_expect_json

    overrides = {
        "expectStatus": args.expect_status,
        "timeoutSeconds": args.timeout,
        "intervalSeconds": args.interval,
        "windowSeconds": args.window,
        "successes": args.successes,
        "failures": args.failures,
        "maxLatencyMs": args.max_latency_ms,
        "followRedirects": args.follow_redirects or None,
    }
    settings = health_check_settings(ctx.project_dir, args.stack, overrides)
    try:
        expected = parse_expect_json(args.expect_json)
    except ValueError as error:
        raise UsageError(str(error)) from error

    def show(probe: Probe) -> None:
        log.detail(_probe_line(probe))

    verdict = check_sync(args.url, settings, expected, on_probe=show)
    lines = [f"{verdict.phase}: {verdict.reason}"]
    lines += [f"  {probe.at_seconds:6.2f}s {_probe_line(probe)}" for probe in verdict.probes]
    emit(args, verdict.to_json(), "\n".join(lines) + "\n")
    return ExitCode.OK if verdict.healthy else ExitCode.FINDING


def _probe_line(probe: Probe) -> str:
    status = probe.status if probe.status is not None else "-"
    return f"{probe.url} {probe.kind.value} {status} {probe.latency_ms:.0f}ms {probe.detail}".rstrip()
