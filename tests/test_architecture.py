"""The layout's one rule: every import points one way.

    __main__.py -> components -> core        policy -> core        release -> core (and components
                                                                   only through the mock runtime)

Read from the source with `ast` (every import statement, including those under TYPE_CHECKING and
inside functions), so a cycle or a wrong-way arrow fails here before anyone trips over it.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import stdout_of_a_fresh_python

ROOT = Path(__file__).resolve().parents[1]
OUR_PACKAGES = ("core", "components", "release", "policy", "tests", "bench")
SDK_RESOURCE_PACKAGES = ("pulumi_kubernetes", "pulumi_aws", "pulumi_policy")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> Iterator[str]:
    """Every module `path` imports (absolute names; `from a import b` yields `a` and `a.b`)."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def _sources(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def _top(module: str) -> str:
    return module.split(".", 1)[0]


def _wrong_way(packages: tuple[str, ...], forbidden: tuple[str, ...]) -> list[str]:
    return [
        f"{path.relative_to(ROOT)} imports {module}"
        for package in packages
        for path in _sources(package)
        for module in sorted(set(_imports(path)))
        if _top(module) in forbidden
    ]


def test_the_program_its_components_core_and_the_policy_pack_never_import_the_release_tool() -> None:
    assert _wrong_way(("core", "components", "policy"), ("release", "tests", "bench")) == []
    program = [module for module in _imports(ROOT / "__main__.py") if _top(module) in ("release", "policy")]
    assert program == []


DATA_PROGRAM = ("data_program", "database_snapshots", "scratch_database")


def test_the_data_program_uses_only_core_components_and_aws() -> None:
    """`platform-data` is its own project with one provider: AWS. Its modules never reach the release
    tool (which runs it as an inline program) nor Kubernetes."""
    forbidden = ("release", "tests", "bench", "policy", "pulumi_kubernetes")
    wrong = [
        f"components/{module}.py imports {imported}"
        for module in DATA_PROGRAM
        for imported in sorted(set(_imports(ROOT / "components" / f"{module}.py")))
        if _top(imported) in forbidden
        or (_top(imported) == "components" and imported.split(".")[1] not in DATA_PROGRAM)
    ]
    assert wrong == []


def test_core_imports_neither_components_nor_the_sdk_resource_packages() -> None:
    assert _wrong_way(("core",), ("components", "policy", *SDK_RESOURCE_PACKAGES)) == []


def test_the_policy_pack_imports_only_core_of_ours() -> None:
    assert _wrong_way(("policy",), ("components", "release")) == []


def test_the_release_tool_builds_urns_without_importing_components() -> None:
    """Release logic never loads the program's components. The two engines are the exception, and
    only for the data program, an inline program the engine itself runs (core.data_plan)."""
    importers = {
        (str(path.relative_to(ROOT)), module)
        for path in _sources("release")
        for module in _imports(path)
        if _top(module) == "components"
    }
    engines = {"release/engine/automation.py", "release/testing/fake_engine.py"}
    assert {
        (path, module)
        for path, module in importers
        if path not in engines or not module.startswith("components.data_program")
    } == set()


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(path): path for package in OUR_PACKAGES[:4] for path in _sources(package)}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        graph[name] = {module for module in _imports(path) if module in modules and module != name}
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle of `graph` (empty: none), by depth-first search."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = "open"
        stack.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                return [*stack[stack.index(target) :], target]
            if target not in state and (found := visit(target)):
                return found
        stack.pop()
        state[node] = "done"
        return []

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return []


def test_no_module_of_ours_takes_part_in_an_import_cycle() -> None:
    assert _cycle(_graph()) == []


@pytest.mark.parametrize("package", ["core", "components", "release", "policy"])
def test_every_package_directory_is_a_package(package: str) -> None:
    directories = {path.parent for path in _sources(package)}
    assert [str(d) for d in directories if not (d / "__init__.py").exists()] == []


def _functions(path: Path) -> list[ast.FunctionDef]:
    return [node for node in ast.parse(path.read_text()).body if isinstance(node, ast.FunctionDef)]


def test_the_cli_only_builds_the_parser_and_runs_one_command() -> None:
    """Every rule lives in a command, a flow or core; release/cli.py parses, dispatches, catches."""
    assert sorted(function.name for function in _functions(ROOT / "release" / "cli.py")) == [
        "_internal_error_line",
        "build_parser",
        "main",
    ]


def test_every_verb_is_one_module_with_add_parser_and_run() -> None:
    from release.commands import COMMANDS

    for command in COMMANDS:
        assert callable(command.add_parser) and callable(command.run), command.__name__


def test_commands_return_exit_codes_from_the_one_table_never_bare_numbers() -> None:
    """`return 2` in a command would be a second exit-code table; ExitCode (core.errors) is the one."""
    bare = [
        f"{path.relative_to(ROOT)}:{node.lineno}"
        for path in [ROOT / "release" / "cli.py", *sorted((ROOT / "release" / "commands").glob("*.py"))]
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Return)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, int)
    ]
    assert bare == []


NOT_FOR_PLAN = (
    "release.flows",
    "release.history",
    "release.report",
    "release.analysis",
    "release.data",
    "release.github",
    "release.notify",
    "release.gates",
    "psycopg",
    "cryptography",
)
"""What running `release plan` does not need: commands and the context import these where they use
them (inside `run`, or a collaborator's property), so a plan pays for none of them."""


def test_release_plan_loads_no_release_flow_database_driver_or_signing_library() -> None:
    script = (
        "import contextlib, io, json, sys\n"
        "from release.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    code = main(['plan', 'dev', '--quiet', '--project-dir', {str(ROOT)!r}])\n"
        "print(json.dumps([code, sorted(sys.modules)]))\n"
    )
    code, modules = json.loads(stdout_of_a_fresh_python(script))
    assert code == 0
    assert [m for m in modules if m == "release.offline.plan"], "the plan ran"
    assert [m for m in modules if m.startswith(NOT_FOR_PLAN)] == []
