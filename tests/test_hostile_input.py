"""Hostile input from files and arguments: it must not reach files outside the project, exhaust
memory, mean something other than it reads, or print a secret.

11: stack names are checked against Pulumi's rules before anything else (core.stack_name).
12: every Pulumi YAML file is read by one safe loader (core.config.pulumi_yaml), and config types are
    strict (no `true` for a count, no `"2"` for a number, no trailing newline in a name).
13: a secret stored in plain text is an error, and its value is printed nowhere.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core.config.pulumi_yaml import MAX_FILE_BYTES, PulumiYamlError, load_pulumi_yaml
from core.config.rules import load_stack_config
from core.config.sources import read_stack_file, stack_names
from core.errors import ConfigError, ConfigProblem, StackFileError, StackNameError, UsageError
from core.stack_name import StackName, parse_stack_name
from release.cli import main
from release.locking import release_lock
from release.testing.fake_engine import FakeEngine
from tests.conftest import PROJECT, ROOT, TEST_SECRETS, copy_project, edit_yaml

SECRET_NAMES = sorted(TEST_SECRETS)
DIGEST_IMAGE = "registry.example.test/platform/api@sha256:" + "ab" * 32
MEMORY_LIMIT = 1536 * 1024 * 1024
SECONDS = 60


def exit_code(argv: list[str], project: Path = PROJECT, engine: FakeEngine | None = None) -> int:
    """Run the CLI in-process; argparse's refusals (SystemExit) count as their exit code."""
    double = engine or FakeEngine()
    try:
        return main(
            [*argv, "--project-dir", str(project)], engine_factory=lambda _: double, clock=double.clock
        )
    except SystemExit as exited:
        return int(exited.code or 0)


def problems_of(project: Path, stack: str) -> list[ConfigProblem]:
    with pytest.raises(ConfigError) as raised:
        load_stack_config(read_stack_file(project, stack, SECRET_NAMES).raw)
    return raised.value.problems


def problem_at(problems: list[ConfigProblem], key: str) -> ConfigProblem:
    matching = [problem for problem in problems if problem.key == key]
    assert matching, f"no problem at {key}: {[problem.key for problem in problems]}"
    return matching[0]


# --------------------------------------------------------------------------------------------------
# 11: stack names
# --------------------------------------------------------------------------------------------------


@pytest.fixture
def hostile(tmp_path: Path) -> Iterator[tuple[Path, dict[Path, bytes]]]:
    """A project copy with a poetry.lock inside and a sentinel outside; yields their contents too."""
    project = tmp_path / "project"
    project.mkdir()
    copy_project(project)
    outside = tmp_path / "outside"
    outside.mkdir()
    files = {
        project / "poetry.lock": b"# poetry.lock: must stay byte-identical\n",
        outside / "victim.lock": b"sentinel outside the project\n",
    }
    for path, content in files.items():
        path.write_bytes(content)
    yield project, files


def test_a_path_like_stack_name_is_refused_and_no_file_outside_dotrelease_is_touched(
    hostile: tuple[Path, dict[Path, bytes]], capsys: pytest.CaptureFixture[str]
) -> None:
    project, files = hostile
    victim = "../" * (len(project.parts) + 1) + str((project.parent / "outside" / "victim").relative_to("/"))
    commands = [
        ["deploy", "../poetry", "--service", "api", "--image", DIGEST_IMAGE, "--actor", "mallory"],
        ["rollback", victim, "--actor", "mallory"],
        ["rollback", "../../outside/victim", "--actor", "mallory"],
        ["promote", "dev", "../poetry", "--service", "api", "--actor", "mallory"],
    ]
    for argv in commands:
        assert exit_code(argv, project) == 2, argv
        assert "invalid stack name" in capsys.readouterr().err
    assert {path: path.read_bytes() for path in files} == files
    assert not (project / ".release").exists() or not list((project / ".release").iterdir())


STACK_ARGUMENTS = [
    ["plan", "{}"],
    ["deploy", "{}", "--service", "api", "--image", DIGEST_IMAGE],
    ["rollback", "{}"],
    ["abort", "{}", "--service", "api"],
    ["promote", "{}", "production", "--service", "api"],
    ["promote", "staging", "{}", "--service", "api"],
    ["reject", "{}", "--service", "api", "--digest", "sha256:" + "ab" * 32, "--reason", "bad"],
    ["review", "{}", "1", "--note", "ok"],
    ["audit", "{}"],
    ["diff", "{}", "dev"],
    ["diff", "dev", "{}"],
    ["drift", "{}"],
    ["history", "{}"],
    ["health-check", "{}", "--url", "http://127.0.0.1:9"],
]


@pytest.mark.parametrize("template", STACK_ARGUMENTS, ids=lambda argv: " ".join(argv[:3]))
@pytest.mark.parametrize("name", ["a b", "a;b", "../dev", "dev\n", "."])
def test_every_stack_argument_of_every_verb_refuses_a_bad_name_with_exit_2_naming_value_and_rule(
    template: list[str], name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    engine = FakeEngine()
    argv = [name if part == "{}" else part for part in template]
    assert exit_code(argv, engine=engine) == 2
    error = capsys.readouterr().err
    assert "invalid stack name" in error and "letters, digits, '-', '_' or '.'" in error
    assert "Traceback" not in error
    assert engine.calls == []


def test_a_stack_name_of_100_characters_is_accepted_and_of_101_refused() -> None:
    assert StackName.parse("s" * 100).value == "s" * 100
    with pytest.raises(StackNameError) as raised:
        StackName.parse("s" * 101)
    assert "101 characters, more than 100" in str(raised.value)


@pytest.mark.parametrize("name", ["dev", "staging", "prod-eu_1", "v1.2", "A9"])
def test_letters_digits_dash_underscore_and_dot_make_a_valid_stack_name(name: str) -> None:
    assert parse_stack_name(name) == name


@pytest.mark.parametrize("name", ["", ".", "..", "a/b/c/d", "dev\n", "dév", "a\x1b[2Jb"])
def test_names_pulumi_would_refuse_are_refused(name: str) -> None:
    with pytest.raises(StackNameError) as raised:
        StackName.parse(name)
    assert "\x1b" not in str(raised.value) and "\n" not in str(raised.value)


def test_a_qualified_name_of_another_project_is_refused_naming_the_project() -> None:
    with pytest.raises(StackNameError) as raised:
        StackName.parse("acme/billing/dev")
    assert "project 'billing' is not this project" in str(raised.value)


@pytest.mark.parametrize("name", ["acme/platform/staging", "acme/staging"])
def test_an_org_prefix_is_refused_telling_to_use_the_short_name_and_pulumi_org_set_default(name: str) -> None:
    with pytest.raises(StackNameError) as raised:
        StackName.parse(name)
    message = str(raised.value)
    assert "give the short name 'staging'" in message
    assert "pulumi org set-default" in message


def test_the_release_lock_refuses_an_invalid_stack_name_without_creating_anything(
    hostile: tuple[Path, dict[Path, bytes]],
) -> None:
    project, files = hostile
    with pytest.raises(StackNameError), release_lock(project, "../poetry", "mallory"):
        pass
    assert {path: path.read_bytes() for path in files} == files
    assert not (project / ".release").exists()


def test_the_release_lock_refuses_a_lock_file_that_links_out_of_dotrelease(
    hostile: tuple[Path, dict[Path, bytes]],
) -> None:
    project, files = hostile
    (project / ".release").mkdir()
    (project / ".release" / "dev.lock").symlink_to(project.parent / "outside" / "victim.lock")
    with pytest.raises(UsageError) as raised, release_lock(project, "dev", "mallory"):
        pass
    assert "outside" in str(raised.value)
    assert {path: path.read_bytes() for path in files} == files


def test_a_stack_file_whose_middle_part_is_not_a_stack_name_is_skipped_and_reported(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "Pulumi.a;b.yaml").write_text((project / "Pulumi.dev.yaml").read_text())
    (project / "Pulumi. .yaml").write_text("config: {}\n")
    assert stack_names(project) == ["dev", "staging", "production"]
    error = capsys.readouterr().err
    assert "skipped Pulumi.a;b.yaml" in error and "skipped Pulumi. .yaml" in error


# --------------------------------------------------------------------------------------------------
# 12: the one safe YAML loader, and strict config types
# --------------------------------------------------------------------------------------------------


def alias_bomb(indent: str) -> str:
    """A billion laughs in about a kilobyte: nine levels of nine aliases (9^9 leaves once expanded)."""
    lines = [f'{indent}lol0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, 9):
        aliases = ", ".join([f"*a{level - 1}"] * 9)
        lines.append(f"{indent}lol{level}: &a{level} [{aliases}]")
    return "\n".join(lines) + "\n"


def release_in_a_subprocess(argv: list[str]) -> tuple[subprocess.CompletedProcess[str], float]:
    """`release <argv>` under a memory limit and a timeout, as CI would run it."""

    def limit_memory() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))

    started = time.monotonic()
    finished = subprocess.run(
        [sys.executable, "-m", "release", *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=SECONDS,
        preexec_fn=limit_memory,  # the limit applies to the child only
        check=False,
    )
    return finished, time.monotonic() - started


def test_the_normal_plan_fits_in_the_memory_limit_used_below(project: Path) -> None:
    finished, _ = release_in_a_subprocess(["plan", "dev", "--project-dir", str(project)])
    assert finished.returncode == 0, finished.stderr


@pytest.mark.parametrize(
    ("file_name", "bomb"),
    [
        ("Pulumi.dev.yaml", alias_bomb("  platform:")),
        ("Pulumi.yaml", alias_bomb("  ").replace(": &", ":\n    value: &")),
    ],
)
def test_an_alias_bomb_exits_2_at_once_under_a_memory_limit_naming_the_file(
    project: Path, file_name: str, bomb: str
) -> None:
    assert len(bomb) < 1200
    with (project / file_name).open("a") as stack_file:
        stack_file.write(bomb)
    finished, seconds = release_in_a_subprocess(["plan", "dev", "--project-dir", str(project)])
    assert finished.returncode == 2, finished.stderr[-2000:]
    assert f"{file_name}:" in finished.stderr and "anchor &a0 is not allowed" in finished.stderr
    assert "Traceback" not in finished.stderr
    assert seconds < SECONDS / 2


def test_a_key_given_twice_in_a_stack_file_is_refused_naming_the_key_and_both_lines(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with (project / "Pulumi.dev.yaml").open("a") as stack_file:
        stack_file.write("  platform:namespace: platform-evil\n")
    first = 1 + (project / "Pulumi.dev.yaml").read_text().splitlines().index(
        "  platform:namespace: platform-dev"
    )
    last = len((project / "Pulumi.dev.yaml").read_text().splitlines())
    assert exit_code(["plan", "dev"], project) == 2
    error = capsys.readouterr().err
    assert f"duplicate key 'platform:namespace' (first on line {first}, again on line {last})" in error
    assert "Pulumi.dev.yaml" in error


def test_a_key_given_twice_deep_inside_pulumi_yaml_is_refused(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = (project / "Pulumi.yaml").read_text()
    (project / "Pulumi.yaml").write_text(
        text.replace("      port: 5432\n", "      port: 5432\n      port: 6543\n")
    )
    assert exit_code(["plan", "dev"], project) == 2
    error = capsys.readouterr().err
    assert "Pulumi.yaml" in error and "duplicate key 'port'" in error


def test_a_pulumi_yaml_file_over_the_size_cap_is_refused_before_parsing(tmp_path: Path) -> None:
    path = tmp_path / "Pulumi.dev.yaml"
    path.write_text("config:\n" + "  # padding\n" * (MAX_FILE_BYTES // 10))
    with pytest.raises(PulumiYamlError) as raised:
        load_pulumi_yaml(path)
    assert f"larger than {MAX_FILE_BYTES} bytes" in str(raised.value)


def test_a_text_read_again_gives_a_document_of_its_own_and_an_edited_file_is_read_afresh(
    tmp_path: Path,
) -> None:
    path = tmp_path / "Pulumi.dev.yaml"
    path.write_text("config:\n  platform:namespace: platform-dev\n")
    first = load_pulumi_yaml(path)
    first["config"]["platform:namespace"] = "changed by its reader"
    assert load_pulumi_yaml(path) == {"config": {"platform:namespace": "platform-dev"}}
    path.write_text("config:\n  platform:namespace: platform-dev\n  platform:namespace: again\n")
    for _ in range(2):  # a refusal is never remembered as a document
        with pytest.raises(PulumiYamlError, match="duplicate key"):
            load_pulumi_yaml(path)


def test_a_stack_file_error_from_the_loader_is_a_stack_file_error(project: Path) -> None:
    (project / "Pulumi.dev.yaml").write_text("config:\n  platform:namespace: &x platform-dev\n")
    with pytest.raises(StackFileError) as raised:
        read_stack_file(project, "dev")
    assert raised.value.exit_code == 2 and "Pulumi.dev.yaml:2" in str(raised.value)


@pytest.mark.parametrize(
    ("file_name", "edit", "key"),
    [
        (
            "Pulumi.dev.yaml",
            lambda doc: doc["config"]["platform:releases"]["api"].update(replicas=True),
            "platform:releases.api.replicas",
        ),
        (
            "Pulumi.dev.yaml",
            lambda doc: doc["config"]["platform:database"].update(multiAz="yes"),
            "platform:database.multiAz",
        ),
        (
            "Pulumi.dev.yaml",
            lambda doc: doc["config"]["platform:healthCheck"].update(successes="3"),
            "platform:healthCheck.successes",
        ),
        (
            "Pulumi.yaml",
            lambda doc: doc["config"]["services"]["value"][0].update(port=8080.5),
            "platform:services.0.port",
        ),
        (
            "Pulumi.yaml",
            lambda doc: doc["config"]["stackPolicies"]["value"]["dev"].update(minReplicas="2"),
            "platform:stackPolicies.dev.minReplicas",
        ),
    ],
    ids=["replicas: true", 'multiAz: "yes"', 'successes: "3"', "port: 8080.5", 'minReplicas: "2"'],
)
def test_a_number_or_boolean_of_the_wrong_type_is_refused_not_coerced(
    project: Path, file_name: str, edit: Any, key: str
) -> None:
    edit_yaml(project / file_name, edit)
    problem = problem_at(problems_of(project, "dev"), key)
    assert problem.stack == "dev" and problem.fix


@pytest.mark.parametrize(
    ("edit", "key"),
    [
        (lambda config: config.update({"platform:namespace": "platform-dev\n"}), "platform:namespace"),
        (
            lambda config: config.update({"platform:featureFlags": {"FEATURE_SEARCH_V2\n": "true"}}),
            "platform:featureFlags",
        ),
        (lambda config: config.update({"platform:awsRegion": "eu-west-1\n"}), "platform:awsRegion"),
        (lambda config: config.update({"platform:domain": "dev.platform.example.test\n"}), "platform:domain"),
        (
            lambda config: config["platform:database"].update(instanceClass="db.t4g.micro\n"),
            "platform:database.instanceClass",
        ),
    ],
    ids=["namespace", "feature flag", "aws region", "domain", "instance class"],
)
def test_a_name_with_a_trailing_newline_is_refused(project: Path, edit: Any, key: str) -> None:
    edit_yaml(project / "Pulumi.dev.yaml", lambda document: edit(document["config"]))
    problem_at(problems_of(project, "dev"), key)


def test_a_service_name_or_freeze_window_with_a_trailing_newline_is_refused(project: Path) -> None:
    def edit(document: dict[str, Any]) -> None:
        document["config"]["services"]["value"][1]["name"] = "web\n"
        gate = document["config"]["stackPolicies"]["value"]["production"]["promotion"]
        gate["freezeWindows"][0]["starts"] = "Fri 16:00\n"

    edit_yaml(project / "Pulumi.yaml", edit)
    keys = {problem.key for problem in problems_of(project, "dev")}
    assert "platform:services.1.name" in keys
    assert "platform:stackPolicies.production.promotion.freezeWindows.0.starts" in keys


# --------------------------------------------------------------------------------------------------
# 13: secrets in plain text
# --------------------------------------------------------------------------------------------------

SENTINEL = "sentinel-plaintext-secret-5e1f0c"


def set_plaintext_secret(project: Path, stack: str = "dev") -> None:
    """What `pulumi config set --path appSecrets.SESSION_SIGNING_KEY <value>` (no --secret) writes."""
    edit_yaml(
        project / f"Pulumi.{stack}.yaml",
        lambda document: document["config"].update(
            {"platform:appSecrets": {"SESSION_SIGNING_KEY": SENTINEL, "PAYMENT_PROVIDER_API_KEY": SENTINEL}}
        ),
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["diff", "dev", "staging"],
        ["diff", "dev", "staging", "--json"],
        ["plan", "dev"],
        ["plan", "--all"],
        ["plan", "--all", "--resources"],
        ["plan", "--all", "--json"],
    ],
    ids=" ".join,
)
def test_a_secret_in_plain_text_is_printed_nowhere(
    project: Path, argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    set_plaintext_secret(project)
    assert exit_code(argv, project) == 2
    captured = capsys.readouterr()
    assert SENTINEL not in captured.out and SENTINEL not in captured.err
    assert "application secrets are stored in plain text" in captured.out + captured.err


def test_a_secret_in_plain_text_is_an_error_of_its_stack_and_never_a_knob(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    edit_yaml(
        project / "Pulumi.dev.yaml",
        lambda document: document["config"].update({"platform:appSecrets": {"EXTRA_TOKEN": SENTINEL}}),
    )
    assert exit_code(["plan", "--all", "--json"], project) == 2
    captured = capsys.readouterr()
    assert SENTINEL not in captured.out and SENTINEL not in captured.err
    plan = json.loads(captured.out)
    problems = plan["stacks"]["dev"]["problems"]
    assert any(problem["problem"] == "application secrets are stored in plain text" for problem in problems)
    secret_differences = [d for d in plan["differences"] if d["path"].startswith("platform:appSecrets")]
    assert [difference["path"] for difference in secret_differences] == ["platform:appSecrets.EXTRA_TOKEN"]
    assert all(difference["classification"] == "violation" for difference in secret_differences)
    assert all("plain text" in difference["reason"] for difference in secret_differences)


def test_one_plain_text_secret_beside_an_encrypted_one_is_still_refused(project: Path) -> None:
    edit_yaml(
        project / "Pulumi.dev.yaml",
        lambda document: document["config"].update(
            {
                "platform:appSecrets": {
                    "SESSION_SIGNING_KEY": {"secure": "v1:abc"},
                    "PAYMENT_PROVIDER_API_KEY": SENTINEL,
                }
            }
        ),
    )
    stack_file = read_stack_file(project, "dev", SECRET_NAMES)
    assert stack_file.plaintext_secrets == ["platform:appSecrets.PAYMENT_PROVIDER_API_KEY"]
    assert SENTINEL not in json.dumps(stack_file.raw.values)
    problem = problem_at(problems_of(project, "dev"), "platform:appSecrets")
    assert problem.problem == "application secrets are stored in plain text"
