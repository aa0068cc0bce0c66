"""Parsing one import row as a vaccination site entered it: the person's fields + one dose.

Pure: no I/O, no clock (``today`` is a parameter).  :func:`parse_row` turns one CSV / JSON Lines row
(:data:`~vaxcred.pipeline.records.fields.ROW_FIELDS`) into an :class:`~vaxcred.pipeline.records.row.ImportRow` or raises :class:`~vaxcred.pipeline.errors.PipelineError`
``pipeline.bad_row`` whose ``field`` names the first offending field (in :data:`~vaxcred.pipeline.records.fields.ROW_FIELDS` order) and whose message
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
  a friendly name from :data:`~vaxcred.pipeline.records.vaccines.VACCINE_ALIASES`; matched case-insensitively ignoring spaces and punctuation
  (``"astra zeneca"``, ``"Vero-Cell"``).  Stored canonically: a ``VIETNAM_VACCINES`` key when the product is one
  of them (``"EU/1/21/1529"`` → ``"Vaxzevria"``), else the ``mp`` code.
- ``lot``: 1–64 printable characters, not starting with ``=``, ``+``, ``-`` or ``@`` (a spreadsheet opening an
  export or the rejects file would run such a cell as a formula; :data:`~vaxcred.pipeline.records.fields.FORMULA_PREFIXES`).
- ``date``: a real ``YYYY-MM-DD`` date, not before :data:`~vaxcred.pipeline.records.fields.EARLIEST_DOSE_DATE`, not after ``today`` (when given),
  not before a known date of birth.
- ``dose_number``: ASCII digits (or a JSON integer) within 1–:data:`~vaxcred.pipeline.records.fields.MAX_DOSE_NUMBER`.
- ``site_id``: :data:`~vaxcred.pipeline.records.fields.SITE_ID_PATTERN`.

No ordering between doses is required on import: a dose 2 recorded without the paper for dose 1 is accepted
(seed 004); the person's dose 1 may arrive later or from another site.  A dose's natural key is
:attr:`~vaxcred.pipeline.records.row.DoseRecord.natural_key`: ``(citizen_id, dose_number, date, site_id)``.
"""

from __future__ import annotations

import datetime as dt
import functools
import unicodedata
from collections.abc import Mapping
from types import MappingProxyType

from vaxcred.errors import ModelError
from vaxcred.model import DateOfBirth, Name
from vaxcred.model.names import MAX_NAME_LENGTH, transliterate
from vaxcred.pipeline.errors import BAD_ROW, PipelineError
from vaxcred.pipeline.records.cccd import Gender, IdType, cccd_digits, parse_citizen_id
from vaxcred.pipeline.records.fields import (
    DATE_RE,
    DOSE_NUMBER_RE,
    EARLIEST_DOSE_DATE,
    FORMULA_PREFIXES,
    MAX_DOSE_NUMBER,
    MAX_LOT_LENGTH,
    SITE_ID_PATTERN,
    SITE_RE,
    echo_code,
)
from vaxcred.pipeline.records.row import DoseRecord, ImportRow, Person
from vaxcred.pipeline.records.vaccines import resolve_vaccine

__all__ = ["DosePart", "PersonPart", "parse_dose", "parse_gender", "parse_person", "parse_row"]


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


_MISSING = object()


def _cell(fields: Mapping[str, object], name: str) -> str:
    value = fields.get(name, _MISSING)
    if type(value) is str:  # the common cell: one look-up, one test
        return value.strip()
    if value is _MISSING:
        raise _fail(name, "missing")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _fail(name, f"must be text, not {type(value).__name__}")
    return value.strip()


#: the dose numbers as a CSV cell holds them (the common case of :func:`_parse_dose_number`, one dict look-up)
_DOSE_NUMBERS = {str(n): n for n in range(1, MAX_DOSE_NUMBER + 1)}


def _parse_dose_number(fields: Mapping[str, object]) -> int:
    if "dose_number" not in fields:
        raise _fail("dose_number", "missing")
    raw = fields["dose_number"]
    if type(raw) is str and (known := _DOSE_NUMBERS.get(raw)) is not None:
        return known
    if isinstance(raw, int) and not isinstance(raw, bool):
        number = raw
    elif isinstance(raw, str) and DOSE_NUMBER_RE.match(raw.strip()):
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
    words = full_name.split()
    if (
        words
        and len(words[0]) <= MAX_NAME_LENGTH
        and all(map(_plain_word, words))
        and len(" ".join(words[1:])) <= MAX_NAME_LENGTH
    ):
        return ""  # what Name.from_vietnamese gives such a name (the reasoning at _plain_word)
    try:
        Name.from_vietnamese(full_name)
    except ModelError as e:
        return e.message
    return ""


@functools.lru_cache(maxsize=1 << 14)
def _plain_word(word: str) -> bool:
    """Whether the word (no whitespace, NFC) transliterates to letters only (``A–Z``, at least one).

    A name (printable, NFC) whose every word is such a word, with a surname and a rest of at most
    :data:`MAX_NAME_LENGTH` characters each, is a valid :meth:`Name.from_vietnamese`: transliteration is
    character by character (a space becomes the filler ``<``), so the surname's form is its word's and the
    rest's is its words' forms joined by single fillers: letters, never empty, nothing refused. Every other
    name goes through :meth:`Name.from_vietnamese` itself. The words of a population's names repeat (~300
    Vietnamese syllables), its full names much less (113,000 in a million people: past the name cache)."""
    try:
        form = transliterate(word)
    except ModelError:
        return False
    return bool(form) and "<" not in form


@functools.lru_cache(maxsize=1 << 16)
def _parse_dob(text: str) -> tuple[DateOfBirth, dt.date | None] | str:
    """The date of birth and its earliest day (:func:`_earliest_birth`), or why it is invalid (``DateOfBirth``
    is immutable: safe to share)."""
    try:
        dob = DateOfBirth.from_text(text)
    except ModelError as e:
        return e.message
    return dob, _earliest_birth(dob)


def _earliest_birth(dob: DateOfBirth) -> dt.date | None:
    """The earliest day the person can have been born (for 'dose before birth')."""
    if dob.year is None:
        return None
    return dt.date(dob.year, dob.month or 1, dob.day or 1)


#: a vaccine cell's canonical vaccine (:func:`resolve_vaccine`), remembered: a few names fill a column (an
#: unknown one raises, never remembered)
_vaccine = functools.lru_cache(maxsize=1 << 10)(resolve_vaccine)


@functools.lru_cache(maxsize=1 << 12)
def _dose_date(text: str) -> dt.date | str:
    """A dose date's cell (trimmed) as a date not before :data:`EARLIEST_DOSE_DATE`, or why it is not (dose dates
    repeat: a few thousand days)."""
    if not DATE_RE.match(text):
        return "must be YYYY-MM-DD"
    try:
        date = dt.date.fromisoformat(text)
    except ValueError:
        return "is not a calendar date"
    if date < EARLIEST_DOSE_DATE:
        return f"is before {EARLIEST_DOSE_DATE.isoformat()}"
    return date


#: the person part of a row (:func:`parse_person`): citizen ID, ID type, name (NFC), date of birth, gender, and
#: the earliest day of birth (``None`` when the year is unknown)
PersonPart = tuple[str, IdType, str, DateOfBirth, Gender, dt.date | None]
#: the dose part of a row (:func:`parse_dose`): vaccine (canonical), lot, date, dose number, site ID
DosePart = tuple[str, str, str, int, str]


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
    citizen_id, id_type, full_name, dob, gender, born = parse_person(fields, today=today)
    vaccine, lot, date_text, dose_number, site_id = parse_dose(fields, today=today, born=born)
    person = Person(citizen_id=citizen_id, id_type=id_type, full_name=full_name, dob=dob, gender=gender)
    dose = DoseRecord(
        citizen_id=citizen_id,
        vaccine=vaccine,
        lot=lot,
        date=date_text,
        dose_number=dose_number,
        site_id=site_id,
    )
    return ImportRow(person=person, dose=dose)


def parse_person(fields: Mapping[str, object], *, today: dt.date | None) -> PersonPart:
    """The person fields of :func:`parse_row` (``id_type``, ``citizen_id``, ``full_name``, ``dob``, ``gender``,
    checked in that order, then their consistency): the first checks of a row, depending on these five cells
    and ``today`` only (so a caller may reuse the result for a row with the same five values)."""
    id_type: IdType | None = None
    hint = _cell(fields, "id_type").upper() if "id_type" in fields else ""
    if hint:
        try:
            id_type = IdType(hint)
        except ValueError:
            raise _fail("id_type", "must be CCCD, CMND or OTHER") from None

    citizen_id = _cell(fields, "citizen_id")
    # a CCCD (12 ASCII digits, a province code) read directly, as parse_citizen_id would: no CitizenId built
    digits = cccd_digits(citizen_id) if id_type is None or id_type is IdType.CCCD else None
    if digits is not None:
        kind = IdType.CCCD
    else:
        try:
            cid = parse_citizen_id(citizen_id, id_type=id_type)
        except PipelineError as e:
            raise _fail("citizen_id", e.message) from e
        kind = cid.id_type
        if cid.century is not None and cid.birth_year_2 is not None:
            digits = (cid.century, cid.birth_year_2, cid.gender)

    full_name = unicodedata.normalize("NFC", _cell(fields, "full_name"))
    if not full_name:
        raise _fail("full_name", "empty")
    problem = _name_problem(full_name)
    if problem:
        raise _fail("full_name", problem)

    dob_or_problem = _parse_dob(_cell(fields, "dob"))
    if isinstance(dob_or_problem, str):
        raise _fail("dob", dob_or_problem)
    dob, born = dob_or_problem
    if today is not None and born is not None and born > today:
        raise _fail("dob", "is in the future")

    try:
        gender = parse_gender(_cell(fields, "gender"))
    except ValueError as e:
        raise _fail("gender", str(e)) from None

    if digits is not None:  # check_consistency's rules, on the digits
        century, birth_year_2, coded_gender = digits
        year = dob.year
        if year is not None and (year // 100 * 100 != century or year % 100 != birth_year_2):
            raise _fail("dob", "the year of birth disagrees with the CCCD (digits 4–6)")
        if gender is not Gender.UNKNOWN and gender is not coded_gender:
            raise _fail("gender", "disagrees with the CCCD (digit 4)")

    return citizen_id, kind, full_name, dob, gender, born


def parse_dose(fields: Mapping[str, object], *, today: dt.date | None, born: dt.date | None) -> DosePart:
    """The dose fields of :func:`parse_row` (``vaccine``, ``lot``, ``date``, ``dose_number``, ``site_id``, in that
    order), checked after :func:`parse_person` (``born``: its earliest day of birth)."""
    try:
        vaccine = _vaccine(_cell(fields, "vaccine"))
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
    date = _dose_date(date_text)
    if isinstance(date, str):
        raise _fail("date", date)
    if today is not None and date > today:
        raise _fail("date", "is in the future")
    if born is not None and date < born:  # at the precision known: before the first possible birthday
        raise _fail("date", "is before the date of birth")

    dose_number = _parse_dose_number(fields)

    site_id = _cell(fields, "site_id")
    if not SITE_RE.match(site_id):
        raise _fail("site_id", f"{echo_code(site_id)} does not match {SITE_ID_PATTERN}")

    return vaccine, lot, date_text, dose_number, site_id
