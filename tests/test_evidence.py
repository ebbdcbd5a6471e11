"""Evidence is what the tool can prove: signed records, exact digests, approvals GitHub recorded.

History shaped exactly like the CLI's (tests/history_data.py); promotions against the engine double;
approvals against a real server on 127.0.0.1 that answers like GitHub's API (tests/github_api.py).
"""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from core.config.signing import TrustedKey
from core.config.sources import ConfigEntry
from core.errors import ConfigError, PromotionRefusedError, UsageError
from release.cli import main
from release.context import ReleaseContext
from release.flows.deploy import deploy
from release.flows.deploy_request import DeployRequest
from release.flows.promote import PromoteRequest, promote, reject
from release.gates import evidence_for
from release.history.records import MARK, record_time
from release.history.signing import Signer, Trust, TrustedKeys, generate_key_pair
from release.report.audit import audit_rows
from tests.github_api import approvals, review, serve_api
from tests.history_data import GOOD, history, record, update
from tests.release_doubles import NEW_API, TEST_SIGNER, cluster, fake_engine

UNTRUSTED = Signer.from_text(generate_key_pair().private_key)
REVOKED_AT_10 = update("2026-11-24T10:00", record("rollback", image="", revokes=(GOOD,)))


def verified(*entries: dict[str, object]) -> bool:
    evidence = evidence_for("staging", history(*entries), "api", GOOD, live=True, signed_only=True)
    return evidence.verified is not None and evidence.revoked is None


def test_a_signed_verify_record_is_evidence() -> None:
    assert verified(update("2026-11-24T09:00", record("verify")))


def test_a_record_signed_by_an_untrusted_key_is_not_evidence_and_the_audit_says_so() -> None:
    entries = history(update("2026-11-24T09:00", record("verify"), signer=UNTRUSTED))
    assert not verified(update("2026-11-24T09:00", record("verify"), signer=UNTRUSTED))
    assert audit_rows("staging", entries)[0].event == "verification (untrusted key, not counted)"


def test_an_unsigned_record_is_not_evidence_and_the_audit_marks_it_unsigned() -> None:
    entries = history(update("2026-11-24T09:00", record("verify"), signer=None))
    assert not verified(update("2026-11-24T09:00", record("verify"), signer=None))
    row = audit_rows("staging", entries)[0]
    assert row.record == "unsigned" and not row.counted and row.actor == "alice (unverified)"


def describe(*entries: dict[str, object]) -> str:
    return evidence_for("staging", history(*entries), "api", GOOD, live=True, signed_only=True).describe()


def test_the_gate_says_an_unsigned_verify_record_is_unsigned_and_how_to_sign_it() -> None:
    reason = describe(update("2026-11-24T09:00", record("verify"), signer=None))
    assert "is unsigned" in reason and "RELEASE_SIGNING_KEY" in reason
    assert "no verify record" not in reason


def test_the_gate_says_a_verify_record_signed_by_an_untrusted_key_needs_a_trusted_one() -> None:
    reason = describe(update("2026-11-24T09:00", record("verify"), signer=UNTRUSTED))
    assert "a key Pulumi.yaml did not trust when the record was signed" in reason
    assert "releaseSigning.trustedKeys" in reason


def test_a_record_with_one_tampered_byte_has_an_invalid_signature() -> None:
    entry = update("2026-11-24T09:00", record("verify", actor="alice"))
    entry["message"] = str(entry["message"]).replace('"actor":"alice"', '"actor":"alicf"')
    (parsed,) = history(entry)
    assert parsed.trust is Trust.INVALID_SIGNATURE and parsed.record is None
    assert not verified(entry)


def test_a_record_copied_from_another_stack_never_counts() -> None:
    copied = update("2026-11-24T09:00", replace(record("verify"), stack="dev"))
    (parsed,) = history(copied)
    assert parsed.trust is Trust.WRONG_STACK and not verified(copied)


def test_a_verify_record_of_another_service_is_no_evidence_for_this_one() -> None:
    assert not verified(update("2026-11-24T09:00", replace(record("verify"), service="web")))


def test_a_record_with_a_duplicated_key_never_counts() -> None:
    entry = update("2026-11-24T09:00", record("verify"))
    entry["message"] = str(entry["message"]).replace('{"actor":"alice"', '{"actor":"alice","actor":"bob"')
    (parsed,) = history(entry)
    assert parsed.trust is Trust.MALFORMED and not verified(entry)


def test_an_older_verify_record_replayed_after_a_revocation_stays_revoked() -> None:
    original = record("verify", time=record_time(history(update("2026-11-24T09:00"))[0].finished_at))
    replayed = update("2026-11-24T11:00", original)  # the same signed record, written again later
    assert verified(update("2026-11-24T09:00", original))
    assert not verified(update("2026-11-24T09:00", original), REVOKED_AT_10, replayed)


def test_a_plain_pulumi_up_with_a_forged_verify_record_cannot_pass_promotion() -> None:
    engine = fake_engine("dev")
    engine.add_stack("staging")
    releases = engine.get_config("dev")["platform:releases"].value
    releases["api"]["images"][releases["api"]["activeColor"]] = NEW_API
    forged = {"event": "verify", "stack": "dev", "service": "api", "image": NEW_API, "actor": "mallory"}
    engine.up("dev", {"platform:releases": ConfigEntry(releases)}, f"hotfix {MARK} {json.dumps(forged)}")
    request = PromoteRequest("dev", "staging", "api", "mallory", signer=TEST_SIGNER)
    with pytest.raises(PromotionRefusedError, match=r"\[verified\]"):
        promote(ReleaseContext.for_tests(engine, engine.project_dir, env={}), request)


@pytest.mark.parametrize(
    "digest",
    [
        "sha256:" + "a" * 63,
        "sha256:" + "AB" * 32,
        "sha256:zz",
        "sha256:" + "ab" * 32 + " ",
        "sha256:" + "ab" * 32 + "\n",
    ],
)
def test_reject_refuses_anything_but_an_exact_digest_and_writes_nothing(digest: str) -> None:
    engine = fake_engine()
    with pytest.raises(ConfigError, match="not a digest"):
        reject(
            ReleaseContext.for_tests(engine, engine.project_dir, env={}),
            "staging",
            "api",
            digest,
            "corrupts carts on retry",
            "carol",
            signer=TEST_SIGNER,
        )
    assert engine.ups == []


def test_reject_of_an_unknown_service_is_a_config_error_naming_the_services() -> None:
    engine = fake_engine()
    with pytest.raises(ConfigError, match="unknown service"):
        reject(
            ReleaseContext.for_tests(engine, engine.project_dir, env={}),
            "staging",
            "search",
            "sha256:" + "ab" * 32,
            "bad build of it",
            "carol",
            signer=TEST_SIGNER,
        )


def test_reject_of_a_digest_never_deployed_there_needs_force() -> None:
    engine = fake_engine()
    never = "sha256:" + "ab" * 32
    with pytest.raises(UsageError, match="never deployed"):
        reject(
            ReleaseContext.for_tests(engine, engine.project_dir, env={}),
            "staging",
            "api",
            never,
            "bad build of it",
            "carol",
            signer=TEST_SIGNER,
        )
    written = reject(
        ReleaseContext.for_tests(engine, engine.project_dir, env={}),
        "staging",
        "api",
        never,
        "bad build of it",
        "carol",
        signer=TEST_SIGNER,
        force=True,
    )
    assert written.revokes == ("registry.example.test/platform/api@" + never,)


def test_a_deploy_image_with_a_trailing_newline_is_refused_before_any_change() -> None:
    engine = fake_engine()
    request = DeployRequest("staging", "api", NEW_API + "\n", "alice", signer=TEST_SIGNER)
    with pytest.raises(ConfigError, match="pinned by digest"):
        deploy(ReleaseContext.for_tests(engine, engine.project_dir), request)
    assert engine.ups == []


def test_a_promotion_in_github_actions_takes_its_approval_from_githubs_api() -> None:
    engine = fake_engine()
    engine.add_stack(
        "production",
        edit={
            "platform:healthCheck": {
                "versionField": "image",
                "intervalSeconds": 0.05,
                "timeoutSeconds": 0.5,
                "windowSeconds": 2,
                "successes": 2,
                "failures": 2,
            }
        },
    )
    with serve_api(approvals(review("rejected", "bob", comment="not during the incident"))) as api_url:
        env = {
            "GITHUB_ACTIONS": "true",
            "GITHUB_API_URL": api_url,
            "GITHUB_REPOSITORY": "team/platform",
            "GITHUB_RUN_ID": "77",
            "GITHUB_ACTOR": "alice",
            "GITHUB_SHA": "3f786850e387550fdab836ed7e6dc881de23001b",
            "GITHUB_TOKEN": "test-only-token-value",
        }
        with cluster(engine, "production") as production:
            request = PromoteRequest(
                "staging",
                "production",
                "api",
                "alice",
                signer=TEST_SIGNER,
                preview_urls=[production.preview_url],
                stable_urls=[production.stable_url],
            )
            with pytest.raises(PromotionRefusedError) as refused:
                promote(ReleaseContext.for_tests(engine, engine.project_dir, env=env), request)
    assert "[approval]" in str(refused.value) and "bob" in str(refused.value)
    assert "not during the incident" in str(refused.value) and "test-only-token-value" not in str(
        refused.value
    )
    assert not [call for call in engine.calls if call[0] == "up"]


def test_keygen_prints_a_key_pair_whose_signatures_the_printed_public_key_verifies(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["keygen", "--name", "ci-2026-11", "--json"]) == 0
    pair = json.loads(capsys.readouterr().out)
    trusted = TrustedKeys([TrustedKey(name="ci-2026-11", public_key=pair["publicKey"])])
    signer = Signer.from_text(pair["privateKey"])
    assert signer.key_id == pair["keyId"]
    assert trusted.verify(signer.key_id, b"payload", signer.sign(b"payload"), None) is Trust.SIGNED
    assert trusted.verify(signer.key_id, b"payloaD", signer.sign(b"payload"), None) is Trust.INVALID_SIGNATURE


def test_keygen_refuses_a_key_name_pulumi_yaml_would_refuse(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["keygen", "--name", "../CI key"])
    assert exited.value.code == 2 and "not a key name" in capsys.readouterr().err
