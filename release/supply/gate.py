"""The supply-chain gate: verify an image against Pulumi.yaml's `supplyChain` before a release changes
anything, and refuse it where the stack enforces the policy.

`release deploy` and `release promote` call `check_image` before their first `up` (a promotion
verifies again: it never copies the source stack's verdict); `release verify-image` prints the
verdict alone. What the registry holds for a digest is read once per command (`RegistryImageVerifier`
keeps it), so a second look within one command costs only the judging.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol

from core.config.project import ProjectSettings
from core.config.supply_chain import StackSupplyChain, SupplyChainPolicy
from core.errors import SupplyChainRefusedError
from core.images import ImageRefError, parse_pinned_image
from release.log import Progress
from release.supply.evidence import Evidence, collect
from release.supply.keyless import keyless_check
from release.supply.registry import Credentials, Deadline, Limits, RefusedAnswerError, RegistryClient
from release.supply.verdict import VULNERABILITIES, Verdict, judge, unreadable


class ImageVerifier(Protocol):
    def verify(
        self,
        image: str,
        policy: SupplyChainPolicy,
        rule: StackSupplyChain,
        now: datetime,
        skip_vulnerabilities: bool = False,
    ) -> Verdict: ...


def registry_host(repository: str) -> tuple[str, str] | None:
    """(registry host, repository path) of `host[:port]/path`; None when no registry host is named."""
    host, _, path = repository.partition("/")
    if not path or not ("." in host or ":" in host or host == "localhost"):
        return None
    return host, path


@dataclass
class RegistryImageVerifier:
    """Verifies images against their registry (release.supply.registry), bounded by `limits`."""

    env: Mapping[str, str]
    project_dir: Path
    limits: Limits = field(default_factory=Limits)
    _evidence: dict[tuple[str, str, str], Evidence] = field(default_factory=dict)

    def verify(
        self,
        image: str,
        policy: SupplyChainPolicy,
        rule: StackSupplyChain,
        now: datetime,
        skip_vulnerabilities: bool = False,
    ) -> Verdict:
        try:
            reference = parse_pinned_image(image)
        except ImageRefError as error:
            return unreadable(image, rule, str(error), skip_vulnerabilities)
        located = registry_host(reference.repository)
        assert reference.digest is not None
        if located is None:
            return unreadable(
                image,
                rule,
                f"{reference.repository!r} names no registry host (host[:port]/path)",
                skip_vulnerabilities,
            )
        host, repository = located
        key = (reference.repository, reference.digest, _fingerprint(policy))
        evidence = self._evidence.get(key)
        if evidence is None:
            client = RegistryClient(
                host,
                self.limits,
                Credentials.for_host(host, self.env),
                Deadline(self.limits.deadline_seconds),
            )
            trusted_root = self.project_dir / policy.trusted_root if policy.trusted_root else None
            try:
                evidence = collect(
                    client,
                    repository,
                    reference.digest,
                    policy,
                    keyless_check(policy.signers.keyless, trusted_root),
                )
            except RefusedAnswerError as refusal:
                return unreadable(image, rule, f"{host}/{repository}: {refusal.reason}", skip_vulnerabilities)
            finally:
                client.close()
            self._evidence[key] = evidence
        return judge(image, evidence, policy, rule, now, skip_vulnerabilities)


def _fingerprint(policy: SupplyChainPolicy) -> str:
    return json.dumps(policy.signers.model_dump(mode="json"), sort_keys=True)


def check_image(
    project: ProjectSettings,
    verifier: ImageVerifier,
    stack: str,
    service: str,
    image: str,
    now: datetime,
    progress: Progress,
    break_glass: bool = False,
) -> Verdict | None:
    """The stack's verdict on `image` (None where the stack verifies no images); SupplyChainRefusedError
    (exit 2, before any change) where the stack enforces the policy and a requirement is unmet.
    Break-glass skips the vulnerability verdict only, never the signature, provenance or SBOM."""
    policy = project.supply_chain
    rule = project.stack_policies[stack].supply_chain if stack in project.stack_policies else None
    if policy is None or rule is None:
        return None
    verdict = verifier.verify(image, policy, rule, now, skip_vulnerabilities=break_glass)
    if break_glass and not any(
        item.name == VULNERABILITIES and not item.met for item in verdict.requirements
    ):
        verdict.skipped = []  # nothing was skipped: the verdict passed on its own
    progress(f"supply chain of {image} ({rule.mode.value} in {stack}):")
    for line in verdict.lines():
        progress(f"  {line}")
    if verdict.refuses:
        raise SupplyChainRefusedError(stack, service, image, [item.render() for item in verdict.unmet])
    if not verdict.passed:
        progress(f"  {stack} only reports (supplyChain mode: report): the release goes on")
    return verdict
