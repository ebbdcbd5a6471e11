"""No tracebacks: every failure a user can cause exits with a fixed code and one clear message, and
anything else is reported once, as a bug, in one line (case 14, and `release.cli.main`'s contract).

    2    bad arguments (argparse types) and malformed Pulumi.yaml, in every verb
    3    a stack without a backend stack, after showing the stacks that could be shown
    70   an unexpected exception (one line; --verbose adds the traceback)
    130  interrupted
"""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from core.config.sources import ConfigEntry
from core.errors import EngineError
from release.cli import main
from release.history.entries import RELEASES_KEY
from release.testing.fake_engine import FakeEngine
from tests.conftest import PROJECT, copy_project
from tests.release_doubles import NEW_API, fake_engine

DIGEST = "sha256:" + "ab" * 32


@cache
def _dev_engine() -> FakeEngine:
    return fake_engine("dev")


def dev_engine() -> FakeEngine:
    """A fake engine holding `dev` with one deploy (a fresh copy of one built once: tests stay fast)."""
    return copy.deepcopy(_dev_engine())


def exit_code(argv: list[str], engine: FakeEngine | None = None, project: Path = PROJECT) -> int:
    """Run the CLI in-process; argparse's refusals (SystemExit) count as their exit code."""
    double = engine or dev_engine()
    try:
        code = main(
            [*argv, "--project-dir", str(project)], engine_factory=lambda _: double, clock=double.clock
        )
    except SystemExit as exited:
        return int(exited.code or 0)
    assert type(code) is int  # a plain int for in-process callers, never the ExitCode enum
    return code


class MissingStacksEngine(FakeEngine):
    """The engine on a backend that holds only some of the stacks the files declare."""

    def history(self, stack: str) -> list[dict[str, Any]]:
        self._exists(stack)
        return super().history(stack)

    def get_config(self, stack: str) -> dict[str, ConfigEntry]:
        self._exists(stack)
        return super().get_config(stack)

    def _exists(self, stack: str) -> None:
        if stack not in self.stacks:
            raise EngineError(
                f"stack '{stack}' does not exist in this backend; create it with `pulumi stack init {stack}`"
            )


class RaisingEngine(FakeEngine):
    """An engine double whose every call to `history` raises `error`."""

    def __init__(self, error: BaseException) -> None:
        super().__init__()
        self.error = error

    def history(self, stack: str) -> list[dict[str, Any]]:
        raise self.error


# --------------------------------------------------------------------------------------------------
# Argument types
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "value"),
    [
        (["history", "dev", "--limit", "-2"], "-2"),
        (["history", "dev", "--limit", "two"], "two"),
        (["review", "dev", "-5", "--note", "seen"], "-5"),
        (["review", "dev", "0", "--note", "seen"], "0"),
        (["rollback", "dev", "--to-version", "-1"], "-1"),
        (["rollback", "dev", "--to-version", "0"], "0"),
    ],
    ids=lambda item: " ".join(item) if isinstance(item, list) else item,
)
def test_a_negative_or_zero_count_or_entry_number_exits_2_naming_the_value(
    argv: list[str], value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    engine = dev_engine()
    assert exit_code(argv, engine) == 2
    error = capsys.readouterr().err
    assert f"'{value}' is not a whole number of at least" in error
    assert engine.calls == []


def test_history_limit_0_still_means_every_entry(capsys: pytest.CaptureFixture[str]) -> None:
    assert exit_code(["history", "dev", "--limit", "0", "--json"]) == 0
    assert '"number": 1' in capsys.readouterr().out


# --------------------------------------------------------------------------------------------------
# One stack the backend does not hold
# --------------------------------------------------------------------------------------------------


def engine_without_production() -> MissingStacksEngine:
    engine = MissingStacksEngine()
    engine.add_stack("dev")
    engine.add_stack("staging")
    return engine


def test_status_reports_a_stack_missing_from_the_backend_shows_the_others_and_exits_3(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert exit_code(["status"], engine_without_production()) == 3
    captured = capsys.readouterr()
    assert "dev " in captured.out and "staging " in captured.out
    assert "production" not in captured.out
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1
    assert "stack 'production'" in lines[0] and "does not exist in this backend" in lines[0]


@pytest.mark.parametrize("verb", ["status", "audit", "metrics"])
def test_under_json_an_unreadable_stack_makes_one_error_object_holding_the_others(
    capsys: pytest.CaptureFixture[str], verb: str
) -> None:
    assert exit_code([verb, "--json"], engine_without_production()) == 3
    document = json.loads(capsys.readouterr().out)  # one document, nothing after it
    assert document["exitCode"] == 3 and "'production'" in document["error"]
    assert [problem["stack"] for problem in document["problems"]] == ["production"]
    assert "does not exist in this backend" in document["problems"][0]["problem"]
    assert document["result"]  # what dev and staging hold is still there


def test_plan_all_with_one_stack_file_is_refused_with_the_fix_and_in_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = copy_project(tmp_path)
    for stack in ("staging", "production"):
        (project / f"Pulumi.{stack}.yaml").unlink()
    assert exit_code(["plan", "--all", "--json"], project=project) == 2
    document = json.loads(capsys.readouterr().out)
    assert "--all needs at least two" in document["error"] and "release plan <stack>" in document["error"]


def test_plan_out_that_cannot_be_written_answers_with_one_json_document(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("not a directory")
    assert exit_code(["plan", "dev", "--json", "--quiet", "--out", str(blocked / "out")]) == 2
    document = json.loads(capsys.readouterr().out)  # json.loads refuses a second document
    assert "cannot write" in document["error"]


def test_audit_reports_a_stack_missing_from_the_backend_shows_the_others_and_exits_3(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert exit_code(["audit", "--json"], engine_without_production()) == 3
    captured = capsys.readouterr()
    assert '"rows"' in captured.out
    assert "'dev'" not in captured.err and "'staging'" not in captured.err
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "stack 'production'" in lines[0]


# --------------------------------------------------------------------------------------------------
# A malformed Pulumi.yaml
# --------------------------------------------------------------------------------------------------

MALFORMED_PROJECT_FILES = {
    "not YAML": ("name: platform\nconfig: [unclosed\n", "not valid YAML"),
    "not a mapping": ("- name\n- platform\n", "expected a mapping at the top level"),
    "config not a mapping": ("name: platform\nconfig: 3\n", "`config:` must be a mapping"),
    "an entry without value:": (
        "name: platform\nconfig:\n  gateway:\n    className: platform-gateway\n",
        "config.gateway has no `value:`",
    ),
}

VERBS_READING_PULUMI_YAML = [
    ["plan", "dev"],
    ["plan", "--all"],
    ["diff", "dev", "staging"],
    ["deploy", "dev", "--service", "api", "--image", NEW_API],
    ["promote", "dev", "staging", "--service", "api"],
    ["status"],
    ["health-check", "dev", "--url", "http://127.0.0.1:9"],
]

EVERY_VERB = [
    *VERBS_READING_PULUMI_YAML,
    ["rollback", "dev"],
    ["reject", "dev", "--service", "api", "--digest", DIGEST, "--reason", "broken"],
    ["review", "dev", "1", "--note", "seen"],
    ["audit"],
    ["drift", "dev"],
    ["history", "dev"],
]


@pytest.fixture(params=sorted(MALFORMED_PROJECT_FILES))
def malformed(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, str]:
    """A project copy whose Pulumi.yaml is malformed one way; yields it and the expected reason."""
    text, reason = MALFORMED_PROJECT_FILES[request.param]
    project = copy_project(tmp_path)
    (project / "Pulumi.yaml").write_text(text)
    return project, reason


@pytest.mark.parametrize("argv", VERBS_READING_PULUMI_YAML, ids=" ".join)
def test_a_malformed_pulumi_yaml_exits_2_naming_the_file_and_what_is_wrong(
    malformed: tuple[Path, str], argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    project, reason = malformed
    assert exit_code(argv, project=project) == 2
    error = capsys.readouterr().err
    assert f"{project / 'Pulumi.yaml'}" in error and reason in error
    assert "Traceback" not in error


@pytest.mark.parametrize("argv", EVERY_VERB, ids=" ".join)
def test_no_verb_meets_a_malformed_pulumi_yaml_with_a_traceback_or_an_internal_error(
    malformed: tuple[Path, str], argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    project, _ = malformed
    assert exit_code(argv, project=project) != 70
    error = capsys.readouterr().err
    assert "Traceback" not in error and "internal error" not in error


# --------------------------------------------------------------------------------------------------
# Unexpected exceptions, interrupts, and text from outside
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("error", [RuntimeError("engine exploded"), KeyError("platform:releases")])
def test_an_unexpected_exception_exits_70_with_one_line_and_no_traceback(
    error: Exception, capsys: pytest.CaptureFixture[str]
) -> None:
    assert exit_code(["history", "dev"], RaisingEngine(error)) == 70
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        f"release history: internal error: {type(error).__name__}: {error} "
        "(this is a bug; rerun with --verbose for the traceback)"
    ]


def test_verbose_adds_the_traceback_to_the_internal_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert exit_code(["history", "dev", "--verbose"], RaisingEngine(RuntimeError("boom"))) == 70
    error = capsys.readouterr().err
    assert "Traceback (most recent call last)" in error
    assert error.rstrip().splitlines()[-1].startswith("release history: internal error: RuntimeError: boom")


def test_an_interrupt_exits_130_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert exit_code(["history", "dev"], RaisingEngine(KeyboardInterrupt())) == 130
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and "interrupted" in lines[0]


def test_an_internal_error_message_cannot_forge_a_second_line(capsys: pytest.CaptureFixture[str]) -> None:
    forged = RuntimeError("boom\nrelease: deploy succeeded\x1b[2J")
    assert exit_code(["history", "dev"], RaisingEngine(forged)) == 70
    error = capsys.readouterr().err
    assert len(error.splitlines()) == 1 and "\x1b" not in error


def test_an_engine_error_is_printed_with_its_control_characters_escaped(
    capsys: pytest.CaptureFixture[str],
) -> None:
    hostile = EngineError("stack 'dev': refused\r\x1b[32mrelease: all good\x1b[0m")
    assert exit_code(["history", "dev"], RaisingEngine(hostile)) == 3
    error = capsys.readouterr().err
    assert error.startswith("release: stack 'dev': refused")
    assert "\x1b" not in error and "\r" not in error


def test_status_text_escapes_control_characters_from_the_engine(capsys: pytest.CaptureFixture[str]) -> None:
    engine = engine_without_production()
    releases = engine.stacks["dev"].config[RELEASES_KEY].value
    releases["evil\x1b]0;owned\x07"] = copy.deepcopy(releases["api"])
    assert exit_code(["status"], engine) == 3
    out = capsys.readouterr().out
    assert "evil\\x1b]0;owned\\x07" in out and "\x1b" not in out and "\x07" not in out


def test_an_unrecognised_argument_is_echoed_with_its_control_characters_escaped(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert exit_code(["status", "\x1b[2J\nrelease: all good"]) == 2
    error = capsys.readouterr().err
    assert "unrecognized arguments: \\x1b[2J\\x0arelease: all good" in error
    assert "\x1b" not in error and "\nrelease: all good" not in error


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["deploy", "dev", "--service", "api", "--set-flag", "FEATURE_X"], "is not NAME=VALUE"),
        (["deploy", "dev", "--service", "api", "--set-env", "lower=1"], "is not NAME=VALUE"),
        (["deploy", "dev", "--service", "api", "--set-flag", "FEATURE_X=a\nb"], "one printable line"),
        (["deploy", "dev", "--service", "api", "--set-env", "LOG=" + "x" * 5000], "at most 4096"),
        (
            ["deploy", "dev", "--service", "api", "--set-flag", "FEATURE_X=1", "--set-flag", "FEATURE_X=2"],
            "given twice with different values",
        ),
    ],
    ids=["no value", "lower-case name", "two lines", "too long", "twice"],
)
def test_a_malformed_config_value_exits_2_before_any_engine_call(
    argv: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    engine = dev_engine()
    assert exit_code(argv, engine) == 2
    error = capsys.readouterr().err
    assert says in error.splitlines()[-1]  # one line: a value cannot forge another
    assert engine.calls == []
