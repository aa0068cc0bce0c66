"""Dose records as vaccination sites enter them: one import row = the person's fields + one dose.

Pure: no I/O, no clock (``today`` is a parameter).  :func:`parse_row` turns one CSV / JSON Lines row
(:data:`ROW_FIELDS`) into an :class:`ImportRow` or raises :class:`~vaxcred.pipeline.errors.PipelineError`
``pipeline.bad_row`` whose ``field`` names the first offending field (in :data:`ROW_FIELDS` order) and whose message
says why — without the personal value itself (citizen ID, name, date of birth).

Field rules (cells are trimmed of surrounding whitespace first):

- ``citizen_id``: a CCCD, CMND or other number (:func:`vaxcred.pipeline.records.cccd.parse_citizen_id`); an optional
  ``id_type`` column (``CCCD`` / ``CMND`` / ``OTHER``, case-insensitive) overrides the shape-based guess.
- ``full_name``: NFC; must give a Vietnamese-style ``Name`` (surname + rest) that transliterates (ICAO 9303).
  Inner spacing is kept as recorded (the registry check reports it as ``SPACING``).
- ``dob``: ``YYYY-MM-DD``, ``YYYY-MM``, ``YYYY`` or empty (:class:`~vaxcred.model.DateOfBirth`); not after ``today``.
- ``gender``: ``M`` / ``F`` / empty, or the Vietnamese ``Nam`` / ``Nữ`` (also ``Nu``), ``Male`` / ``Female``;
  case-insensitive.
- For a CCCD, digits 4–6 must agree with ``dob`` and ``gender``
  (:func:`~vaxcred.pipeline.records.cccd.check_consistency`): a year / century disagreement names ``dob``, a gender
  disagreement ``gender``.
- ``vaccine``: a :data:`~vaxcred.valuesets.VIETNAM_VACCINES` key, an active ``mp`` code of the EU value set, or
  a friendly name from :data:`VACCINE_ALIASES`; matched case-insensitively ignoring spaces and punctuation
  (``"astra zeneca"``, ``"Vero-Cell"``).  Stored canonically: a ``VIETNAM_VACCINES`` key when the product is one
  of them (``"EU/1/21/1529"`` → ``"Vaxzevria"``), else the ``mp`` code.
- ``lot``: 1–64 printable characters, not starting with ``=``, ``+``, ``-`` or ``@`` (a spreadsheet opening an
  export or the rejects file would run such a cell as a formula; :data:`FORMULA_PREFIXES`).
- ``date``: a real ``YYYY-MM-DD`` date, not before :data:`EARLIEST_DOSE_DATE`, not after ``today`` (when given),
  not before a known date of birth.
- ``dose_number``: ASCII digits (or a JSON integer) within 1–:data:`MAX_DOSE_NUMBER`.
- ``site_id``: :data:`SITE_ID_PATTERN`.

No ordering between doses is required on import: a dose 2 recorded without the paper for dose 1 is accepted
(seed 004); the person's dose 1 may arrive later or from another site.  A dose's natural key is
:attr:`DoseRecord.natural_key`: ``(citizen_id, dose_number, date, site_id)``.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from vaxcred.errors import ModelError
from vaxcred.model import DateOfBirth, Name
from vaxcred.pipeline.errors import BAD_ROW, PipelineError
from vaxcred.pipeline.records.cccd import Gender, IdType, check_consistency, parse_citizen_id
from vaxcred.privacy import mask_id, mask_name
from vaxcred.valuesets import VIETNAM_VACCINES, VaccineCodes, load_value_sets

__all__ = [
    "EARLIEST_DOSE_DATE",
    "FORMULA_PREFIXES",
    "MAX_DOSE_NUMBER",
    "MAX_LOT_LENGTH",
    "OPTIONAL_FIELDS",
    "ROW_FIELDS",
    "SITE_ID_PATTERN",
    "VACCINE_ALIASES",
    "DoseRecord",
    "ImportRow",
    "Person",
    "parse_gender",
    "parse_row",
    "resolve_vaccine",
    "vaccine_codes",
]

#: The columns of an import row, in order (CSV header / JSON Lines keys).
ROW_FIELDS = ("citizen_id", "full_name", "dob", "gender", "vaccine", "lot", "date", "dose_number", "site_id")
#: Columns read when present.
OPTIONAL_FIELDS = ("id_type",)
#: A vaccination site's identifier: ASCII letters, digits, ``.``, ``_``, ``-``; 1–64 characters.
SITE_ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"
MAX_LOT_LENGTH = 64
#: A cell starting with one of these is a formula to a spreadsheet (CSV injection): refused in lots, neutralised
#: in the rejects file.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
#: The EU DCC schema up to 1.2.1 capped ``dn`` at 9; no one in Viet Nam's campaign received more.
MAX_DOSE_NUMBER = 9
#: No COVID-19 vaccine dose was given before 2020 (Viet Nam's campaign began on 2021-03-08).
EARLIEST_DOSE_DATE = dt.date(2020, 1, 1)

_SITE_RE = re.compile(SITE_ID_PATTERN + r"\Z", re.ASCII)
_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}\Z", re.ASCII)
_DIGITS_RE = re.compile(r"[0-9]{1,3}\Z", re.ASCII)

#: Friendly names seen on Vietnamese records → the ``VIETNAM_VACCINES`` key.  Keys are compared after
#: case-folding and dropping everything but letters, digits and ``/`` (so ``"Astra Zeneca"`` = ``"astrazeneca"``).
#: The key names themselves and their ``mp`` codes are matched too.
VACCINE_ALIASES: Mapping[str, str] = MappingProxyType(
    {
        # AstraZeneca (incl. the SK Bioscience and COVAX supply)
        "AstraZeneca": "Vaxzevria",
        "AZ": "Vaxzevria",
        "AZD1222": "Vaxzevria",
        "ChAdOx1": "Vaxzevria",
        "ChAdOx1-S": "Vaxzevria",
        # Pfizer-BioNTech
        "Pfizer": "Comirnaty",
        "Pfizer-BioNTech": "Comirnaty",
        "BioNTech": "Comirnaty",
        "BNT162b2": "Comirnaty",
        # Moderna
        "Moderna": "Spikevax",
        "mRNA-1273": "Spikevax",
        # Janssen / Johnson & Johnson
        "Jcovden": "Janssen",
        "Johnson & Johnson": "Janssen",
        "J&J": "Janssen",
        "Ad26.COV2.S": "Janssen",
        # Sinopharm Beijing, called "Vero Cell" in Viet Nam; the deprecated EU code for it too
        "Vero Cell": "BBIBP-CorV",
        "Sinopharm": "BBIBP-CorV",
        "Sinopharm Vero Cell": "BBIBP-CorV",
        "Inactivated-SARS-CoV-2-Vero-Cell": "BBIBP-CorV",
        # Gamaleya
        "Sputnik V": "Sputnik-V",
        "Sputnik": "Sputnik-V",
        "Gam-COVID-Vac": "Sputnik-V",
        # Gulf Pharmaceutical Industries
        "Hayat Vax": "Hayat-Vax",
        # CIGB
        "CIGB-66": "Abdala",
        # Bharat Biotech
        "Bharat": "Covaxin",
        "BBV152": "Covaxin",
        # Sinovac
        "Sinovac": "CoronaVac",
        # Novavax (Nuvaxovid); NVX-CoV2373 is its deprecated EU code
        "Nuvaxovid": "Novavax",
        "NVX-CoV2373": "Novavax",
    }
)


_ECHO_RE = re.compile(r"[A-Za-z0-9./_-]{1,40}\Z", re.ASCII)


def _echo(value: str) -> str:
    """Quote a refused value in an error only when it looks like a code (``'Sputnk'``): a value with spaces or
    non-ASCII letters may be a name that slipped into the wrong column, and errors carry no personal data."""
    return repr(value) if _ECHO_RE.match(value) else "(value not shown)"


def _alias_key(text: str) -> str:
    folded = unicodedata.normalize("NFC", text).casefold()
    return "".join(ch for ch in folded if ch.isalnum() or ch == "/")


#: the few vaccine spellings of an import repeat on every row: their keys are remembered (a pure function)
_cached_alias_key = functools.lru_cache(maxsize=4096)(_alias_key)


@functools.cache
def _vaccine_lookup() -> tuple[Mapping[str, str], frozenset[str]]:
    """(alias key → canonical vaccine, the canonical vaccines)."""
    value_sets = load_value_sets()
    products = value_sets.sets["vaccine-medicinal-product"].entries
    by_mp = {codes.mp: key for key, codes in VIETNAM_VACCINES.items()}
    lookup: dict[str, str] = {}
    canonical: set[str] = set(VIETNAM_VACCINES)
    for mp, entry in products.items():  # active mp codes, mapped to the Vietnamese key when there is one
        if entry.active:
            target = by_mp.get(mp, mp)
            canonical.add(mp)
            lookup[_alias_key(mp)] = target
    for key, codes in VIETNAM_VACCINES.items():
        lookup[_alias_key(key)] = key
        lookup[_alias_key(codes.mp)] = key
    for alias, key in VACCINE_ALIASES.items():
        lookup[_alias_key(alias)] = key
    return MappingProxyType(lookup), frozenset(canonical)


def resolve_vaccine(text: str) -> str:
    """The canonical vaccine for a product name, alias or ``mp`` code; ``ValueError`` if unknown."""
    if not isinstance(text, str):
        raise TypeError("vaccine must be str")
    lookup, _ = _vaccine_lookup()
    key = _cached_alias_key(text)
    if not key or key not in lookup:
        raise ValueError(f"unknown vaccine {_echo(text)}")
    return lookup[key]


def vaccine_codes(vaccine: str) -> VaccineCodes:
    """The ``mp``/``ma``/``vp`` codes to issue for a canonical vaccine (a ``VIETNAM_VACCINES`` key or ``mp``).

    For an ``mp`` outside ``VIETNAM_VACCINES`` the first encoding instruction (Annex A) gives ``ma`` and ``vp``.
    """
    if vaccine in VIETNAM_VACCINES:
        return VIETNAM_VACCINES[vaccine]
    rows = load_value_sets().encoding.get(vaccine, ())
    if not rows or not rows[0].vp:
        raise ValueError(f"no encoding instruction for vaccine {vaccine!r}")
    return VaccineCodes(mp=vaccine, ma=rows[0].ma, vp=rows[0].vp[0])


def parse_gender(text: str) -> Gender:
    """``M``/``F``/``""``, ``Nam``/``Nữ``/``Nu``, ``Male``/``Female`` (case-insensitive) → :class:`Gender`."""
    key = unicodedata.normalize("NFC", text).strip().casefold()
    try:
        return _GENDERS[key]
    except KeyError:
        raise ValueError("gender must be M, F, Nam, Nữ or empty") from None


_GENDERS: Mapping[str, Gender] = MappingProxyType(
    {
        "": Gender.UNKNOWN,
        "m": Gender.MALE,
        "male": Gender.MALE,
        "nam": Gender.MALE,
        "f": Gender.FEMALE,
        "female": Gender.FEMALE,
        "nữ": Gender.FEMALE,
        "nu": Gender.FEMALE,
    }
)


def _fail(field: str, why: str) -> PipelineError:
    return PipelineError(f"{field}: {why}", code=BAD_ROW, field=field)


@dataclass(frozen=True, slots=True, kw_only=True)
class Person:
    """The person as recorded by a site (not necessarily as the registry knows them).

    Built by :func:`parse_row`; the constructor checks types and forms only, so that a person whose ID later
    turns out inconsistent (after a correction) can still be represented and reported ``INVALID_ID``.
    """

    citizen_id: str
    id_type: IdType
    full_name: str
    dob: DateOfBirth
    gender: Gender

    def __post_init__(self) -> None:
        if not isinstance(self.citizen_id, str) or not self.citizen_id:
            raise ValueError("citizen_id must be a non-empty str")
        if not isinstance(self.id_type, IdType):
            raise TypeError("id_type must be an IdType")
        if not isinstance(self.full_name, str) or not self.full_name.strip():
            raise ValueError("full_name must be a non-empty str")
        if not unicodedata.is_normalized("NFC", self.full_name):
            raise ValueError("full_name must be NFC")
        if not isinstance(self.dob, DateOfBirth):
            raise TypeError("dob must be a DateOfBirth")
        if not isinstance(self.gender, Gender):
            raise TypeError("gender must be a Gender")

    def __repr__(self) -> str:  # personal data: masked (vaxcred.privacy)
        return (
            f"Person(citizen_id={mask_id(self.citizen_id)!r}, id_type={self.id_type.value!r}, "
            f"full_name={mask_name(self.full_name)!r}, dob={self.dob!r}, gender=…)"
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class DoseRecord:
    """One dose as recorded by a site; validated when built (see the module docstring for the rules)."""

    citizen_id: str
    vaccine: str
    lot: str
    date: str
    dose_number: int
    site_id: str

    def __post_init__(self) -> None:
        if not isinstance(self.citizen_id, str) or not self.citizen_id:
            raise ValueError("citizen_id must be a non-empty str")
        if not isinstance(self.vaccine, str) or self.vaccine not in _vaccine_lookup()[1]:
            raise ValueError("vaccine must be a VIETNAM_VACCINES key or an active mp code")
        if (
            not isinstance(self.lot, str)
            or not 1 <= len(self.lot) <= MAX_LOT_LENGTH
            or not self.lot.isprintable()
            or self.lot != self.lot.strip()
        ):
            raise ValueError(f"lot must be 1–{MAX_LOT_LENGTH} printable characters, trimmed")
        if not isinstance(self.date, str) or not _DATE_RE.match(self.date):
            raise ValueError("date must be YYYY-MM-DD")
        dt.date.fromisoformat(self.date)  # ValueError for 2021-02-30
        if (
            not isinstance(self.dose_number, int)
            or isinstance(self.dose_number, bool)
            or not 1 <= self.dose_number <= MAX_DOSE_NUMBER
        ):
            raise ValueError(f"dose_number must be an int within 1–{MAX_DOSE_NUMBER}")
        if not isinstance(self.site_id, str) or not _SITE_RE.match(self.site_id):
            raise ValueError(f"site_id must match {SITE_ID_PATTERN}")

    def __repr__(self) -> str:  # the citizen ID is personal data
        return (
            f"DoseRecord(citizen_id={mask_id(self.citizen_id)!r}, vaccine={self.vaccine!r}, lot={self.lot!r}, "
            f"date={self.date!r}, dose_number={self.dose_number!r}, site_id={self.site_id!r})"
        )

    @property
    def natural_key(self) -> tuple[str, int, str, str]:
        """``(citizen_id, dose_number, date, site_id)``: what makes an import idempotent."""
        return (self.citizen_id, self.dose_number, self.date, self.site_id)

    @property
    def codes(self) -> VaccineCodes:
        """The ``mp``/``ma``/``vp`` codes to issue for this dose's vaccine."""
        return vaccine_codes(self.vaccine)


@dataclass(frozen=True, slots=True, kw_only=True)
class ImportRow:
    """One import row: the person's fields and one dose (for the same citizen ID)."""

    person: Person
    dose: DoseRecord

    def __post_init__(self) -> None:
        if not isinstance(self.person, Person) or not isinstance(self.dose, DoseRecord):
            raise TypeError("ImportRow(person: Person, dose: DoseRecord)")
        if self.person.citizen_id != self.dose.citizen_id:
            raise ValueError("the dose belongs to another citizen ID")

    def to_fields(self) -> dict[str, str]:
        """The row as text fields (:data:`ROW_FIELDS`, plus ``id_type`` when the ID's shape would mislead);
        ``parse_row(row.to_fields())`` gives the row back."""
        p, d = self.person, self.dose
        fields = {
            "citizen_id": p.citizen_id,
            "full_name": p.full_name,
            "dob": p.dob.text,
            "gender": p.gender.value,
            "vaccine": d.vaccine,
            "lot": d.lot,
            "date": d.date,
            "dose_number": str(d.dose_number),
            "site_id": d.site_id,
        }
        try:
            guessed = parse_citizen_id(p.citizen_id).id_type
        except PipelineError:
            guessed = None
        if guessed is not p.id_type:
            fields["id_type"] = p.id_type.value
        return fields


def _cell(fields: Mapping[str, object], name: str) -> str:
    if name not in fields:
        raise _fail(name, "missing")
    value = fields[name]
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _fail(name, f"must be text, not {type(value).__name__}")
    return value.strip()


def _parse_dose_number(fields: Mapping[str, object]) -> int:
    if "dose_number" not in fields:
        raise _fail("dose_number", "missing")
    raw = fields["dose_number"]
    if isinstance(raw, int) and not isinstance(raw, bool):
        number = raw
    elif isinstance(raw, str) and _DIGITS_RE.match(raw.strip()):
        number = int(raw.strip())
    else:
        raise _fail("dose_number", "must be a whole number")
    if not 1 <= number <= MAX_DOSE_NUMBER:
        raise _fail("dose_number", f"must be within 1–{MAX_DOSE_NUMBER}")
    return number


# Names and dates of birth repeat across a person's rows (and across people): cache their validation.
@functools.lru_cache(maxsize=1 << 16)
def _name_problem(full_name: str) -> str:
    """``""`` if ``full_name`` (NFC) is printable and gives a DCC name (surname + rest, ICAO-transliterable)."""
    if not full_name.isprintable():
        return "contains control characters"
    try:
        Name.from_vietnamese(full_name)
    except ModelError as e:
        return e.message
    return ""


@functools.lru_cache(maxsize=1 << 16)
def _parse_dob(text: str) -> DateOfBirth | str:
    """The date of birth, or why it is invalid (``DateOfBirth`` is immutable: safe to share)."""
    try:
        return DateOfBirth.from_text(text)
    except ModelError as e:
        return e.message


def _earliest_birth(dob: DateOfBirth) -> dt.date | None:
    """The earliest day the person can have been born (for 'dose before birth')."""
    if dob.year is None:
        return None
    return dt.date(dob.year, dob.month or 1, dob.day or 1)


def parse_row(fields: Mapping[str, object], *, today: dt.date | None = None) -> ImportRow:
    """Validate one import row (see the module docstring); raises ``PipelineError`` ``pipeline.bad_row``.

    Values are text (CSV); JSON Lines may also give ``dose_number`` as an integer and ``null`` for an empty
    field.  Columns other than :data:`ROW_FIELDS` and :data:`OPTIONAL_FIELDS` are ignored.  ``today`` (the
    caller's clock) bounds the date of birth and the dose date; without it no future check is made.
    """
    if not isinstance(fields, Mapping):
        raise TypeError("fields must be a mapping")
    if today is not None and (not isinstance(today, dt.date) or isinstance(today, dt.datetime)):
        raise TypeError("today must be a datetime.date")

    id_type: IdType | None = None
    hint = _cell(fields, "id_type").upper() if "id_type" in fields else ""
    if hint:
        try:
            id_type = IdType(hint)
        except ValueError:
            raise _fail("id_type", "must be CCCD, CMND or OTHER") from None

    citizen_id = _cell(fields, "citizen_id")
    try:
        cid = parse_citizen_id(citizen_id, id_type=id_type)
    except PipelineError as e:
        raise _fail("citizen_id", e.message) from e

    full_name = unicodedata.normalize("NFC", _cell(fields, "full_name"))
    if not full_name:
        raise _fail("full_name", "empty")
    problem = _name_problem(full_name)
    if problem:
        raise _fail("full_name", problem)

    dob_or_problem = _parse_dob(_cell(fields, "dob"))
    if isinstance(dob_or_problem, str):
        raise _fail("dob", dob_or_problem)
    dob = dob_or_problem
    born = _earliest_birth(dob)
    if today is not None and born is not None and born > today:
        raise _fail("dob", "is in the future")

    try:
        gender = parse_gender(_cell(fields, "gender"))
    except ValueError as e:
        raise _fail("gender", str(e)) from None

    problems = check_consistency(cid, dob, gender)
    if "century" in problems or "birth_year" in problems:
        raise _fail("dob", "the year of birth disagrees with the CCCD (digits 4–6)")
    if "gender" in problems:
        raise _fail("gender", "disagrees with the CCCD (digit 4)")

    try:
        vaccine = resolve_vaccine(_cell(fields, "vaccine"))
    except ValueError as e:
        raise _fail("vaccine", str(e)) from None

    lot = _cell(fields, "lot")
    if not lot:
        raise _fail("lot", "empty")
    if len(lot) > MAX_LOT_LENGTH:
        raise _fail("lot", f"longer than {MAX_LOT_LENGTH} characters")
    if not lot.isprintable():
        raise _fail("lot", "contains control characters")
    if lot.startswith(FORMULA_PREFIXES):
        raise _fail("lot", "starts with =, +, - or @ (a spreadsheet would run it as a formula)")

    date_text = _cell(fields, "date")
    if not _DATE_RE.match(date_text):
        raise _fail("date", "must be YYYY-MM-DD")
    try:
        date = dt.date.fromisoformat(date_text)
    except ValueError:
        raise _fail("date", "is not a calendar date") from None
    if date < EARLIEST_DOSE_DATE:
        raise _fail("date", f"is before {EARLIEST_DOSE_DATE.isoformat()}")
    if today is not None and date > today:
        raise _fail("date", "is in the future")
    if born is not None and date < born:  # at the precision known: before the first possible birthday
        raise _fail("date", "is before the date of birth")

    dose_number = _parse_dose_number(fields)

    site_id = _cell(fields, "site_id")
    if not _SITE_RE.match(site_id):
        raise _fail("site_id", f"{_echo(site_id)} does not match {SITE_ID_PATTERN}")

    person = Person(citizen_id=citizen_id, id_type=cid.id_type, full_name=full_name, dob=dob, gender=gender)
    dose = DoseRecord(
        citizen_id=citizen_id,
        vaccine=vaccine,
        lot=lot,
        date=date_text,
        dose_number=dose_number,
        site_id=site_id,
    )
    return ImportRow(person=person, dose=dose)
