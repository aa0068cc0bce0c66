"""The registry check, one batch: the person rows it reads, the registry's answer and the matching; the write
transaction that stores the results is in :mod:`vaxcred.pipeline.registry.store`.

The stage (:mod:`vaxcred.pipeline.registry.check`) runs these in this process, or spreads the matching and the
storing over worker processes (:mod:`vaxcred.pipeline.registry.parallel`): every piece here is picklable.
Nothing here logs citizen IDs, names or dates of birth.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeAlias

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from vaxcred.model import DateOfBirth
from vaxcred.pipeline.records.cccd import Gender, IdType
from vaxcred.pipeline.records.model import Person
from vaxcred.pipeline.registry.lookup import (
    Judgement,
    PopulationRegistry,
    RegistryEntry,
    RegistryResult,
    judge_recorded,
    match,
)
from vaxcred.storage.database import driver_errors
from vaxcred.storage.schema import persons

__all__ = [
    "COLUMNS",
    "Outcome",
    "PersonRow",
    "PlainEntry",
    "RegistryCheckReport",
    "lookup_batch",
    "match_batch",
    "match_outcomes",
    "match_plain_outcomes",
    "outcomes",
    "person_rows",
    "plain_entries",
    "read_person_rows",
]

logger = logging.getLogger(__name__)

_Row: TypeAlias = Row[*tuple[Any, ...]]

#: the person columns a check reads, in :class:`PersonRow` order
COLUMNS = (
    persons.c.id,
    persons.c.citizen_id,
    persons.c.id_type,
    persons.c.full_name,
    persons.c.dob,
    persons.c.gender,
    persons.c.registry_status,
    persons.c.registry_checked_at,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class RegistryCheckReport:
    """What one run stored: ``checked == verified + mismatch + not_found + invalid_id``.

    ``skipped`` counts persons read for checking but changed before their result could be stored (left for
    the next run or for whoever changed them).
    """

    checked: int = 0
    verified: int = 0
    mismatch: int = 0
    not_found: int = 0
    invalid_id: int = 0
    skipped: int = 0

    def __add__(self, other: RegistryCheckReport) -> RegistryCheckReport:
        return RegistryCheckReport(
            checked=self.checked + other.checked,
            verified=self.verified + other.verified,
            mismatch=self.mismatch + other.mismatch,
            not_found=self.not_found + other.not_found,
            invalid_id=self.invalid_id + other.invalid_id,
            skipped=self.skipped + other.skipped,
        )


class PersonRow(NamedTuple):
    """The person columns a check reads (and compares again before storing its result); plain and picklable."""

    id: int
    citizen_id: str
    id_type: str
    full_name: str
    dob: str
    gender: str
    registry_status: str | None
    registry_checked_at: dt.datetime | None


def person_rows(rows: Iterable[_Row]) -> list[PersonRow]:
    """The rows of a ``SELECT *COLUMNS`` as :class:`PersonRow` s."""
    return [PersonRow(*row) for row in rows]


def read_person_rows(conn: Connection, query: sa.Select[Any]) -> list[PersonRow]:
    """The rows of ``query`` (a ``SELECT *COLUMNS``) through the driver's cursor, one ``fetchall``, without
    SQLAlchemy's per-row result processing (~3 → ~2 µs a person on SQLite, timed under load).

    The values are SQLAlchemy's: only the time of the last check has a result type
    (:class:`~vaxcred.storage.schema.UtcDateTime`), and SQLite's text is turned into an aware UTC ``datetime``
    by that type's own result processor (a test compares both reads). PostgreSQL gives it aware in the
    session's zone: the same instant, which is all the conditional store compares."""
    dialect = conn.dialect
    compiled = query.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
    postgresql = dialect.name == "postgresql"
    params: Any = (
        compiled.params if postgresql else tuple(compiled.params[name] for name in compiled.positiontup or ())
    )
    with driver_errors(conn) as driver:
        cursor = driver.cursor()
        try:
            cursor.execute(str(compiled), params)
            fetched = cursor.fetchall()
        finally:
            cursor.close()
    make = PersonRow._make
    if postgresql:
        return [make(row) for row in fetched]
    to_time = persons.c.registry_checked_at.type.dialect_impl(dialect).result_processor(dialect, None)
    assert to_time is not None  # UtcDateTime always processes
    return [make(row) if row[7] is None else make((*row[:7], to_time(row[7]))) for row in fetched]


@functools.lru_cache(maxsize=1 << 16)
def _date_of_birth(text: str) -> DateOfBirth:
    """``DateOfBirth.from_text``, once per distinct value (immutable; ~36,500 distinct values a century)."""
    return DateOfBirth.from_text(text)


def _person(row: PersonRow) -> Person:
    return Person(
        citizen_id=row.citizen_id,
        id_type=IdType(row.id_type),
        full_name=row.full_name,
        dob=_date_of_birth(row.dob),
        gender=Gender(row.gender),
    )


def lookup_batch(registry: PopulationRegistry, rows: Sequence[PersonRow]) -> dict[str, RegistryEntry]:
    """The registry's answer for the batch (one lookup), as a plain dict."""
    return dict(registry.lookup([row.citizen_id for row in rows]))


def match_batch(
    rows: Sequence[PersonRow], found: Mapping[str, RegistryEntry], now: dt.datetime
) -> list[RegistryResult]:
    """:func:`match` every person of the batch against the registry's answer (pure)."""
    return [match(_person(row), found.get(row.citizen_id), now=now) for row in rows]


#: what is stored of one :class:`RegistryResult` besides its time: the status value, the mismatch fields as
#: stored (``"name,dob,gender"``), the name-difference value. A plain tuple: a matcher process sends these
Outcome: TypeAlias = tuple[str, str, str]


def outcomes(results: Iterable[RegistryResult]) -> list[Outcome]:
    """The stored form of ``results``."""
    return [(r.status.value, ",".join(r.mismatch_fields), r.name_difference.value) for r in results]


#: a registry entry as a matcher process receives it: citizen ID, full name, date of birth text, gender value.
#: Plain strings: a :class:`RegistryEntry` (a frozen dataclass) pickled and unpickled cost ~6 µs
PlainEntry: TypeAlias = tuple[str, str, str, str]

_GENDERS: dict[str, Gender] = {gender.value: gender for gender in Gender}


def plain_entries(found: Mapping[str, RegistryEntry]) -> dict[str, PlainEntry]:
    """The registry's answer as :data:`PlainEntry` s (the entries were validated when the adapter built them);
    ``TypeError`` for an answer that is not a :class:`RegistryEntry` (a broken adapter), on every path."""
    plain: dict[str, PlainEntry] = {}
    for cid, e in found.items():
        if not isinstance(e, RegistryEntry):
            raise TypeError("a registry's answer must map citizen IDs to RegistryEntry")
        plain[cid] = (e.citizen_id, e.full_name, e.dob, e.gender.value)
    return plain


def match_outcomes(rows: Sequence[PersonRow], found: Mapping[str, RegistryEntry]) -> list[Outcome]:
    """:func:`match_batch` in the stored form, without building the :class:`RegistryResult` s (the same rule:
    :func:`~vaxcred.pipeline.registry.lookup.judge`), through the matcher processes' one path."""
    return match_plain_outcomes(rows, plain_entries(found))


def match_plain_outcomes(rows: Sequence[PersonRow], entries: Mapping[str, PlainEntry]) -> list[Outcome]:
    """:func:`match_outcomes` on :func:`plain_entries` (what a matcher process runs)."""
    matched: list[Outcome] = []
    for row in rows:
        entry = entries.get(row.citizen_id)
        fields = None if entry is None else (entry[0], entry[1], _date_of_birth(entry[2]), _GENDERS[entry[3]])
        matched.append(_outcome(judge_recorded(*_recorded(row), fields)))
    return matched


_ID_TYPES: dict[str, IdType] = {id_type.value: id_type for id_type in IdType}
#: a person row's fields as :func:`~vaxcred.pipeline.registry.lookup.judge_recorded` takes them
_Recorded: TypeAlias = tuple[str, IdType, str, DateOfBirth, Gender]


def _recorded(row: PersonRow) -> _Recorded:
    """The fields :func:`_person` gives, without building the :class:`Person`: the same checks (a non-empty ID,
    a known ID type and gender, a non-blank NFC name, a valid date of birth), done directly; a row failing one
    goes through :func:`_person`, which raises what it always raised."""
    citizen_id, full_name = row.citizen_id, row.full_name
    id_type, gender = _ID_TYPES.get(row.id_type), _GENDERS.get(row.gender)
    if (
        id_type is not None
        and gender is not None
        and type(citizen_id) is str
        and citizen_id
        and type(full_name) is str
        and full_name.strip()
        and unicodedata.is_normalized("NFC", full_name)
        and type(row.dob) is str
    ):
        return citizen_id, id_type, full_name, _date_of_birth(row.dob), gender
    person = _person(row)
    return person.citizen_id, person.id_type, person.full_name, person.dob, person.gender


def _outcome(judgement: Judgement) -> Outcome:
    status, fields, difference = judgement
    return status.value, ",".join(fields), difference.value
