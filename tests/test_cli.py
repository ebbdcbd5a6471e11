"""The `release` command line: exit codes, JSON on stdout, and the engine behind a test double."""

from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path

import pytest

from release.cli import main
from release.locking import release_lock
from release.testing.fake_engine import FakeEngine
from tests.conftest import PROJECT, copy_project
from tests.http_servers import Reply, failing, healthy, serve
from tests.release_doubles import NEW_API, TEST_KEYS, Cluster, cluster, fake_engine

PROMOTE_TO_PRODUCTION = [
    "promote",
    "staging",
    "production",
    "--service",
    "api",
    "--approval",
    "CHG-1",
    "--approver",
    "bob",
]
FAST = ["--interval", "0.05", "--timeout", "0.5", "--window", "2", "--successes", "2", "--failures", "2"]


def run(argv: list[str], engine: FakeEngine | None = None) -> int:
    """`release <argv>` on the engine double and its clock (without one: the real adapter, no CLI)."""
    if engine is None:
        return main([*argv, "--project-dir", str(PROJECT)])
    return main([*argv, "--project-dir", str(engine.project_dir)], lambda _: engine, engine.clock)


def urls(api: Cluster) -> list[str]:
    return ["--preview-url", api.preview_url, "--stable-url", api.stable_url]


def test_health_check_exits_0_when_healthy_and_prints_the_verdict_as_json(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with serve(healthy(version="1.4.2")) as url:
        code = run(["health-check", "--url", url, "--expect-json", "version=1.4.2", "--json", *FAST])
    assert code == 0
    verdict = json.loads(capsys.readouterr().out)
    assert verdict["phase"] == "Healthy" and len(verdict["probes"]) == 2


def test_health_check_exits_1_when_unhealthy_and_lists_every_probe(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with serve(failing(503)) as url:
        code = run(["health-check", "--url", url, "--json", *FAST])
    assert code == 1
    verdict = json.loads(capsys.readouterr().out)
    assert [probe["status"] for probe in verdict["probes"]] == [503, 503]


def test_health_check_exits_2_on_bad_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["health-check", "--url", "http://127.0.0.1:9", "--expect-json", "version"]) == 2
    assert "use key=value" in capsys.readouterr().err
    assert run(["health-check", "--url", "http://127.0.0.1:9", "--timeout", "-1"]) == 2


def test_health_check_takes_its_defaults_from_the_stack(capsys: pytest.CaptureFixture[str]) -> None:
    with serve(failing(500)) as url:
        code = run(["health-check", "dev", "--url", url, "--interval", "0.05", "--json"])
    assert code == 1
    assert len(json.loads(capsys.readouterr().out)["probes"]) == 3  # dev's healthCheck.failures


def test_deploy_prints_the_report_as_json_and_exits_0_when_healthy(
    capsys: pytest.CaptureFixture[str],
) -> None:
    engine = fake_engine("dev")
    with cluster(engine, "dev") as api:
        code = run(
            ["deploy", "dev", "--service", "api", "--image", NEW_API, *urls(api), "--json"],
            engine,
        )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    report = json.loads(captured.out)
    assert report["phase"] == "Healthy" and report["steps"][0]["step"] == "preview"
    assert "release: preview: pulumi up -s dev" in captured.err  # progress on stderr


def test_a_failed_deploy_exits_1_after_rolling_back(capsys: pytest.CaptureFixture[str]) -> None:
    engine = fake_engine("dev")
    with cluster(engine, "dev") as api:
        api.bad.add(NEW_API)
        code = run(["deploy", "dev", "--service", "api", "--image", NEW_API, *urls(api)], engine)
    assert code == 1
    assert "RolledBack" in capsys.readouterr().out


def test_progress_goes_to_stderr_one_line_per_step_the_rollback_indented_and_quiet_keeps_only_errors(
    capsys: pytest.CaptureFixture[str],
) -> None:
    engine = fake_engine("dev")
    with cluster(engine, "dev") as api:
        api.bad.add(NEW_API)
        assert run(["deploy", "dev", "--service", "api", "--image", NEW_API, *urls(api)], engine) == 1
        steps = capsys.readouterr().err.splitlines()
        assert steps and all(line.startswith("release: ") for line in steps)
        failed = next(n for n, line in enumerate(steps) if line.startswith("release: analyse failed: "))
        assert steps[failed + 1 :] and all(line.startswith("release:   ") for line in steps[failed + 1 :])
        api.bad.discard(NEW_API)
        assert (
            run(["deploy", "dev", "--service", "api", "--image", NEW_API, *urls(api), "--quiet"], engine) == 0
        )
    quiet = capsys.readouterr()
    assert quiet.err == "" and "Healthy" in quiet.out
    assert run(["deploy", "dev", "--service", "nope", "--image", NEW_API, "--quiet"], engine) == 2
    assert "unknown service" in capsys.readouterr().err


def test_a_refused_deploy_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    engine = fake_engine("dev")
    assert run(["deploy", "dev", "--service", "api", "--image", "api:latest"], engine) == 2
    assert "pinned by digest" in capsys.readouterr().err


def test_history_prints_json_entries_newest_first(capsys: pytest.CaptureFixture[str]) -> None:
    engine = fake_engine("dev")
    assert run(["history", "dev", "--json"], engine) == 0
    entries = json.loads(capsys.readouterr().out)
    assert entries[0]["number"] == 1 and entries[0]["services"]["api"]["activeColor"] == "blue"


def test_rollback_dry_run_exits_0_and_changes_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    engine = fake_engine("dev")
    with cluster(engine, "dev") as api:
        run(["deploy", "dev", "--service", "api", "--image", NEW_API, *urls(api)], engine)
    capsys.readouterr()
    ups = len(engine.ups)
    assert run(["rollback", "dev", "--dry-run", "--json"], engine) == 0
    assert json.loads(capsys.readouterr().out)["phase"] == "Planned" and len(engine.ups) == ups


def test_a_forced_rollback_needs_a_reason(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["rollback", "dev", "--force"], fake_engine("dev")) == 2
    assert "--force needs --reason" in capsys.readouterr().err


@pytest.mark.skipif(shutil.which("pulumi") is not None, reason="the Pulumi CLI is installed here")
def test_engine_commands_without_the_pulumi_cli_exit_3_and_say_what_to_install(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["history", "dev", "--project-dir", str(PROJECT)]) == 3
    assert "the Pulumi CLI is not on PATH" in capsys.readouterr().err


def test_a_second_release_on_the_same_stack_fails_at_once_naming_the_first(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    project = copy_project(tmp_path)
    engine = fake_engine("dev")
    before = engine.get_config("dev")
    with release_lock(project, "dev", "alice: release deploy api"):
        code = main(
            ["deploy", "dev", "--service", "api", "--image", NEW_API, "--project-dir", str(project)],
            engine_factory=lambda _: engine,
            clock=engine.clock,
        )
    assert code == 4
    assert "release lock held by alice: release deploy api" in capsys.readouterr().err
    assert engine.ups == [] and engine.get_config("dev") == before


def test_the_release_lock_is_released_when_a_release_ends(tmp_path: Path) -> None:
    with release_lock(tmp_path, "staging", "alice"):
        pass
    with release_lock(tmp_path, "staging", "bob"):
        pass


def test_a_deploy_to_a_stack_that_takes_promotions_is_refused_before_any_engine_call(
    capsys: pytest.CaptureFixture[str],
) -> None:
    engine = fake_engine()
    assert run(["deploy", "staging", "--service", "api", "--image", NEW_API], engine) == 2
    assert "release promote dev staging --service api" in capsys.readouterr().err
    assert engine.calls == []


def test_break_glass_without_a_reason_exits_2_before_any_engine_call(
    capsys: pytest.CaptureFixture[str],
) -> None:
    engine = fake_engine()
    argv = ["promote", "staging", "production", "--service", "api", "--approval", "CHG-1", "--break-glass"]
    assert run(argv, engine) == 2
    assert "--break-glass needs --reason" in capsys.readouterr().err
    assert engine.calls == []


def test_an_unverified_promotion_exits_2_and_names_the_rule(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RELEASE_SIGNING_KEY", TEST_KEYS.private_key)
    engine = fake_engine("dev")
    engine.add_stack("staging")
    assert run(["promote", "dev", "staging", "--service", "api", "--actor", "alice"], engine) == 2
    error = capsys.readouterr().err
    assert "[verified]" in error and "no verify record" in error
    assert not [call for call in engine.calls if call[0] == "up"]


def test_a_second_promotion_to_the_same_stack_fails_at_once(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    project = copy_project(tmp_path)
    engine = fake_engine()
    with release_lock(project, "production", "alice: release promote staging -> production api"):
        code = main(
            [*PROMOTE_TO_PRODUCTION, "--project-dir", str(project)],
            engine_factory=lambda _: engine,
            clock=engine.clock,
        )
    assert code == 4 and "release lock held by alice" in capsys.readouterr().err


def test_sigterm_during_a_release_rolls_it_back_and_prints_the_report(
    capsys: pytest.CaptureFixture[str],
) -> None:
    engine = fake_engine("dev")
    handler = signal.getsignal(signal.SIGTERM)
    with cluster(engine, "dev") as api:
        answer = api.answer

        def terminated_once_stable(preview: bool) -> Reply:
            if not preview and engine.serving("dev", "api") == NEW_API:
                api.answer = answer  # type: ignore[method-assign]
                os.kill(os.getpid(), signal.SIGTERM)  # as a cancelled CI job's runner does
            return answer(preview)

        api.answer = terminated_once_stable  # type: ignore[method-assign]
        code = run(["deploy", "dev", "--service", "api", "--image", NEW_API, *urls(api)], engine)
    captured = capsys.readouterr()
    assert code == 1 and "RolledBack" in captured.out
    assert "smoke stable failed: interrupted (Ctrl-C or SIGTERM); rolling back" in captured.err
    assert engine.serving("dev", "api") != NEW_API
    assert signal.getsignal(signal.SIGTERM) is handler  # the tool's handler is gone again
