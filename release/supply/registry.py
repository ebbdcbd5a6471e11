"""A bounded, read-only OCI registry client: manifests, blobs and referrers, nothing else.

Why not the `oras` package (0.2.43, checked for issue 26): it has no referrers API, sends its requests
through `requests` with no timeout, retries every call five times with growing sleeps, and reads
bodies whole with no size limit; a hostile registry could hold a release for minutes or fill memory.
This client reads only what verification needs, and every call is bounded:

- **time**: one deadline for the whole verification (`Limits.deadline_seconds`, checked between the
  chunks of every body, so a trickled answer ends there) and a per-request connect/read timeout;
- **bytes**: a manifest at most `max_manifest_bytes` (4 MiB, the OCI distribution limit), a blob at
  most `max_blob_bytes`, refused as soon as a `Content-Length`, a descriptor's `size` or the bytes
  read pass it;
- **count and depth**: at most `max_referrers` referrers per subject and `max_depth` levels of
  referrers of referrers; a digest met twice on one path is a loop;
- **content**: a manifest's media type must be one asked for, and what is read by digest must hash to
  that digest (and a blob have its descriptor's size).

Every such failure is a `RefusedAnswerError` with the reason, the registry and the repository; no
message holds a credential. Credentials come from `$RELEASE_REGISTRY_TOKEN` (a bearer token) or the
Docker config (`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`: `auths.<host>.auth`,
basic); a bearer challenge (`WWW-Authenticate: Bearer realm=...`) is answered once per repository.
Loopback registries (127.0.0.1, localhost, ::1) are spoken to over plain HTTP, as Docker does;
every other one over HTTPS.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from core.text import one_line

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
IMAGE_MANIFESTS = (OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST)
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
LOOPBACK = ("127.0.0.1", "localhost", "[::1]", "::1")
TOKEN_ENV = "RELEASE_REGISTRY_TOKEN"


class RefusedAnswerError(Exception):
    """The registry's answer cannot be trusted or read within the bounds; `reason` says why."""

    def __init__(self, reason: str) -> None:
        self.reason = one_line(reason)  # it may quote the registry: one line, whatever it sent
        super().__init__(self.reason)


@dataclass(frozen=True)
class Limits:
    deadline_seconds: float = 20.0
    """The whole verification of one image: every request of it together."""
    request_seconds: float = 5.0
    """Connect, and each read of a body, of one request."""
    max_manifest_bytes: int = 4 * 1024 * 1024
    max_blob_bytes: int = 16 * 1024 * 1024
    max_referrers: int = 64
    max_depth: int = 2
    """Referrers of the image (1) and referrers of those (2: a signature on an attestation)."""


@dataclass(frozen=True)
class Manifest:
    digest: str
    media_type: str
    document: dict[str, Any]

    @property
    def layers(self) -> list[dict[str, Any]]:
        return _descriptors(self.document.get("layers"))

    @property
    def manifests(self) -> list[dict[str, Any]]:
        return _descriptors(self.document.get("manifests"))

    @property
    def annotations(self) -> dict[str, str]:
        found = self.document.get("annotations")
        return {str(key): str(value) for key, value in found.items()} if isinstance(found, dict) else {}

    @property
    def artifact_type(self) -> str:
        found = self.document.get("artifactType")
        if isinstance(found, str):
            return found
        config = self.document.get("config")
        return str(config.get("mediaType", "")) if isinstance(config, dict) else ""


def _descriptors(value: object) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise RefusedAnswerError("a manifest's descriptor list is not a list of objects")
    return value


def descriptor_digest(descriptor: Mapping[str, Any]) -> str:
    digest = descriptor.get("digest")
    if not isinstance(digest, str) or not DIGEST.fullmatch(digest):
        raise RefusedAnswerError(f"a descriptor names no sha256 digest ({str(digest)[:80]!r})")
    return digest


@dataclass
class Credentials:
    """How to authenticate to one registry host; `describe()` never shows a secret."""

    basic: str = field(default="", repr=False)
    """base64(user:password), as the Docker config holds it."""
    bearer: str = field(default="", repr=False)

    @classmethod
    def for_host(cls, host: str, env: Mapping[str, str]) -> Credentials:
        token = env.get(TOKEN_ENV, "").strip()
        if token:
            return cls(bearer=token)
        for path in _docker_configs(env):
            try:
                document = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            auths = document.get("auths") if isinstance(document, dict) else None
            entry = auths.get(host) if isinstance(auths, dict) else None
            if isinstance(entry, dict) and isinstance(entry.get("auth"), str):
                return cls(basic=entry["auth"])
        return cls()

    def describe(self) -> str:
        if self.bearer:
            return f"the token in ${TOKEN_ENV}"
        return "the Docker config's credentials" if self.basic else "no credentials"


def _docker_configs(env: Mapping[str, str]) -> list[Path]:
    if env.get("DOCKER_CONFIG"):
        return [Path(env["DOCKER_CONFIG"]) / "config.json"]
    home = env.get("HOME")
    return [Path(home) / ".docker" / "config.json"] if home else []


class Deadline:
    """The one deadline of a verification (time.monotonic: it measures a duration)."""

    def __init__(self, seconds: float, now: Callable[[], float] = time.monotonic) -> None:
        self._now = now
        self.seconds = seconds
        self.ends = now() + seconds

    def left(self, what: str) -> float:
        remaining = self.ends - self._now()
        if remaining <= 0:
            raise RefusedAnswerError(f"no complete answer within {self.seconds:g} s ({what})")
        return remaining


class RegistryClient:
    """Reads one registry host; every method raises RefusedAnswerError on anything out of bounds."""

    def __init__(
        self,
        host: str,
        limits: Limits,
        credentials: Credentials,
        deadline: Deadline,
        client: httpx.Client | None = None,
    ) -> None:
        self.host = host
        self.limits = limits
        self.credentials = credentials
        self.deadline = deadline
        loopback = host.split(":")[0] in LOOPBACK or host.startswith("[::1]")
        self.base = f"{'http' if loopback else 'https'}://{host}"
        self._client = client or httpx.Client(trust_env=False, follow_redirects=False)
        self._bearer: dict[str, str] = {}

    def close(self) -> None:
        self._client.close()

    # -- reading -------------------------------------------------------------------------------

    def manifest(
        self, repository: str, reference: str, accept: tuple[str, ...] = IMAGE_MANIFESTS
    ) -> Manifest:
        """The manifest `reference` (a digest or a tag) names; by digest, its bytes must hash to it."""
        body, media_type = self._read(  # asks for every kind, so a wrong one is seen, not a 404
            repository,
            f"/v2/{repository}/manifests/{reference}",
            IMAGE_MANIFESTS,
            self.limits.max_manifest_bytes,
            f"manifest {reference}",
        )
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        if DIGEST.fullmatch(reference) and digest != reference:
            raise RefusedAnswerError(
                f"manifest {reference} answered with other bytes (they hash to {digest})"
            )
        document = _json_object(body, f"manifest {reference}")
        declared = document.get("mediaType")
        media_type = media_type or (declared if isinstance(declared, str) else "")
        if media_type not in accept or (isinstance(declared, str) and declared != media_type):
            raise RefusedAnswerError(
                f"manifest {reference} has media type {media_type or '(none)'!r}"
                f"{'' if declared in (None, media_type) else f' (its body says {declared!r})'}; "
                f"expected one of {list(accept)}"
            )
        return Manifest(digest, media_type, document)

    def tagged(self, repository: str, tag: str, accept: tuple[str, ...]) -> Manifest | None:
        """The manifest a tag names, or None when the tag does not exist."""
        try:
            return self.manifest(repository, tag, accept)
        except _NotFoundError:
            return None

    def blob(self, repository: str, descriptor: Mapping[str, Any]) -> bytes:
        """A blob, at most its descriptor's size and max_blob_bytes, hashing to its digest."""
        digest = descriptor_digest(descriptor)
        size = descriptor.get("size")
        if not isinstance(size, int) or size < 0:
            raise RefusedAnswerError(f"blob {digest} has no size in its descriptor")
        if size > self.limits.max_blob_bytes:
            raise RefusedAnswerError(
                f"blob {digest} is {size} bytes; at most {self.limits.max_blob_bytes} are read"
            )
        body, _ = self._read(repository, f"/v2/{repository}/blobs/{digest}", ("*/*",), size, f"blob {digest}")
        found = "sha256:" + hashlib.sha256(body).hexdigest()
        if found != digest or len(body) != size:
            raise RefusedAnswerError(f"blob {digest} answered with other bytes (they hash to {found})")
        return body

    def referrers(self, repository: str, digest: str) -> list[dict[str, Any]]:
        """The descriptors of the manifests whose subject is `digest`: the OCI 1.1 referrers API, or,
        where the registry has none (404), the tag schema's index `sha256-<hex>`."""
        try:
            body, media_type = self._read(
                repository,
                f"/v2/{repository}/referrers/{digest}",
                (OCI_INDEX,),
                self.limits.max_manifest_bytes,
                f"referrers of {digest}",
            )
            index = Manifest(digest, media_type or OCI_INDEX, _json_object(body, f"referrers of {digest}"))
            if media_type and media_type.split(";")[0].strip() != OCI_INDEX:
                raise RefusedAnswerError(
                    f"the referrers of {digest} came as {media_type!r}, not an OCI index"
                )
        except _NotFoundError:
            found = self.tagged(repository, fallback_tag(digest), (OCI_INDEX,))
            if found is None:
                return []
            index = found
        listed = index.manifests
        if len(listed) > self.limits.max_referrers:
            raise RefusedAnswerError(
                f"{digest} has {len(listed)} referrers; at most {self.limits.max_referrers} are read"
            )
        return listed

    # -- transport -----------------------------------------------------------------------------

    def _read(
        self, repository: str, path: str, accept: tuple[str, ...], limit: int, what: str
    ) -> tuple[bytes, str]:
        for attempt in range(2):
            headers = {"Accept": ", ".join(accept), **self._authorization(repository)}
            timeout = min(self.limits.request_seconds, self.deadline.left(what))
            try:
                with self._client.stream("GET", self.base + path, headers=headers, timeout=timeout) as answer:
                    if (
                        answer.status_code == 401
                        and attempt == 0
                        and self._answer_challenge(answer, repository)
                    ):
                        continue
                    if answer.status_code == 404:
                        raise _NotFoundError(what)
                    if answer.status_code != 200:
                        raise RefusedAnswerError(self._status_problem(answer.status_code, what))
                    declared = answer.headers.get("content-length")
                    if declared is not None and declared.isdigit() and int(declared) > limit:
                        raise RefusedAnswerError(f"{what} is {declared} bytes; at most {limit} are read")
                    body = self._bounded_body(answer.iter_raw(), limit, what)
                    return body, answer.headers.get("content-type", "").split(";")[0].strip()
            except httpx.TimeoutException as error:
                raise RefusedAnswerError(f"{what}: no answer within {timeout:.1f} s") from error
            except httpx.HTTPError as error:
                raise RefusedAnswerError(f"{what}: {type(error).__name__} talking to {self.host}") from error
        raise RefusedAnswerError(self._status_problem(401, what))

    def _bounded_body(self, chunks: Iterator[bytes], limit: int, what: str) -> bytes:
        body = bytearray()
        for chunk in chunks:
            body += chunk
            if len(body) > limit:
                raise RefusedAnswerError(f"{what} is larger than {limit} bytes, the most that is read")
            self.deadline.left(f"{what}: {len(body)} bytes arrived so far")
        return bytes(body)

    def _status_problem(self, status: int, what: str) -> str:
        if status in (401, 403):
            return (
                f"{what}: {self.host} refused access ({status}) with {self.credentials.describe()}; "
                f"log in (`docker login {self.host}`) or set ${TOKEN_ENV}"
            )
        return f"{what}: {self.host} answered HTTP {status}"

    def _authorization(self, repository: str) -> dict[str, str]:
        if repository in self._bearer:
            return {"Authorization": f"Bearer {self._bearer[repository]}"}
        if self.credentials.bearer:
            return {"Authorization": f"Bearer {self.credentials.bearer}"}
        if self.credentials.basic:
            return {"Authorization": f"Basic {self.credentials.basic}"}
        return {}

    def _answer_challenge(self, answer: httpx.Response, repository: str) -> bool:
        """Fetch a bearer token for `repository` from the realm a 401 names; False when there is none."""
        challenge = answer.headers.get("www-authenticate", "")
        if not challenge.lower().startswith("bearer ") or repository in self._bearer:
            return False
        fields = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
        realm = fields.get("realm", "")
        if not realm.startswith(("https://", "http://127.0.0.1", "http://localhost")):
            return False
        params = {"service": fields.get("service", ""), "scope": f"repository:{repository}:pull"}
        headers = {"Authorization": f"Basic {self.credentials.basic}"} if self.credentials.basic else {}
        timeout = min(self.limits.request_seconds, self.deadline.left("the registry's token"))
        try:
            with self._client.stream("GET", realm, params=params, headers=headers, timeout=timeout) as reply:
                if reply.status_code != 200:
                    return False
                body = self._bounded_body(reply.iter_raw(), 64 * 1024, "the registry's token")
        except httpx.HTTPError:
            return False
        try:
            document = json.loads(body)
        except ValueError:
            return False
        token = document.get("token") or document.get("access_token") if isinstance(document, dict) else None
        if not isinstance(token, str) or not token:
            return False
        self._bearer[repository] = token
        return True


class _NotFoundError(RefusedAnswerError):
    def __init__(self, what: str) -> None:
        super().__init__(f"{what}: not found")


def fallback_tag(digest: str) -> str:
    """The tag schema's name for what refers to `digest`: `sha256-<hex>` (cosign adds .sig / .att)."""
    return digest.replace(":", "-", 1)


def _json_object(body: bytes, what: str) -> dict[str, Any]:
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as error:
        raise RefusedAnswerError(f"{what} is not JSON") from error
    if not isinstance(document, dict):
        raise RefusedAnswerError(f"{what} is not a JSON object")
    return document


def decode_base64(text: object, what: str) -> bytes:
    if not isinstance(text, str):
        raise RefusedAnswerError(f"{what} is not base64 text")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as error:
        raise RefusedAnswerError(f"{what} is not base64") from error


def env_credentials(host: str, env: Mapping[str, str] | None = None) -> Credentials:
    return Credentials.for_host(host, os.environ if env is None else env)
