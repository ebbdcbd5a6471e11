"""Every `release` command the README and docs/ show still parses as written: the same verbs, flags
and argument shapes (placeholders like `<digest>` and `${VAR}` are filled in first)."""

from __future__ import annotations

import re
import shlex
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
