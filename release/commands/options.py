"""Options shared by several commands, defined once, argparse `type=` checks, and the lookup of the
service a command names (`service_release`).

Every stack argument is checked against Pulumi's rules before anything else (`core.stack_name`); a
bad argument exits 2 with the value and the rule.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, NoReturn

from core.config.base import ENV_NAME, HTTP_URL, Color, config_value_problem
from core.config.signing import KEY_NAME
from core.config.sources import validated_stack_config
from core.config.stack import ServiceRelease, StackConfig
from core.errors import ConfigError, ConfigProblem, UsageError
from core.stack_name import parse_stack_name
from core.text import one_line
from release.commands.errors import pipe_closed
from release.context import ReleaseContext

STACK_ARGUMENTS = "stack_arguments"
"""The parsed arguments' attribute listing which of them name stacks (checked against the project's
stack files before the command runs: release.cli)."""


class ArgumentsRefused(SystemExit):
    """argparse refused the command line: exit 2, as argparse does, with the reason kept for `--json`."""

    def __init__(self, message: str) -> None:
        super().__init__(2)
        self.message = message


class Parser(argparse.ArgumentParser):
    """argparse, with its error line escaped (it may quote an argument that came from outside) and
    kept on the exit, so `release.cli` can also print it as JSON. An option is spelled in full: no
    abbreviations (`--js` for `--json`), which a later option could make ambiguous."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def _print_message(self, message: str, file: Any = None) -> None:
        """argparse's own output (--help, --version, usage): a reader gone before it ends the command
        as any closed pipe does, exit 141 (argparse itself swallows the error and exits 0)."""
        if not message:
            return
        out = file or sys.stderr
        try:
            out.write(message)
            out.flush()
        except BrokenPipeError:
            raise SystemExit(pipe_closed()) from None

    def error(self, message: str) -> NoReturn:
        line = one_line(message)
        self.print_usage(sys.stderr)
        sys.stderr.write(f"{self.prog}: error: {line}\n")
        raise ArgumentsRefused(line)


def stack_argument(
    parser: argparse.ArgumentParser,
    dest: str = "stack",
    *,
    group: Any = None,
    optional: bool = False,
    many: bool = False,
    metavar: str | None = None,
    help: str = "the stack, e.g. staging (one of the project's Pulumi.<stack>.yaml)",
) -> None:
    """A positional stack argument (every verb takes its stack this way): checked against Pulumi's
    naming rules while parsing and against the project's stacks before the command runs."""
    options: dict[str, Any] = {"type": parse_stack_name, "help": help}
    if optional:
        options["nargs"] = "?"
    if many:
        options["nargs"] = "*"
    if metavar is not None:
        options["metavar"] = metavar
    (group or parser).add_argument(dest, **options)
    parser.set_defaults(**{STACK_ARGUMENTS: (*(parser.get_default(STACK_ARGUMENTS) or ()), dest)})


def shared_options() -> Parser:
    """`--json`, `--verbose`, `--quiet`, `--project-dir`: every command takes them."""
    shared = Parser(add_help=False)
    shared.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    shared.add_argument("--verbose", action="store_true", help="print more progress on stderr")
    shared.add_argument("--quiet", action="store_true", help="print only warnings and errors on stderr")
    shared.add_argument(
        "--project-dir",
        type=Path,
        default=None,
        help="the Pulumi project (default: the nearest directory with Pulumi.yaml)",
    )
    return shared


def actor_options() -> Parser:
    """`--actor`, `--reason`, `--report`: every command that changes a stack takes them."""
    actor = Parser(add_help=False)
    actor.add_argument(
        "--actor",
        "--operator",
        dest="actor",
        default=None,
        help="who is releasing, recorded in stack history (default: $RELEASE_OPERATOR, git config "
        "user.name, your login; in GitHub Actions always who started the run's attempt)",
    )
    actor.add_argument("--reason", default="", help="why, recorded in stack history")
    actor.add_argument(
        "--report",
        type=Path,
        default=None,
        help="also write a markdown report here (and to $GITHUB_STEP_SUMMARY when it is set)",
    )
    return actor


class Options:
    """The shared parents, built once per parser."""

    def __init__(self) -> None:
        self.shared = shared_options()
        self.actor = actor_options()


def color_option(parser: argparse.ArgumentParser, help: str) -> None:
    """`--color` blue|green; None when not given. `--colour`, its old second spelling, is refused
    naming the one to use."""
    parser.add_argument("--color", choices=[color.value for color in Color], default=None, help=help)
    parser.add_argument("--colour", nargs="?", action=_Respelled, help=argparse.SUPPRESS)


class _Respelled(argparse.Action):
    def __call__(self, parser: argparse.ArgumentParser, *_: Any) -> None:
        parser.error("--colour is spelled --color now (one spelling, as in activeColor)")


def service_release(ctx: ReleaseContext, stack: str, service: str) -> tuple[StackConfig, ServiceRelease]:
    """The stack's validated config (as the engine holds it) and the named service's release in it;
    a ConfigError (exit 2) naming the services the stack releases when it releases no such one."""
    stack_config = validated_stack_config(stack, ctx.engine.get_config(stack), ctx.project_file)
    release = stack_config.settings.releases.get(service)
    if release is None:
        problem = ConfigProblem.unknown_service(
            stack, service, list(stack_config.settings.releases), "this stack releases"
        )
        raise ConfigError(stack, [problem])
    return stack_config, release


def url_option(parser: argparse.ArgumentParser, name: str, which: str) -> None:
    parser.add_argument(
        name,
        action="append",
        default=[],
        help=f"check this URL instead of the {which} URL the stack exposes (repeatable; e.g. a port-forward)",
    )


def restore_options(parser: argparse.ArgumentParser, what: str) -> None:
    """The options of a verb that restores a state (rollback, abort): a dry run, `--force` past a
    migration (which needs `--reason`), the health check after the up, and where to check."""
    parser.add_argument("--dry-run", action="store_true", help="print what would change; change nothing")
    parser.add_argument(
        "--force",
        action="store_true",
        help=f"{what} past a migration that is not declared backward compatible (give --reason)",
    )
    parser.add_argument("--no-health-check", action="store_true", help="skip the check after the up")
    parser.add_argument(
        "--yes",
        action="store_true",
        help="confirm a change to a stack whose promotion requires approval without being asked "
        "(needed outside a terminal; CI passes it)",
    )
    url_option(parser, "--stable-url", "stable")


def require_reason_with_force(args: argparse.Namespace) -> None:
    """`--force` is recorded with who forced it and why: it needs `--reason`."""
    if args.force and not args.reason:
        raise UsageError("--force needs --reason: it is recorded in stack history with who forced it")


def positive_int(text: str) -> int:
    """An argparse `type=`: a whole number of at least 1 (an entry number)."""
    return _bounded_int(text, 1, "a whole number of at least 1")


def non_negative_int(text: str) -> int:
    """An argparse `type=`: a whole number of at least 0."""
    return _bounded_int(text, 0, "a whole number of at least 0")


def _bounded_int(text: str, minimum: int, rule: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise argparse.ArgumentTypeError(f"'{one_line(text)}' is not {rule}")
    return value


def key_name(text: str) -> str:
    """An argparse `type=`: a trusted key's name as Pulumi.yaml accepts it."""
    if not KEY_NAME.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"'{one_line(text)}' is not a key name: use lower-case like ci-2026-11"
        )
    return text


def config_options(parser: argparse.ArgumentParser) -> None:
    """`--set-flag` and `--set-env`: config values released with the color they are staged on."""
    parser.add_argument(
        "--set-flag",
        dest="flags",
        action="append",
        type=config_assignment,
        default=[],
        metavar="NAME=VALUE",
        help="stage this feature flag value (declared in Pulumi.yaml's featureFlags) with the release; "
        "repeatable",
    )
    parser.add_argument(
        "--set-env",
        dest="env",
        action="append",
        type=config_assignment,
        default=[],
        metavar="NAME=VALUE",
        help="stage this env var value (declared in the service's env in Pulumi.yaml); repeatable",
    )


def config_assignment(text: str) -> tuple[str, str]:
    """An argparse `type=`: `NAME=VALUE`, an UPPER_SNAKE name and one line of at most 4096 characters."""
    name, equals, value = text.partition("=")
    if not equals or not ENV_NAME.fullmatch(name):
        raise argparse.ArgumentTypeError(
            f"'{one_line(text)}' is not NAME=VALUE with an UPPER_SNAKE_CASE name, e.g. FEATURE_SEARCH_V2=true"
        )
    problem = config_value_problem(value)
    if problem:
        raise argparse.ArgumentTypeError(f"the value of {name} {problem}")
    return name, value


def assignments(pairs: list[tuple[str, str]], option: str) -> dict[str, str]:
    """`--set-flag`/`--set-env` pairs as a mapping; a name given twice with two values is refused."""
    values: dict[str, str] = {}
    for name, value in pairs:
        if values.get(name, value) != value:
            raise UsageError(f"{option} {name} is given twice with different values; give it once")
        values[name] = value
    return values


def confirm_change(args: argparse.Namespace, ctx: ReleaseContext, verb: str) -> None:
    """Before `rollback`/`abort` changes a stack whose promotion requires approval: the person at the
    terminal confirms by typing the stack's name, or `--yes` says so up front (CI passes it). Outside
    a terminal, without `--yes`, the command is refused with nothing changed. A dry run changes
    nothing and asks nothing."""
    policy = ctx.project.stack_policies.get(args.stack)
    if args.dry_run or args.yes or policy is None or not policy.promotion.require_approval:
        return
    guarded = (
        f"stack '{args.stack}' requires approval for releases "
        f"(stackPolicies.{args.stack}.promotion.requireApproval in Pulumi.yaml)"
    )
    answer = ctx.ask(
        f"release {verb} is about to change {guarded}.\nType {args.stack} to go on, anything else to stop: "
    )
    if answer is None:
        raise UsageError(
            f"release {verb} {args.stack}: {guarded}; outside a terminal, confirm with --yes "
            "(nothing was changed)"
        )
    if answer.strip() != args.stack:
        raise UsageError(f"release {verb} {args.stack}: not confirmed (nothing was changed)")


def where_to_check_options(parser: argparse.ArgumentParser) -> None:
    """`--preview-url`, `--stable-url` and `--prometheus-url`: where a release's checks go, for one run."""
    url_option(parser, "--preview-url", "preview")
    url_option(parser, "--stable-url", "stable")
    parser.add_argument(
        "--prometheus-url",
        type=http_url,
        default=None,
        metavar="URL",
        help="query this Prometheus for this run's analysis instead of the stack's analysis.prometheusUrl "
        "(e.g. a port-forward: http://127.0.0.1:9090)",
    )


def http_url(text: str) -> str:
    """An argparse `type=`: an http(s) URL with a host and no credentials, query or fragment."""
    if not HTTP_URL.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"'{one_line(text)}' is not an http(s) URL with a host, like http://127.0.0.1:9090"
        )
    return text
