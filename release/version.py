"""The tool's version, as pip installed it (`release --version`)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

DISTRIBUTION = "platform-release"
"""The name pyproject.toml installs the tool under."""


def installed_version() -> str:
    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:
        return "unknown (not installed: run `make` to install the project into .venv)"
