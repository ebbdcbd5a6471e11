"""The documents hold: every `release` command the README and docs/ show still parses as written (the
same verbs, flags and argument shapes; placeholders like `<digest>` and `${VAR}` are filled in first),
and nothing of ours refers to a path outside the repository (a fresh clone has only the repository)."""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest

from release.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```[a-z]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
PLACEHOLDER = {"<digest>": "a" * 64, "<hotfix>": "b" * 64, "<64 hex digits>": "c" * 64}


def _commands() -> list[tuple[str, str]]:
    found = []
    for document in DOCUMENTS:
        for block in FENCE.findall(document.read_text()):
            for line in block.replace("\\\n", " ").splitlines():
                command = line.strip()
                if command.startswith(".venv/bin/release "):
                    found.append((f"{document.name}: {command}", command))
    return found


def _filled(command: str) -> list[str]:
    for placeholder, value in PLACEHOLDER.items():
        command = command.replace(placeholder, value)
    command = re.sub(r"\$\{VERSION:\+[^}]*\}", "", command)
    command = re.sub(r"\$\{[A-Z_]+\}", "staging", command)
    return shlex.split(command, comments=True)[1:]


def test_the_docs_show_release_commands() -> None:
    assert len(_commands()) >= 20


@pytest.mark.parametrize(("where", "command"), _commands(), ids=[where for where, _ in _commands()])
def test_a_documented_command_parses(where: str, command: str) -> None:
    build_parser().parse_args(_filled(command))


SKIPPED_DIRS = {".git", ".venv", "node_modules", "__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache"}
"""Not ours: installed packages (.venv, tools/checkov/.venv, node_modules), git and tool caches."""
SKIPPED_TREES = [ROOT / "tests" / "fixtures"]
LINK = re.compile(r"\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
CODE_PATH = re.compile(r"`(\.\./[^`\s]*)`")
"""A path in a code span that climbs out of its directory (`../...`): a reference as much as a link."""
OUTSIDE = re.compile("|".join([re.escape(".." + "/shared"), r"(?<![\w.~/-])/" + "work/"]))
"""The developers' notes directory beside the repository, reached by climbing out of it, or an
absolute path under the machine's work directory; spelt in pieces so this file does not match itself."""


def _our_files(*patterns: str) -> Iterator[Path]:
    for directory, subdirectories, names in os.walk(ROOT):
        here = Path(directory)
        subdirectories[:] = [
            name
            for name in subdirectories
            if name not in SKIPPED_DIRS and not name.endswith(".egg-info")
            if here / name not in SKIPPED_TREES
        ]
        for name in names:
            if any(Path(name).match(pattern) for pattern in patterns):
                yield here / name


def _references(text: str) -> Iterator[str]:
    for target in LINK.findall(text):
        if not re.match(r"(https?|mailto):|#", target):
            yield target.split("#", 1)[0]
    yield from CODE_PATH.findall(text)


def references_outside(document: Path, root: Path) -> list[str]:
    """Each relative link (or `../` path in a code span) of a Markdown file that leaves `root` or
    names nothing, resolved against the file's own directory."""
    problems = []
    for target in _references(document.read_text()):
        resolved = (document.parent / target).resolve()
        if not resolved.is_relative_to(root):
            problems.append(f"{target} (outside the repository: {resolved})")
        elif not resolved.exists():
            problems.append(f"{target} (no such file: {resolved.relative_to(root)})")
    return problems


def test_a_link_that_leaves_the_repository_is_found(tmp_path: Path) -> None:
    (tmp_path / "repo" / "docs").mkdir(parents=True)
    (tmp_path / "notes.md").write_text("# notes\n")
    document = tmp_path / "repo" / "docs" / "a.md"
    document.write_text("[notes](../../notes.md#rollback) [gone](gone.md) [web](https://x.test) [up](#up)")

    found = references_outside(document, tmp_path / "repo")

    assert [problem.split(" ")[0] for problem in found] == ["../../notes.md", "gone.md"]


def test_no_markdown_file_refers_to_a_path_outside_the_repository() -> None:
    documents = list(_our_files("*.md"))
    problems = [
        f"{document.relative_to(ROOT)}: {problem}"
        for document in documents
        for problem in references_outside(document, ROOT)
    ]
    assert len(documents) >= 10
    assert problems == []


def test_no_file_of_ours_names_a_path_beside_the_repository() -> None:
    files = [*_our_files("*.md", "*.py", "*.yml", "*.yaml", "Makefile"), ROOT / ".ci" / "run"]
    mentions = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in files
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if OUTSIDE.search(line)
    ]
    assert len(files) >= 100
    assert mentions == []


RETIRED = re.compile(r"ingress-nginx|ingressClassName|whitelist-source-range|canary Ingress")
"""The Ingress controller that reached end of maintenance in March 2026 and what only existed for it
(docs/traffic.md names the old knobs once, in how to move a running stack off it)."""


def test_no_document_or_manifest_tells_anyone_to_use_the_retired_ingress_controller() -> None:
    files = [*DOCUMENTS, *_our_files("*.yaml", "*.yml")]
    mentions = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in files
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if RETIRED.search(line)
    ]
    assert mentions == []
