"""Ed25519 signatures on release records: evidence is what the tool can prove, not what anyone typed.

Anyone who may run `pulumi up` can write any update message, so a record in stack history proves
nothing by being there. The release tool signs every record it writes with the key in
`RELEASE_SIGNING_KEY` (a CI secret, best an environment secret of the protected environment); the
public keys it trusts are project-level config (`releaseSigning.trustedKeys` in Pulumi.yaml), the same
in every stack. `release keygen` prints a new pair.

    private key   32 raw bytes, standard base64 (44 characters): the CI secret, never printed again
    public key    32 raw bytes, standard base64: goes into Pulumi.yaml under a name
    key id        the first 16 hex digits of SHA-256 over the raw public key: what a record names

What is signed is the record's canonical JSON (sorted keys, no spaces, ASCII only) without its
`sig`; see release.history.records.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from core.config.project import ProjectSettings
from core.config.signing import TrustedKey
from core.errors import UsageError

SIGNING_KEY_ENV = "RELEASE_SIGNING_KEY"
RAW = serialization.Encoding.Raw


class Trust(StrEnum):
    """How far a record in history can be believed."""

    SIGNED = "signed"
    """Signed by a trusted key, for this stack: evidence."""
    UNSIGNED = "unsigned"
    """No signature: counts only in a stack that does not require signed records, never as evidence
    for a gate that requires signed evidence."""
    INVALID_SIGNATURE = "invalid signature"
    """A signature that does not verify (a tampered byte, a forged record): never counts."""
    UNTRUSTED_KEY = "untrusted key"
    """Signed by a key Pulumi.yaml does not trust (or trusted only before the record's time)."""
    WRONG_STACK = "wrong stack"
    """A record naming another stack (copied from its history): never counts here."""
    MALFORMED = "malformed record"
    """A message that carries the record mark but no record the tool could have written."""


def key_id(public_key: bytes) -> str:
    return hashlib.sha256(public_key).hexdigest()[:16]


def _b64decode(text: str, size: int) -> bytes | None:
    """`size` bytes from their canonical standard base64, or None (a key's spare low bits set, so that
    one key could pass for two, counts as malformed)."""
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        return None
    if len(raw) != size or base64.b64encode(raw).decode() != text:
        return None
    return raw


@dataclass(frozen=True)
class KeyPair:
    private_key: str
    public_key: str
    key_id: str


def generate_key_pair() -> KeyPair:
    private = Ed25519PrivateKey.generate()
    raw_private = private.private_bytes(RAW, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    raw_public = private.public_key().public_bytes(RAW, serialization.PublicFormat.Raw)
    return KeyPair(
        base64.b64encode(raw_private).decode(), base64.b64encode(raw_public).decode(), key_id(raw_public)
    )


class Signer:
    """Signs record payloads with one private key; its `key_id` goes into every signature."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._private_key = private_key
        raw_public = private_key.public_key().public_bytes(RAW, serialization.PublicFormat.Raw)
        self.key_id = key_id(raw_public)
        self.public_key = base64.b64encode(raw_public).decode()

    @classmethod
    def from_text(cls, text: str) -> Signer:
        raw = _b64decode(text.strip(), 32)
        if raw is None:
            raise UsageError(
                f"${SIGNING_KEY_ENV} is not an Ed25519 private key (32 bytes in base64, as `release keygen` "
                "prints); the value is not shown"
            )
        return cls(Ed25519PrivateKey.from_private_bytes(raw))

    @classmethod
    def from_environment(cls, env: Mapping[str, str]) -> Signer | None:
        """The signer from $RELEASE_SIGNING_KEY, or None when it is not set."""
        text = env.get(SIGNING_KEY_ENV, "")
        return cls.from_text(text) if text.strip() else None

    def sign(self, payload: bytes) -> str:
        return base64.b64encode(self._private_key.sign(payload)).decode()


class TrustedKeys:
    """The public keys Pulumi.yaml trusts, by key id."""

    def __init__(self, keys: Sequence[TrustedKey]) -> None:
        self._keys: dict[str, tuple[TrustedKey, Ed25519PublicKey]] = {}
        for key in keys:
            raw = _b64decode(key.public_key, 32)
            if raw is not None:
                self._keys[key_id(raw)] = (key, Ed25519PublicKey.from_public_bytes(raw))

    def __bool__(self) -> bool:
        return bool(self._keys)

    def trusts(self, identifier: str) -> bool:
        return identifier in self._keys

    def entry(self, identifier: str) -> TrustedKey | None:
        """The Pulumi.yaml entry of the key with this id, if trusted."""
        found = self._keys.get(identifier)
        return found[0] if found is not None else None

    def verify(self, identifier: str, payload: bytes, signature: str, signed_at: datetime | None) -> Trust:
        """SIGNED when `signature` over `payload` verifies with the trusted key `identifier`, and the
        key was not retired before `signed_at`."""
        found = self._keys.get(identifier)
        if found is None:
            return Trust.UNTRUSTED_KEY
        trusted, public_key = found
        raw_signature = _b64decode(signature, 64)
        if raw_signature is None:
            return Trust.INVALID_SIGNATURE
        try:
            public_key.verify(raw_signature, payload)
        except InvalidSignature:
            return Trust.INVALID_SIGNATURE
        if trusted.retired_after is not None and (signed_at is None or signed_at > trusted.retired_after):
            return Trust.UNTRUSTED_KEY
        return Trust.SIGNED


def refuse_unsigned_write(
    project: ProjectSettings, stack: str, signer: Signer | None, verb: str, now: datetime
) -> None:
    """A stack that counts only signed records gets no record it would not count: refuse before any
    change when there is no signing key, its key is not one Pulumi.yaml trusts, or the key was
    retired before `now` (the time its records would carry)."""
    policy = project.stack_policies.get(stack)
    if policy is None or not policy.require_signed_records:
        return
    rule = f"stackPolicies.{stack}.requireSignedRecords in Pulumi.yaml"
    trusted = (
        None if signer is None else TrustedKeys(project.release_signing.trusted_keys).entry(signer.key_id)
    )
    if signer is None:
        problem = f"${SIGNING_KEY_ENV} is not set"
    elif trusted is None:
        problem = (
            f"the key in ${SIGNING_KEY_ENV} (key id {signer.key_id}) is not in releaseSigning.trustedKeys "
            "in Pulumi.yaml"
        )
    elif trusted.retired_after is not None and now > trusted.retired_after:
        problem = (
            f"the key in ${SIGNING_KEY_ENV} is '{trusted.name}' (key id {signer.key_id}), retired after "
            f"{trusted.retired_after.isoformat()} in releaseSigning.trustedKeys; replace "
            f"${SIGNING_KEY_ENV} with the current key (docs/signing.md#rotating-a-key)"
        )
    else:
        return
    raise UsageError(
        f"stack '{stack}' counts only signed release records ({rule}), and {problem}, so this {verb} "
        "would write records that do not count; nothing was changed. Run it where the signing key is "
        "(the release workflow), or see docs/signing.md"
    )
