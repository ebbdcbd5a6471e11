"""The suite passes on any day: no code decides anything by the wall clock but through a `Clock`.

The release tool asks `ReleaseContext.clock` (release/clock.py: the system clock in a command, a
FakeClock in tests and benchmarks). This scans every module of ours with `ast` for a direct read of
the wall clock (`datetime.now`, `datetime.utcnow`, `date.today`, `time.time`); only the places named
below may read it, each for the reason given. `time.monotonic` measures durations and is allowed.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("core", "components", "release", "policy", "tests", "bench", "tools")
WALL_CLOCK = {("datetime", "now"), ("datetime", "utcnow"), ("date", "today"), ("time", "time")}
ALLOWED = {
    "release/clock.py": "the system clock itself",
    "tests/tls_certs.py": "certificates must be valid now for OpenSSL, which checks them by the real clock",
}


def _wall_clock_reads(path: Path, root: Path = ROOT) -> list[str]:
    reads = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            name = owner.attr if isinstance(owner, ast.Attribute) else getattr(owner, "id", "")
            if (name, node.func.attr) in WALL_CLOCK:
                reads.append(f"{path.relative_to(root)}:{node.lineno} {name}.{node.func.attr}()")
    return reads


def _our_modules() -> list[Path]:
    found = [ROOT / "__main__.py"]
    for package in PACKAGES:
        found += [
            path
            for path in sorted((ROOT / package).rglob("*.py"))
            if not {".venv", "node_modules"} & set(path.relative_to(ROOT).parts)
        ]
    return found


def test_nothing_reads_the_wall_clock_but_the_clock_module_and_the_named_exceptions() -> None:
    reads = [
        read
        for path in _our_modules()
        if str(path.relative_to(ROOT)) not in ALLOWED
        for read in _wall_clock_reads(path)
    ]
    assert reads == []


def test_the_scan_finds_a_wall_clock_read(tmp_path: Path) -> None:
    module = tmp_path / "sample.py"
    module.write_text("import time\nfrom datetime import datetime\nt = time.time()\nn = datetime.now()\n")
    assert _wall_clock_reads(module, tmp_path) == ["sample.py:3 time.time()", "sample.py:4 datetime.now()"]
