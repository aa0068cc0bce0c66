"""The registry check, one batch: the person rows it reads, the registry's answer, the matching, and the write
transaction that stores the results of the persons still unchanged (:func:`store_batch`).

The stage (:mod:`vaxcred.pipeline.registry.check`) runs these in this process, or spreads the matching and the
storing over worker processes (:mod:`vaxcred.pipeline.registry.parallel`): every piece here is picklable.
Nothing here logs citizen IDs, names or dates of birth.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeAlias

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from vaxcred.model import DateOfBirth
from vaxcred.pipeline.records.cccd import Gender, IdType
from vaxcred.pipeline.records.model import Person
from vaxcred.pipeline.registry.lookup import (
    PopulationRegistry,
    RegistryEntry,
    RegistryResult,
    RegistryStatus,
    match,
)
from vaxcred.storage import Database
from vaxcred.storage.schema import persons, registry_checks

__all__ = [
    "COLUMNS",
    "PersonRow",
    "RegistryCheckReport",
    "lookup_batch",
    "match_batch",
    "person_rows",
    "store_batch",
    "store_results",
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


def store_results(
    conn: Connection,
    rows: Sequence[PersonRow],
    results: Sequence[RegistryResult],
    *,
    source: str,
) -> RegistryCheckReport:
    """Insert one history row per result and copy the status onto the person; returns the counts."""
    if not rows:
        return RegistryCheckReport()
    # RETURNING: multi-row VALUES pages ("insertmanyvalues"), not one statement per row
    conn.execute(
        registry_checks.insert().returning(registry_checks.c.id),
        [
            {
                "person_id": row.id,
                "checked_at": result.checked_at,
                "status": result.status.value,
                "mismatch_fields": ",".join(result.mismatch_fields),
                "name_difference": result.name_difference.value,
                "source": source,
            }
            for row, result in zip(rows, results, strict=True)
        ],
    ).all()
    # one UPDATE per (status, time) — at most four per batch — instead of one per person
    groups: dict[tuple[str, dt.datetime], list[int]] = {}
    for row, result in zip(rows, results, strict=True):
        groups.setdefault((result.status.value, result.checked_at), []).append(row.id)
    for (status, checked_at), ids in sorted(groups.items()):
        conn.execute(
            persons.update()
            .where(persons.c.id.in_(ids))
            .values(registry_status=status, registry_checked_at=checked_at)
        )
    statuses = [result.status for result in results]
    return RegistryCheckReport(
        checked=len(results),
        verified=statuses.count(RegistryStatus.VERIFIED),
        mismatch=statuses.count(RegistryStatus.MISMATCH),
        not_found=statuses.count(RegistryStatus.NOT_FOUND),
        invalid_id=statuses.count(RegistryStatus.INVALID_ID),
    )


def store_batch(
    db: Database, rows: Sequence[PersonRow], results: Sequence[RegistryResult], *, source: str
) -> RegistryCheckReport:
    """One write transaction: re-read the batch's persons (locked), store the results of those unchanged since
    they were read; the others are counted in ``skipped``."""
    with db.begin() as conn:
        current = {
            row.id: row
            for row in person_rows(
                conn.execute(
                    sa.select(*COLUMNS)
                    .where(persons.c.id.in_([row.id for row in rows]))
                    .order_by(persons.c.id)
                    .with_for_update()
                )
            )
        }
        # only persons whose fields and registry state are still those that were checked
        keep = [i for i, row in enumerate(rows) if current.get(row.id) == row]
        stored = store_results(conn, [rows[i] for i in keep], [results[i] for i in keep], source=source)
    skipped = len(rows) - len(keep)
    if skipped:
        logger.info("registry check: %d persons changed while being checked; left for a re-run", skipped)
    return stored + RegistryCheckReport(skipped=skipped)
