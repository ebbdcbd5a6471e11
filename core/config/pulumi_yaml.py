"""The one reader of Pulumi YAML files (`Pulumi.yaml`, `Pulumi.<stack>.yaml`): safe on hostile input.

Stack files come from pull requests, so a file must not be able to exhaust memory or CPU, nor to
mean something other than what a reviewer reads. `load_pulumi_yaml` therefore, on top of
`yaml.SafeLoader` (no Python objects):

- refuses a file over `MAX_FILE_BYTES` before parsing it;
- refuses anchors (`&name`) and aliases (`*name`): an alias "bomb" of a kilobyte expands to
  gigabytes, and Pulumi's own files never need them;
- refuses a key repeated in one mapping, at any depth (`platform:namespace` twice would otherwise
  silently keep the last one), naming the key and both lines;
- refuses nesting deeper than `MAX_DEPTH` (a recursion bomb).

Every refusal is one `PulumiYamlError` (a ValueError) naming the file, the line and what is wrong.
This module imports nothing from `release` (the program and the policy pack use it too).

A text parsed once is not parsed again in the same process (`release plan --all` reads Pulumi.yaml
once per stack, and the program once more per evaluation; the pure-Python loader takes tens of
milliseconds a file): each call returns its own copy of the document, keyed by the file's name and
its whole text, so an edited file is parsed afresh.
"""

from __future__ import annotations

import copy
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node

MAX_FILE_BYTES = 1024 * 1024
"""1 MiB: Pulumi files here are a few kilobytes."""

NO_ANCHORS = " (anchors and aliases are refused: write the value out)"

MAX_DEPTH = 64
"""Nested collections deeper than this are refused (Pulumi config needs a handful of levels)."""


class PulumiYamlError(ValueError):
    """A Pulumi YAML file that cannot be read safely; `line` is 1-based, or None for the whole file."""

    def __init__(self, path: str, reason: str, line: int | None = None) -> None:
        self.path = path
        self.reason = reason
        self.line = line
        where = f"{path}:{line}" if line is not None else path
        super().__init__(f"{where}: {reason}")


def _line(node_or_event: Any) -> int | None:
    mark = getattr(node_or_event, "start_mark", None)
    return mark.line + 1 if mark is not None else None


class PulumiYamlLoader(yaml.SafeLoader):
    """SafeLoader without anchors, aliases, duplicate keys or unbounded nesting."""

    def __init__(self, stream: str, name: str) -> None:
        super().__init__(stream)
        self.name = name
        self._depth = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            raise PulumiYamlError(
                self.name, f"alias *{event.anchor} is not allowed{NO_ANCHORS}", _line(event)
            )
        anchor = getattr(event, "anchor", None)
        if anchor is not None:
            raise PulumiYamlError(self.name, f"anchor &{anchor} is not allowed{NO_ANCHORS}", _line(event))
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise PulumiYamlError(self.name, f"nested more than {MAX_DEPTH} levels deep", _line(event))
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        first_line: dict[Any, int | None] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                seen = key in first_line
            except TypeError:
                continue  # unhashable: SafeLoader refuses it below with its own message
            if seen:
                raise PulumiYamlError(
                    self.name,
                    f"duplicate key {key!r} (first on line {first_line[key]}, again on line "
                    f"{_line(key_node)}); keep one",
                    _line(key_node),
                )
            first_line[key] = _line(key_node)
        return super().construct_mapping(node, deep=deep)


def parse_pulumi_yaml(text: str, name: str) -> Any:
    """Parse `text` (the content of the file `name`) with `PulumiYamlLoader`; None for an empty file.
    The caller owns what it gets (a copy: see the module's docstring)."""
    return copy.deepcopy(_parsed(text, name))


@lru_cache(maxsize=16)
def _parsed(text: str, name: str) -> Any:
    """A refusal raises each time (an exception is never cached)."""
    if len(text.encode("utf-8", errors="surrogatepass")) > MAX_FILE_BYTES:
        raise PulumiYamlError(name, f"larger than {MAX_FILE_BYTES} bytes; refused before parsing")
    loader = PulumiYamlLoader(text, name)
    try:
        return loader.get_single_data()
    except PulumiYamlError:
        raise
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark is not None else None
        reason = " ".join(part for part in (error.context, error.problem) if part)
        raise PulumiYamlError(name, f"not valid YAML: {reason or error}", line) from error
    except yaml.YAMLError as error:
        raise PulumiYamlError(name, f"not valid YAML: {error}") from error
    finally:
        loader.dispose()


def load_pulumi_yaml(path: Path) -> Any:
    """Read and parse one Pulumi YAML file; FileNotFoundError if it does not exist.

    The size is checked before the file is read (and the read is capped, in case it grows).
    """
    name = str(path)
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise PulumiYamlError(name, f"larger than {MAX_FILE_BYTES} bytes; refused before parsing")
        with path.open("rb") as stream:
            content = stream.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise
    except OSError as error:
        raise PulumiYamlError(name, f"cannot be read: {error.strerror or error}") from error
    if len(content) > MAX_FILE_BYTES:
        raise PulumiYamlError(name, f"larger than {MAX_FILE_BYTES} bytes; refused before parsing")
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as error:
        raise PulumiYamlError(name, f"not UTF-8 text (byte {error.start})") from error
    return parse_pulumi_yaml(text, name)
