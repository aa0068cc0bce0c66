"""The import's row checks read a common CSV line directly, a CCCD's digits directly, check a name word by word
and remember dose dates: each must decide exactly what the general code decides (the reference functions below
are the code before)."""

from __future__ import annotations

import datetime as dt
import unicodedata
from collections.abc import Mapping

from hypothesis import example, given, settings
from hypothesis import strategies as st
from psycopg._copy_base import TextFormatter
from psycopg.adapt import Transformer

from vaxcred.errors import ModelError, VaxcredError
from vaxcred.model import DateOfBirth, Name
from vaxcred.pipeline.errors import PipelineError
from vaxcred.pipeline.records import staging
from vaxcred.pipeline.records.cccd import PROVINCES, IdType, check_consistency, parse_citizen_id
from vaxcred.pipeline.records.fields import DATE_RE, DOSE_NUMBER_RE, EARLIEST_DOSE_DATE, MAX_DOSE_NUMBER
from vaxcred.pipeline.records.parsing import _fail, parse_dose, parse_gender, parse_person
from vaxcred.pipeline.records.reading import MAX_LINE_CHARS, parse_header, plain_csv_fields, read_row
from vaxcred.pipeline.records.validation import StagedRow

TODAY = dt.date(2023, 1, 8)


def _reference_person(fields: Mapping[str, object], today: dt.date | None) -> object:
    """parse_person as it was: a CitizenId, Name.from_vietnamese, DateOfBirth, check_consistency."""
    id_type: IdType | None = None
    hint = _text(fields, "id_type").upper() if "id_type" in fields else ""
    if hint:
        try:
            id_type = IdType(hint)
        except ValueError:
            raise _fail("id_type", "must be CCCD, CMND or OTHER") from None
    citizen_id = _text(fields, "citizen_id")
    try:
        cid = parse_citizen_id(citizen_id, id_type=id_type)
    except PipelineError as e:
        raise _fail("citizen_id", e.message) from e
    full_name = unicodedata.normalize("NFC", _text(fields, "full_name"))
    if not full_name:
        raise _fail("full_name", "empty")
    if not full_name.isprintable():
        raise _fail("full_name", "contains control characters")
    try:
        Name.from_vietnamese(full_name)
    except ModelError as e:
        raise _fail("full_name", e.message) from None
    try:
        dob = DateOfBirth.from_text(_text(fields, "dob"))
    except ModelError as e:
        raise _fail("dob", e.message) from None
    born = None if dob.year is None else dt.date(dob.year, dob.month or 1, dob.day or 1)
    if today is not None and born is not None and born > today:
        raise _fail("dob", "is in the future")
    try:
        gender = parse_gender(_text(fields, "gender"))
    except ValueError as e:
        raise _fail("gender", str(e)) from None
    problems = check_consistency(cid, dob, gender)
    if "century" in problems or "birth_year" in problems:
        raise _fail("dob", "the year of birth disagrees with the CCCD (digits 4–6)")
    if "gender" in problems:
        raise _fail("gender", "disagrees with the CCCD (digit 4)")
    return citizen_id, cid.id_type, full_name, dob, gender, born


def _reference_date_and_number(fields: Mapping[str, object], born: dt.date | None) -> object:
    """The date and dose number checks of parse_dose as they were."""
    date_text = _text(fields, "date")
    if not DATE_RE.match(date_text):
        raise _fail("date", "must be YYYY-MM-DD")
    try:
        date = dt.date.fromisoformat(date_text)
    except ValueError:
        raise _fail("date", "is not a calendar date") from None
    if date < EARLIEST_DOSE_DATE:
        raise _fail("date", f"is before {EARLIEST_DOSE_DATE.isoformat()}")
    if date > TODAY:
        raise _fail("date", "is in the future")
    if born is not None and date < born:
        raise _fail("date", "is before the date of birth")
    raw = fields["dose_number"]
    if isinstance(raw, int) and not isinstance(raw, bool):
        number = raw
    elif isinstance(raw, str) and DOSE_NUMBER_RE.match(raw.strip()):
        number = int(raw.strip())
    else:
        raise _fail("dose_number", "must be a whole number")
    if not 1 <= number <= MAX_DOSE_NUMBER:
        raise _fail("dose_number", f"must be within 1–{MAX_DOSE_NUMBER}")
    return date_text, number


def _text(fields: Mapping[str, object], name: str) -> str:
    value = fields[name]
    return "" if value is None else str(value).strip()


def _outcome(call: object, *args: object) -> object:
    try:
        return call(*args)  # type: ignore[operator]
    except VaxcredError as e:
        return ("refused", getattr(e, "field", None), e.code, e.message)


_PROVINCE = st.sampled_from([*sorted(PROVINCES)[:4], "096", "000", "003", "999"])
_CITIZEN_IDS = (
    st.builds(
        lambda province, digit, year, tail: province + digit + year + tail,
        _PROVINCE,
        st.sampled_from("0123456789"),
        st.sampled_from(["85", "90", "00", "05", "99"]),
        st.text("0123456789", min_size=6, max_size=6) | st.text("0123456789١٢ xA", max_size=8),
    )
    | st.text("0123456789", min_size=8, max_size=13)
    | st.text("0123456789ABZaé١ ", max_size=22)
)
_WORDS = st.sampled_from(
    [
        "Nguyễn",
        "Văn",
        "Đức",
        "Thị",
        "Ngọc",
        "Ánh",
        "Lê",
        "O'Neil",
        "Anh-Thư",
        "-",
        "'",
        "Ⅻ",
        "Ng2",
        "Ñam",
        "ǅ",
        "ß",
    ]
)
_SEPARATORS = st.sampled_from([" ", "  ", "\u00a0", "\u2003", "\t"])
_NAMES = (
    st.lists(st.tuples(_WORDS, _SEPARATORS), min_size=1, max_size=5).map(
        lambda parts: "".join(word + separator for word, separator in parts).rstrip()
    )
    | st.builds(lambda n: "Nguyễn " + "A" * n, st.integers(76, 84))
    | st.builds(lambda n: "B" * n + " An", st.integers(78, 82))
    | st.text(max_size=12)
)
_DOBS = st.sampled_from(
    ["", "1985", "1985-03", "1985-03-17", "1990-05-17", "2005-12-31", "2099-01-01", "1985-13", "85"]
)
_GENDERS = st.sampled_from(["M", "F", "", "Nam", "nữ", "x"])
_HINTS = st.sampled_from([None, "", "CCCD", "cmnd", "OTHER", "passport"])


@settings(max_examples=1500, deadline=None)
@given(citizen_id=_CITIZEN_IDS, hint=_HINTS, full_name=_NAMES, dob=_DOBS, gender=_GENDERS)
@example(citizen_id="001085012345", hint=None, full_name="Nguyễn Văn Đức", dob="1985-03-17", gender="M")
@example(citizen_id="001185012345", hint="CCCD", full_name="Nguyễn Văn Đức", dob="1985-03-17", gender="M")
@example(
    citizen_id="003085012345", hint=None, full_name="Nguyễn Văn Đức", dob="1985", gender="M"
)  # no province
@example(citizen_id="00108501234\u0661", hint=None, full_name="Lê An", dob="1985", gender="M")  # not ASCII
@example(citizen_id="001085012345", hint="OTHER", full_name="Lê An", dob="1990", gender="F")
@example(citizen_id="123456789", hint=None, full_name="Nguyễn - Đức", dob="1985", gender="F")
@example(
    citizen_id="123456789", hint=None, full_name="Nguyễn -", dob="1985", gender="F"
)  # the rest: no letter
@example(
    citizen_id="123456789", hint=None, full_name="Nguyễn " + "A" * 81, dob="", gender=""
)  # rest too long
def test_parse_person_decides_what_the_general_checks_decide(
    citizen_id: str, hint: str | None, full_name: str, dob: str, gender: str
) -> None:
    fields: dict[str, object] = {
        "citizen_id": citizen_id,
        "full_name": full_name,
        "dob": dob,
        "gender": gender,
    }
    if hint is not None:
        fields["id_type"] = hint
    assert _outcome(lambda: parse_person(fields, today=TODAY)) == _outcome(
        lambda: _reference_person(fields, TODAY)
    )


@settings(max_examples=500, deadline=None)
@given(
    date=st.sampled_from(
        ["2021-08-01", "2021-02-29", "2020-12-31", "2019-01-01", "2023-01-09", "2021-8-1", ""]
    )
    | st.dates(dt.date(2019, 6, 1), dt.date(2023, 3, 1)).map(dt.date.isoformat),
    number=st.sampled_from(["1", "2", "9", "10", "0", " 3", "03", "٣", "1.0", "", 2, 0, 12, True, None]),
    born=st.sampled_from([None, dt.date(2021, 7, 1), dt.date(1985, 1, 1)]),
)
def test_parse_dose_decides_dates_and_dose_numbers_as_before(
    date: str, number: object, born: dt.date | None
) -> None:
    fields: dict[str, object] = {
        "vaccine": "Comirnaty",
        "lot": "FK1",
        "date": date,
        "dose_number": number,
        "site_id": "HN-001",
    }
    new = _outcome(lambda: parse_dose(fields, today=TODAY, born=born))
    old = _outcome(lambda: _reference_date_and_number(fields, born))
    if isinstance(old, tuple) and old[0] == "refused":
        assert new == old
    else:
        assert new == ("Comirnaty", "FK1", *old, "HN-001")  # type: ignore[misc]


HEADER = parse_header("citizen_id,full_name,dob,gender,vaccine,lot,date,dose_number,site_id,id_type")
_CELLS = st.text(
    st.sampled_from(['"', "\r", "\n", "\x00", "\udcff", ",", " ", "\t", "a", "é", "1", "-"]), max_size=4
)


@settings(max_examples=1000, deadline=None)
@given(
    line=st.builds(
        lambda cells, end: ",".join(cells) + end,
        st.lists(_CELLS, min_size=8, max_size=11),
        st.sampled_from(["", "\n", "\r\n", "\r"]),
    )
    | st.sampled_from(["", "\n", "   \n", ",,,,,,,,,\n", "a" * (MAX_LINE_CHARS + 1) + ",,,,,,,,,\n"])
)
@example(line='001,"An",,,,,,,,\n')
@example(line="001,An,,,,,,,\n")  # nine cells, ten names
@example(line="001,An\udcff,,,,,,,,\n")
def test_a_plain_csv_line_gives_the_fields_read_row_gives(line: str) -> None:
    """``plain_csv_fields`` answers only for a line ``read_row`` reads as those cells; any other line is left
    to ``read_row`` (``None``)."""
    fields = plain_csv_fields(line, HEADER)
    if fields is not None:
        src = read_row(2, line, HEADER)
        assert src is not None
        assert src.fields == fields


_STAGED_TEXT = st.text(
    st.sampled_from(["a", "Ễ", "1", " ", "-", "\\", "\t", "\n", "\r", "N", "."]), max_size=4
)


@settings(max_examples=500, deadline=None)
@given(
    rows=st.lists(
        st.tuples(
            _STAGED_TEXT,
            st.sampled_from(["CCCD", "CMND", "OTHER"]),
            _STAGED_TEXT,
            st.sampled_from(["", "1985", "1985-03-17"]),
            st.sampled_from(["", "M", "F"]),
            st.sampled_from([None, "001", "\\N"]),
            st.sampled_from(["Comirnaty", "Vaxzevria"]),
            _STAGED_TEXT,
            st.sampled_from(["2021-08-01"]),
            st.integers(1, 9),
            _STAGED_TEXT,
        ),
        max_size=6,
    )
)
@example(
    rows=[
        ("001085012345", "CCCD", "Lê An", "1985", "M", "001", "Comirnaty", "FK1", "2021-08-01", 1, "HN-001")
    ]
)
@example(
    rows=[("123456789", "CMND", "Lê An", "1985", "M", None, "Comirnaty", "FK1", "2021-08-01", 2, "HN-001")]
)
@example(
    rows=[("123456789", "CMND", "Lê An", "1985", "M", None, "Comirnaty", None, "2021-08-01", 2, "HN-001")]
)
def test_the_copy_text_is_what_psycopg_writes_or_none(rows: list[StagedRow]) -> None:
    """The batch's COPY text is psycopg's own text for the same rows, byte for byte; a batch with a cell that
    needs escaping gets ``None`` (psycopg writes it row by row)."""
    formatter = TextFormatter(Transformer())
    expected = b"".join([*(bytes(formatter.write_row(row)) for row in rows), bytes(formatter.end())])
    plain = all(
        not any(ch in str(cell) for ch in "\\\t\n\r") and (cell is not None or column == 5)
        for row in rows
        for column, cell in enumerate(row)
    )
    text = staging._copy_text(rows)
    if plain:
        assert text is not None
    if text is not None:
        assert text.encode() == expected
