"""Text the tool prints that came from outside: escaped so it cannot forge a line or move the cursor.

A `--reason`, an update message written by anyone with `pulumi up -m`, an actor name: any of them may
hold a newline that starts a fake row, a carriage return that overwrites one, or a terminal escape.
`one_line` is for a field inside a line (everything that is not printable is escaped, newlines
included); `printable` is for a whole block the tool laid out itself (its own newlines stay).
"""

from __future__ import annotations

import unicodedata

_KEPT_IN_BLOCKS = frozenset("\n")


def _escape(character: str) -> str:
    code = ord(character)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def _unsafe(character: str) -> bool:
    """Control, format (bidi overrides, zero-width), line/paragraph separators, surrogates, unassigned."""
    return unicodedata.category(character) in {"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"}


def one_line(text: object) -> str:
    """`text` with every control or invisible formatting character escaped (`\\n` -> `\\x0a`)."""
    value = str(text)
    if value.isprintable():
        return value
    return "".join(_escape(character) if _unsafe(character) else character for character in value)


def printable(text: str) -> str:
    """A block the tool laid out: its newlines stay; every other control character is escaped."""
    if text.isprintable():
        return text
    return "".join(
        _escape(character) if _unsafe(character) and character not in _KEPT_IN_BLOCKS else character
        for character in text
    )
