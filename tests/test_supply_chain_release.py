"""Verification before the first `up` (issue 26 item 2): one signed, attested digest goes dev ->
staging -> production on the engine double, read each time from a real registry on 127.0.0.1
(tests/oci_registry.py), its claims in every stage record and in `release audit`; an image that
fails the policy is refused where the stack enforces it, with nothing changed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.config.sources import project_settings
from core.errors import ExitCode, SupplyChainRefusedError
from release.cli import main
from release.context import ReleaseContext
from release.flows.deploy import deploy
from release.flows.promote import PromoteRequest, promote
from release.history.records import Event
from release.report.audit import read_audit
from release.testing.fake_engine import FakeEngine
from tests.conftest import PROJECT, ROOT, edit_yaml
from tests.oci_registry import BUILDER, COMMIT, KEY, NOW, SOURCE, Registry, built, running_registry
from tests.release_doubles import (
    FAST_BLUE_GREEN,
    TEST_SIGNER,
    Cluster,
    cluster,
    history_of,
    record_drill,
    signed_project_copy,
)
from tests.test_promote import IN_GITHUB_ACTIONS, _with_registry, approved_by


@pytest.fixture(scope="module")
def registry() -> Iterator[Registry]:
    with running_registry() as running:
        yield running


def supply_project(destination: Path) -> Path:
    """The signed project copy, verifying images as Pulumi.yaml declares per stack, its signer the
    test's cosign key (the committed policy names the build workflow's keyless identity)."""
    signed_project_copy(destination)
    committed = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["config"]

    def declare(document: dict[str, Any]) -> None:
        policies = document["config"]["stackPolicies"]["value"]
        for stack, policy in committed["stackPolicies"]["value"].items():
            policies[stack]["supplyChain"] = policy["supplyChain"]
        document["config"]["supplyChain"] = {
            "value": {
                "signers": {"keys": [KEY.as_signer()]},
                "provenance": {"builderIds": [BUILDER], "sourceRepository": SOURCE},
                "vulnerabilities": {"maxAgeDays": 7},
            }
        }

    edit_yaml(destination / "Pulumi.yaml", declare)
    return destination


@contextmanager
def three_stacks(registry: Registry, project: Path) -> Iterator[tuple[FakeEngine, dict[str, Cluster]]]:
    engine = FakeEngine(project_dir=project)
    for stack in ("dev", "staging", "production"):
        edit: dict[str, Any] = dict(FAST_BLUE_GREEN)
        edit["platform:releases"] = _with_registry(stack, registry.host, engine)
        engine.add_stack(stack, edit=edit)
    record_drill(engine, "production")
    with ExitStack() as servers:
        clusters = {
            stack: servers.enter_context(cluster(engine, stack)) for stack in ("dev", "staging", "production")
        }
        yield engine, clusters


def promotion(source: str, target: str, to: Cluster, **options: Any) -> PromoteRequest:
    return PromoteRequest(
        source,
        target,
        "api",
        "alice",
        preview_urls=[to.preview_url],
        stable_urls=[to.stable_url],
        signer=TEST_SIGNER,
        **options,
    )


def context(engine: FakeEngine, env: dict[str, str] | None = None) -> ReleaseContext:
    """One command's context: its own verifier, so every command reads the registry afresh."""
    return ReleaseContext.for_tests(engine, engine.project_dir, env=env)


def stage_claims(engine: FakeEngine, stack: str) -> dict[str, Any]:
    stages = [
        entry.record
        for entry in history_of(engine, stack)
        if entry.record and entry.record.event == Event.STAGE
    ]
    assert stages and stages[0] is not None
    return stages[0].supply_chain


def ups(engine: FakeEngine, stack: str) -> list[Any]:
    return [call for call in engine.calls if call[0] == "up" and call[1] == stack]


def test_a_signed_attested_digest_goes_dev_staging_production_with_its_claims_in_the_audit(
    registry: Registry, tmp_path: Path
) -> None:
    image = built(registry, "release-1", findings=[("CVE-2026-0101", "MEDIUM", "1.0.1")])
    with three_stacks(registry, supply_project(tmp_path)) as (engine, clusters):
        assert deploy(context(engine), clusters["dev"].request(image)).phase == "Healthy"
        dev = stage_claims(engine, "dev")
        assert dev["verdict"] == "passed" and dev["mode"] == "report"

        report = promote(context(engine), promotion("dev", "staging", clusters["staging"]))
        assert report.phase == "Healthy", report.render()
        staging = stage_claims(engine, "staging")
        assert staging["verdict"] == "passed" and staging["mode"] == "enforce"  # verified again, not copied

        engine.clock.set(engine.clock() + timedelta(minutes=31))
        report = promote(
            context(engine, IN_GITHUB_ACTIONS),
            promotion("staging", "production", clusters["production"]),
            approval_reader=approved_by("bob"),
        )
        assert report.phase == "Healthy", report.render()
        assert engine.serving("production", "api") == image

    claims = stage_claims(engine, "production")
    assert claims["signer"] == "key ci-cosign"
    assert claims["provenance"]["source"] == SOURCE and claims["provenance"]["commit"] == COMMIT
    assert claims["provenance"]["builder"] == BUILDER
    assert claims["scan"]["counts"] == {"MEDIUM": 1} and claims["scan"]["exceptionsUsed"] == []
    assert claims["sbom"]["format"] == "spdx"
    audit = read_audit(engine, project_settings(engine.project_dir), ["production"], None, engine.clock())
    staged = [row for row in audit.rows if row.event == "promotion from staging"]
    assert staged and staged[0].supply_chain == claims
    assert "supply chain passed (enforce), signed by key ci-cosign" in staged[0].approval_or_reason
    assert f"built by {BUILDER} from {SOURCE}@{COMMIT[:12]}" in staged[0].approval_or_reason


def test_an_unsigned_image_is_reported_in_dev_and_refused_into_staging_with_nothing_changed(
    registry: Registry, tmp_path: Path
) -> None:
    image = built(registry, "unsigned-release", sign=None)
    with three_stacks(registry, supply_project(tmp_path)) as (engine, clusters):
        assert deploy(context(engine), clusters["dev"].request(image)).phase == "Healthy"
        dev = stage_claims(engine, "dev")
        assert dev["verdict"] == "reported" and dev["unmet"] == [
            "signature: unsigned: no signature found (referrers, tag .sig)"
        ]
        engine.calls.clear()
        with pytest.raises(SupplyChainRefusedError) as refused:
            promote(context(engine), promotion("dev", "staging", clusters["staging"]))
        assert refused.value.exit_code == ExitCode.BAD_INPUT
        assert "into 'staging' refused by its supplyChain policy (enforce); nothing was changed" in str(
            refused.value
        )
        assert "[signature] unsigned" in str(refused.value)
        assert ups(engine, "staging") == []
        assert engine.serving("staging", "api") != image


def test_a_deploy_into_an_enforcing_stack_names_every_unmet_requirement(
    registry: Registry, tmp_path: Path
) -> None:
    image = built(registry, "bare-release", sign=None, scanned=None, sbom=False)
    project = supply_project(tmp_path)

    def dev_enforces(document: dict[str, Any]) -> None:
        document["config"]["stackPolicies"]["value"]["dev"]["supplyChain"]["mode"] = "enforce"

    edit_yaml(project / "Pulumi.yaml", dev_enforces)
    with three_stacks(registry, project) as (engine, clusters):
        engine.calls.clear()
        with pytest.raises(SupplyChainRefusedError) as refused:
            deploy(context(engine), clusters["dev"].request(image))
        assert ups(engine, "dev") == []
    message = str(refused.value)
    assert "3 requirements unmet" in message
    for name in ("[signature]", "[vulnerabilities]", "[sbom]"):
        assert name in message
    assert "fix:" in message


def test_break_glass_skips_the_scan_into_staging_and_says_so_but_never_the_signature(
    registry: Registry, tmp_path: Path
) -> None:
    vulnerable = built(registry, "hotfix", findings=[("CVE-2026-0666", "CRITICAL", "")])
    unsigned = built(registry, "unsigned-hotfix", sign=None)
    with three_stacks(registry, supply_project(tmp_path)) as (engine, clusters):
        for image in (vulnerable, unsigned):
            assert deploy(context(engine), clusters["dev"].request(image)).phase == "Healthy"
            glass = {"break_glass_reason": "checkout is down since 11:40, hotfix for INC-77"}
            if image == unsigned:
                with pytest.raises(SupplyChainRefusedError, match=r"\[signature\] unsigned"):
                    promote(context(engine), promotion("dev", "staging", clusters["staging"], **glass))
                continue
            report = promote(context(engine), promotion("dev", "staging", clusters["staging"], **glass))
            assert report.phase == "Healthy", report.render()
    stage = next(
        entry.record
        for entry in history_of(engine, "staging")
        if entry.record and entry.record.event == Event.STAGE
    )
    assert stage is not None
    assert "supply-chain vulnerabilities" in stage.break_glass["skipped"]
    assert stage.supply_chain["skipped"] == ["vulnerabilities"]
    audit = read_audit(engine, project_settings(engine.project_dir), ["staging"], None, engine.clock())
    assert audit.unreviewed and "supply-chain vulnerabilities" in audit.unreviewed[0].approval_or_reason


def test_release_verify_image_prints_the_verdict_without_releasing(
    registry: Registry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = supply_project(tmp_path)
    good = built(registry, "verify-only")
    bad = built(registry, "verify-only-old-scan", scanned=NOW - timedelta(days=30))
    clock = FakeEngine(project_dir=project).clock
    run = ["verify-image", "production", "--project-dir", str(project), "--json", "--image"]
    assert (
        main([*run, good], engine_factory=lambda _: pytest.fail("verify-image needs no engine"), clock=clock)
        == 0
    )
    passed = json.loads(capsys.readouterr().out)
    assert passed["verdict"] == "passed" and passed["signer"] == "key ci-cosign"
    assert main([*run, bad], clock=clock) == ExitCode.FINDING
    failed = json.loads(capsys.readouterr().out)
    assert failed["verdict"] == "refused" and failed["unmet"][0].startswith(
        "vulnerabilities: the newest scan"
    )
    assert (
        main(["verify-image", "production", "--project-dir", str(PROJECT), "--image", good], clock=clock) == 2
    )
