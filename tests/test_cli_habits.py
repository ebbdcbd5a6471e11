"""What people expect of a command line: `--version`, a quiet end when the reader closes the pipe,
JSON on stdout for every refusal under `--json`, unknown stacks answered with the known ones, help
on every verb and option, the stack always positional, and a question before a guarded stack is
changed by hand."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from release.cli import build_parser, main
from release.commands.known_stacks import closest_stack, unknown_stack_message
from release.commands.options import STACK_ARGUMENTS
from release.testing.fake_engine import FakeEngine
from tests.conftest import PROJECT, ROOT, copy_project
from tests.release_doubles import fake_engine

STACKS = ["dev", "staging", "production"]


def run(argv: list[str], engine: FakeEngine, answer: str | None = None) -> int:
    """`release <argv>` on the engine double; `answer` is what the person at the terminal types
    (None: there is no terminal)."""
    return main(
        [*argv, "--project-dir", str(engine.project_dir)], lambda _: engine, engine.clock, lambda _: answer
    )


def _verbs() -> dict[str, argparse.ArgumentParser]:
    subparsers = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(subparsers.choices)


def test_version_prints_the_installed_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.startswith("release 0.")


def test_a_reader_that_closes_the_pipe_early_ends_the_command_quietly(tmp_path: Path) -> None:
    project = copy_project(tmp_path)
    command = [
        sys.executable,
        "-m",
        "release",
        "plan",
        "dev",
        "--json",
        "--quiet",
        "--project-dir",
        str(project),
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()
    errors = process.stderr.read().decode()
    assert process.wait(timeout=120) == 141
    assert "internal error" not in errors and "Traceback" not in errors


@pytest.mark.parametrize("unbuffered", ["", "1"])
@pytest.mark.parametrize(
    "argv",
    [["history", "nosuch", "--json"], ["history", "dev", "--json=1"]],
    ids=["a-short-json-refusal", "a-bad-command-line"],
)
def test_a_reader_gone_before_a_short_answer_also_ends_it_quietly(
    tmp_path: Path, argv: list[str], unbuffered: str
) -> None:
    project = copy_project(tmp_path)
    command = [sys.executable, "-m", "release", *argv, "--project-dir", str(project)]
    env = {**os.environ, "PYTHONUNBUFFERED": unbuffered}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()
    errors = process.stderr.read().decode()
    assert process.wait(timeout=120) == 141
    assert "internal error" not in errors and "Traceback" not in errors and "Exception ignored" not in errors


def test_json_given_as_json_equals_something_is_still_answered_in_json(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["history", "dev", "--json=yes"])
    assert exited.value.code == 2
    assert "ignored explicit argument" in json.loads(capsys.readouterr().out)["error"]


def test_an_abbreviated_option_is_refused_rather_than_guessed(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["history", "dev", "--js"])
    assert exited.value.code == 2
    assert "unrecognized arguments: --js" in capsys.readouterr().err


def test_an_unknown_stack_is_answered_with_the_known_ones_and_the_closest(
    capsys: pytest.CaptureFixture[str],
) -> None:
    engine = fake_engine("production")
    assert run(["history", "prod"], engine) == 2
    error = capsys.readouterr().err
    assert "stack 'prod' is not one of this project's stacks: dev, staging, production" in error
    assert "did you mean 'production'?" in error
    assert engine.calls == []


def test_a_near_miss_gets_its_match_and_only_a_stack_with_no_match_is_told_how_to_make_one() -> None:
    assert "pulumi stack init" not in unknown_stack_message("prod", STACKS)
    assert "`pulumi stack init qa`" in unknown_stack_message("qa", STACKS)


@pytest.mark.parametrize(
    ("typed", "meant"),
    [("prod", "production"), ("stagng", "staging"), ("Dev", "dev"), ("qa", None), ("", None)],
)
def test_the_closest_stack_is_the_one_abbreviated_else_the_nearest_spelling(
    typed: str, meant: str | None
) -> None:
    assert closest_stack(typed, STACKS) == meant


def test_a_refusal_under_json_is_an_object_on_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["history", "prod", "--json"], fake_engine("production")) == 2
    document = json.loads(capsys.readouterr().out)
    assert document["exitCode"] == 2
    assert "did you mean 'production'?" in document["error"]
    assert document["problems"] == [{"problem": document["error"]}]


def test_a_bad_command_line_under_json_is_an_object_on_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["deploy", "dev", "--json"])
    document = json.loads(capsys.readouterr().out)
    assert exited.value.code == 2 and document["exitCode"] == 2
    assert "--service" in document["error"] and document["problems"][0]["problem"] == document["error"]


def test_a_config_refusal_under_json_lists_each_problem_with_its_key_and_fix(
    capsys: pytest.CaptureFixture[str],
) -> None:
    engine = fake_engine("dev")
    assert (
        run(
            ["deploy", "dev", "--service", "nosuch", "--image", "registry.example.test/x:1", "--json"], engine
        )
        == 2
    )
    problems = json.loads(capsys.readouterr().out)["problems"]
    found = [(p["stack"], p["key"], p["value"]) for p in problems]
    assert ("dev", "platform:releases.nosuch", "nosuch") in found
    assert all(p["fix"] for p in problems)


def test_every_verb_and_every_option_says_what_it_is_for() -> None:
    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    undescribed = [choice.dest for choice in subparsers._choices_actions if not choice.help]
    unexplained = [
        f"{verb} {action.option_strings or action.dest}"
        for verb, sub in _verbs().items()
        for action in sub._actions
        if not action.help and not isinstance(action, argparse._HelpAction)
    ]
    assert (undescribed, unexplained) == ([], [])


def test_a_stack_is_always_a_positional_argument_checked_against_the_project() -> None:
    for verb, sub in _verbs().items():
        options = [o for action in sub._actions for o in action.option_strings]
        assert "--stack" not in options, verb
        positionals = {action.dest for action in sub._actions if not action.option_strings}
        stacks = set(sub.get_default(STACK_ARGUMENTS) or ())
        assert stacks <= positionals, verb
        assert not {"stack", "stack_a", "stack_b", "source", "target"} & positionals - stacks, verb


def test_a_rollback_of_a_guarded_stack_outside_a_terminal_needs_yes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    engine = fake_engine("production")
    calls = len(engine.calls)
    assert run(["rollback", "production"], engine, answer=None) == 2
    error = capsys.readouterr().err
    assert "stackPolicies.production.promotion.requireApproval" in error and "--yes" in error
    assert "nothing was changed" in error and len(engine.calls) == calls


def test_a_rollback_of_a_guarded_stack_goes_on_when_the_person_types_its_name(
    capsys: pytest.CaptureFixture[str],
) -> None:
    engine = fake_engine("production")
    assert (
        run(["rollback", "production"], engine, answer="production\n") == 5
    )  # past the question: nothing to restore
    assert "nothing to roll back to" in capsys.readouterr().err


def test_a_rollback_of_a_guarded_stack_stops_on_any_other_answer(capsys: pytest.CaptureFixture[str]) -> None:
    engine = fake_engine("production")
    calls = len(engine.calls)
    assert run(["abort", "production", "--service", "api"], engine, answer="y\n") == 2
    assert "not confirmed (nothing was changed)" in capsys.readouterr().err and len(engine.calls) == calls


@pytest.mark.parametrize(
    ("stack", "argv"),
    [("production", ["--yes"]), ("production", ["--dry-run"]), ("staging", []), ("dev", [])],
)
def test_no_question_with_yes_on_a_dry_run_or_on_an_unguarded_stack(stack: str, argv: list[str]) -> None:
    engine = fake_engine(stack)

    def no_questions(question: str) -> str | None:
        raise AssertionError(f"asked: {question}")

    code = main(
        ["rollback", stack, *argv, "--project-dir", str(engine.project_dir)],
        lambda _: engine,
        engine.clock,
        no_questions,
    )
    assert code in (0, 5)


def test_the_documented_project_has_the_three_stacks() -> None:
    assert sorted(p.name for p in PROJECT.glob("Pulumi.*.yaml")) == [
        f"Pulumi.{s}.yaml" for s in sorted(STACKS)
    ]


def test_the_old_spelling_of_the_color_option_is_refused_with_the_one_to_use(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["smoke", "staging", "--service", "api", "--colour", "blue"])
    assert exited.value.code == 2
    assert "--colour is spelled --color now" in capsys.readouterr().err


def test_a_verb_without_a_color_option_refuses_colour_as_any_unknown_option(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["history", "dev", "--colour", "blue"])
    assert "--color" not in capsys.readouterr().err.replace("--colour", "")


@pytest.mark.parametrize("argv", [["--version"], ["--help"], ["plan", "--help"]])
def test_help_and_version_into_a_closed_pipe_also_exit_141(argv: list[str]) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "release", *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()
    errors = process.stderr.read().decode()
    assert process.wait(timeout=120) == 141
    assert "Traceback" not in errors


OLD_SPELLING_ALLOWED = {
    "release/commands/options.py",  # the refusal of --colour that names --color
    "tests/test_cli_habits.py",  # this test and the one above
    "docs/observability.md",  # the upgrade note for series labelled the old way
}


def test_color_has_one_spelling_in_code_config_labels_and_docs() -> None:
    tracked = (
        subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, timeout=60)
        .stdout.decode()
        .split("\0")
    )
    found = []
    for name in tracked:
        path = ROOT / name
        if not name or name in OLD_SPELLING_ALLOWED or not path.is_file():
            continue
        text = path.read_bytes().decode("utf-8", errors="replace")
        if "colour" in text.lower():
            found.append(name)
    assert found == []
