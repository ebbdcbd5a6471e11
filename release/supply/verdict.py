"""The verdict on one image: each requirement of the supply-chain policy met or not, with what was
found, and the claims a release records (signer, provenance, scan, SBOM).

Requirements, in the order they are shown:

    signature        a signature over the image digest by a policy signer (keyless identity or key)
    provenance       SLSA v1 provenance about the digest, signed by a policy signer, built by an allowed
                     builder.id from the policy's source repository
    vulnerabilities  a scan attestation (cosign's vuln predicate, holding a Trivy or Grype report) about
                     the digest, signed by a policy signer, finished within maxAgeDays, with no finding
                     at or above the stack's refuseSeverity, nor a fixable one at or above
                     refuseFixableSeverity, that an unexpired exception does not cover (an expired
                     exception counts as the finding it covered)
    sbom             an SPDX or CycloneDX attestation about the digest, signed by a policy signer
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from core.config.supply_chain import (
    SLSA_PROVENANCE_V1,
    Enforcement,
    Severity,
    StackSupplyChain,
    SupplyChainPolicy,
)
from release.supply.evidence import Evidence, Statement

COSIGN_VULN = "https://cosign.sigstore.dev/attestation/vuln/v1"
SBOM_TYPES = {"https://spdx.dev/Document": "spdx", "https://cyclonedx.org/bom": "cyclonedx"}
REQUIREMENTS = ("signature", "provenance", "vulnerabilities", "sbom")
VULNERABILITIES = "vulnerabilities"
MAX_FINDINGS_NAMED = 5


@dataclass(frozen=True)
class Requirement:
    name: str
    met: bool
    detail: str
    fix: str = ""

    def render(self) -> str:
        if self.met:
            return f"[{self.name}] ok: {self.detail}"
        return f"[{self.name}] {self.detail}\n      fix: {self.fix}"


@dataclass
class Verdict:
    image: str
    mode: Enforcement
    requirements: list[Requirement]
    claims: dict[str, Any] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    """Requirements break-glass skipped (only the vulnerability verdict may be)."""

    @property
    def unmet(self) -> list[Requirement]:
        return [item for item in self.requirements if not item.met and item.name not in self.skipped]

    @property
    def passed(self) -> bool:
        return not self.unmet

    @property
    def refuses(self) -> bool:
        return self.mode is Enforcement.ENFORCE and not self.passed

    def to_json(self) -> dict[str, Any]:
        """The claims a release records in its signed stage record (and `verify-image --json` prints)."""
        document: dict[str, Any] = {
            "verdict": "passed" if self.passed else ("refused" if self.refuses else "reported"),
            "mode": self.mode.value,
            **self.claims,
        }
        if self.unmet:
            document["unmet"] = [f"{item.name}: {item.detail}"[:300] for item in self.unmet]
        if self.skipped:
            document["skipped"] = list(self.skipped)
        return document

    def lines(self) -> list[str]:
        shown = []
        for item in self.requirements:
            if item.name in self.skipped:
                shown.append(f"[{item.name}] skipped (break-glass): {item.detail}")
            else:
                shown.append(item.render())
        return shown


def judge(
    image: str,
    evidence: Evidence,
    policy: SupplyChainPolicy,
    rule: StackSupplyChain,
    now: datetime,
    skip_vulnerabilities: bool = False,
) -> Verdict:
    claims: dict[str, Any] = {}
    requirements = [
        _signature(evidence, claims),
        _provenance(evidence, policy, claims),
        _vulnerabilities(evidence, policy, rule, now, claims),
        _sbom(evidence, policy, claims),
    ]
    skipped = [VULNERABILITIES] if skip_vulnerabilities else []
    return Verdict(image, rule.mode, requirements, claims, skipped)


def unreadable(
    image: str, rule: StackSupplyChain, reason: str, skip_vulnerabilities: bool = False
) -> Verdict:
    """Nothing could be verified: the registry's answer was refused (every requirement unmet, named)."""
    fix = (
        "make the registry answer within the bounds (docs/supply-chain.md#reading-the-registry), "
        "or check the reference"
    )
    requirements = [
        Requirement(name, False, f"not verified: the registry's answer was refused: {reason}", fix)
        for name in REQUIREMENTS
    ]
    return Verdict(image, rule.mode, requirements, {}, [VULNERABILITIES] if skip_vulnerabilities else [])


def _about(evidence: Evidence, statement: Statement) -> bool:
    return evidence.image_digest in statement.subjects


def _others(items: list[str]) -> str:
    return "; ".join(items[:MAX_FINDINGS_NAMED]) + (
        f"; and {len(items) - MAX_FINDINGS_NAMED} more" if len(items) > MAX_FINDINGS_NAMED else ""
    )


def _signature(evidence: Evidence, claims: dict[str, Any]) -> Requirement:
    fix = (
        "sign the digest in the build workflow (`cosign sign`), as a signer Pulumi.yaml's "
        "supplyChain.signers names"
    )
    good = [item for item in evidence.signatures if item.digest == evidence.image_digest]
    if good:
        claims["signer"] = good[0].signer
        return Requirement("signature", True, f"signed by {good[0].signer}")
    others = [f"{item.signer} signed {item.digest}, another image" for item in evidence.signatures]
    found = others + evidence.rejected
    if found:
        return Requirement("signature", False, f"no signature by a trusted signer: {_others(found)}", fix)
    return Requirement("signature", False, "unsigned: no signature found (referrers, tag .sig)", fix)


def _provenance(evidence: Evidence, policy: SupplyChainPolicy, claims: dict[str, Any]) -> Requirement:
    rule = policy.provenance
    fix = (
        f"attest SLSA v1 provenance in the build workflow (actions/attest-build-provenance) from "
        f"{rule.source_repository}, by a builder in supplyChain.provenance.builderIds"
    )
    candidates = [item for item in evidence.statements if item.predicate_type == SLSA_PROVENANCE_V1]
    problems = []
    for statement in candidates:
        if not _about(evidence, statement):
            problems.append(
                f"provenance signed by {statement.signer} is about "
                f"{', '.join(statement.subjects) or 'nothing'}, another image"
            )
            continue
        builder = _path(statement.predicate, "runDetails", "builder", "id")
        source, commit = _source(statement.predicate, rule.source_repository)
        if builder not in rule.builder_ids:
            problems.append(
                f"built by {builder or '(no builder.id)'}, not an allowed builder {rule.builder_ids}"
            )
        elif source is None:
            problems.append(
                f"built from {_any_source(statement.predicate) or '(no source)'}, "
                f"not {rule.source_repository}"
            )
        else:
            claims["provenance"] = {
                "builder": builder,
                "source": source,
                "commit": commit,
                "signer": statement.signer,
            }
            return Requirement("provenance", True, f"built by {builder} from {source}@{commit or '?'}")
    if problems:
        return Requirement("provenance", False, _others(problems), fix)
    return Requirement(
        "provenance",
        False,
        f"no SLSA provenance ({SLSA_PROVENANCE_V1}) about the digest{_unproved(evidence)}",
        fix,
    )


def _source(predicate: dict[str, Any], repository: str) -> tuple[str | None, str]:
    """(the source repository if it is `repository`, its commit), from GitHub's or a generic
    builder's provenance."""
    workflow = _path(predicate, "buildDefinition", "externalParameters", "workflow")
    dependencies = _path(predicate, "buildDefinition", "resolvedDependencies")
    commit = ""
    for dependency in dependencies if isinstance(dependencies, list) else []:
        uri = dependency.get("uri", "") if isinstance(dependency, dict) else ""
        if isinstance(uri, str) and (uri == f"git+{repository}" or uri.startswith(f"git+{repository}@")):
            found = (
                dependency.get("digest", {}).get("gitCommit")
                if isinstance(dependency.get("digest"), dict)
                else None
            )
            commit = found if isinstance(found, str) else ""
            return repository, commit
    if isinstance(workflow, dict) and workflow.get("repository") == repository:
        return repository, commit
    return None, ""


def _any_source(predicate: dict[str, Any]) -> str:
    workflow = _path(predicate, "buildDefinition", "externalParameters", "workflow")
    if isinstance(workflow, dict) and isinstance(workflow.get("repository"), str):
        return str(workflow["repository"])
    dependencies = _path(predicate, "buildDefinition", "resolvedDependencies")
    if isinstance(dependencies, list) and dependencies and isinstance(dependencies[0], dict):
        return str(dependencies[0].get("uri", ""))
    return ""


def _vulnerabilities(
    evidence: Evidence,
    policy: SupplyChainPolicy,
    rule: StackSupplyChain,
    now: datetime,
    claims: dict[str, Any],
) -> Requirement:
    settings = policy.vulnerabilities
    fix_scan = (
        "scan the digest and attest the result (cosign attest --type vuln) at most "
        f"{settings.max_age_days} days "
        "before releasing it"
    )
    scans = []
    problems = []
    for statement in evidence.statements:
        if statement.predicate_type != COSIGN_VULN:
            continue
        if not _about(evidence, statement):
            problems.append(
                f"a scan signed by {statement.signer} is about another image "
                f"({', '.join(statement.subjects)})"
            )
            continue
        finished = _time(_path(statement.predicate, "metadata", "scanFinishedOn"))
        if finished is None:
            problems.append(f"a scan signed by {statement.signer} has no readable metadata.scanFinishedOn")
            continue
        scans.append((finished, statement))
    if not scans:
        return Requirement(
            VULNERABILITIES,
            False,
            _others(problems) if problems else f"no scan attestation about the digest{_unproved(evidence)}",
            fix_scan,
        )
    finished, scan = max(scans, key=lambda pair: pair[0])
    age = now - finished
    scanner = _scanner(scan.predicate)
    findings = _findings(_path(scan.predicate, "scanner", "result"))
    today = now.astimezone(UTC).date()
    exceptions = {item.id: item for item in settings.exceptions}
    used, expired, blocking = [], [], []
    for finding_id, severity, fixable in findings:
        over = (rule.refuse_severity is not None and severity.rank >= rule.refuse_severity.rank) or (
            fixable
            and rule.refuse_fixable_severity is not None
            and severity.rank >= rule.refuse_fixable_severity.rank
        )
        if not over:
            continue
        exception = exceptions.get(finding_id)
        if exception is not None and exception.expires >= today:
            used.append(finding_id)
        elif exception is not None:
            expired.append(
                f"{finding_id} ({severity}): its exception expired on {exception.expires.isoformat()}"
            )
        else:
            blocking.append(f"{finding_id} ({severity}{', fix available' if fixable else ''})")
    counts = Counter(str(severity) for _, severity, _ in findings)
    claims["scan"] = {
        "scanner": scanner,
        "finishedAt": finished.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "counts": {
            str(severity): counts.get(str(severity), 0)
            for severity in reversed(Severity)
            if counts.get(str(severity))
        },
        "exceptionsUsed": sorted(set(used)),
        "signer": scan.signer,
    }
    problems, fixes = [], []
    if age > timedelta(days=settings.max_age_days):
        problems.append(
            f"the newest scan ({scanner}) finished {age.days} days ago, on {finished.date().isoformat()}; "
            f"the policy asks for one within {settings.max_age_days} days"
        )
        fixes.append(fix_scan)
    if expired or blocking:
        found = expired + blocking
        problems.append(
            f"{len(found)} finding(s) at or above the threshold ({_threshold(rule)}): {_others(found)}"
        )
        fixes.append(
            "rebuild on fixed packages, or add an exception (id, reason, expires) to "
            "supplyChain.vulnerabilities.exceptions in Pulumi.yaml (docs/supply-chain.md#exceptions)"
        )
    if problems:
        return Requirement(VULNERABILITIES, False, "; and ".join(problems), "; or ".join(fixes))
    summary = (
        ", ".join(f"{count} {name}" for name, count in claims["scan"]["counts"].items()) or "no findings"
    )
    excepted = f"; exceptions used: {', '.join(sorted(set(used)))}" if used else ""
    return Requirement(
        VULNERABILITIES, True, f"{scanner}, {age.days} days old: {summary} ({_threshold(rule)}){excepted}"
    )


def _threshold(rule: StackSupplyChain) -> str:
    parts = []
    if rule.refuse_severity is not None:
        parts.append(f"none {rule.refuse_severity} or above")
    if rule.refuse_fixable_severity is not None:
        parts.append(f"none fixable {rule.refuse_fixable_severity} or above")
    return "; ".join(parts) or "no severity threshold"


def _findings(result: object) -> list[tuple[str, Severity, bool]]:
    """(id, severity, fix available) of every finding in a Trivy or Grype JSON report."""
    found: list[tuple[str, Severity, bool]] = []
    if not isinstance(result, dict):
        return found
    for section in result.get("Results") or [] if isinstance(result.get("Results"), list) else []:
        for item in section.get("Vulnerabilities") or [] if isinstance(section, dict) else []:
            if isinstance(item, dict):
                found.append(
                    (
                        str(item.get("VulnerabilityID", "?")),
                        Severity.of(item.get("Severity")),
                        bool(item.get("FixedVersion")),
                    )
                )
    for match in result.get("matches") or [] if isinstance(result.get("matches"), list) else []:
        vulnerability = match.get("vulnerability") if isinstance(match, dict) else None
        if isinstance(vulnerability, dict):
            fix = vulnerability.get("fix")
            fixable = isinstance(fix, dict) and fix.get("state") == "fixed"
            found.append(
                (str(vulnerability.get("id", "?")), Severity.of(vulnerability.get("severity")), fixable)
            )
    return found


def _scanner(predicate: dict[str, Any]) -> str:
    uri = _path(predicate, "scanner", "uri")
    version = _path(predicate, "scanner", "version")
    name = str(uri or "(unnamed scanner)")
    return f"{name} {version}" if version and str(version) not in name else name


def _sbom(evidence: Evidence, policy: SupplyChainPolicy, claims: dict[str, Any]) -> Requirement:
    fix = "attest an SBOM of the digest in the build workflow (cosign attest --type spdxjson or cyclonedx)"
    for statement in evidence.statements:
        kind = next(
            (name for prefix, name in SBOM_TYPES.items() if statement.predicate_type.startswith(prefix)), None
        )
        if kind and _about(evidence, statement):
            claims["sbom"] = {"format": kind, "digest": statement.digest, "signer": statement.signer}
            return Requirement("sbom", True, f"{kind} SBOM attestation {statement.digest}")
    if not policy.require_sbom:
        return Requirement("sbom", True, "not required (supplyChain.requireSbom: false)")
    return Requirement(
        "sbom", False, f"no SPDX or CycloneDX attestation about the digest{_unproved(evidence)}", fix
    )


def _unproved(evidence: Evidence) -> str:
    """What was found but proved nothing, so a requirement that found nothing says why."""
    if not evidence.rejected:
        return " signed by a policy signer"
    found = _others(evidence.rejected)
    return f" signed by a policy signer ({len(evidence.rejected)} found that proved nothing: {found})"


def _path(document: object, *keys: str) -> Any:
    for key in keys:
        if not isinstance(document, dict):
            return None
        document = document.get(key)
    return document


def _time(text: object) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None
