"""`release plan <stack> | --all`: what each stack declares, evaluated offline; --all also checks parity."""

from __future__ import annotations

import argparse
from pathlib import Path

from core.config.sources import secret_names_of, stack_names
from core.errors import ExitCode, UsageError
from release import log
from release.commands.options import Options, stack_argument
from release.commands.output import emit
from release.context import ReleaseContext
from release.offline import plan
from release.offline.manifests import write_manifests
from release.offline.summary import render_summary, verdict


def add_parser(verbs: argparse._SubParsersAction, options: Options) -> None:
    parser = verbs.add_parser(
        "plan",
        parents=[options.shared],
        help="what each stack declares, evaluated offline; --all also checks parity",
        description=plan.HONESTY_NOTE,
    )
    target = parser.add_mutually_exclusive_group(required=True)
    stack_argument(parser, group=target, optional=True, help="one stack, e.g. staging")
    target.add_argument(
        "--all", action="store_true", help="every Pulumi.<stack>.yaml, and every difference between them"
    )
    parser.add_argument(
        "--resources",
        action="store_true",
        help="list every resource of each stack with its key settings, and every difference between the "
        "stacks (the default is a one-screen summary: the verdict, counts by kind, the knobs that differ, "
        "what deserves a look)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="also write each stack's Kubernetes manifests (secrets redacted) and AWS summary to "
        "DIR/<stack>/",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, ctx: ReleaseContext) -> int:
    project_dir = ctx.project_dir
    stacks = stack_names(project_dir) if args.all else [args.stack]
    if args.all and len(stacks) < 2:
        raise UsageError(
            f"--all needs at least two Pulumi.<stack>.yaml in {project_dir} (found {len(stacks)}); "
            "name one stack instead: `release plan <stack>`"
        )
    report = plan.plan(project_dir, stacks, compare=args.all, progress=log.detail)
    if args.out is not None:  # before the result: a refusal to write is the command's only answer
        secret_names = secret_names_of(project_dir)
        for stack_plan in report.stacks:
            if stack_plan.run is not None:
                try:
                    files = write_manifests(stack_plan.run, args.out, secret_names)
                except OSError as error:
                    raise UsageError(f"--out {args.out}: cannot write: {error.strerror or error}") from error
                log.progress(f"wrote {len(files)} files to {args.out / stack_plan.stack}")
    if args.json:  # only what is printed is rendered
        emit(args, plan.to_json(report), "")
    else:
        text = plan.render_resources(report, verdict(report)) if args.resources else render_summary(report)
        emit(args, None, text)
    if report.exit_code == ExitCode.BAD_INPUT:
        for stack_plan in report.stacks:
            if stack_plan.error is not None:
                log.error(str(stack_plan.error))
    return report.exit_code
