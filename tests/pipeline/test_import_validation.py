"""Validating import chunks (:func:`validate_chunk`) against the row model (:func:`parse_row`), row by row: the
person part a row shares with the row before it is checked once, and that reuse must never change a result."""

from __future__ import annotations

import datetime as dt
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.pipeline.import_child import HEADER
from vaxcred.errors import VaxcredError
from vaxcred.pipeline.records.cccd import IdType
from vaxcred.pipeline.records.model import parse_row
from vaxcred.pipeline.records.reading import parse_header, read_row
from vaxcred.pipeline.records.rejects import raw_cell
from vaxcred.pipeline.records.validation import UNREADABLE, Chunk, Reject, StagedRow, validate_chunk

TODAY = dt.date(2023, 1, 8)
NAMES = parse_header(HEADER)


def _expected(lines: list[str], header: tuple[str, ...] | None) -> tuple[list[StagedRow], list[Reject]]:
    """What validating ``lines`` (the first being line 2) must give: each row through :func:`parse_row` alone."""
    valid: list[StagedRow] = []
    rejects: list[Reject] = []
    for number, line in enumerate(lines, start=2):
        src = read_row(number, line, header)
        if src is None:
            continue
        if src.fields is None:
            rejects.append((number, "", UNREADABLE, src.reason, raw_cell(src.raw)))
            continue
        try:
            row = parse_row(src.fields, today=TODAY)
        except VaxcredError as e:
            rejects.append((number, getattr(e, "field", None) or "", e.code, e.message, raw_cell(src.raw)))
            continue
        p, d = row.person, row.dose
        province = p.citizen_id[:3] if p.id_type is IdType.CCCD else None
        person = (p.citizen_id, p.id_type.value, p.full_name, p.dob.text, p.gender.value, province)
        valid.append((*person, d.vaccine, d.lot, d.date, d.dose_number, d.site_id))
    return valid, rejects


def _validated(lines: list[str], header: tuple[str, ...] | None) -> tuple[list[StagedRow], list[Reject]]:
    result = validate_chunk(Chunk(first_line=2, lines=tuple(lines)), header=header, today=TODAY)
    assert result.rows == len(result.valid) + len(result.rejects)
    return list(result.valid), list(result.rejects)


def test_a_row_sharing_the_citizen_id_but_not_the_name_is_checked_again() -> None:
    """The person part is reused only for equal cells: a bad name after a good row of that ID is rejected."""
    lines = [
        "001090012345,Nguyễn Văn Đức,1990-05-17,M,Comirnaty,FK1,2021-08-01,1,HN-001\n",
        "001090012345,Nguyễn\x07Văn Đức,1990-05-17,M,Comirnaty,FK1,2021-09-01,2,HN-001\n",
        "001090012345,Nguyễn Văn Đức,1990-05-17,F,Comirnaty,FK1,2021-10-01,3,HN-001\n",
    ]
    valid, rejects = _validated(lines, NAMES)
    assert len(valid) == 1
    assert [(number, field) for number, field, *_ in rejects] == [(3, "full_name"), (4, "gender")]
    assert (valid, rejects) == _expected(lines, NAMES)


def test_a_row_after_a_rejected_person_with_the_same_cells_is_rejected_too() -> None:
    """A failed person part is never reused as a success (two rows of a CCCD whose digits disagree)."""
    lines = ["001190012345,Nguyễn Văn Đức,1990-05-17,M,Comirnaty,FK1,2021-08-01,1,HN-001\n"] * 2
    valid, rejects = _validated(lines, NAMES)
    assert valid == []
    assert [(number, field) for number, field, *_ in rejects] == [(2, "gender"), (3, "gender")]


_IDS = ("001090012345", "079185001234", "123456789", "001190012345", " 001090012345")
_NAMES = (
    "Nguyễn Văn Đức",
    "Nguyen Van Duc",
    "Nguyễn\x07Đức",
    "Nguyễn Văn Đức ",
    "Nguye\u0302\u0303n Văn Đức",
)
_DOBS = ("1990-05-17", "1985", "1990-05-17 ", "2030", "1990-02-30", "")
_GENDERS = ("M", "F", "Nữ", "", "x")
_DOSES = (
    ("Comirnaty", "FK1", "2021-08-01", "1", "HN-001"),
    ("AstraZeneca", "=1", "2021-09-01", "2", "DN-003"),
    ("NoSuchVaccine", "FK2", "2021-02-30", "0", "HCM-017"),
    ("Vero Cell", "FK3", "1989-01-01", "3", "bad site"),
)


def _person(i: int) -> tuple[str, ...]:
    """Few persons, many near-identical: consecutive rows often share some or all five person cells."""
    return (
        _IDS[i % 5],
        _NAMES[i // 5 % 5],
        _DOBS[i // 25 % 6],
        _GENDERS[i // 150 % 5],
        ("", "CCCD", "cmnd", "OTHER", "passport")[i // 750 % 5],
    )


_rows = st.lists(st.tuples(st.integers(0, 3749), st.sampled_from(_DOSES), st.booleans()), max_size=30).map(
    lambda rows: [(_person(i), dose, repeat) for i, dose, repeat in rows]
)


def _csv(rows: list[tuple[tuple[str, ...], tuple[str, ...], bool]]) -> list[str]:
    lines = []
    for (cid, name, dob, gender, id_type), dose, repeat in rows:
        line = ",".join((cid, name, dob, gender, *dose, id_type)) + "\n"
        lines.extend((line, line) if repeat else (line,))
    return lines


@settings(max_examples=150, deadline=None)
@given(rows=_rows)
def test_validating_a_csv_chunk_gives_what_parse_row_gives_each_row(
    rows: list[tuple[tuple[str, ...], tuple[str, ...], bool]],
) -> None:
    """Valid rows and rejects (line, field, code, reason, raw) are those of :func:`parse_row` row by row."""
    header = (*NAMES, "id_type")
    lines = _csv(rows)
    assert _validated(lines, header) == _expected(lines, header)


_json_value = st.sampled_from(("001090012345", "Nguyễn Văn Đức", "1990-05-17", "M", "", None, 1, True, [1]))


@settings(max_examples=100, deadline=None)
@given(values=st.lists(st.tuples(_json_value, _json_value, st.booleans()), max_size=20))
def test_validating_json_lines_gives_what_parse_row_gives_each_row(
    values: list[tuple[object, object, bool]],
) -> None:
    """JSON values of any type in the person cells (null, numbers, booleans, lists) never share a result
    with text they compare unequal to, and give :func:`parse_row`'s result."""
    lines = []
    for gender, dob, drop in values:
        row: dict[str, object] = {
            "citizen_id": "001090012345",
            "full_name": "Nguyễn Văn Đức",
            "dob": dob,
            "gender": gender,
            "vaccine": "Comirnaty",
            "lot": "FK1",
            "date": "2021-08-01",
            "dose_number": 1,
            "site_id": "HN-001",
        }
        if drop:
            del row["gender"]
        lines.append(json.dumps(row, ensure_ascii=False) + "\n")
    assert _validated(lines, None) == _expected(lines, None)
