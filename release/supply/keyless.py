"""Keyless (Sigstore) signatures: a bundle verified by sigstore-python, offline.

sigstore-python checks the Fulcio certificate chain at the signing time, the certificate's SCT, the
transparency log entry (inclusion proof or promise) and any RFC 3161 timestamps against a trusted
root, and the certificate's identity against the policy (`Identity(identity, issuer)` per keyless
signer, any of them). It does not read the in-toto statement of a DSSE bundle: release.supply.evidence
checks its type and subject. The trusted root is the policy's `trustedRoot` file, or the public-good
Sigstore root that ships with sigstore-python, read without network (offline=True).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from cryptography import x509
from sigstore.errors import Error as SigstoreError
from sigstore.hashes import Hashed
from sigstore.models import Bundle, ClientTrustConfig, TrustedRoot
from sigstore.verify import Verifier
from sigstore.verify.policy import AnyOf, Identity
from sigstore_models.common.v1 import HashAlgorithm

from core.config.supply_chain import KeylessSigner
from release.supply.evidence import KeylessCheck

FULCIO_ISSUER_V2 = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.8")
FULCIO_ISSUER_V1 = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.1")


@cache
def _verifier(trusted_root: Path | None) -> Verifier:
    if trusted_root is None:
        return Verifier(trusted_root=ClientTrustConfig.production(offline=True).trusted_root)
    return Verifier(trusted_root=TrustedRoot.from_file(str(trusted_root)))


def keyless_check(signers: list[KeylessSigner], trusted_root: Path | None) -> KeylessCheck | None:
    """The check release.supply.evidence runs on each bundle; None when the policy has no keyless signer."""
    if not signers:
        return None
    policy = AnyOf([Identity(identity=signer.identity, issuer=signer.issuer) for signer in signers])

    def check(body: bytes, image_digest: str) -> tuple[str, bytes | None]:
        try:
            bundle = Bundle.from_json(body)
        except (SigstoreError, ValueError) as error:
            raise ValueError(f"not a Sigstore bundle ({type(error).__name__})") from error
        who = describe_identity(bundle.signing_certificate)
        try:
            verifier = _verifier(trusted_root)
        except (SigstoreError, ValueError, OSError) as error:
            raise ValueError(f"the Sigstore trusted root cannot be read ({type(error).__name__})") from error
        try:
            if bundle._dsse_envelope is not None:
                payload_type, payload = verifier.verify_dsse(bundle, policy)
                if payload_type != "application/vnd.in-toto+json":
                    raise ValueError(f"a bundle of {who} with a {payload_type!r} payload, not in-toto")
                return f"keyless {who}", payload
            digest = bytes.fromhex(image_digest.removeprefix("sha256:"))
            verifier.verify_artifact(Hashed(algorithm=HashAlgorithm.SHA2_256, digest=digest), bundle, policy)
        except SigstoreError as error:
            raise ValueError(f"a bundle of {who} that does not verify: {_short(error)}") from error
        return f"keyless {who}", None

    return check


def describe_identity(certificate: x509.Certificate) -> str:
    """`<SAN> (<issuer>)` of a Fulcio certificate, for messages and claims."""
    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        identity = next(iter([*names.get_values_for_type(x509.UniformResourceIdentifier)]), "") or next(
            iter(names.get_values_for_type(x509.RFC822Name)), "(no identity)"
        )
    except x509.ExtensionNotFound:
        identity = "(no identity)"
    issuer = "(no issuer)"
    for oid in (FULCIO_ISSUER_V2, FULCIO_ISSUER_V1):
        try:
            raw = certificate.extensions.get_extension_for_oid(oid).value
        except x509.ExtensionNotFound:
            continue
        value = getattr(raw, "value", b"")
        issuer = _der_utf8(value) if oid == FULCIO_ISSUER_V2 else value.decode(errors="replace")
        break
    return f"{identity} ({issuer})"


def _der_utf8(value: bytes) -> str:
    """The text of a DER UTF8String (tag 0x0c, short or long length)."""
    if len(value) < 2 or value[0] != 0x0C:
        return value.decode(errors="replace")
    length, start = value[1], 2
    if length & 0x80:
        count = length & 0x7F
        length, start = int.from_bytes(value[2 : 2 + count], "big"), 2 + count
    return value[start : start + length].decode(errors="replace")


def _short(error: Exception) -> str:
    return str(error).splitlines()[0][:200] if str(error) else type(error).__name__
