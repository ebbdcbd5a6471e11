"""What the registry holds about one image digest, each piece checked cryptographically before it
counts: signatures and in-toto statements, each with the signer that proved it.

Two ways of storing them are read, as cosign writes them:

- **Referrers** (OCI 1.1 referrers API, or its tag-schema fallback index `sha256-<hex>`): cosign v3
  stores each signature and attestation as a Sigstore bundle (v0.3) in a manifest whose subject is
  the image; `actions/attest-build-provenance` pushes the same. A bundle is verified by
  sigstore-python against the trusted root and the policy's keyless identities: a DSSE bundle yields
  its in-toto statement, a message-signature bundle signs the image digest itself.
- **The tag schema** of older cosign: `sha256-<hex>.sig` holds simple-signing payloads with their
  signature in the `dev.cosignproject.cosign/signature` annotation; `sha256-<hex>.att` holds DSSE
  envelopes. Both are verified with the policy's public keys (`cryptography`).

Referrers of referrers are read too, up to `Limits.max_depth`; a digest met twice on one path is a
loop and refuses the image. A statement counts for the image only if its subject names the image's
digest; one about another digest is kept, so the verdict can say so.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from core.config.supply_chain import KeySigner, SupplyChainPolicy
from release.supply.registry import (
    DOCKER_MANIFEST,
    OCI_MANIFEST,
    Manifest,
    RefusedAnswerError,
    RegistryClient,
    decode_base64,
    descriptor_digest,
    fallback_tag,
)

SIGSTORE_BUNDLE = "application/vnd.dev.sigstore.bundle"
"""The prefix of a Sigstore bundle's media type (v0.3: application/vnd.dev.sigstore.bundle.v0.3+json)."""
DSSE_ENVELOPE = "application/vnd.dsse.envelope.v1+json"
SIMPLE_SIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
COSIGN_SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
IN_TOTO = "application/vnd.in-toto+json"
STATEMENT_TYPES = ("https://in-toto.io/Statement/v1", "https://in-toto.io/Statement/v0.1")
COSIGN_SIGN_PREDICATE = "https://sigstore.dev/cosign/sign/v1"
"""cosign v3's statement for a plain image signature, in a DSSE bundle."""


@dataclass(frozen=True)
class Signature:
    """A signature over an image digest, proved by `signer`."""

    signer: str
    digest: str
    where: str


@dataclass(frozen=True)
class Statement:
    """An in-toto statement whose envelope `signer` signed."""

    signer: str
    predicate_type: str
    predicate: dict[str, Any]
    subjects: tuple[str, ...]
    """The sha256 digests it is about (`sha256:<hex>`)."""
    where: str
    digest: str
    """The digest of what carried it (the bundle's or envelope's blob)."""


@dataclass
class Evidence:
    """Everything found for one image, verified or not."""

    image_digest: str
    signatures: list[Signature] = field(default_factory=list)
    statements: list[Statement] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    """What was found but proved nothing, each with the reason (another signer, a bad signature)."""


KeylessCheck = Callable[[bytes, str], tuple[str, bytes | None]]
"""(bundle JSON, image digest) -> (signer, in-toto payload or None for a signature over the digest);
raises ValueError naming why the bundle does not verify."""


def collect(
    client: RegistryClient,
    repository: str,
    digest: str,
    policy: SupplyChainPolicy,
    keyless: KeylessCheck | None,
) -> Evidence:
    """Read and verify every signature and attestation of `repository@digest`; RefusedAnswerError when
    the registry's answers are hostile or out of bounds."""
    client.manifest(repository, digest)  # the image exists, and the registry serves its bytes
    evidence = Evidence(digest)
    keys = [_PublicKey(signer) for signer in policy.signers.keys]
    _walk_referrers(client, repository, digest, (digest,), 1, evidence, keys, keyless)
    for suffix in ("sig", "att"):
        tag = f"{fallback_tag(digest)}.{suffix}"
        found = client.tagged(repository, tag, (OCI_MANIFEST, DOCKER_MANIFEST))
        if found is not None:
            _read_layers(client, repository, found, f"tag {tag}", evidence, keys, keyless)
    return evidence


def _walk_referrers(
    client: RegistryClient,
    repository: str,
    subject: str,
    path: tuple[str, ...],
    depth: int,
    evidence: Evidence,
    keys: list[_PublicKey],
    keyless: KeylessCheck | None,
) -> None:
    for descriptor in client.referrers(repository, subject):
        digest = descriptor_digest(descriptor)
        if digest in path:
            chain = " -> ".join([*path, digest])
            raise RefusedAnswerError(f"referrer loop: {chain}")
        manifest = client.manifest(repository, digest, (OCI_MANIFEST,))
        _read_layers(client, repository, manifest, f"referrer {digest}", evidence, keys, keyless)
        if depth < client.limits.max_depth:
            _walk_referrers(client, repository, digest, (*path, digest), depth + 1, evidence, keys, keyless)


def _read_layers(
    client: RegistryClient,
    repository: str,
    manifest: Manifest,
    where: str,
    evidence: Evidence,
    keys: list[_PublicKey],
    keyless: KeylessCheck | None,
) -> None:
    for layer in manifest.layers:
        kind = str(layer.get("mediaType", ""))
        if kind.startswith(SIGSTORE_BUNDLE) or manifest.artifact_type.startswith(SIGSTORE_BUNDLE):
            _read_bundle(client.blob(repository, layer), descriptor_digest(layer), where, evidence, keyless)
        elif kind == DSSE_ENVELOPE:
            _read_envelope(client.blob(repository, layer), descriptor_digest(layer), where, evidence, keys)
        elif kind == SIMPLE_SIGNING:
            _read_simple_signing(client.blob(repository, layer), layer, where, evidence, keys)


def _read_bundle(
    body: bytes, digest: str, where: str, evidence: Evidence, keyless: KeylessCheck | None
) -> None:
    if keyless is None:
        evidence.rejected.append(f"{where}: a Sigstore bundle, but the policy names no keyless signer")
        return
    try:
        signer, payload = keyless(body, evidence.image_digest)
    except ValueError as error:
        evidence.rejected.append(f"{where}: {error}")
        return
    if payload is None:
        evidence.signatures.append(Signature(signer, evidence.image_digest, where))
        return
    _add_statement(payload, signer, where, digest, evidence)


def _read_envelope(body: bytes, digest: str, where: str, evidence: Evidence, keys: list[_PublicKey]) -> None:
    try:
        envelope = json.loads(body)
    except ValueError:
        evidence.rejected.append(f"{where}: a DSSE envelope that is not JSON")
        return
    if not isinstance(envelope, dict) or envelope.get("payloadType") != IN_TOTO:
        evidence.rejected.append(f"{where}: a DSSE envelope without an in-toto payload")
        return
    payload = decode_base64(envelope.get("payload"), f"{where}: the envelope's payload")
    signed = pae(IN_TOTO, payload)
    signatures = envelope.get("signatures")
    for entry in signatures if isinstance(signatures, list) else []:
        raw = decode_base64(entry.get("sig") if isinstance(entry, dict) else None, f"{where}: a signature")
        signer = next((key.name for key in keys if key.verifies(raw, signed)), None)
        if signer is not None:
            _add_statement(payload, f"key {signer}", where, digest, evidence)
            return
    evidence.rejected.append(f"{where}: an attestation signed by no key the policy trusts")


def _read_simple_signing(
    body: bytes, layer: dict[str, Any], where: str, evidence: Evidence, keys: list[_PublicKey]
) -> None:
    annotations = layer.get("annotations") if isinstance(layer.get("annotations"), dict) else {}
    assert isinstance(annotations, dict)
    raw = decode_base64(annotations.get(COSIGN_SIGNATURE_ANNOTATION), f"{where}: the signature annotation")
    signer = next((key.name for key in keys if key.verifies(raw, body)), None)
    if signer is None:
        evidence.rejected.append(f"{where}: a signature by no key the policy trusts")
        return
    try:
        payload = json.loads(body)
        critical = payload["critical"]
        signed_digest = critical["image"]["docker-manifest-digest"]
        kind = critical["type"]
    except (ValueError, KeyError, TypeError):
        evidence.rejected.append(f"{where}: a signed payload that is not a cosign simple-signing payload")
        return
    if kind != "cosign container image signature" or not isinstance(signed_digest, str):
        evidence.rejected.append(f"{where}: a signed payload of type {str(kind)[:80]!r}")
        return
    evidence.signatures.append(Signature(f"key {signer}", signed_digest, where))


def _add_statement(payload: bytes, signer: str, where: str, digest: str, evidence: Evidence) -> None:
    try:
        statement = json.loads(payload)
    except ValueError:
        evidence.rejected.append(f"{where}: a signed payload that is not JSON")
        return
    if not isinstance(statement, dict) or statement.get("_type") not in STATEMENT_TYPES:
        evidence.rejected.append(f"{where}: a signed payload that is not an in-toto statement")
        return
    subjects = []
    listed = statement.get("subject")
    for subject in listed if isinstance(listed, list) else []:
        digests = subject.get("digest") if isinstance(subject, dict) else None
        found = digests.get("sha256") if isinstance(digests, dict) else None
        if isinstance(found, str):
            subjects.append(f"sha256:{found}")
    predicate = statement.get("predicate")
    predicate_type = str(statement.get("predicateType", ""))
    if predicate_type == COSIGN_SIGN_PREDICATE:
        for subject in subjects:
            evidence.signatures.append(Signature(signer, subject, where))
        return
    evidence.statements.append(
        Statement(
            signer,
            predicate_type,
            predicate if isinstance(predicate, dict) else {},
            tuple(subjects),
            where,
            digest,
        )
    )


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE's pre-authentication encoding: what an envelope's signatures sign."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


class _PublicKey:
    """A policy's public key, loaded once; `verifies` as cosign signs with that kind of key."""

    def __init__(self, signer: KeySigner) -> None:
        self.name = signer.name
        self.key = load_pem_public_key(signer.public_key.encode())

    def verifies(self, signature: bytes, data: bytes) -> bool:
        try:
            if isinstance(self.key, ec.EllipticCurvePublicKey):
                algorithm = hashes.SHA384() if self.key.curve.key_size >= 384 else hashes.SHA256()
                self.key.verify(signature, data, ec.ECDSA(algorithm))
            elif isinstance(self.key, rsa.RSAPublicKey):
                self.key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
            elif isinstance(self.key, ed25519.Ed25519PublicKey):
                self.key.verify(signature, data)
            else:
                return False
        except (InvalidSignature, ValueError):
            return False
        return True
