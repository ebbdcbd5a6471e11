"""Image references and digests: parsed once, at the boundary, with `fullmatch`.

    registry.example.test:5000/platform/api:1.4.2@sha256:<64 lower-case hex>
    \\__________________________________/ \\___/ \\_____________________/
                  repository               tag           digest

The grammar is the OCI distribution reference's (a registry host with an optional port, then
lower-case path components), restricted to lower-case names. A port belongs to the registry only
when a `/` follows it, so `api:5000` is the repository `api` with tag `5000`, and
`registry:5000/platform/api` is a repository with no tag. `fullmatch` means nothing may trail the
reference, not even a newline (a `$` anchor would allow one).

Every verb of the release tool, the program's config model and its components use these parsers and
no other.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

_HOST_LABEL = r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?"
_REGISTRY = rf"(?:{_HOST_LABEL}(?:\.{_HOST_LABEL})*(?::[0-9]{{1,5}})?/)"
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPOSITORY = rf"{_REGISTRY}?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_TAG = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
_DIGEST = r"sha256:[0-9a-f]{64}"

DIGEST = re.compile(_DIGEST)
IMAGE = re.compile(rf"(?P<repository>{_REPOSITORY})(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?")
MAX_REPOSITORY_LENGTH = 255

DIGEST_FORM = "sha256:<64 lower-case hex digits>"
PINNED_FORM = f"<repository>@{DIGEST_FORM}"


class ImageRefError(ValueError):
    """Text that is not an image reference (or digest); the message says what the form is."""


@dataclass(frozen=True)
class ImageRef:
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def pinned(self) -> bool:
        """True when the reference names a digest: it cannot change under you."""
        return self.digest is not None

    def fingerprint(self) -> str:
        """12 hex characters that change exactly when the image changes: the digest's first 12, or (for
        a tag) a hash of the whole reference. Migration Job names end in it."""
        if self.digest:
            return self.digest[len("sha256:") :][:12]
        return hashlib.sha256(str(self).encode()).hexdigest()[:12]

    def with_digest(self, digest: str) -> ImageRef:
        """The same repository pinned to `digest` (the tag is dropped: the digest is the truth)."""
        return ImageRef(self.repository, None, parse_digest(digest))

    def short(self) -> str:
        """`api@sha256:<12 hex>` (or `api:tag`), for tables; JSON and records keep the whole text."""
        name = self.repository.rsplit("/", 1)[-1]
        if self.digest:
            return f"{name}@sha256:{self.fingerprint()}"
        return f"{name}:{self.tag}" if self.tag else name

    def __str__(self) -> str:
        text = self.repository
        if self.tag is not None:
            text += f":{self.tag}"
        if self.digest is not None:
            text += f"@{self.digest}"
        return text


def parse_image(text: str) -> ImageRef:
    """`text` as an image reference, or ImageRefError naming the form expected."""
    matched = IMAGE.fullmatch(text) if isinstance(text, str) else None
    if matched is None or len(matched.group("repository")) > MAX_REPOSITORY_LENGTH:
        raise ImageRefError(
            f"{text!r} is not an image reference; use {PINNED_FORM} (or <repository>:<tag> where tags "
            "are allowed), lower-case, with nothing before or after it"
        )
    return ImageRef(matched.group("repository"), matched.group("tag"), matched.group("digest"))


def parse_pinned_image(text: str) -> ImageRef:
    """An image reference that names a digest, or ImageRefError."""
    image = parse_image(text)
    if not image.pinned:
        raise ImageRefError(
            f"{text!r} is not pinned by digest; use {PINNED_FORM}: a tag can change under you"
        )
    return image


def parse_digest(text: str) -> str:
    """`sha256:<64 lower-case hex>` exactly, or ImageRefError."""
    if not isinstance(text, str) or DIGEST.fullmatch(text) is None:
        raise ImageRefError(f"{text!r} is not a digest; use {DIGEST_FORM}, with nothing before or after it")
    return text


def is_image(text: str) -> bool:
    try:
        parse_image(text)
    except ImageRefError:
        return False
    return True


def repository_of(image: str) -> str:
    """The repository of a reference (a registry's `host:port` is kept); `image` itself if unparsable."""
    try:
        return parse_image(image).repository
    except ImageRefError:
        return image


def digest_of(image: str) -> str:
    """The digest a reference names, or '' (a tag, or not a reference)."""
    try:
        return parse_image(image).digest or ""
    except ImageRefError:
        return ""


def image_pull_policy(image: str) -> str:
    """A digest never changes what it names, so a node's copy is the image; a tag may move, so it is
    pulled every time (checkov CKV_K8S_15)."""
    return "IfNotPresent" if digest_of(image) else "Always"


def fingerprint_of(image: str) -> str:
    """`ImageRef.fingerprint()` of `image`; for text that is no reference, a hash of the text."""
    try:
        return parse_image(image).fingerprint()
    except ImageRefError:
        return hashlib.sha256(image.encode()).hexdigest()[:12]
