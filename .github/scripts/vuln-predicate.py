"""Wrap a Grype JSON report in cosign's vulnerability predicate (https://cosign.sigstore.dev/attestation/vuln/v1):
`cosign attest --type vuln` signs it as an in-toto statement about the image digest, and the release gate
(release/supply/verdict.py) reads the findings and `metadata.scanFinishedOn` back from it.

Usage: python3 vuln-predicate.py GRYPE_REPORT.json > PREDICATE.json
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path


def main(report_path: str) -> int:
    report = json.loads(Path(report_path).read_text())
    descriptor = report.get("descriptor") or {}
    version = str(descriptor.get("version", ""))
    finished = descriptor.get("timestamp") or datetime.now(UTC).isoformat()
    predicate = {
        "invocation": {"parameters": None, "uri": "", "event_id": "", "builder.id": ""},
        "scanner": {
            "uri": f"pkg:github/anchore/grype@v{version}" if version else "pkg:github/anchore/grype",
            "version": version,
            "db": {"uri": "", "version": str((descriptor.get("db") or {}).get("built", ""))},
            "result": report,
        },
        "metadata": {"scanStartedOn": finished, "scanFinishedOn": finished},
    }
    json.dump(predicate, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
