"""Who may sign release records (Pulumi.yaml's `releaseSigning`, project-level): the trusted public
keys, each listed once, under one name, in the canonical spelling `release keygen` prints."""

from __future__ import annotations

import base64
import binascii
import re
from datetime import datetime

from pydantic import Field, field_validator

from core.config.base import ConfigModel

ED25519_PUBLIC_KEY = re.compile(r"[A-Za-z0-9+/]{43}=")
"""32 raw bytes in standard base64: what `release keygen` prints."""
KEY_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")


def is_canonical_base64(text: str) -> bool:
    """True when `text` is exactly the standard base64 of the bytes it decodes to."""
    try:
        return base64.b64encode(base64.b64decode(text, validate=True)).decode() == text
    except (binascii.Error, ValueError):
        return False


def _key_bytes(key: TrustedKey) -> bytes:
    return base64.b64decode(key.public_key)


class TrustedKey(ConfigModel):
    """A public key whose signatures on release records are trusted (the CI's signing key).

    Rotation: add the new key, move CI to it, then set `retired_after` on the old one; records it
    signed before that time stay evidence. Remove a key only if it leaked: everything it signed
    stops counting.
    """

    name: str
    public_key: str
    retired_after: datetime | None = None

    @field_validator("name")
    @classmethod
    def _key_name(cls, name: str) -> str:
        if not KEY_NAME.fullmatch(name):
            raise ValueError("must be a short lower-case name like 'ci-2026-11'")
        return name

    @field_validator("public_key")
    @classmethod
    def _ed25519(cls, key: str) -> str:
        if not ED25519_PUBLIC_KEY.fullmatch(key):
            raise ValueError(
                "must be an Ed25519 public key in base64 (44 characters), as `release keygen` prints"
            )
        if not is_canonical_base64(key):
            raise ValueError(
                "is not the canonical base64 of its 32 bytes (the last character's unused bits are set, "
                "so the same key could be listed again under another spelling); copy the key exactly as "
                "`release keygen` printed it"
            )
        return key

    @field_validator("retired_after")
    @classmethod
    def _aware(cls, moment: datetime | None) -> datetime | None:
        if moment is not None and moment.tzinfo is None:
            raise ValueError("must carry a time zone, e.g. 2026-12-01T00:00:00Z")
        return moment


class ReleaseSigning(ConfigModel):
    """Who may sign release records: the trusted public keys (project-level, the same in every stack)."""

    trusted_keys: list[TrustedKey] = Field(default_factory=list)

    @field_validator("trusted_keys")
    @classmethod
    def _unique(cls, keys: list[TrustedKey]) -> list[TrustedKey]:
        """One name per key and one key per name, keys compared as their decoded bytes: a retired key
        listed again under a new name would count again."""
        problems = []
        for what, of in (("name", lambda key: key.name), ("public key", lambda key: _key_bytes(key))):
            seen: dict[object, int] = {}
            for index, key in enumerate(keys):
                first = seen.setdefault(of(key), index)
                if first != index:
                    problems.append(
                        f"entries {first} ({keys[first].name}) and {index} ({key.name}) have the same {what}"
                    )
        if problems:
            raise ValueError("; ".join(problems) + "; list each key once, under one name")
        return keys
