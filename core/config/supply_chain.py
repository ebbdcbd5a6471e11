"""Which images may run (Pulumi.yaml's `supplyChain`, project-level, and each stack policy's
`supplyChain` strictness): who may sign them, the provenance they need, the vulnerability verdict and
the SBOM. docs/supply-chain.md explains each field; release/supply/ checks an image against them.
"""

from __future__ import annotations

import re
from datetime import date
from enum import StrEnum
from typing import Annotated

from pydantic import Field, field_validator, model_validator

from core.config.base import ConfigModel, fullmatching
from core.config.signing import KEY_NAME

SLSA_PROVENANCE_V1 = "https://slsa.dev/provenance/v1"
GITHUB_ACTIONS_ISSUER = "https://token.actions.githubusercontent.com"
HTTPS_URL = re.compile(r"https://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~%@/+-]*)?")
"""An https URL with a host and an optional path (no credentials, query or fragment); fullmatch."""
WORKFLOW_IDENTITY = re.compile(
    r"(?P<repository>[A-Za-z0-9][A-Za-z0-9-]{0,38}/[A-Za-z0-9._-]{1,100})/\.github/workflows/"
    r"[A-Za-z0-9._-]+\.ya?ml@refs/(heads|tags)/[A-Za-z0-9._/-]+"
)
"""`owner/repo/.github/workflows/build.yml@refs/heads/main`: a GitHub workflow at a ref (fullmatch)."""
VULNERABILITY_ID = re.compile(
    r"(CVE-[0-9]{4}-[0-9]{4,}|GHSA(-[23456789cfghjmpqrvwx]{4}){3}|(?!CVE-|GHSA-)[A-Z]{2,10}-[0-9A-Za-z-]{4,40})"
)
"""CVE-2026-12345, GHSA-xxxx-xxxx-xxxx, or another database's id (DLA-3912-1, RUSTSEC-2026-0001)."""


class Severity(StrEnum):
    """A finding's severity as scanners report it (Trivy, Grype); `rank` orders them."""

    UNKNOWN = "UNKNOWN"
    NEGLIGIBLE = "NEGLIGIBLE"
    LOW = "LOW"
    MEDIUM = "MEDIUM"
    HIGH = "HIGH"
    CRITICAL = "CRITICAL"

    @property
    def rank(self) -> int:
        return list(Severity).index(self)

    @classmethod
    def of(cls, text: object) -> Severity:
        """A scanner's spelling ("High", "critical") as a Severity; anything else is UNKNOWN."""
        try:
            return cls(str(text).upper())
        except ValueError:
            return cls.UNKNOWN


class Enforcement(StrEnum):
    REPORT = "report"
    """verify and show the verdict; never refuse (dev)"""
    ENFORCE = "enforce"
    """refuse, before any change, an image that meets not every requirement (staging, production)"""


class KeylessSigner(ConfigModel):
    """A Sigstore (Fulcio) identity: the OIDC issuer and either the exact certificate identity
    (`subject`) or a GitHub workflow at a ref (`workflow`, this repository's build workflow)."""

    issuer: str = GITHUB_ACTIONS_ISSUER
    subject: str | None = None
    workflow: str | None = None

    @field_validator("issuer")
    @classmethod
    def _issuer(cls, issuer: str) -> str:
        if not HTTPS_URL.fullmatch(issuer):
            raise ValueError("must be the OIDC issuer's https URL, like " + GITHUB_ACTIONS_ISSUER)
        return issuer

    @field_validator("workflow")
    @classmethod
    def _workflow(cls, workflow: str | None) -> str | None:
        if workflow is not None and not WORKFLOW_IDENTITY.fullmatch(workflow):
            raise ValueError(
                "must name a workflow at a ref, like example-org/platform/.github/workflows/build.yml"
                "@refs/heads/main"
            )
        return workflow

    @model_validator(mode="after")
    def _one_identity(self) -> KeylessSigner:
        if (self.subject is None) == (self.workflow is None):
            raise ValueError("give exactly one of subject (the certificate identity) or workflow")
        return self

    @property
    def identity(self) -> str:
        """The certificate's identity (its SAN) this signer stands for."""
        if self.workflow is not None:
            return f"https://github.com/{self.workflow}"
        assert self.subject is not None
        return self.subject


class KeySigner(ConfigModel):
    """A public key (PEM) whose signatures count: a cosign key pair's `cosign.pub`, or a KMS key's
    exported public key (ECDSA P-256/P-384, RSA of 2048 bits or more, Ed25519)."""

    name: Annotated[str, fullmatching(KEY_NAME.pattern, "must be a short lower-case name like 'cosign-2026'")]
    public_key: str

    @field_validator("public_key")
    @classmethod
    def _pem(cls, text: str) -> str:
        # imported here: a project without key signers (and `release plan`) loads no crypto library
        from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
        from cryptography.hazmat.primitives.serialization import load_pem_public_key

        try:
            key = load_pem_public_key(text.encode())
        except ValueError as error:
            raise ValueError(
                "must be a PEM public key (-----BEGIN PUBLIC KEY-----), as cosign.pub"
            ) from error
        if isinstance(key, rsa.RSAPublicKey) and key.key_size < 2048:
            raise ValueError("an RSA key must have at least 2048 bits")
        if not isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey):
            raise ValueError("must be an ECDSA, RSA or Ed25519 public key")
        return text


class Signers(ConfigModel):
    keyless: list[KeylessSigner] = Field(default_factory=list)
    keys: list[KeySigner] = Field(default_factory=list)

    @model_validator(mode="after")
    def _someone(self) -> Signers:
        if not self.keyless and not self.keys:
            raise ValueError("name at least one keyless identity or public key")
        names = [key.name for key in self.keys]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"key names must be unique; repeated: {repeated}")
        return self


class ProvenanceRule(ConfigModel):
    """SLSA v1 provenance: built by one of `builder_ids`, from `source_repository`."""

    builder_ids: list[str] = Field(min_length=1)
    source_repository: str
    """The repository the image is built from, as provenance names it: https://github.com/<owner>/<repo>."""

    @field_validator("source_repository")
    @classmethod
    def _repository(cls, url: str) -> str:
        if not HTTPS_URL.fullmatch(url) or url.endswith("/"):
            raise ValueError(
                "must be the repository's https URL, like https://github.com/example-org/platform"
            )
        return url


class VulnerabilityException(ConfigModel):
    """A finding accepted until `expires` (inclusive), for `reason`; an expired one counts as a finding."""

    id: Annotated[
        str,
        fullmatching(
            VULNERABILITY_ID.pattern, "must be a vulnerability id like CVE-2026-12345 or GHSA-xxxx-xxxx-xxxx"
        ),
    ]
    reason: str = Field(min_length=10, max_length=300)
    expires: date


class VulnerabilityRule(ConfigModel):
    max_age_days: int = Field(ge=1, le=90, strict=True)
    """The newest scan attestation must have finished within this many days."""
    exceptions: list[VulnerabilityException] = Field(default_factory=list, max_length=100)

    @field_validator("exceptions")
    @classmethod
    def _unique(cls, exceptions: list[VulnerabilityException]) -> list[VulnerabilityException]:
        ids = [exception.id for exception in exceptions]
        repeated = sorted({text for text in ids if ids.count(text) > 1})
        if repeated:
            raise ValueError(f"one exception per vulnerability; repeated: {repeated}")
        return exceptions


class SupplyChainPolicy(ConfigModel):
    """Pulumi.yaml's `supplyChain` (project-level): what every image must prove, in every stack."""

    signers: Signers
    provenance: ProvenanceRule
    vulnerabilities: VulnerabilityRule
    require_sbom: bool = Field(default=True, strict=True)
    trusted_root: str | None = None
    """A Sigstore trusted-root JSON file (relative to the project) for keyless signatures; none: the
    public-good Sigstore root that ships with sigstore-python, read offline."""


class StackSupplyChain(ConfigModel):
    """A stack policy's `supplyChain`: how strictly that stack applies the project's policy."""

    mode: Enforcement
    refuse_severity: Severity | None = None
    """Any finding at or above this severity refuses the image (production: CRITICAL)."""
    refuse_fixable_severity: Severity | None = None
    """Any finding with a fix available at or above this severity refuses it (production: HIGH)."""
