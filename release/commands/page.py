"""`release page --out DIR [STACK...]`: a static site (index.html and one page per stack) read from
stack history: what is live where, the last releases, DORA tiles, and what needs attention."""

from __future__ import annotations

import argparse
from pathlib import Path

from core.config.sources import stack_names
from core.errors import ExitCode, UsageError
from release import log
from release.commands.options import Options, stack_argument
from release.commands.output import emit, stack_not_shown
from release.context import ReleaseContext


def add_parser(verbs: argparse._SubParsersAction, options: Options) -> None:
    parser = verbs.add_parser(
        "page",
        parents=[options.shared],
        help="write a static HTML site from stack history: live services, releases, DORA metrics",
    )
    stack_argument(parser, "stacks", many=True, help="stacks (default: every Pulumi.<stack>.yaml)")
    parser.add_argument("--out", type=Path, required=True, help="the directory to write the site into")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, ctx: ReleaseContext) -> int:
    from release.report.page import read_page, render_site

    stacks = args.stacks or stack_names(ctx.project_dir)
    page = read_page(ctx.engine, ctx.project, stacks, ctx.clock())
    files = render_site(page)
    try:
        args.out.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            (args.out / name).write_text(text, encoding="utf-8")
    except OSError as error:
        raise UsageError(
            f"--out {args.out}: the site cannot be written there: {error.strerror or error}"
        ) from error
    log.progress(f"wrote {len(files)} pages to {args.out} (open {args.out / 'index.html'})")
    codes = [stack_not_shown(stack.name, stack.failure) for stack in page.stacks if stack.failure is not None]
    emit(
        args,
        {
            "out": str(args.out),
            "files": sorted(files),
            "unreadable": [s.name for s in page.stacks if s.error],
        },
        "".join(f"{args.out / name}\n" for name in sorted(files)),
    )
    return codes[0] if codes else ExitCode.OK
