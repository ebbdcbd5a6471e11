"""`release plan`: a summary first, the verdict at the top, the same bytes on every run.

By default `release plan --all` prints, in one screen, the verdict (parity and policy, each violation
named with its fix), the resources by kind, one line per knob that differs (each stack's value) and
what deserves a look; `--resources` keeps the full listing; `--json` lists violations as objects.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from release.cli import main
from release.offline.key_settings import kind_of
from tests.conftest import ANOTHER_CODE_PATH, PROJECT, ROOT, STACKS, edit_yaml, stdout_of_a_fresh_python

SCREEN = 50
"""Lines: what `make plan` may print for the committed project (one screen)."""


def plan_output(capsys: pytest.CaptureFixture[str], *argv: str, project: Path = PROJECT) -> tuple[int, str]:
    code = main(["plan", *argv, "--quiet", "--project-dir", str(project)])
    return code, capsys.readouterr().out


def gateway_overridden_in_dev(project: Path) -> None:
    edit_yaml(
        project / "Pulumi.dev.yaml",
        lambda document: document["config"].__setitem__("platform:gateway", {"className": "other"}),
    )


# ------------------------------------------------------------------------------------------ one screen


def test_make_plan_on_the_committed_project_fits_one_screen_with_the_verdict_at_the_top(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out = plan_output(capsys, "--all", project=ROOT)
    lines = out.splitlines()
    assert code == 0
    assert len(lines) <= SCREEN, out
    assert "not what the cloud holds" in lines[0]
    assert lines[1].startswith("parity: OK") and lines[2].startswith("policy: OK")
    assert max(len(line) for line in lines) <= 120


def test_the_summary_has_one_line_per_knob_that_differs_with_each_stacks_value(
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, out = plan_output(capsys, "--all")
    header = next(line for line in out.splitlines() if line.startswith("knobs that differ"))
    assert header.split()[-3:] == list(STACKS)
    assert re.search(
        r"^  database\.instanceClass +db\.t4g\.micro +db\.t4g\.medium +db\.r6g\.large$", out, re.M
    )
    assert re.search(r"^  namespace +platform-dev +platform-staging +platform-production$", out, re.M)
    assert re.search(r"^  strategy\.type +- +canary +canary$", out, re.M)
    # the same values in the same part of two paths are one line; an image is its digest or tag
    assert re.search(r"^  releases\.\*\.activeColor +blue +green +blue$", out, re.M)
    assert re.search(r"^  releases\.api\.images\.green +main \(tag\) +sha256:[0-9a-f]{12} ", out, re.M)
    assert "differences between" not in out and "knob     [resource]" not in out


def test_the_summary_counts_resources_by_kind_and_names_what_deserves_a_look(
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, out = plan_output(capsys, "--all")
    assert re.search(r"^\d+ resources in each stack: .*ConfigMap \d+, Deployment 4,", out, re.M)
    look = [line for line in out.splitlines() if line.startswith("look: ")]
    assert (
        "look: dev: the idle color runs a tag, not a digest: api:main, web:main; "
        "no canary (blueGreen) and no metric analysis" in look
    )
    sizes = next(line for line in look if line.startswith("look: sizes differ"))
    assert "database (allocatedStorageGb, instanceClass)" in sizes and "replicas" in sizes
    assert not [line for line in look if line.startswith(("look: staging", "look: production"))]


def test_resources_lists_every_resource_with_its_key_settings_after_the_verdict(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out = plan_output(capsys, "--all", "--resources")
    assert code == 0
    assert out.splitlines()[2].startswith("parity: OK")
    assert "instance size=db.r6g.large" in out and "differences between dev, staging, production" in out


# ------------------------------------------------------------------------------------------- the order


def test_every_stack_lists_its_resources_in_the_same_order_by_component_kind_and_name(
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, out = plan_output(capsys, "--all", "--json")
    stacks = json.loads(out)["stacks"]
    orders = {
        stack: [
            (r["componentKind"], r["component"], r["type"], r["name"]) for r in stacks[stack]["resources"]
        ]
        for stack in STACKS
    }
    assert orders["dev"] == orders["staging"] == orders["production"]
    components = list(dict.fromkeys((kind or "", name or "") for kind, name, _, _ in orders["dev"]))
    assert components[1:] == sorted(
        components[1:], key=lambda c: (c[0].lower(), c[1])
    )  # the stack's own first
    within = [
        [
            (kind_of(type_).lower(), name)
            for kind, component, type_, name in orders["dev"]
            if (kind, component) == c
        ]
        for c in {(kind, component) for kind, component, _, _ in orders["dev"]}
    ]
    assert all(group == sorted(group) for group in within)


def _outputs_of_a_fresh_process(hash_seed: str) -> str:
    script = (
        "import contextlib, io, sys\n"
        "from release.cli import main\n"
        "for extra in ([], ['--resources'], ['--json']):\n"
        "    with contextlib.redirect_stdout(io.StringIO()) as out:\n"
        f"        main(['plan', '--all', '--quiet', '--project-dir', {str(PROJECT)!r}, *extra])\n"
        "    sys.stdout.write(out.getvalue())\n"
    )
    return stdout_of_a_fresh_python(script, PYTHONHASHSEED=hash_seed)


def test_two_runs_print_the_same_bytes_summary_resources_and_json() -> None:
    first, second = _outputs_of_a_fresh_process("1"), _outputs_of_a_fresh_process("2")
    assert first == second
    assert "parity: OK" in first and '"violations": []' in first


# ------------------------------------------------------------------------------------------ violations


def test_a_violation_is_named_with_its_fix_at_the_top_and_the_plan_exits_1(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gateway_overridden_in_dev(project)
    code, out = plan_output(capsys, "--all", project=project)
    lines = out.splitlines()
    assert code == 1
    assert lines[1] == "parity: 1 VIOLATION(S), differences no declared per-stack knob explains (exit 1):"
    assert (
        lines[2]
        == "  1. platform:gateway.className: dev=other  staging=platform-gateway  production=platform-gateway"
    )
    verdict = "\n".join(lines[: lines.index(next(line for line in lines if line.startswith("policy:")))])
    assert "the program refuses dev: a project-level value is set in the stack" in verdict
    assert "fix: remove it from Pulumi.dev.yaml (`pulumi config rm gateway -s dev`)" in verdict


def test_a_resource_only_one_stack_registers_is_named_with_its_fix(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    program = project / "__main__.py"
    program.write_text(program.read_text() + ANOTHER_CODE_PATH)
    code, out = plan_output(capsys, "--all", project=project)
    assert code == 1
    assert "  1. kubernetes:core/v1:ConfigMap debug (registered): dev=-  staging=-  production=yes" in out
    assert "fix: register it in every stack or in none (only in production now)" in out


def test_json_lists_each_violation_as_an_object_with_its_name_values_reason_and_fix(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gateway_overridden_in_dev(project)
    code, out = plan_output(capsys, "--all", "--json", project=project)
    (violation,) = json.loads(out)["violations"]
    assert code == 1
    expected: dict[str, Any] = {
        "name": "platform:gateway.className",
        "layer": "config",
        "classification": "violation",
        "values": {"dev": "other", "staging": "platform-gateway", "production": "platform-gateway"},
    }
    assert {key: violation[key] for key in expected} == expected
    assert violation["fix"].startswith("remove it from Pulumi.dev.yaml")
    assert [refused["stack"] for refused in violation["refusedStacks"]] == ["dev"]
