"""Where config comes from, and the only code that reads it: Pulumi.yaml, Pulumi.<stack>.yaml, the
config the engine hands a running program, and stack config as the engine holds it.

Every source ends as the same `RawConfig`, validated by `core.config.rules.load_stack_config`:
every key fully qualified (`platform:releases`), Pulumi.yaml's project-level values merged under the
stack's. Secret values (`secure:` in a stack file) cannot be decrypted offline: they are replaced by
`SECRET_MARKER` and listed in `secret_keys`, as the engine lists them.

Every file is read with the safe loader (`core.config.pulumi_yaml`: no aliases, no duplicate keys, a
size cap); anything a file gets wrong is one `StackFileError` (exit 2) naming the file. Values under
`platform:appSecrets` never leave this module: each is replaced by the marker whether or not it
was encrypted, and one stored in plain text is listed in `plaintext_secrets` (and `appSecrets` is
then not a secret key, so the config model reports "application secrets are stored in plain text").
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from core.config.base import PROJECT_NAME, SECRET_MARKER, SECRETS_KEY, full_key
from core.config.project import ProjectSettings
from core.config.pulumi_yaml import PulumiYamlError, load_pulumi_yaml
from core.config.rules import load_stack_config
from core.config.stack import HealthCheckSettings, RawConfig, StackConfig
from core.errors import StackFileError, UsageError
from core.gateway import PREVIEW_TOKEN_SECRET
from core.stack_name import StackName, stack_name_problems

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConfigEntry:
    """One stack config value as the engine holds it: objects as dicts/lists (never JSON text),
    secrets never in clear."""

    value: Any
    secret: bool = False

    def to_engine_json(self) -> dict[str, Any]:
        """The shape `pulumi config --json` prints and `pulumi config set-all --json` reads."""
        if isinstance(self.value, dict | list):
            return {"value": json.dumps(self.value), "objectValue": self.value, "secret": self.secret}
        return {"value": str(self.value), "secret": self.secret}


StackConfigValues = dict[str, ConfigEntry]


# --------------------------------------------------------------------------------------------------
# Pulumi.yaml, and config as the engine hands it to the running program
# --------------------------------------------------------------------------------------------------


def read_project_file(path: Path) -> dict[str, Any]:
    """Pulumi.yaml's project-level config values, with short keys (`postgres`, not `platform:postgres`).

    Read with the safe loader (`core.config.pulumi_yaml`). A file that is not what Pulumi expects
    raises one PulumiYamlError (a ValueError) naming the file and every problem: not YAML, not a
    mapping, `config:` not a mapping, a key that is not text, an entry declared as a mapping
    without `value:`. A missing file raises FileNotFoundError.
    """
    document = load_pulumi_yaml(path)
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise PulumiYamlError(
            str(path),
            f"expected a mapping at the top level (name:, runtime:, config:), not {_yaml_kind(document)}",
        )
    declarations = document.get("config")
    if declarations is None:
        return {}
    if not isinstance(declarations, dict):
        raise PulumiYamlError(
            str(path), f"`config:` must be a mapping of keys to declarations, not {_yaml_kind(declarations)}"
        )
    values: dict[str, Any] = {}
    problems: list[str] = []
    for key, declaration in declarations.items():
        if not isinstance(key, str):
            problems.append(f"config key {key!r} must be text")
            continue
        short = key.split(":", 1)[1] if key.startswith(f"{PROJECT_NAME}:") else key
        if isinstance(declaration, dict):
            if "value" not in declaration:
                problems.append(
                    f"config.{key} has no `value:` (declare a project-level value as "
                    f"`{key}:` with `value:` under it)"
                )
                continue
            values[short] = declaration["value"]
        else:
            values[short] = declaration
    if problems:
        raise PulumiYamlError(str(path), "; ".join(problems))
    return values


def _yaml_kind(value: Any) -> str:
    return {list: "a list", str: "text", int: "a number", float: "a number", bool: "a boolean"}.get(
        type(value), type(value).__name__
    )


def raw_config_from_runtime(stack: str, project_file: Path) -> RawConfig:
    """The config the engine (or the mock runtime) gave this program run, with Pulumi.yaml beside it.

    The engine passes every value as a string, objects as JSON text; Pulumi.yaml's values are already
    merged in. Comparing against Pulumi.yaml is how the program notices a stack overriding one.
    """
    from pulumi.runtime import config as runtime_config

    merged: dict[str, Any] = dict(runtime_config.get_config_env())
    merged.update(runtime_config.CONFIG.get())
    secret_keys = set(runtime_config.get_config_secret_keys_env()) | set(runtime_config._SECRET_KEYS.get())
    values = {key: parse_engine_value(value) for key, value in merged.items()}
    return RawConfig(
        stack=stack,
        values=values,
        project_values=read_project_file(project_file),
        secret_keys={key for key in secret_keys if key in values},
    )


def parse_engine_value(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


# --------------------------------------------------------------------------------------------------
# Stack files, read offline the way the engine would
# --------------------------------------------------------------------------------------------------

PROJECT_FILE = "Pulumi.yaml"


@dataclass
class StackFile:
    """One stack's config as files declare it, ready to hand to the program."""

    path: Path
    raw: RawConfig
    unset_secrets: list[str] = field(default_factory=list)
    plaintext_secrets: list[str] = field(default_factory=list)
    """The secrets the file holds in plain text (`platform:appSecrets.NAME`: names, never values)."""

    @property
    def stack(self) -> str:
        return self.raw.stack

    @property
    def engine_config(self) -> dict[str, str]:
        """The config as the engine passes it to the program: full keys, values as text."""
        return {key: engine_text(value) for key, value in self.raw.values.items()}

    @property
    def secret_keys(self) -> list[str]:
        return sorted(self.raw.secret_keys)


def project_dir_of(start: Path) -> Path:
    """The nearest directory at or above `start` that holds Pulumi.yaml."""
    for candidate in (start, *start.parents):
        if (candidate / PROJECT_FILE).is_file():
            return candidate
    raise StackFileError(str(start), f"no {PROJECT_FILE} here or in any parent directory")


def stack_names(project_dir: Path, skipped: Callable[[str], None] | None = None) -> list[str]:
    """The stacks with a Pulumi.<stack>.yaml, in promotion order where known (dev, staging, production).

    A file whose middle part is not a valid stack name (`Pulumi.a;b.yaml`) is skipped and reported
    to `skipped` (default: a warning on this module's logger, which the release tool prints on
    stderr), never used as a stack name.
    """
    report = skipped or _log.warning
    names = []
    for path in sorted(project_dir.glob("Pulumi.*.yaml")):
        name = path.name[len("Pulumi.") : -len(".yaml")]
        problems = stack_name_problems(name)
        if problems:
            report(f"skipped {path.name}: not a stack file ({'; '.join(problems)})")
        else:
            names.append(name)
    order = {"dev": 0, "staging": 1, "production": 2}
    return sorted(names, key=lambda name: (order.get(name, len(order)), name))


def read_stack_file(project_dir: Path, stack: str, secret_names: list[str] | None = None) -> StackFile:
    """Read one stack's config. `secret_names` are the secrets the program needs; any the file lacks
    is given a placeholder too (offline only) and listed in `unset_secrets`.

    StackNameError (exit 2) for an invalid stack name; StackFileError (exit 2) for a file that is
    missing or not what Pulumi expects.
    """
    path = project_dir / f"Pulumi.{StackName.parse(stack)}.yaml"
    document = _load_yaml(path)
    stack_values = document.get("config")
    if stack_values is None:
        stack_values = {}
    if not isinstance(stack_values, dict):
        raise StackFileError(str(path), "`config:` must be a mapping of keys to values")
    bad_keys = [key for key in stack_values if not isinstance(key, str) or not key]
    if bad_keys:
        raise StackFileError(str(path), f"config keys must be text like platform:namespace; got {bad_keys!r}")
    project_values = project_values_of(project_dir)

    secrets_key = full_key(SECRETS_KEY)
    values: dict[str, Any] = {full_key(key): value for key, value in project_values.items()}
    secret_keys: set[str] = set()
    overridden: set[str] = set()
    plaintext: list[str] = []
    for key, value in stack_values.items():
        qualified = key if ":" in key else full_key(key)
        if qualified.startswith(f"{PROJECT_NAME}:") and qualified.split(":", 1)[1] in project_values:
            overridden.add(qualified.split(":", 1)[1])
        contains_secret, plain = _strip_secure(value)
        if qualified == secrets_key:
            plaintext += _plaintext_paths(value, qualified)
            plain = _redacted(value)
        if contains_secret:
            secret_keys.add(qualified)
        values[qualified] = plain

    unset: list[str] = []
    if secret_names:
        present = values.get(secrets_key) if isinstance(values.get(secrets_key), dict) else {}
        unset = [name for name in secret_names if name not in (present or {})]
        if unset:
            values[secrets_key] = {**(present or {}), **{name: SECRET_MARKER for name in unset}}
            secret_keys.add(secrets_key)
    if plaintext:
        secret_keys.discard(secrets_key)  # so the config model reports the secrets stored in plain text

    raw = RawConfig(
        stack=stack,
        values=values,
        project_values=project_values,
        secret_keys=secret_keys,
        overridden=overridden,
    )
    return StackFile(path, raw, unset, plaintext)


def project_values_of(project_dir: Path) -> dict[str, Any]:
    """Pulumi.yaml's project-level values (`read_project_file`); StackFileError (exit 2) if unreadable."""
    path = project_dir / PROJECT_FILE
    try:
        return read_project_file(path)
    except FileNotFoundError as error:
        raise StackFileError(str(path), "no such file; this is not a Pulumi project") from error
    except PulumiYamlError as error:
        raise _stack_file_error(error) from error


def _stack_file_error(error: PulumiYamlError) -> StackFileError:
    where = f"{error.path}:{error.line}" if error.line is not None else error.path
    return StackFileError(where, error.reason)


def _load_yaml(path: Path) -> dict[str, Any]:
    try:
        document = load_pulumi_yaml(path)
    except FileNotFoundError as error:
        raise StackFileError(str(path), "no such stack file; create it with `pulumi stack init`") from error
    except PulumiYamlError as error:
        raise _stack_file_error(error) from error
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise StackFileError(str(path), "expected a mapping at the top level")
    return document


def _redacted(value: Any) -> Any:
    """`value` with every leaf replaced by the placeholder (the structure, i.e. the names, stays)."""
    if isinstance(value, dict) and set(value) != {"secure"}:
        return {key: _redacted(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_redacted(item) for item in value]
    return SECRET_MARKER


def _plaintext_paths(value: Any, path: str) -> list[str]:
    """The paths of the leaves under `value` that are not `{secure: ...}` (an empty leaf is no secret)."""
    if isinstance(value, dict):
        if set(value) == {"secure"}:
            return []
        return [found for key, item in value.items() for found in _plaintext_paths(item, f"{path}.{key}")]
    if isinstance(value, list):
        return [
            found for index, item in enumerate(value) for found in _plaintext_paths(item, f"{path}[{index}]")
        ]
    return [] if value is None else [path]


def _strip_secure(value: Any) -> tuple[bool, Any]:
    """Replace every `{secure: ...}` leaf by the placeholder; say whether there was one."""
    if isinstance(value, dict):
        if set(value) == {"secure"}:
            return True, SECRET_MARKER
        found = False
        plain = {}
        for key, item in value.items():
            item_secret, plain[key] = _strip_secure(item)
            found = found or item_secret
        return found, plain
    if isinstance(value, list):
        results = [_strip_secure(item) for item in value]
        return any(secret for secret, _ in results), [item for _, item in results]
    return False, value


def engine_text(value: Any) -> str:
    """How the engine passes a config value to a program: strings as-is, everything else as JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value)


@dataclass
class ProjectFile:
    """Pulumi.yaml, read once: its project-level values (short keys) and, validated, its settings."""

    path: Path
    values: dict[str, Any]

    @classmethod
    def read(cls, project_dir: Path) -> ProjectFile:
        """StackFileError (exit 2) when the file is missing or not what Pulumi expects."""
        return cls(project_dir / PROJECT_FILE, project_values_of(project_dir))

    @cached_property
    def settings(self) -> ProjectSettings:
        """The project-level settings; StackFileError (exit 2) when invalid."""
        try:
            return ProjectSettings.model_validate(self.values)
        except ValueError as error:
            raise StackFileError(str(self.path), str(error)) from error

    @property
    def secret_names(self) -> list[str]:
        """The secrets the services read, if the settings are valid (if not, each stack reports why)."""
        try:
            return self.settings.secret_names
        except StackFileError:
            return []

    @property
    def stack_secret_names(self) -> list[str]:
        """Every secret a stack sets (ProjectSettings.stack_secret_names); with invalid settings, the
        preview token alone (each stack then reports what is wrong)."""
        try:
            return self.settings.stack_secret_names
        except StackFileError:
            return [PREVIEW_TOKEN_SECRET]


def project_settings(project_dir: Path) -> ProjectSettings:
    """Pulumi.yaml's project-level settings, read offline; StackFileError (exit 2) when invalid."""
    return ProjectFile.read(project_dir).settings


def secret_names_of(project_dir: Path) -> list[str]:
    """The secrets the services read, if Pulumi.yaml is valid (if not, each stack reports why)."""
    try:
        return ProjectFile.read(project_dir).secret_names
    except StackFileError:
        return []


def stack_secret_names_of(project_dir: Path) -> list[str]:
    """Every secret a stack sets (ProjectFile.stack_secret_names)."""
    try:
        return ProjectFile.read(project_dir).stack_secret_names
    except StackFileError:
        return [PREVIEW_TOKEN_SECRET]


def validated_stack_config(stack: str, current: StackConfigValues, project: ProjectFile) -> StackConfig:
    """The stack's config (as the engine holds it) validated by the program's own rules.

    Secrets cannot be read back; each declared secret is assumed set (the program checks at `up`).
    An invalid Pulumi.yaml leaves no declared secrets; load_stack_config reports what is wrong.
    """
    values = {key: entry.value for key, entry in current.items()}
    secret_keys = {key for key, entry in current.items() if entry.secret}
    values[full_key(SECRETS_KEY)] = dict.fromkeys(project.stack_secret_names, SECRET_MARKER)
    secret_keys.add(full_key(SECRETS_KEY))
    merged = {full_key(key): value for key, value in project.values.items()} | values
    raw = RawConfig(stack=stack, values=merged, project_values=project.values, secret_keys=secret_keys)
    return load_stack_config(raw)


def health_check_settings(
    project_dir: Path, stack: str | None, overrides: Mapping[str, Any]
) -> HealthCheckSettings:
    """The `healthCheck` knob of `stack` (the model's defaults without one), with `overrides` on top
    (camelCase keys; None means not given). UsageError (exit 2) naming what is invalid."""
    base: dict[str, Any] = {}
    if stack:
        base = dict(read_stack_file(project_dir, stack).raw.values.get(full_key("healthCheck")) or {})
    base.update({key: value for key, value in overrides.items() if value is not None})
    try:
        return HealthCheckSettings.model_validate(base)
    except ValueError as error:
        raise UsageError(f"health-check settings: {error}") from error
