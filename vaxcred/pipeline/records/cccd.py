"""Vietnamese citizen ID numbers: CCCD (12 digits), CMND (9 digits) and other identification numbers.

Pure: no I/O (the province table is package data read once through :mod:`importlib.resources`), no clock.

A **CCCD** / personal identification number (số định danh cá nhân; Decree 137/2015/NĐ-CP, Article 13) is 12 ASCII
digits::

    001 0 85 012345
    │   │ │  └── 7–12  sequence number
    │   │ └───── 5–6   last two digits of the year of birth
    │   └─────── 4     century + gender: 1900s M 0 / F 1, 2000s M 2 / F 3, 2100s 4 / 5, 2200s 6 / 7, 2300s 8 / 9
    └─────────── 1–3   province of birth registration (63 codes, Circular 07/2016/TT-BCA, Appendix 1)

A **CMND** (legacy ID card) is 9 ASCII digits with no embedded data.  **OTHER** covers any other identification
number (passport, …): ``[A-Z0-9]{5,20}``.  Without a hint, 12 digits are a CCCD and 9 digits a CMND; an explicit
``id_type`` hint decides otherwise (a 12-digit passport number is ``OTHER`` only when said so).  **Digits only, of
another length** (10, 11, 13, …) are refused without the hint: a spreadsheet that read a CCCD as a number dropped
its leading zeros (``001090012345`` → ``1090012345``), and storing that as ``OTHER`` would make a second person
when the clean number arrives.  Another document whose number is all digits says ``id_type=OTHER``.

:func:`check_consistency` compares digits 4–6 with the recorded date of birth and gender.

ID numbers are personal data: errors and ``repr`` show them masked (:func:`vaxcred.privacy.mask_id`, last three
digits only — never the province / century / year prefix).
"""

from __future__ import annotations

import csv
import enum
import functools
import io
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from types import MappingProxyType

from vaxcred.model import DateOfBirth
from vaxcred.pipeline.errors import INVALID_ID, PipelineError
from vaxcred.privacy import mask_id

__all__ = [
    "PROVINCES",
    "CitizenId",
    "Gender",
    "IdType",
    "build_cccd",
    "cccd_digits",
    "check_consistency",
    "id_problems",
    "parse_citizen_id",
]


class IdType(enum.StrEnum):
    """The kind of citizen ID a record carries."""

    CCCD = "CCCD"
    CMND = "CMND"
    OTHER = "OTHER"


class Gender(enum.StrEnum):
    """Gender as recorded (``""`` when unknown)."""

    MALE = "M"
    FEMALE = "F"
    UNKNOWN = ""


_CCCD_RE = re.compile(r"[0-9]{12}\Z", re.ASCII)
_CMND_RE = re.compile(r"[0-9]{9}\Z", re.ASCII)
_DIGITS_RE = re.compile(r"[0-9]+\Z", re.ASCII)
_OTHER_RE = re.compile(r"[A-Z0-9]{5,20}\Z", re.ASCII)
_PROVINCE_CSV = ("data", "vietnam", "cccd_province_codes.csv")
_PROVINCE_COUNT = 63
_FIRST_CENTURY = 1900


@functools.cache
def _load_provinces() -> Mapping[str, str]:
    text = resources.files("vaxcred").joinpath(*_PROVINCE_CSV).read_text(encoding="utf-8")
    table: dict[str, str] = {}
    for row in csv.DictReader(io.StringIO(text)):
        code, name = row["code"], row["province"]
        if not re.fullmatch(r"[0-9]{3}", code, re.ASCII) or not name or code in table:
            raise RuntimeError(f"corrupt vendored province table at code {code!r}")  # packaging bug
        table[code] = name
    if len(table) != _PROVINCE_COUNT:
        raise RuntimeError(f"vendored province table has {len(table)} codes, expected {_PROVINCE_COUNT}")
    return MappingProxyType(table)


class _Provinces(Mapping[str, str]):
    """Read-only ``code -> province name`` view, loaded on first use (importing the module reads nothing)."""

    def __getitem__(self, code: str) -> str:
        return _load_provinces()[code]

    def __iter__(self) -> Iterator[str]:
        return iter(_load_provinces())

    def __len__(self) -> int:
        return len(_load_provinces())

    def __contains__(self, code: object) -> bool:
        return code in _load_provinces()

    def __repr__(self) -> str:
        return f"<PROVINCES: {len(self)} codes>"


#: ``"001" -> "Hà Nội"``: the 63 province codes of birth registration (``vaxcred/data/vietnam/``).
PROVINCES: Mapping[str, str] = _Provinces()


@dataclass(frozen=True, slots=True, kw_only=True)
class CitizenId:
    """A structurally valid citizen ID; the CCCD fields are ``None`` for CMND and OTHER numbers."""

    number: str
    id_type: IdType
    province_code: str | None = None
    century_gender: int | None = None
    birth_year_2: int | None = None

    def __repr__(self) -> str:  # personal data: masked (vaxcred.privacy)
        return f"CitizenId(number={mask_id(self.number)!r}, id_type={self.id_type.value!r})"

    @property
    def province(self) -> str | None:
        """The province name of a CCCD (``None`` otherwise)."""
        return PROVINCES[self.province_code] if self.province_code is not None else None

    @property
    def century(self) -> int | None:
        """The first year of the century of birth encoded in a CCCD (1900, 2000, …)."""
        if self.century_gender is None:
            return None
        return _FIRST_CENTURY + 100 * (self.century_gender // 2)

    @property
    def birth_year(self) -> int | None:
        """The full year of birth encoded in a CCCD."""
        if self.century is None or self.birth_year_2 is None:
            return None
        return self.century + self.birth_year_2

    @property
    def gender(self) -> Gender:
        """The gender encoded in a CCCD (even digit male, odd female); ``UNKNOWN`` for other ID types."""
        if self.century_gender is None:
            return Gender.UNKNOWN
        return Gender.MALE if self.century_gender % 2 == 0 else Gender.FEMALE


def _invalid(number: str, why: str) -> PipelineError:
    return PipelineError(f"citizen ID {mask_id(number)!r} {why}", code=INVALID_ID, field="citizen_id")


def parse_citizen_id(number: str, *, id_type: IdType | None = None) -> CitizenId:
    """Parse ``number`` as a CCCD, CMND or other identification number.

    Without ``id_type`` the type follows the shape: 12 ASCII digits → CCCD (its province code must be one of the
    63), 9 → CMND, digits of any other length are refused, otherwise OTHER (``[A-Z0-9]{5,20}``).  With ``id_type``
    the number must have that type's shape.
    No whitespace is trimmed and no letters are upper-cased: an ID is a key, callers clean their input first.
    Raises :class:`PipelineError` (``pipeline.invalid_id``) with the number masked.
    """
    if not isinstance(number, str):
        raise TypeError(f"number must be str, not {type(number).__name__}")
    if id_type is not None and not isinstance(id_type, IdType):
        raise TypeError("id_type must be an IdType or None")
    if not number:
        raise PipelineError("citizen ID is empty", code=INVALID_ID, field="citizen_id")
    kind = id_type
    if kind is None:
        if _CCCD_RE.match(number):
            kind = IdType.CCCD
        elif _CMND_RE.match(number):
            kind = IdType.CMND
        elif _DIGITS_RE.match(number):
            raise _invalid(
                number,
                f"has {len(number)} digits: a CCCD has 12, a CMND 9 (leading zeros dropped by a spreadsheet? "
                "format the column as text); another document's number needs id_type OTHER",
            )
        else:
            kind = IdType.OTHER
    if kind is IdType.CCCD:
        if not _CCCD_RE.match(number):
            raise _invalid(number, "is not a CCCD: 12 ASCII digits expected")
        if number[:3] not in PROVINCES:
            raise _invalid(number, "is not a CCCD: digits 1–3 are not a province code")
        return CitizenId(
            number=number,
            id_type=kind,
            province_code=number[:3],
            century_gender=int(number[3]),
            birth_year_2=int(number[4:6]),
        )
    if kind is IdType.CMND:
        if not _CMND_RE.match(number):
            raise _invalid(number, "is not a CMND: 9 ASCII digits expected")
        return CitizenId(number=number, id_type=kind)
    if not _OTHER_RE.match(number):
        raise _invalid(number, "is not a valid identification number: 5–20 characters A–Z, 0–9 expected")
    return CitizenId(number=number, id_type=kind)


def check_consistency(cid: CitizenId, dob: DateOfBirth, gender: Gender) -> tuple[str, ...]:
    """Compare a CCCD's digits 4–6 with the recorded date of birth and gender.

    Returns ``()`` when consistent, else the problems found, in this order: ``"century"`` (digit 4's century is
    not the century of the recorded year), ``"birth_year"`` (digits 5–6 are not the last two digits of the
    recorded year), ``"gender"`` (digit 4's parity disagrees with a recorded ``M``/``F``).  What is not recorded
    (an empty date of birth, an unknown gender) cannot disagree.  CMND and OTHER numbers carry no such data: ``()``.
    """
    if not isinstance(cid, CitizenId) or not isinstance(dob, DateOfBirth) or not isinstance(gender, Gender):
        raise TypeError("check_consistency(CitizenId, DateOfBirth, Gender)")
    if cid.id_type is not IdType.CCCD or cid.century is None or cid.birth_year_2 is None:
        return ()
    problems: list[str] = []
    if dob.year is not None:
        if dob.year // 100 * 100 != cid.century:
            problems.append("century")
        if dob.year % 100 != cid.birth_year_2:
            problems.append("birth_year")
    if gender is not Gender.UNKNOWN and gender is not cid.gender:
        problems.append("gender")
    return tuple(problems)


def cccd_digits(number: str) -> tuple[int, int, Gender] | None:
    """What digits 4–6 of a CCCD say — the first year of the century of birth, the year's last two digits, the
    gender — when ``number`` is one for :func:`parse_citizen_id` (12 ASCII digits, digits 1–3 a province code),
    else ``None``: the common case of an import row and of the registry check, read directly (no
    :class:`CitizenId` built)."""
    if type(number) is str and len(number) == 12 and number.isascii() and number.isdigit():
        # ASCII: exactly [0-9]{12}, as _CCCD_RE
        return _cccd_prefix(number[:6])
    return None


@functools.lru_cache(maxsize=1 << 16)
def _cccd_prefix(prefix: str) -> tuple[int, int, Gender] | None:
    """:func:`cccd_digits` of a CCCD's first six digits (≤ 63,000 valid prefixes: remembered)."""
    if prefix[:3] not in _load_provinces():
        return None
    digit = ord(prefix[3]) - 48
    return (
        _FIRST_CENTURY + 100 * (digit // 2),
        int(prefix[4:6]),
        Gender.MALE if digit % 2 == 0 else Gender.FEMALE,
    )


def id_problems(number: str, id_type: IdType, dob: DateOfBirth, gender: Gender) -> tuple[str, ...] | None:
    """``None`` when ``number`` is not a valid ID of ``id_type`` (:func:`parse_citizen_id` refuses it), else
    :func:`check_consistency`'s problems: the registry check's first step, once per person.

    The same answer as those two functions, without building a :class:`CitizenId` for the common case (a
    12-digit CCCD with a known province: :func:`cccd_digits`, ~4 µs → ~1 µs a person); anything else
    (another type, another shape, a caller's wrong type) goes through them. A hypothesis test compares both."""
    digits = cccd_digits(number) if id_type is IdType.CCCD else None
    if digits is not None and type(dob) is DateOfBirth and type(gender) is Gender:
        century, birth_year_2, coded_gender = digits
        problems: list[str] = []
        year = dob.year
        if year is not None:
            if year // 100 * 100 != century:
                problems.append("century")
            if year % 100 != birth_year_2:
                problems.append("birth_year")
        if gender is not Gender.UNKNOWN and gender is not coded_gender:
            problems.append("gender")
        return tuple(problems)
    try:
        cid = parse_citizen_id(number, id_type=id_type)
    except PipelineError:
        return None
    return check_consistency(cid, dob, gender)


def build_cccd(*, province_code: str, birth_year: int, gender: Gender, sequence: int) -> str:
    """Compose a CCCD from its parts (synthetic data and tests): ``build_cccd(province_code="001",
    birth_year=1985, gender=Gender.MALE, sequence=12345) == "001085012345"``."""
    if province_code not in PROVINCES:
        raise ValueError("unknown province code")
    if not 1900 <= birth_year <= 2399:
        raise ValueError("birth_year must be within 1900–2399")
    if gender is Gender.UNKNOWN or not isinstance(gender, Gender):
        raise ValueError("a CCCD encodes a gender: MALE or FEMALE")
    if not 0 <= sequence <= 999_999:
        raise ValueError("sequence must be within 0–999999")
    digit = 2 * ((birth_year - _FIRST_CENTURY) // 100) + (0 if gender is Gender.MALE else 1)
    return f"{province_code}{digit}{birth_year % 100:02d}{sequence:06d}"
