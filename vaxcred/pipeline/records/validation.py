"""Validating a chunk of import lines: each line read (:func:`~vaxcred.pipeline.records.reading.read_row`) and
checked (the checks of :func:`~vaxcred.pipeline.records.model.parse_row`: :func:`~vaxcred.pipeline.records.parsing.parse_person`,
:func:`~vaxcred.pipeline.records.parsing.parse_dose`) into a staged row or a reject.

Pure (no I/O, no clock): the same function runs in this process (a small import) or in worker processes
(:mod:`vaxcred.pipeline.records.workers`), whose results the parent stores in file order. Everything here is
plain tuples and strings, cheap to send between processes.
"""

from __future__ import annotations

import datetime as dt
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from vaxcred.errors import VaxcredError
from vaxcred.pipeline.records.cccd import IdType
from vaxcred.pipeline.records.parsing import PersonPart, parse_dose, parse_person
from vaxcred.pipeline.records.reading import NOT_UTF8, cut, plain_csv_fields, read_row
from vaxcred.pipeline.records.rejects import raw_cell

__all__ = ["STAGED_COLUMNS", "UNREADABLE", "Chunk", "ChunkResult", "Reject", "StagedRow", "validate_chunk"]

#: the reject code of a row refused before :func:`parse_row` (which gives ``pipeline.bad_row``)
UNREADABLE = "pipeline.unreadable_row"
#: a valid row as the store receives it, in this column order
STAGED_COLUMNS = (
    "citizen_id",
    "id_type",
    "full_name",
    "dob",
    "gender",
    "province_code",
    "vaccine",
    "lot",
    "date",
    "dose_number",
    "site_id",
)
StagedRow = tuple[str, str, str, str, str, str | None, str, str, str, int, str]
#: the cells :func:`parse_person` reads (a row's person part is reused when these equal the previous row's)
_PERSON_CELLS = ("id_type", "citizen_id", "full_name", "dob", "gender")
_MISSING = object()
#: ``(line, field, code, reason, raw)``: a row of the rejects file (raw already cut)
Reject = tuple[int, str, str, str, str]


@dataclass(frozen=True, slots=True, kw_only=True)
class Chunk:
    """Consecutive lines of the file, the first being line ``first_line`` (1-based); blank lines included."""

    first_line: int
    lines: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class ChunkResult:
    """What a chunk held: ``rows`` data lines = ``len(valid) + len(rejects)``, in file order within each."""

    rows: int
    valid: tuple[StagedRow, ...]
    rejects: tuple[Reject, ...]
    not_utf8: int  #: rejects whose reason is "not valid UTF-8" (for the whole-file hint)


def validate_chunk(chunk: Chunk, *, header: Sequence[str] | None, today: dt.date | None) -> ChunkResult:
    """Read and validate every line of ``chunk``: CSV named by ``header``, JSON Lines when it is ``None``."""
    if today is not None and (not isinstance(today, dt.date) or isinstance(today, dt.datetime)):
        raise TypeError("today must be a datetime.date")
    names = tuple(header) if header is not None else None
    valid: list[StagedRow] = []
    rejects: list[Reject] = []
    rows = not_utf8 = 0
    # a person's rows usually follow each other: their person part is checked once (the same five cells give
    # the same result; only a success is reused, so its cells are text or JSON null, equal only to their like)
    last_cells: tuple[object, ...] | None = None
    # a CSV row names every header column: one C call takes the five cells (~0.6 µs a row less than the loop)
    person_cells = (
        operator.itemgetter(*_PERSON_CELLS)
        if names is not None and set(_PERSON_CELLS) <= set(names)
        else None
    )
    person: PersonPart | None = None
    # and its six staged columns built once (the enums' ``.value`` is a descriptor call: ~0.5 µs a row each)
    staged_person: tuple[str, str, str, str, str, str | None] = ("", "", "", "", "", None)
    for number, line in enumerate(chunk.lines, start=chunk.first_line):
        # the common CSV line read directly; any other line (blank, quoted, bad …) as read_row reads it
        fields: Mapping[str, object] | None = plain_csv_fields(line, names) if names is not None else None
        if fields is None:
            src = read_row(number, line, names)
            if src is None:
                continue
            fields = src.fields
            if fields is None:
                rows += 1
                not_utf8 += src.reason == NOT_UTF8
                rejects.append((number, "", UNREADABLE, src.reason, raw_cell(src.raw)))
                continue
        rows += 1
        try:
            cells = (
                person_cells(fields)
                if person_cells is not None
                else tuple([fields.get(name, _MISSING) for name in _PERSON_CELLS])
            )
            if person is None or cells != last_cells:
                person = parse_person(fields, today=today)
                last_cells = cells
                citizen_id, id_type, full_name, dob, gender, _ = person
                staged_person = (
                    citizen_id,
                    id_type.value,
                    full_name,
                    dob.text,
                    gender.value,
                    citizen_id[:3] if id_type is IdType.CCCD else None,
                )
            vaccine, lot, date, dose_number, site_id = parse_dose(fields, today=today, born=person[5])
        except VaxcredError as e:
            raw = cut(line)[0]  # the row's text as read_row keeps it
            rejects.append((number, getattr(e, "field", None) or "", e.code, e.message, raw_cell(raw)))
            continue
        valid.append((*staged_person, vaccine, lot, date, dose_number, site_id))
    return ChunkResult(rows=rows, valid=tuple(valid), rejects=tuple(rejects), not_utf8=not_utf8)
