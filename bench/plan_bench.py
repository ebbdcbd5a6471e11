"""Benchmark: how long evaluating the program under the mock runtime takes, and how it grows.

Prints, on this machine:
- the SDK import floor (pulumi, pulumi-kubernetes and pulumi-aws modules the program uses), paid once
  per process;
- per stack, the program's own evaluation (after the imports);
- `release plan --all` end to end, as a newcomer runs it (a fresh process: imports included);
- the program's evaluation with 1, 10 and 100 services (synthetic copies of the project), so growth
  is visible.

Run: `make bench` (or `.venv/bin/python bench/plan_bench.py`). Figures go in docs/development.md (Benchmark).
"""

from __future__ import annotations

import copy
import importlib
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SDK_MODULES = [
    "pulumi",
    "pulumi_aws",
    "pulumi_aws.rds",
    "pulumi_kubernetes",
    "pulumi_kubernetes.apps.v1",
    "pulumi_kubernetes.batch.v1",
    "pulumi_kubernetes.core.v1",
    "pulumi_kubernetes.meta.v1",
    "pulumi_kubernetes.networking.v1",
    "pulumi_kubernetes.policy.v1",
]
REPEATS = 3
PAIRS = 5
PLAN_TARGET_RATIO = 1.5
"""`release plan --all` at most this many times the import floor of the SDKs it loads (paired)."""
PER_STACK_TARGET_SECONDS = 3.0
"""`release plan` of one stack of 100 services, end to end."""
OUR_PACKAGES = {"core", "release", "components", "policy", "__main__", "bench", "tests"}
SERVICE_COUNTS = (1, 10, 100)
TEST_ONLY_SECRET = "bench-only-placeholder"


def measure_imports() -> float:
    start = time.perf_counter()
    for module in SDK_MODULES:
        importlib.import_module(module)
    return time.perf_counter() - start


def evaluate(project_dir: Path, stack: str) -> tuple[float, int]:
    from core.config.sources import read_stack_file, stack_secret_names_of
    from release.offline.plan import evaluate_stack_file

    stack_file = read_stack_file(project_dir, stack, stack_secret_names_of(project_dir))
    start = time.perf_counter()
    run = evaluate_stack_file(project_dir, stack_file)
    return time.perf_counter() - start, len([r for r in run.resources if r.custom])


def median_evaluation(project_dir: Path, stack: str) -> tuple[float, int]:
    evaluate(project_dir, stack)  # warm-up: first use of each resource class
    timings = [evaluate(project_dir, stack) for _ in range(REPEATS)]
    return statistics.median(seconds for seconds, _ in timings), timings[0][1]


PIN_TO_ONE_CORE = (
    "import os, sys; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}); "
    "os.execv(sys.argv[1], sys.argv[1:])"
)
"""Run as `python -c PIN_TO_ONE_CORE command...`: the command, on one core."""


def plan_all_wall_time(
    *extra: str, project_dir: Path = ROOT, stacks: tuple[str, ...] = (), one_core: bool = False
) -> float:
    """`release plan` (default `--all`) in a fresh process, policy checks included; median of three.
    `one_core` pins it to one core, where it evaluates the stacks one after the other."""
    release = str(Path(sys.executable).with_name("release"))
    command = [release, "plan", *(list(stacks) or ["--all"]), *extra, "--project-dir", str(project_dir)]
    if one_core:  # a launcher pins it (a preexec_fn would fork this process, which has run gRPC)
        command = [sys.executable, "-c", PIN_TO_ONE_CORE, *command]
    timings = []
    for _ in range(3):
        start = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        timings.append(time.perf_counter() - start)
    return statistics.median(timings)


def modules_a_plan_loads() -> list[str]:
    """The third-party modules (SDKs and what they import) a fresh `release plan --all` holds at its end."""
    script = (
        "import json, sys\n"
        "from release.cli import main\n"
        f"main(['plan', '--all', '--quiet', '--project-dir', {str(ROOT)!r}])\n"
        "sys.stderr.write('MODULES=' + json.dumps(sorted(sys.modules)) + '\\n')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True, timeout=120
    )
    line = next(line for line in done.stderr.splitlines() if line.startswith("MODULES="))
    loaded = json.loads(line.removeprefix("MODULES="))
    return [
        name
        for name in loaded
        if name.split(".")[0] not in OUR_PACKAGES and name.split(".")[0] not in sys.stdlib_module_names
    ]


def paired_plan_and_floor(modules: list[str]) -> tuple[float, float, float]:
    """Medians of PAIRS alternating runs: a fresh interpreter importing `modules` (the floor: what any
    tool evaluating this program with these SDKs pays) and a fresh `release plan --all`; and the
    median of the per-pair ratios, so both see the same machine load."""
    release = Path(sys.executable).with_name("release")
    floor_script = (
        "import importlib, contextlib\n"
        f"for name in {modules!r}:\n"
        "    with contextlib.suppress(Exception):\n"
        "        importlib.import_module(name)\n"
    )
    floors, plans = [], []
    for _ in range(PAIRS):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", floor_script], cwd=ROOT, check=True, timeout=120)
        floors.append(time.perf_counter() - start)
        start = time.perf_counter()
        subprocess.run(
            [str(release), "plan", "--all", "--project-dir", str(ROOT)],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=120,
        )
        plans.append(time.perf_counter() - start)
    ratio = statistics.median(plan / floor for plan, floor in zip(plans, floors, strict=True))
    return statistics.median(floors), statistics.median(plans), ratio


def verdict(value: float, target: float) -> str:
    return "met" if value <= target else "MISSED"


def synthetic_project(destination: Path, count: int) -> Path:
    """A copy of the project whose Pulumi.yaml declares `count` services (every other one migrates)."""
    from core.config.pulumi_yaml import load_pulumi_yaml

    for path in [ROOT / "__main__.py", *ROOT.glob("Pulumi*.yaml")]:
        shutil.copy(path, destination / path.name)
    project = load_pulumi_yaml(ROOT / "Pulumi.yaml")
    template = project["config"]["services"]["value"][0]
    services = []
    for index in range(count):  # deep copies: a shared object would be dumped as a (refused) alias
        service = {**copy.deepcopy(template), "name": f"svc{index:03d}"}
        if index % 2:
            service.pop("migration", None)
        services.append(service)
    project["config"]["services"]["value"] = services
    suites = project["config"]["smoke"]["value"]["suites"]  # each service gets api's smoke suite
    project["config"]["smoke"]["value"]["suites"] = {
        service["name"]: copy.deepcopy(suites["api"]) for service in services
    }
    (destination / "Pulumi.yaml").write_text(yaml.safe_dump(project, sort_keys=False))
    for stack in ("dev", "staging", "production"):  # every stack releases every service as it does api
        stack_file = load_pulumi_yaml(ROOT / f"Pulumi.{stack}.yaml")
        api = stack_file["config"]["platform:releases"]["api"]
        stack_file["config"]["platform:releases"] = {
            service["name"]: copy.deepcopy(api) for service in services
        }
        (destination / f"Pulumi.{stack}.yaml").write_text(yaml.safe_dump(stack_file, sort_keys=False))
    return destination


def main() -> None:
    modules = modules_a_plan_loads()
    floor, plan, ratio = paired_plan_and_floor(modules)
    print(
        f"import floor: {len(modules)} SDK modules a plan loads, fresh process: {floor:6.2f} s  "
        f"(median of {PAIRS})"
    )
    print(f"release plan --all, fresh process, paired with the floor:  {plan:6.2f} s  (median of {PAIRS})")
    print(
        f"plan / floor, median of the pairs: {ratio:.2f}x  "
        f"(target <= {PLAN_TARGET_RATIO}x: {verdict(ratio, PLAN_TARGET_RATIO)})"
    )
    imports = measure_imports()
    print(f"the program's SDK modules alone, this process: {imports:6.2f} s")
    for stack in ("dev", "staging", "production"):
        seconds, resources = median_evaluation(ROOT, stack)
        print(f"program evaluation, stack {stack:<11}      {seconds:6.3f} s  ({resources} resources)")
    print(f"release plan --all, end to end (3 stacks): {plan_all_wall_time():6.2f} s  (fresh process)")
    with tempfile.TemporaryDirectory() as out:
        seconds = plan_all_wall_time("--out", out)
    print(
        f"release plan --all --out DIR (3 stacks):   {seconds:6.2f} s  (policies + manifests; target < 5 s)"
    )
    with tempfile.TemporaryDirectory() as directory, tempfile.TemporaryDirectory() as out:
        project = synthetic_project(Path(directory), 100)
        seconds = plan_all_wall_time("--out", out, project_dir=project, stacks=("dev",))
    print(f"release plan dev --out DIR, 100 services:  {seconds:6.2f} s  (policies + manifests)")
    with tempfile.TemporaryDirectory() as directory:
        project = synthetic_project(Path(directory), 100)
        seconds = plan_all_wall_time(project_dir=project, stacks=("dev",))
    print(
        f"release plan dev, 100 services, end to end:  {seconds:6.2f} s  "
        f"(target <= {PER_STACK_TARGET_SECONDS:g} s per stack: {verdict(seconds, PER_STACK_TARGET_SECONDS)})"
    )
    with tempfile.TemporaryDirectory() as directory:
        project = synthetic_project(Path(directory), 100)
        in_workers = plan_all_wall_time(project_dir=project)
        one_core = plan_all_wall_time(project_dir=project, one_core=True)
    print(
        f"release plan --all, 100 services (3 stacks): {in_workers:6.2f} s in workers, "
        f"{one_core:6.2f} s pinned to one core (one stack after the other)"
    )
    rows: list[dict[str, Any]] = []
    for count in SERVICE_COUNTS:
        with tempfile.TemporaryDirectory() as directory:
            seconds, resources = median_evaluation(synthetic_project(Path(directory), count), "dev")
        rows.append({"services": count, "seconds": seconds, "resources": resources})
        print(
            f"program evaluation with {count:>3} service(s):      {seconds:6.3f} s  ({resources} resources, "
            f"{1000 * seconds / resources:.2f} ms/resource)"
        )
    first, last = rows[0], rows[-1]
    growth = (last["seconds"] - first["seconds"]) / (last["services"] - first["services"])
    print(f"growth: {1000 * growth:.1f} ms per added service")


if __name__ == "__main__":
    main()
