"""Options shared by several commands, defined once, argparse `type=` checks, and the lookup of the
service a command names (`service_release`).

Every stack argument is checked against Pulumi's rules before anything else (`core.stack_name`); a
bad argument exits 2 with the value and the rule.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from core.config.base import ENV_NAME, Color, config_value_problem
from core.config.signing import KEY_NAME
from core.config.sources import validated_stack_config
from core.config.stack import ServiceRelease, StackConfig
from core.errors import ConfigError, ConfigProblem, UsageError
from core.text import one_line

if TYPE_CHECKING:
    from release.context import ReleaseContext


class Parser(argparse.ArgumentParser):
    """argparse, with its error line escaped: it may quote an argument that came from outside."""

    def error(self, message: str) -> NoReturn:
        super().error(one_line(message))


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


def colour_option(parser: argparse.ArgumentParser, help: str) -> None:
    """`--colour` (or `--color`) blue|green; None when not given."""
    parser.add_argument(
        "--colour", "--color", choices=[color.value for color in Color], default=None, help=help
    )


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
    """`--set-flag` and `--set-env`: config values released with the colour they are staged on."""
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
