"""Holder names: ICAO 9303 transliteration (``fnt``/``gnt``) and the ``nam`` object.

The rules are DCC.md §4 (ICAO Doc 9303 Part 3 §6, Part 4 §4.2.2), applied in this order:

1. NFC, trim surrounding whitespace;
2. ICAO multi-letter cases (Ä→AE, Ö→OE, Ü→UE, Å→AA, Æ→AE, Ø→OE, ß→SS, Þ→TH, Ĳ→IJ) and letters that have no
   Unicode decomposition (Đ/đ, Ð/ð → D; Ł/ł → L) — *before* NFD, or ``Đức`` would become ``UC``;
3. NFD, drop every combining mark (Vietnamese tone and vowel marks vanish: ``ễ`` → ``E``, ``ư`` → ``U``);
4. upper-case; drop apostrophes (``'`` and ``’``); spaces and hyphens become the filler ``<``;
5. collapse ``<`` runs, trim ``<`` at both ends;
6. anything else outside ``A–Z<`` is an error (:class:`~vaxcred.errors.ModelError`, code ``model.bad_name``),
   never silently dropped;
7. cut to the limit (80 from schema 1.3.0), then strip a trailing ``<``.

"Spaces" are U+0020 and the other Unicode space separators (category Zs, e.g. NO-BREAK SPACE, which web forms
produce); "hyphens" are ``-``, U+2010 HYPHEN and U+2011 NON-BREAKING HYPHEN.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass

from vaxcred.errors import ModelError
from vaxcred.privacy import mask_name

__all__ = ["MAX_NAME_LENGTH", "Name", "transliterate"]

MAX_NAME_LENGTH = 80

# Step 2: ICAO multi-letter cases and letters without a decomposition (both cases; upper-cased later).
_PRE_NFD = str.maketrans(
    {
        "Ä": "AE",
        "ä": "ae",
        "Ö": "OE",
        "ö": "oe",
        "Ü": "UE",
        "ü": "ue",
        "Å": "AA",
        "å": "aa",
        "Æ": "AE",
        "æ": "ae",
        "Ø": "OE",
        "ø": "oe",
        "ß": "ss",
        "ẞ": "SS",
        "Þ": "TH",
        "þ": "th",
        "Ĳ": "IJ",
        "ĳ": "ij",
        "Đ": "D",  # U+0110 LATIN CAPITAL LETTER D WITH STROKE (Vietnamese)
        "đ": "d",  # U+0111
        "Ð": "D",  # U+00D0 LATIN CAPITAL LETTER ETH (look-alike, seen in Vietnamese data entry)
        "ð": "d",  # U+00F0
        "Ł": "L",
        "ł": "l",
    }
)
_APOSTROPHES = str.maketrans({"'": None, "’": None})
_FILLERS = frozenset("-‐‑")  # hyphen-minus, U+2010, U+2011
_ICAO_RE = re.compile(r"[A-Z<]*\Z")
_FILLER_RUNS = re.compile(r"<{2,}")


def transliterate(name: str, max_len: int = MAX_NAME_LENGTH) -> str:
    """Return the ICAO 9303 machine-readable form of ``name`` (``A–Z`` and ``<``), at most ``max_len`` chars.

    ``""`` (or only whitespace) gives ``""``.  Raises :class:`ModelError` (``model.bad_name``) for a character
    that has no ICAO transliteration here (digits, punctuation, non-Latin scripts, control characters).
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be str, not {type(name).__name__}")
    if max_len < 1:
        raise ValueError("max_len must be positive")
    return _icao(str(name), max_len)


@functools.lru_cache(maxsize=1 << 14)
def _icao(name: str, max_len: int) -> str:
    """:func:`transliterate` of checked arguments, remembered per process: a population's family names and
    given names repeat (a refusal is raised again each time, never remembered)."""
    text = unicodedata.normalize("NFC", name).strip().translate(_PRE_NFD)
    out: list[str] = []
    for ch in unicodedata.normalize("NFD", text):
        if unicodedata.category(ch).startswith("M"):
            continue  # combining mark: tone marks, breve, circumflex, horn, ...
        if ch in _FILLERS or unicodedata.category(ch) == "Zs":
            out.append("<")
        else:
            out.append(ch)
    result = "".join(out).upper().translate(_APOSTROPHES)
    result = _FILLER_RUNS.sub("<", result).strip("<")
    if not _ICAO_RE.match(result):
        bad = next(ch for ch in result if ch not in "ABCDEFGHIJKLMNOPQRSTUVWXYZ<")
        raise ModelError(
            f"name contains {unicodedata.name(bad, f'U+{ord(bad):04X}')}, which has no ICAO transliteration",
            code="model.bad_name",
        )
    return result[:max_len].rstrip("<")


def _check_text(field: str, value: str | None) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ModelError(f"nam.{field} must be a string", code="model.bad_name")
    value = unicodedata.normalize("NFC", value)
    if len(value) > MAX_NAME_LENGTH:
        raise ModelError(f"nam.{field} is longer than {MAX_NAME_LENGTH} characters", code="model.bad_name")
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class Name:
    """The DCC ``nam`` object: ``fn``/``gn`` as written (NFC), ``fnt``/``gnt`` their ICAO 9303 forms.

    Absent fields are ``None``.  The constructor enforces the wire rules (strings ≤ 80 characters,
    ``fnt``/``gnt`` matching ``^[A-Z<]*$``, at least one of ``fnt``/``gnt`` as schema 1.3.2 requires) so that
    names decoded from other issuers load; :meth:`create` and :meth:`from_vietnamese` are the issuing-side
    constructors.
    """

    fn: str | None = None
    gn: str | None = None
    fnt: str | None = None
    gnt: str | None = None

    def __post_init__(self) -> None:
        for field in ("fn", "gn", "fnt", "gnt"):
            object.__setattr__(self, field, _check_text(field, getattr(self, field)))
        for field in ("fnt", "gnt"):
            value = getattr(self, field)
            if value is not None and not _ICAO_RE.match(value):
                raise ModelError(f"nam.{field} must match ^[A-Z<]*$", code="model.bad_name")
        if self.fnt is None and self.gnt is None:
            raise ModelError("nam needs at least one of fnt and gnt", code="model.bad_name")

    @classmethod
    def create(cls, *, fn: str | None = None, gn: str | None = None) -> Name:
        """Build a name from surname ``fn`` and forename(s) ``gn``, computing ``fnt``/``gnt``.

        At least one must be non-empty; each must transliterate to a non-empty ICAO form.
        """
        parts: dict[str, str | None] = {}
        for field, value in (("fn", fn), ("gn", gn)):
            if value is not None and not isinstance(value, str):
                raise TypeError(f"{field} must be str or None")
            text = unicodedata.normalize("NFC", value).strip() if value else ""
            text = " ".join(text.split())  # collapse inner whitespace runs as written
            if not text:
                parts[field] = parts[field + "t"] = None
                continue
            icao = transliterate(text)
            if not icao:
                raise ModelError(f"{field} has no letters to transliterate", code="model.bad_name")
            parts[field], parts[field + "t"] = text, icao
        if parts["fn"] is None and parts["gn"] is None:
            raise ModelError("a name needs a surname (fn) or a forename (gn)", code="model.bad_name")
        return cls(fn=parts["fn"], gn=parts["gn"], fnt=parts["fnt"], gnt=parts["gnt"])

    @classmethod
    def from_vietnamese(cls, full_name: str) -> Name:
        """Split a Vietnamese full name: họ (the first word) → ``fn``; tên đệm + tên (the rest) → ``gn``.

        ``Nguyễn Văn Đức`` → ``fn="Nguyễn"``, ``gn="Văn Đức"``, ``fnt="NGUYEN"``, ``gnt="VAN<DUC"``.  Compound
        surnames (``Tôn Nữ``) cannot be told apart from a middle name: use :meth:`create` for them.
        """
        if not isinstance(full_name, str):
            raise TypeError("full_name must be str")
        words = unicodedata.normalize("NFC", full_name).split()
        if not words:
            raise ModelError("empty name", code="model.bad_name")
        return cls.create(fn=words[0], gn=" ".join(words[1:]) or None)

    def __repr__(self) -> str:  # personal data: masked (vaxcred.privacy)
        return f"Name(fn={mask_name(self.fn)!r}, gn={mask_name(self.gn)!r})"

    def to_json(self) -> dict[str, str]:
        """The ``nam`` JSON object (absent fields omitted)."""
        out: dict[str, str] = {}
        for field in ("fn", "fnt", "gn", "gnt"):
            value = getattr(self, field)
            if value is not None:
                out[field] = value
        return out
