"""Only images we built (issue 26): an image's signature, provenance, vulnerability verdict and SBOM,
read from a real OCI registry on 127.0.0.1 (Debian's docker-registry, tests/oci_registry.py) and
verified before any stage.

Every signature and attestation here is made in the test with generated keys and pushed as cosign
pushes it. Keyless: a real Sigstore bundle (sigstore-python's conformance asset, signed on Sigstore's
staging instance by a GitHub workflow identity) is verified offline against the staging trusted root
that ships with sigstore-python (tests/fixtures/sigstore/README.md says what that proves).
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from core.config.supply_chain import Enforcement, Severity, StackSupplyChain, SupplyChainPolicy
from release.supply.gate import RegistryImageVerifier, registry_host
from release.supply.keyless import keyless_check
from release.supply.registry import OCI_INDEX, OCI_MANIFEST, Limits
from release.supply.verdict import Verdict
from tests.conftest import ROOT
from tests.oci_registry import (
    BUILDER,
    COMMIT,
    COSIGN_VULN,
    KEY,
    NOW,
    SIGSTORE_BUNDLE_V03,
    SLSA,
    SOURCE,
    CosignKey,
    Registry,
    attest,
    built,
    provenance,
    running_registry,
    sign_image,
    spdx_sbom,
    statement,
)

OTHER_KEY = CosignKey("someone-else")
FIXTURES = ROOT / "tests" / "fixtures" / "sigstore"
CONFORMANCE_IDENTITY = (
    "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/"
    "extremely-dangerous-oidc-beacon.yml@refs/heads/main"
)
ISSUER = "https://token.actions.githubusercontent.com"
CONFORMANCE_SUBJECT = "sha256:a0cfc71271d6e278e57cd332ff957c3f7043fdda354c4cbb190a30d56efa01bf"


@pytest.fixture(scope="module")
def registry() -> Iterator[Registry]:
    with running_registry() as running:
        yield running


def policy(**changes: Any) -> SupplyChainPolicy:
    document: dict[str, Any] = {
        "signers": {"keys": [KEY.as_signer()]},
        "provenance": {"builderIds": [BUILDER], "sourceRepository": SOURCE},
        "vulnerabilities": {"maxAgeDays": 7, "exceptions": []},
    }
    document.update(changes)
    return SupplyChainPolicy.model_validate(document)


PRODUCTION = StackSupplyChain(
    mode=Enforcement.ENFORCE, refuse_severity=Severity.CRITICAL, refuse_fixable_severity=Severity.HIGH
)


def verify(
    image: str, the_policy: SupplyChainPolicy | None = None, limits: Limits | None = None, **options: Any
) -> Verdict:
    verifier = RegistryImageVerifier({}, ROOT, limits or Limits())
    return verifier.verify(image, the_policy or policy(), PRODUCTION, NOW, **options)


def unmet(verdict: Verdict) -> dict[str, str]:
    return {item.name: item.detail for item in verdict.unmet}


# -- accept ----------------------------------------------------------------------------------


def test_a_signed_attested_image_passes_with_its_claims(registry: Registry) -> None:
    image = built(
        registry, "good", findings=[("CVE-2026-0001", "HIGH", ""), ("CVE-2026-0002", "MEDIUM", "1.2")]
    )
    verdict = verify(image)
    assert verdict.passed, verdict.lines()
    claims = verdict.to_json()
    assert claims["verdict"] == "passed" and claims["mode"] == "enforce"
    assert claims["signer"] == "key ci-cosign"
    assert claims["provenance"] == {
        "builder": BUILDER,
        "source": SOURCE,
        "commit": COMMIT,
        "signer": "key ci-cosign",
    }
    assert claims["scan"]["counts"] == {"HIGH": 1, "MEDIUM": 1}
    assert claims["scan"]["scanner"] == "pkg:github/aquasecurity/trivy@v0.58.0"
    assert claims["sbom"]["format"] == "spdx" and claims["sbom"]["digest"].startswith("sha256:")


def test_an_image_with_nothing_names_every_unmet_requirement_at_once(registry: Registry) -> None:
    image = built(
        registry, "bare", sign=None, scanned=None, sbom=False, provenance_subject="sha256:" + "0" * 64
    )
    verdict = verify(image)
    assert set(unmet(verdict)) == {"signature", "provenance", "vulnerabilities", "sbom"}
    assert "unsigned" in unmet(verdict)["signature"]


# -- each refusal path -----------------------------------------------------------------------


def test_an_unsigned_image_is_refused(registry: Registry) -> None:
    verdict = verify(built(registry, "unsigned", sign=None))
    assert unmet(verdict) == {"signature": "unsigned: no signature found (referrers, tag .sig)"}


def test_an_image_signed_by_another_key_is_refused(registry: Registry) -> None:
    verdict = verify(built(registry, "other-signer", sign=OTHER_KEY))
    assert set(unmet(verdict)) == {"signature"}
    assert "a signature by no key the policy trusts" in unmet(verdict)["signature"]


def test_attestations_signed_by_another_key_prove_nothing(registry: Registry) -> None:
    verdict = verify(built(registry, "other-attester", attest_with=OTHER_KEY))
    assert set(unmet(verdict)) == {"provenance", "vulnerabilities", "sbom"}
    assert "an attestation signed by no key the policy trusts" in unmet(verdict)["provenance"]


def test_a_signature_over_another_digest_is_refused(registry: Registry) -> None:
    verdict = verify(built(registry, "moved-signature", signed_digest="sha256:" + "1" * 64))
    assert "signed sha256:" + "1" * 64 + ", another image" in unmet(verdict)["signature"]


def test_provenance_from_another_repository_is_refused(registry: Registry) -> None:
    verdict = verify(built(registry, "fork", source="https://github.com/mallory/platform"))
    assert unmet(verdict) == {"provenance": f"built from https://github.com/mallory/platform, not {SOURCE}"}


def test_provenance_from_another_builder_is_refused(registry: Registry) -> None:
    laptop = "https://github.com/acme/platform/.github/workflows/adhoc.yml@refs/heads/feature"
    verdict = verify(built(registry, "laptop", builder=laptop))
    assert unmet(verdict) == {"provenance": f"built by {laptop}, not an allowed builder {[BUILDER]}"}


def test_provenance_about_another_image_is_refused(registry: Registry) -> None:
    other = registry.push_image("the image that was really built")
    verdict = verify(built(registry, "borrowed-provenance", provenance_subject=other))
    assert set(unmet(verdict)) == {"provenance"}
    assert f"is about {other}, another image" in unmet(verdict)["provenance"]


def test_a_scan_older_than_the_policy_allows_is_refused(registry: Registry) -> None:
    verdict = verify(built(registry, "old-scan", scanned=NOW - timedelta(days=9)))
    assert set(unmet(verdict)) == {"vulnerabilities"}
    assert "finished 9 days ago" in unmet(verdict)["vulnerabilities"]
    assert "within 7 days" in unmet(verdict)["vulnerabilities"]


def test_a_critical_finding_and_a_fixable_high_are_refused_in_production(registry: Registry) -> None:
    findings = [
        ("CVE-2026-1111", "CRITICAL", ""),
        ("CVE-2026-2222", "HIGH", "2.0.1"),
        ("CVE-2026-3333", "HIGH", ""),
    ]
    verdict = verify(built(registry, "vulnerable", findings=findings))
    detail = unmet(verdict)["vulnerabilities"]
    assert "CVE-2026-1111 (CRITICAL)" in detail and "CVE-2026-2222 (HIGH, fix available)" in detail
    assert "CVE-2026-3333" not in detail  # HIGH without a fix is not over production's threshold


def test_an_exception_accepts_a_finding_until_it_expires(registry: Registry) -> None:
    image = built(registry, "excepted", findings=[("CVE-2026-1111", "CRITICAL", "")])

    def with_exception(expires: date) -> SupplyChainPolicy:
        exception = {
            "id": "CVE-2026-1111",
            "reason": "not reachable: parser never sees user input",
            "expires": expires,
        }
        return policy(vulnerabilities={"maxAgeDays": 7, "exceptions": [exception]})

    accepted = verify(image, with_exception(NOW.date()))
    assert accepted.passed and accepted.claims["scan"]["exceptionsUsed"] == ["CVE-2026-1111"]
    expired = verify(image, with_exception(NOW.date() - timedelta(days=1)))
    assert (
        "CVE-2026-1111 (CRITICAL): its exception expired on 2026-11-22" in unmet(expired)["vulnerabilities"]
    )


def test_an_image_without_an_sbom_is_refused(registry: Registry) -> None:
    verdict = verify(built(registry, "no-sbom", sbom=False))
    assert set(unmet(verdict)) == {"sbom"}


def test_break_glass_skips_the_vulnerability_verdict_only(registry: Registry) -> None:
    vulnerable = built(registry, "glass", findings=[("CVE-2026-1111", "CRITICAL", "")])
    verdict = verify(vulnerable, skip_vulnerabilities=True)
    assert verdict.passed and verdict.to_json()["skipped"] == ["vulnerabilities"]
    unsigned = verify(built(registry, "glass-unsigned", sign=None), skip_vulnerabilities=True)
    assert set(unmet(unsigned)) == {"signature"}


# -- hostile registry answers ------------------------------------------------------------------


def test_a_manifest_larger_than_the_bound_is_refused(registry: Registry) -> None:
    digest = registry.push_manifest(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **registry.push_blob(b"{}")},
            "layers": [],
            "annotations": {"padding": "x" * 200_000},
        }
    )
    verdict = verify(registry.image(digest), limits=Limits(max_manifest_bytes=64 * 1024))
    assert set(unmet(verdict)) == {"signature", "provenance", "vulnerabilities", "sbom"}
    assert "at most 65536 are read" in unmet(verdict)["signature"]


def test_a_referrer_loop_is_refused(registry: Registry) -> None:
    digest = registry.push_image("loop")
    first = registry.push_referrer(digest, "application/example", "application/example", b"a")
    second = registry.push_referrer(first, "application/example", "application/example", b"b")
    registry.list_referrer(second, first, "application/example")  # first names second, second names first
    verdict = verify(registry.image(digest), limits=Limits(max_depth=5))
    assert f"referrer loop: {digest} -> {first} -> {second} -> {first}" in unmet(verdict)["signature"]


def test_a_manifest_of_the_wrong_media_type_is_refused(registry: Registry) -> None:
    digest = built(registry, "wrong-type").split("@")[1]
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
    registry.push_manifest(index, f"{digest.replace(':', '-')}.sig")  # an index where a signature belongs
    verdict = verify(registry.image(digest))
    assert "has media type 'application/vnd.oci.image.index.v1+json'" in unmet(verdict)["signature"]


def test_a_blob_whose_bytes_do_not_match_its_digest_is_refused(registry: Registry) -> None:
    image = built(registry, "tampered")
    att = registry.client.get(
        f"{registry.url}/v2/platform/api/manifests/{image.split('@')[1].replace(':', '-')}.att",
        headers={"Accept": OCI_MANIFEST},
    ).json()
    stored = registry.blob_file(att["layers"][0]["digest"])
    tampered = bytearray(stored.read_bytes())
    tampered[-2] ^= 1  # one bit: the registry now serves other bytes under the same digest
    stored.write_bytes(bytes(tampered))
    verdict = verify(image)
    assert "answered with other bytes" in unmet(verdict)["provenance"]


@contextmanager
def trickling_proxy(registry: Registry, every_seconds: float) -> Iterator[str]:
    """A registry front that passes requests on but trickles every answer, one byte at a time."""
    import httpx

    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            with connection:
                request = connection.recv(65536).decode(errors="replace")
                path = request.split(" ")[1] if " " in request else "/"
                answer = httpx.get(registry.url + path, headers={"Accept": f"{OCI_MANIFEST}, {OCI_INDEX}"})
                kind = answer.headers.get("content-type", "")
                head = f"HTTP/1.1 {answer.status_code} X\r\nContent-Type: {kind}\r\n"
                connection.sendall((head + f"Content-Length: {len(answer.content)}\r\n\r\n").encode())
                for byte in answer.content:
                    if stop.wait(every_seconds):
                        break
                    try:
                        connection.sendall(bytes([byte]))
                    except OSError:
                        break

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()


def test_a_trickled_answer_is_refused_at_the_deadline(registry: Registry) -> None:
    import time

    image = built(registry, "trickled")
    with trickling_proxy(registry, every_seconds=0.05) as front:
        started = time.monotonic()
        verdict = verify(
            image.replace(registry.host, front), limits=Limits(deadline_seconds=1.0, request_seconds=0.5)
        )
        took = time.monotonic() - started
    assert "no complete answer within 1 s" in unmet(verdict)["signature"]
    assert took < 3


# -- keyless: a real Sigstore bundle -----------------------------------------------------------


def conformance_bundle() -> bytes:
    return (FIXTURES / "a.dsse.staging-rekor-v2.txt.sigstore.json").read_bytes()


def keyless_policy(identity: str = CONFORMANCE_IDENTITY) -> SupplyChainPolicy:
    return policy(
        signers={"keyless": [{"issuer": "https://token.actions.githubusercontent.com", "subject": identity}]},
        trustedRoot="tests/fixtures/sigstore/staging-trusted-root.json",
    )


def test_a_real_sigstore_bundle_verifies_offline_against_its_trusted_root() -> None:
    """The bundle's certificate chain to Sigstore staging's Fulcio, its SCT, its Rekor v2 entry and its
    RFC 3161 timestamp verify offline, and its identity matches; its in-toto statement is returned."""
    the_policy = keyless_policy()
    check = keyless_check(the_policy.signers.keyless, ROOT / str(the_policy.trusted_root))
    assert check is not None
    signer, payload = check(conformance_bundle(), CONFORMANCE_SUBJECT)
    assert signer == f"keyless {CONFORMANCE_IDENTITY} (https://token.actions.githubusercontent.com)"
    assert payload is not None
    document = json.loads(payload)
    assert document["predicateType"] == SLSA
    assert document["subject"][0]["digest"]["sha256"] == CONFORMANCE_SUBJECT.removeprefix("sha256:")


def test_a_real_bundle_signed_by_another_identity_is_refused(registry: Registry) -> None:
    digest = registry.push_image("keyless-other-identity")
    registry.push_referrer(digest, SIGSTORE_BUNDLE_V03, SIGSTORE_BUNDLE_V03, conformance_bundle())
    the_policy = keyless_policy(
        "https://github.com/acme/platform/.github/workflows/release.yml@refs/heads/main"
    )
    verdict = verify(registry.image(digest), the_policy)
    assert (
        f"a bundle of {CONFORMANCE_IDENTITY} ({ISSUER}) that does not verify" in unmet(verdict)["signature"]
    )


def test_a_real_bundle_read_as_a_referrer_about_another_image_is_refused(registry: Registry) -> None:
    """Read through the referrers fallback index, verified by sigstore, then refused by its subject."""
    digest = registry.push_image("keyless-subject")
    registry.push_referrer(digest, SIGSTORE_BUNDLE_V03, SIGSTORE_BUNDLE_V03, conformance_bundle())
    the_policy = keyless_policy()
    the_policy = the_policy.model_copy(
        update={
            "provenance": the_policy.provenance.model_copy(
                update={
                    "builder_ids": ["https://github.com/sigstore-conformance/rekor2-dsse-hashedrekord-regen"]
                }
            )
        }
    )
    verdict = verify(registry.image(digest), the_policy)
    assert f"is about {CONFORMANCE_SUBJECT}, another image" in unmet(verdict)["provenance"]


# -- the gate ----------------------------------------------------------------------------------


def test_registry_host_needs_a_host() -> None:
    assert registry_host("127.0.0.1:5000/platform/api") == ("127.0.0.1:5000", "platform/api")
    assert registry_host("platform/api") is None


# -- the policy as config ----------------------------------------------------------------------


def test_the_committed_policy_reports_in_dev_and_enforces_in_staging_and_production() -> None:
    from core.config.sources import ProjectFile

    project = ProjectFile.read(ROOT).settings
    assert project.supply_chain is not None
    assert project.supply_chain.signers.keyless[0].identity == BUILDER
    modes = {
        stack: policy.supply_chain.mode
        for stack, policy in project.stack_policies.items()
        if policy.supply_chain
    }
    assert modes == {
        "dev": Enforcement.REPORT,
        "staging": Enforcement.ENFORCE,
        "production": Enforcement.ENFORCE,
    }
    production = project.stack_policies["production"].supply_chain
    assert production is not None
    assert (production.refuse_severity, production.refuse_fixable_severity) == (
        Severity.CRITICAL,
        Severity.HIGH,
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"signers": {}}, "name at least one keyless identity or public key"),
        ({"signers": {"keys": [{"name": "k", "publicKey": "not a key"}]}}, "must be a PEM public key"),
        (
            {
                "signers": {
                    "keyless": [
                        {
                            "subject": "a@example.test",
                            "workflow": "acme/p/.github/workflows/b.yml@refs/heads/main",
                        }
                    ]
                }
            },
            "give exactly one of subject",
        ),
        (
            {
                "vulnerabilities": {
                    "maxAgeDays": 7,
                    "exceptions": [{"id": "CVE-1", "reason": "because it is fine", "expires": "2027-01-01"}],
                }
            },
            "must be a vulnerability id",
        ),
        ({"provenance": {"builderIds": [], "sourceRepository": SOURCE}}, "at least 1 item"),
    ],
)
def test_a_bad_policy_is_refused_naming_the_field(change: dict[str, Any], message: str) -> None:
    from pydantic import ValidationError

    document: dict[str, Any] = {
        "signers": {"keys": [KEY.as_signer()]},
        "provenance": {"builderIds": [BUILDER], "sourceRepository": SOURCE},
        "vulnerabilities": {"maxAgeDays": 7},
        **change,
    }
    with pytest.raises(ValidationError, match=message):
        SupplyChainPolicy.model_validate(document)


def test_the_build_workflows_grype_predicate_is_read_back_by_the_gate(
    registry: Registry, tmp_path: Path
) -> None:
    """.github/scripts/vuln-predicate.py wraps a Grype report as the build job attests it; the gate
    reads its findings, fixes and finish time."""
    import subprocess
    import sys

    report = {
        "matches": [
            {
                "vulnerability": {
                    "id": "CVE-2026-4242",
                    "severity": "High",
                    "fix": {"state": "fixed", "versions": ["2.1"]},
                }
            },
            {"vulnerability": {"id": "CVE-2026-4343", "severity": "Low", "fix": {"state": "not-fixed"}}},
        ],
        "descriptor": {
            "name": "grype",
            "version": "0.87.0",
            "timestamp": (NOW - timedelta(hours=2)).isoformat(),
        },
    }
    (tmp_path / "grype.json").write_text(json.dumps(report))
    wrapped = subprocess.run(
        [
            sys.executable,
            str(ROOT / ".github" / "scripts" / "vuln-predicate.py"),
            str(tmp_path / "grype.json"),
        ],
        capture_output=True,
        check=True,
        timeout=30,
    ).stdout
    digest = registry.push_image("grype-scanned")
    sign_image(registry, digest, KEY)
    attest(
        registry,
        digest,
        [
            (statement(digest, SLSA, provenance()), KEY),
            (statement(digest, COSIGN_VULN, json.loads(wrapped)), KEY),
            (statement(digest, "https://spdx.dev/Document", spdx_sbom()), KEY),
        ],
    )
    verdict = verify(registry.image(digest))
    assert unmet(verdict) == {"vulnerabilities": unmet(verdict)["vulnerabilities"]}
    assert "CVE-2026-4242 (HIGH, fix available)" in unmet(verdict)["vulnerabilities"]
    assert verdict.claims["scan"]["scanner"] == "pkg:github/anchore/grype@v0.87.0"
    assert verdict.claims["scan"]["counts"] == {"HIGH": 1, "LOW": 1}
