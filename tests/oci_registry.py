"""A real OCI registry on 127.0.0.1 (Debian's `docker-registry`, the CNCF distribution registry 2.8),
and what a build pipeline pushes into it: image manifests, cosign signatures and in-toto attestations
signed in the test with generated keys, and Sigstore bundles stored as referrers.

The registry has no referrers API (distribution 2.8): every referrer is found through the tag
schema's fallback index `sha256-<hex>`, which `push_referrer` maintains as cosign v3 does.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from release.supply.evidence import COSIGN_SIGNATURE_ANNOTATION, DSSE_ENVELOPE, IN_TOTO, SIMPLE_SIGNING, pae
from release.supply.registry import OCI_INDEX, OCI_MANIFEST, fallback_tag

MISSING = "docker-registry is not installed (Debian's `docker-registry` package; .ci/run installs it)"
READY_SECONDS = 20
EMPTY_CONFIG = "application/vnd.oci.empty.v1+json"
SIGSTORE_BUNDLE_V03 = "application/vnd.dev.sigstore.bundle.v0.3+json"
REPOSITORY = "platform/api"


def binary() -> str:
    """The registry binary; where it is missing, a skip with the reason (a failure under CI=true)."""
    found = shutil.which("docker-registry")
    if found:
        return found
    if os.environ.get("CI") == "true":
        pytest.fail(MISSING)
    pytest.skip(MISSING)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Registry:
    host: str
    storage: Path
    client: httpx.Client = field(default_factory=lambda: httpx.Client(trust_env=False, timeout=10))

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def image(self, digest: str, repository: str = REPOSITORY) -> str:
        return f"{self.host}/{repository}@{digest}"

    def push_blob(self, data: bytes, repository: str = REPOSITORY) -> dict[str, Any]:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        started = self.client.post(f"{self.url}/v2/{repository}/blobs/uploads/")
        assert started.status_code == 202, started.text
        location = started.headers["location"]
        location = location if location.startswith("http") else self.url + location
        separator = "&" if "?" in location else "?"
        done = self.client.put(
            f"{location}{separator}digest={digest}",
            content=data,
            headers={"Content-Type": "application/octet-stream"},
        )
        assert done.status_code == 201, done.text
        return {"digest": digest, "size": len(data)}

    def push_manifest(
        self, document: dict[str, Any], reference: str | None = None, repository: str = REPOSITORY
    ) -> str:
        body = json.dumps(document, separators=(",", ":")).encode()
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        answer = self.client.put(
            f"{self.url}/v2/{repository}/manifests/{reference or digest}",
            content=body,
            headers={"Content-Type": document["mediaType"]},
        )
        assert answer.status_code == 201, answer.text
        return digest

    def push_image(self, marker: str, repository: str = REPOSITORY) -> str:
        """A real (tiny) image: a config and one layer, as an OCI image manifest; its digest."""
        config = self.push_blob(
            json.dumps({"architecture": "amd64", "os": "linux", "marker": marker}).encode(), repository
        )
        layer = self.push_blob(f"layer of {marker}".encode(), repository)
        return self.push_manifest(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **config},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", **layer}],
            },
            repository=repository,
        )

    def push_referrer(
        self,
        subject: str,
        artifact_type: str,
        layer_type: str,
        content: bytes,
        annotations: dict[str, str] | None = None,
        repository: str = REPOSITORY,
    ) -> str:
        """An artifact manifest whose subject is `subject`, listed in the fallback index `sha256-<hex>`."""
        empty = self.push_blob(b"{}", repository)
        layer = self.push_blob(content, repository)
        subject_size = len(self._manifest_bytes(subject, repository))
        digest = self.push_manifest(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "artifactType": artifact_type,
                "config": {"mediaType": EMPTY_CONFIG, **empty},
                "layers": [{"mediaType": layer_type, **layer}],
                "subject": {"mediaType": OCI_MANIFEST, "digest": subject, "size": subject_size},
                "annotations": annotations or {},
            },
            repository=repository,
        )
        self.list_referrer(subject, digest, artifact_type, repository)
        return digest

    def list_referrer(
        self, subject: str, digest: str, artifact_type: str, repository: str = REPOSITORY
    ) -> None:
        tag = fallback_tag(subject)
        answer = self.client.get(f"{self.url}/v2/{repository}/manifests/{tag}", headers={"Accept": OCI_INDEX})
        index: dict[str, Any] = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
        if answer.status_code == 200:
            index = answer.json()
        size = len(self._manifest_bytes(digest, repository))
        index["manifests"].append(
            {"mediaType": OCI_MANIFEST, "digest": digest, "size": size, "artifactType": artifact_type}
        )
        self.push_manifest(index, tag, repository)

    def push_tag_layers(
        self,
        subject: str,
        suffix: str,
        layers: list[tuple[str, bytes, dict[str, str]]],
        repository: str = REPOSITORY,
    ) -> str:
        """cosign's tag schema: `sha256-<hex>.<suffix>` with one layer per signature or envelope."""
        empty = self.push_blob(b"{}", repository)
        descriptors = []
        for media_type, content, notes in layers:
            descriptors.append(
                {"mediaType": media_type, **self.push_blob(content, repository), "annotations": notes}
            )
        return self.push_manifest(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **empty},
                "layers": descriptors,
            },
            f"{fallback_tag(subject)}.{suffix}",
            repository,
        )

    def _manifest_bytes(self, digest: str, repository: str) -> bytes:
        answer = self.client.get(
            f"{self.url}/v2/{repository}/manifests/{digest}",
            headers={"Accept": f"{OCI_MANIFEST}, {OCI_INDEX}"},
        )
        assert answer.status_code == 200, answer.text
        return answer.content

    def blob_file(self, digest: str) -> Path:
        """Where the registry keeps a blob on disk (a test rewrites it to make the registry lie)."""
        hexdigest = digest.removeprefix("sha256:")
        return self.storage / "docker/registry/v2/blobs/sha256" / hexdigest[:2] / hexdigest / "data"


@contextmanager
def running_registry() -> Iterator[Registry]:
    """docker-registry on a free 127.0.0.1 port, storing in a temporary directory; stopped after."""
    command = binary()
    directory = Path(tempfile.mkdtemp(prefix="oci-registry-"))
    port = _free_port()
    config = directory / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: error\n"
        f"storage:\n  filesystem:\n    rootdirectory: {directory / 'data'}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
    )
    process = subprocess.Popen(
        [command, "serve", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    registry = Registry(f"127.0.0.1:{port}", directory / "data")
    try:
        started = time.monotonic()
        while True:
            try:
                if registry.client.get(f"{registry.url}/v2/").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() - started > READY_SECONDS:
                error = (
                    process.stderr.read().decode() if process.stderr and process.poll() is not None else ""
                )
                pytest.fail(
                    f"docker-registry did not answer on 127.0.0.1:{port} in {READY_SECONDS} s: {error[-500:]}"
                )
            time.sleep(0.05)
        yield registry
    finally:
        registry.client.close()
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        shutil.rmtree(directory, ignore_errors=True)


# -- what the build pipeline signs ------------------------------------------------------------


@dataclass
class CosignKey:
    """A cosign-style ECDSA P-256 key pair, made in the test."""

    name: str
    private: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )

    @property
    def public_pem(self) -> str:
        return (
            self.private.public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode()
        )

    def sign(self, data: bytes) -> str:
        return base64.b64encode(self.private.sign(data, ec.ECDSA(hashes.SHA256()))).decode()

    def as_signer(self) -> dict[str, str]:
        return {"name": self.name, "publicKey": self.public_pem}


def simple_signing_payload(image: str, digest: str) -> bytes:
    return json.dumps(
        {
            "critical": {
                "identity": {"docker-reference": image.split("@")[0]},
                "image": {"docker-manifest-digest": digest},
                "type": "cosign container image signature",
            },
            "optional": None,
        },
        separators=(",", ":"),
    ).encode()


def sign_image(registry: Registry, digest: str, key: CosignKey, signed_digest: str | None = None) -> None:
    """`cosign sign --key` with the tag schema: a simple-signing payload in `sha256-<hex>.sig`."""
    payload = simple_signing_payload(registry.image(digest), signed_digest or digest)
    registry.push_tag_layers(
        digest, "sig", [(SIMPLE_SIGNING, payload, {COSIGN_SIGNATURE_ANNOTATION: key.sign(payload)})]
    )


def statement(subject_digest: str, predicate_type: str, predicate: dict[str, Any]) -> bytes:
    return json.dumps(
        {
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [
                {
                    "name": "registry/platform/api",
                    "digest": {"sha256": subject_digest.removeprefix("sha256:")},
                }
            ],
            "predicateType": predicate_type,
            "predicate": predicate,
        }
    ).encode()


def envelope(payload: bytes, key: CosignKey) -> bytes:
    return json.dumps(
        {
            "payloadType": IN_TOTO,
            "payload": base64.b64encode(payload).decode(),
            "signatures": [{"keyid": "", "sig": key.sign(pae(IN_TOTO, payload))}],
        }
    ).encode()


def attest(registry: Registry, digest: str, statements: list[tuple[bytes, CosignKey]]) -> None:
    """`cosign attest --key` with the tag schema: one DSSE envelope per statement in `sha256-<hex>.att`."""
    layers = [
        (DSSE_ENVELOPE, envelope(payload, key), {"predicateType": json.loads(payload)["predicateType"]})
        for payload, key in statements
    ]
    registry.push_tag_layers(digest, "att", layers)


SOURCE = "https://github.com/acme/platform"
BUILDER = "https://github.com/acme/platform/.github/workflows/release.yml@refs/heads/main"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def provenance(source: str = SOURCE, builder: str = BUILDER, commit: str = COMMIT) -> dict[str, Any]:
    """SLSA v1 provenance as actions/attest-build-provenance writes it for a GitHub workflow."""
    return {
        "buildDefinition": {
            "buildType": "https://actions.github.io/buildtypes/workflow/v1",
            "externalParameters": {
                "workflow": {
                    "ref": "refs/heads/main",
                    "repository": source,
                    "path": ".github/workflows/release.yml",
                }
            },
            "internalParameters": {"github": {"event_name": "push"}},
            "resolvedDependencies": [
                {"uri": f"git+{source}@refs/heads/main", "digest": {"gitCommit": commit}}
            ],
        },
        "runDetails": {
            "builder": {"id": builder},
            "metadata": {"invocationId": f"{source}/actions/runs/1/attempts/1"},
        },
    }


def trivy_scan(finished: datetime, findings: list[tuple[str, str, str]]) -> dict[str, Any]:
    """cosign's vuln predicate holding a Trivy report; findings are (id, severity, fixed version or '')."""
    return {
        "invocation": {"uri": "", "event_id": "", "builder.id": ""},
        "scanner": {
            "uri": "pkg:github/aquasecurity/trivy@v0.58.0",
            "version": "0.58.0",
            "db": {"uri": "", "version": ""},
            "result": {
                "SchemaVersion": 2,
                "Results": [
                    {
                        "Target": "platform/api (debian 12)",
                        "Vulnerabilities": [
                            {
                                "VulnerabilityID": cve,
                                "PkgName": "libexample",
                                "Severity": severity,
                                "FixedVersion": fixed,
                            }
                            for cve, severity, fixed in findings
                        ],
                    }
                ],
            },
        },
        "metadata": {"scanStartedOn": finished.isoformat(), "scanFinishedOn": finished.isoformat()},
    }


NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
"""The engine double's clock at its start (release.testing.fake_clock): scans are dated from it."""
KEY = CosignKey("ci-cosign")
"""The build pipeline's cosign key in these tests."""
SLSA = "https://slsa.dev/provenance/v1"
SPDX = "https://spdx.dev/Document"
COSIGN_VULN = "https://cosign.sigstore.dev/attestation/vuln/v1"


def built(
    registry: Registry,
    marker: str,
    *,
    sign: CosignKey | None = KEY,
    signed_digest: str | None = None,
    source: str = SOURCE,
    builder: str = BUILDER,
    provenance_subject: str | None = None,
    scanned: datetime | None = NOW - timedelta(days=1),
    findings: list[tuple[str, str, str]] | None = None,
    sbom: bool = True,
    attest_with: CosignKey = KEY,
) -> str:
    """An image as the build workflow leaves it: pushed, signed, with provenance, a scan and an SBOM
    attested (each part can be left out or made wrong); its full reference."""
    digest = registry.push_image(marker)
    if sign is not None:
        sign_image(registry, digest, sign, signed_digest)
    statements: list[tuple[bytes, CosignKey]] = [
        (statement(provenance_subject or digest, SLSA, provenance(source, builder)), attest_with)
    ]
    if scanned is not None:
        statements.append((statement(digest, COSIGN_VULN, trivy_scan(scanned, findings or [])), attest_with))
    if sbom:
        statements.append((statement(digest, SPDX, spdx_sbom()), attest_with))
    attest(registry, digest, statements)
    return registry.image(digest)


def spdx_sbom() -> dict[str, Any]:
    return {"spdxVersion": "SPDX-2.3", "SPDXID": "SPDXRef-DOCUMENT", "name": "platform/api", "packages": []}
