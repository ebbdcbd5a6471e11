"""Scan every stack's rendered Kubernetes manifests with checkov: no failed check but the skips listed
in tools/checkov/skips.yaml, each with its reason.

    .venv/bin/python tools/checkov/scan.py [--checkov PATH] [--out DIR | --rendered DIR] [--json]

Renders the manifests offline (`release plan --all --out DIR`), runs checkov once per stack with that
stack's skips, and exits 1 on any failed check, any file checkov could not parse, or a skip that no
longer skips anything; 2 when the skip list itself is malformed. Prints one line per stack.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
SKIPS = Path(__file__).with_name("skips.yaml")
DEFAULT_CHECKOV = Path(__file__).with_name(".venv") / "bin" / "checkov"
CHECKOV_SECONDS = 300


@dataclass(frozen=True)
class Skip:
    check: str
    stacks: tuple[str, ...]
    reason: str


@dataclass
class StackScan:
    stack: str
    passed: int = 0
    failed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    parsing_errors: list[str] = field(default_factory=list)
    stale_skips: list[str] = field(default_factory=list)
    strict_skips: bool = False
    """A stale skip fails the scan only when strict: a release can pin every image of a stack whose
    policy allows tags (dev), and the skip is needed again once a branch tag is deployed there."""

    @property
    def clean(self) -> bool:
        return not (self.failed or self.parsing_errors or (self.strict_skips and self.stale_skips))

    def line(self) -> str:
        verdict = "clean" if self.clean else "FAILED"
        parts = [f"{self.passed} passed", f"{len(self.failed)} failed", f"{len(self.skipped)} skipped"]
        details = self.failed + [f"cannot parse {name}" for name in self.parsing_errors]
        stale = "remove it" if self.strict_skips else "a warning (--strict-skips fails on it)"
        details += [f"stale skip {check}: it skips nothing now, {stale}" for check in self.stale_skips]
        return f"{self.stack}: {verdict} ({', '.join(parts)})" + "".join(f"\n  {item}" for item in details)


def read_skips(path: Path = SKIPS) -> list[Skip]:
    """The skip list; a skip without a check id, stacks or a one-line reason is refused."""
    entries = yaml.safe_load(path.read_text()) or []
    skips, problems = [], []
    for number, entry in enumerate(entries if isinstance(entries, list) else [None], start=1):
        if not isinstance(entry, dict) or set(entry) != {"check", "stacks", "reason"}:
            problems.append(f"entry {number}: needs exactly check, stacks and reason")
            continue
        reason = str(entry["reason"]).strip()
        if not reason or "\n" in reason:
            problems.append(f"entry {number} ({entry['check']}): the reason must be one line")
            continue
        skips.append(Skip(str(entry["check"]), tuple(str(stack) for stack in entry["stacks"]), reason))
    if problems:
        raise ValueError(f"{path}: " + "; ".join(problems))
    return skips


def scan_stack(checkov: Path, directory: Path, skips: list[Skip]) -> StackScan:
    """Every check runs; a failure the skip list names for this stack counts as skipped, and a skip
    that matches no failure is stale (checkov's own --skip-check would hide both)."""
    stack = directory.name
    mine = {skip.check for skip in skips if stack in skip.stacks}
    command = [str(checkov), "-d", str(directory), "--framework", "kubernetes", "-o", "json", "--soft-fail"]
    answer = subprocess.run(command, capture_output=True, text=True, timeout=CHECKOV_SECONDS, check=False)
    if answer.returncode != 0:
        raise RuntimeError(f"checkov exited {answer.returncode} on {stack}: {answer.stderr.strip()[-500:]}")
    report: Any = json.loads(answer.stdout)
    results = report[0] if isinstance(report, list) else report
    scan = StackScan(stack)
    if "results" not in results:  # checkov found nothing to scan
        scan.parsing_errors.append(f"{directory}: no Kubernetes resources")
        return scan
    found = results["results"]
    scan.passed = len(found["passed_checks"])
    for check in found["failed_checks"]:
        where = f"{check['resource']} ({Path(check['file_path']).name})"
        text = f"{check['check_id']} {where}: {check['check_name']}"
        (scan.skipped if check["check_id"] in mine else scan.failed).append(text)
    scan.parsing_errors = list(found.get("parsing_errors", []))
    used = {check["check_id"] for check in found["failed_checks"]}
    scan.stale_skips = sorted(mine - used)
    return scan


def render(out: Path, project_dir: Path = ROOT) -> list[Path]:
    """`release plan --all --out`: every stack's manifests, offline."""
    release = Path(sys.executable).with_name("release")
    command = [str(release), "plan", "--all", "--quiet", "--project-dir", str(project_dir), "--out", str(out)]
    subprocess.run(command, check=True, capture_output=True)
    return sorted(path for path in out.iterdir() if path.is_dir())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkov", type=Path, default=DEFAULT_CHECKOV)
    parser.add_argument("--out", type=Path, default=None, help="render here (default: a temporary directory)")
    parser.add_argument(
        "--rendered", type=Path, default=None, help="scan these stack directories as they are"
    )
    parser.add_argument(
        "--project-dir", type=Path, default=ROOT, help="render this project (default: the repository)"
    )
    parser.add_argument(
        "--strict-skips", action="store_true", help="fail on a skip that skips nothing (default: warn)"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    try:
        skips = read_skips()
    except (ValueError, yaml.YAMLError) as error:
        print(f"checkov skips: {error}", file=sys.stderr)
        return 2
    if not args.checkov.exists():
        print(f"checkov: {args.checkov} does not exist (make check installs it)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as scratch:
        out = args.out or Path(scratch)
        stacks = (
            sorted(path for path in args.rendered.iterdir() if path.is_dir())
            if args.rendered
            else render(out, args.project_dir)
        )
        scans = [scan_stack(args.checkov, directory, skips) for directory in stacks]
    for scan in scans:
        scan.strict_skips = args.strict_skips
    if args.json:
        print(json.dumps([scan.__dict__ | {"clean": scan.clean} for scan in scans], indent=2))
    else:
        print("\n".join(scan.line() for scan in scans))
    return 0 if scans and all(scan.clean for scan in scans) else 1


if __name__ == "__main__":
    sys.exit(main())
