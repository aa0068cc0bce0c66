"""The ``HC1:`` context prefix (DCC.md §1; SECURITY.md pitfall 10).

Verify side: :func:`strip_prefix` trims surrounding whitespace *once*, here and nowhere else, caps the
length at the QR alphanumeric maximum and requires exactly ``HC1:`` (``HC2:``, ``hc1:``, ``HL0:`` or no
prefix fail).  Issue side: :func:`add_prefix`.
"""

from __future__ import annotations

from vaxcred.errors import PrefixError

__all__ = ["HC1_PREFIX", "MAX_HC1_CHARS", "add_prefix", "strip_prefix"]

HC1_PREFIX = "HC1:"
#: Largest number of alphanumeric characters a QR code (version 40, ECC L) holds.
MAX_HC1_CHARS = 4296


def strip_prefix(text: str) -> str:
    """Return the Base45 text after ``HC1:``; surrounding whitespace is trimmed once, first.

    Raises :class:`PrefixError` (``prefix.too_long`` over :data:`MAX_HC1_CHARS` characters after
    trimming, ``prefix.missing`` without an exact ``HC1:``) and :class:`TypeError` for a non-``str``.
    """
    if not isinstance(text, str):
        raise TypeError(f"strip_prefix() expects str, not {type(text).__name__}")
    trimmed = text.strip()
    if len(trimmed) > MAX_HC1_CHARS:
        raise PrefixError(
            f"input has {len(trimmed)} characters, more than a QR code holds ({MAX_HC1_CHARS})",
            code="prefix.too_long",
        )
    if not trimmed.startswith(HC1_PREFIX):
        raise PrefixError("input does not start with 'HC1:'", code="prefix.missing")
    return trimmed[len(HC1_PREFIX) :]


def add_prefix(b45: str) -> str:
    """Return ``"HC1:" + b45``."""
    if not isinstance(b45, str):
        raise TypeError(f"add_prefix() expects str, not {type(b45).__name__}")
    return HC1_PREFIX + b45
