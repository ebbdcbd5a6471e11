"""Benchmark: verifying one image digest against a real registry on 127.0.0.1 (Debian's
docker-registry; tests/oci_registry.py): cold (the first verification in a command: a new client,
every manifest, referrer and attestation read and checked) and cached (the same digest again in the
same command: release.supply.gate keeps what the registry held per digest). Targets: cold <= 300 ms,
cached <= 5 ms.

Run: `make bench-supply-chain` (needs Debian's `docker-registry`). Figures go in docs/development.md
(Benchmark).
"""

from __future__ import annotations

import shutil
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.config.supply_chain import Enforcement, Severity, StackSupplyChain, SupplyChainPolicy  # noqa: E402
from release.supply.gate import RegistryImageVerifier  # noqa: E402
from tests.oci_registry import (  # noqa: E402
    BUILDER,
    KEY,
    NOW,
    SIGSTORE_BUNDLE_V03,
    SOURCE,
    built,
    running_registry,
)

COLD_RUNS = 20
CACHED_RUNS = 200
COLD_TARGET_MS = 300
CACHED_TARGET_MS = 5
BUNDLE = ROOT / "tests" / "fixtures" / "sigstore" / "a.dsse.staging-rekor-v2.txt.sigstore.json"
PRODUCTION = StackSupplyChain(
    mode=Enforcement.ENFORCE, refuse_severity=Severity.CRITICAL, refuse_fixable_severity=Severity.HIGH
)


def policy(keyless: bool) -> SupplyChainPolicy:
    signers: dict[str, object] = {"keys": [KEY.as_signer()]}
    if keyless:
        identity = (
            "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/"
            "extremely-dangerous-oidc-beacon.yml@refs/heads/main"
        )
        signers["keyless"] = [{"subject": identity}]
    return SupplyChainPolicy.model_validate(
        {
            "signers": signers,
            "provenance": {"builderIds": [BUILDER], "sourceRepository": SOURCE},
            "vulnerabilities": {"maxAgeDays": 7},
            "trustedRoot": "tests/fixtures/sigstore/staging-trusted-root.json" if keyless else None,
        }
    )


def measure(image: str, the_policy: SupplyChainPolicy) -> tuple[list[float], list[float]]:
    cold, cached = [], []
    for _ in range(COLD_RUNS):
        verifier = RegistryImageVerifier({}, ROOT)
        started = time.perf_counter()
        verdict = verifier.verify(image, the_policy, PRODUCTION, NOW)
        cold.append((time.perf_counter() - started) * 1000)
        assert verdict.passed, verdict.lines()
    for _ in range(CACHED_RUNS):
        started = time.perf_counter()
        verifier.verify(image, the_policy, PRODUCTION, NOW)
        cached.append((time.perf_counter() - started) * 1000)
    return cold, cached


def main() -> int:
    if shutil.which("docker-registry") is None:
        print("docker-registry is not installed (Debian's `docker-registry` package)")
        return 2
    failed = False
    with running_registry() as registry:
        image = built(registry, "bench", findings=[("CVE-2026-0001", "MEDIUM", "1.0.1")] * 50)
        with_bundle = built(registry, "bench-keyless")
        registry.push_referrer(
            with_bundle.split("@")[1], SIGSTORE_BUNDLE_V03, SIGSTORE_BUNDLE_V03, BUNDLE.read_bytes()
        )
        for label, target, keyless in (
            ("key-signed (cosign key, 3 DSSE attestations, 50 findings)", image, False),
            ("the same plus a Sigstore bundle referrer verified offline", with_bundle, True),
        ):
            cold, cached = measure(target, policy(keyless))
            cold_median, cached_median = statistics.median(cold), statistics.median(cached)
            failed |= cold_median > COLD_TARGET_MS or cached_median > CACHED_TARGET_MS
            print(
                f"{label}: cold median {cold_median:6.1f} ms (max {max(cold):6.1f}, {COLD_RUNS} runs; "
                f"target <= {COLD_TARGET_MS}), cached median {cached_median:6.3f} ms "
                f"(max {max(cached):6.3f}, {CACHED_RUNS} runs; target <= {CACHED_TARGET_MS})"
            )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
