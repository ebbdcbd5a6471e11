"""Who is releasing: in GitHub Actions, who started this attempt of the run (issue 23, item 5)."""

from __future__ import annotations

import pytest

from core.errors import UsageError
from release.cli import main
from release.context import ReleaseContext, actor_from
from release.testing.fake_engine import FakeEngine

RE_RUN = {"GITHUB_ACTIONS": "true", "GITHUB_ACTOR": "alice", "GITHUB_TRIGGERING_ACTOR": "bob"}


def test_in_github_actions_the_person_releasing_is_who_re_ran_the_run() -> None:
    assert actor_from(RE_RUN) == "bob"


def test_on_a_first_run_it_is_the_runs_actor() -> None:
    assert actor_from({"GITHUB_ACTIONS": "true", "GITHUB_ACTOR": "alice"}) == "alice"


def test_release_operator_cannot_rename_the_person_releasing_in_github_actions() -> None:
    assert actor_from({**RE_RUN, "RELEASE_OPERATOR": "carol"}) == "bob"
    assert actor_from({"RELEASE_OPERATOR": "carol", "GITHUB_ACTOR": "alice"}) == "carol"  # outside


def test_actor_naming_someone_else_in_github_actions_is_refused() -> None:
    context = ReleaseContext(env=RE_RUN, engine_factory=FakeEngine, given_actor="alice")
    with pytest.raises(UsageError, match="who started the run \\(bob"):
        _ = context.actor


def test_the_cli_refuses_actor_in_github_actions_with_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    engine = FakeEngine()
    engine.add_stack("staging")
    for name, value in RE_RUN.items():
        monkeypatch.setenv(name, value)
    argv = ["reject", "staging", "--service", "api", "--digest", "sha256:" + "ab" * 32]
    code = main([*argv, "--reason", "broke checkout", "--actor", "alice"], lambda _: engine, engine.clock)
    assert code == 2 and "leave --actor out" in capsys.readouterr().err
    assert [call for call in engine.calls if call[0] == "up"] == []
