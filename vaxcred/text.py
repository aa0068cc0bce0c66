"""Untrusted text made safe to show: one place for every human output (SECURITY.md pitfall 22).

A passport's fields are chosen by whoever signed it, and a forged or hostile QR code reaches the screen too
(in step messages). Shown as they are, such fields can rewrite a terminal (ANSI escapes, C0/C1 controls),
reorder what an officer reads (bidi overrides and isolates, U+061C, U+200E/F), forge extra lines (line and
paragraph separators) or hide characters (zero-width characters, BOM, soft hyphen, fillers).

Nothing is silently deleted: each such character is replaced by a visible escape (``\\x1b``, ``\\u202e``),
so the officer sees that the field holds something odd.

* :func:`terminal_safe` — one line of untrusted text for a terminal;
* :func:`json_dumps_safe` — JSON whose text holds none of these characters raw (they become JSON ``\\u``
  escapes, so the document still parses to the same value); non-finite floats become strings, so the
  output is always valid JSON;
* :func:`json_compatible` — a JSON-like value with non-finite floats as strings (strict JSON);
* :func:`clip` — a bounded ``repr`` of an untrusted value for an error message.

Pure: no I/O.
"""

from __future__ import annotations

import json
import math
from typing import Any, Final

__all__ = ["clip", "is_terminal_safe", "json_compatible", "json_dumps_safe", "terminal_safe"]

#: Printable by :meth:`str.isprintable` yet invisible or joining: shown escaped as well.
_INVISIBLE: Final = frozenset(
    "\u034f"  # combining grapheme joiner
    "\u115f\u1160\u3164\uffa0"  # Hangul fillers
    "\u2800"  # braille pattern blank
)


def _unsafe(ch: str) -> bool:
    # str.isprintable() is False for Cc (C0, DEL, C1), Cf (bidi marks, embeddings, overrides and isolates,
    # U+061C, zero-width space/joiners, word joiner, BOM, soft hyphen, tag characters), Zl, Zp, Cs, Co, Cn
    # and every space but U+0020.
    return not ch.isprintable() or ch in _INVISIBLE


def _escape(ch: str) -> str:
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def is_terminal_safe(text: str) -> bool:
    """Whether ``text`` holds no control, bidi, separator or invisible character."""
    return text.isprintable() and _INVISIBLE.isdisjoint(text)


def terminal_safe(text: object) -> str:
    """``text`` (``str()`` of it) on one line, every unsafe character replaced by a visible escape."""
    value = text if isinstance(text, str) else str(text)
    if is_terminal_safe(value):
        return value
    return "".join(_escape(ch) if _unsafe(ch) else ch for ch in value)


def _json_escape(ch: str) -> str:
    code = ord(ch)
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000  # a UTF-16 surrogate pair, as JSON spells characters beyond the BMP
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def json_compatible(value: Any) -> Any:
    """``value`` with non-finite floats as strings (``"NaN"``, ``"Infinity"``, ``"-Infinity"``): strict JSON
    has no such numbers, and a signed DCC may carry them (CBOR floats)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value).replace("inf", "Infinity").replace("nan", "NaN")
    if isinstance(value, dict):
        return {key: json_compatible(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_compatible(item) for item in value]
    return value


def json_dumps_safe(value: Any, *, indent: int | None = None) -> str:
    """Valid JSON of ``value`` whose text holds no unsafe character raw (see the module docstring).

    ``json.dumps`` escapes C0 controls itself; every other unsafe character can only stand inside a JSON
    string, where its ``\\uXXXX`` escape denotes the same character.  The layout's own newlines stay.
    """
    text = json.dumps(json_compatible(value), ensure_ascii=False, indent=indent, allow_nan=False)
    if is_terminal_safe(text.replace("\n", "")):
        return text
    return "".join(_json_escape(ch) if ch != "\n" and _unsafe(ch) else ch for ch in text)


def clip(value: object, limit: int = 40) -> str:
    """A ``repr`` of ``value`` at most about ``limit`` characters long, for error messages about input."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        return f"<an integer of {value.bit_length()} bits>"  # str() of a huge int is slow, and capped
    if isinstance(value, str | bytes | bytearray) and len(value) > limit:
        unit = "characters" if isinstance(value, str) else "bytes"
        return f"{repr(value[:limit])[:limit]}... ({len(value)} {unit})"
    shown = repr(value)
    if len(shown) <= limit:
        return shown
    return f"{shown[:limit]}... ({len(shown)} characters)"
