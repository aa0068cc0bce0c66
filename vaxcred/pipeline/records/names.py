"""Vietnamese-aware comparison of a recorded name with the population registry's.

Pure: no I/O.  :func:`compare_names` tells *which kind* of difference separates two names, so that the
data-quality report can say "missing tone marks" rather than just "name mismatch".  It applies the folds below
one after the other and reports the first one after which the names are equal — the most significant difference
needed to make them equal:

====================  ==================================================================  ============
kind                  fold applied (cumulative)                                           match policy
====================  ==================================================================  ============
``NONE``              none: the strings are identical                                     match
``UNICODE_FORM``      NFC (one keyboard sends ``e`` + U+0302 + U+0301, another ``ế``)     match
``CASE``              + case-fold (``NGUYỄN VĂN ĐỨC``)                                    match
``SPACING``           + trim, collapse runs of whitespace (any Unicode space) to one      match
``D_STROKE``          + ``đ`` (and the look-alike ``ð``) → ``d``, all other marks kept    mismatch
``TONE_MARKS``        + drop every combining mark (tone marks and ă â ê ô ơ ư)            mismatch
``OTHER``             still different (another letter, word order, a missing word …)      mismatch
====================  ==================================================================  ============

So ``Nguyễn Văn Dức`` / ``Nguyễn Văn Đức`` is ``D_STROKE``, while ``Nguyen Van Duc`` / ``Nguyễn Văn Đức``
(marks and stroke typed on an ASCII keyboard) is ``TONE_MARKS``: dropping the marks covers the stroke too.
A missing space (``ThịNga``) is not ``SPACING`` — it joins two words — but ``OTHER``.

Why tone marks are a mismatch: in Vietnamese they distinguish different names (``Đức`` / ``Dục``, ``Hà`` /
``Hạ``), so a record without them has not been checked against the registry; the correction (phản ánh) flow
fixes the record.
"""

from __future__ import annotations

import enum
import unicodedata

__all__ = [
    "MATCHING_DIFFERENCES",
    "NameDifference",
    "compare_names",
    "fold_diacritics",
    "names_match",
    "normalize_name",
]


class NameDifference(enum.StrEnum):
    """The most significant kind of difference between two names (see the module docstring)."""

    NONE = "none"
    UNICODE_FORM = "unicode_form"
    CASE = "case"
    SPACING = "spacing"
    TONE_MARKS = "tone_marks"
    D_STROKE = "d_stroke"
    OTHER = "other"


#: Differences that still count as the same name (the match policy).
MATCHING_DIFFERENCES = frozenset(
    {NameDifference.NONE, NameDifference.UNICODE_FORM, NameDifference.CASE, NameDifference.SPACING}
)

_D_STROKE = str.maketrans({"đ": "d", "ð": "d"})  # applied after case-folding: Đ/Ð are already đ/ð


def normalize_name(name: str) -> str:
    """NFC, case-fold, trim and collapse whitespace: the form under which matching names are equal."""
    if not isinstance(name, str):
        raise TypeError(f"name must be str, not {type(name).__name__}")
    folded = unicodedata.normalize("NFC", unicodedata.normalize("NFC", name).casefold())
    return " ".join(folded.split())


def fold_diacritics(name: str) -> str:
    """``normalize_name`` and then drop all diacritics: ``Nguyễn Văn Đức`` → ``nguyen van duc``."""
    text = normalize_name(name).translate(_D_STROKE)
    return "".join(ch for ch in unicodedata.normalize("NFD", text) if not unicodedata.combining(ch))


def compare_names(recorded: str, registry: str) -> NameDifference:
    """The most significant kind of difference between ``recorded`` and ``registry`` (``NONE`` if identical)."""
    if not isinstance(recorded, str) or not isinstance(registry, str):
        raise TypeError("names must be str")
    if recorded == registry:
        return NameDifference.NONE
    a, b = unicodedata.normalize("NFC", recorded), unicodedata.normalize("NFC", registry)
    if a == b:
        return NameDifference.UNICODE_FORM
    a, b = unicodedata.normalize("NFC", a.casefold()), unicodedata.normalize("NFC", b.casefold())
    if a == b:
        return NameDifference.CASE
    a, b = " ".join(a.split()), " ".join(b.split())
    if a == b:
        return NameDifference.SPACING
    a, b = a.translate(_D_STROKE), b.translate(_D_STROKE)
    if a == b:
        return NameDifference.D_STROKE
    if fold_diacritics(a) == fold_diacritics(b):
        return NameDifference.TONE_MARKS
    return NameDifference.OTHER


def names_match(recorded: str, registry: str) -> bool:
    """True when the names differ at most in Unicode form, case and spacing (the match policy)."""
    return compare_names(recorded, registry) in MATCHING_DIFFERENCES
