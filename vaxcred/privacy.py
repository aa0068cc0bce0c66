"""Masking of personal data for logs, ``repr`` and default CLI output (SECURITY.md §4).

Names become initial + length per word (``Nguyễn Văn Đức`` → ``N***** V** Đ**``), dates of birth the year
only, ID numbers their last three digits.
"""

from __future__ import annotations

__all__ = ["mask_dob", "mask_id", "mask_name"]


def mask_name(name: str | None) -> str:
    """``Nguyễn Văn Đức`` → ``N***** V** Đ**``: the initial, then one ``*`` per further character."""
    if not name:
        return ""
    return " ".join(word[:1] + "*" * (len(word) - 1) for word in name.split())


def mask_dob(dob: str | None) -> str:
    """``1990-05-17`` → ``1990``."""
    return (dob or "")[:4]


def mask_id(number: str | None) -> str:
    """``001090012345`` → ``*********345``: never the prefix (province, century + sex, birth year)."""
    if not number:
        return ""
    return "*" * max(len(number) - 3, 0) + number[-3:]
