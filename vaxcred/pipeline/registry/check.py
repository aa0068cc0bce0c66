"""The registry-check stage: every recorded person checked against the population registry, batch by batch.

::

    persons (registry_status IS NULL, id order) ─> batch of ≤ N ─> registry.lookup(ids) ─> match() each
        ─> one transaction: INSERT registry_checks (history) + UPDATE persons.registry_status / _checked_at

* **Work queue.** ``persons.registry_status IS NULL`` is "never checked": a stored result takes the person off
  the queue in the same transaction that stores it, so a crash (or ``kill -9``) loses at most the batch in
  flight and a re-run continues where the last one stopped, without a second row for anyone.
  ``recheck=True`` checks everyone again (a new history row each); ``person_ids`` checks exactly those persons,
  whatever their status (the corrections flow).
* **The registry is called outside any write transaction** (the HTTP registry may take seconds; a SQLite
  write lock must not wait on it). The write transaction then re-reads the batch's persons (``FOR UPDATE`` on
  PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` serialises writers) and stores a result only for persons whose
  fields and registry state are still those that were checked. A person changed in between (a correction, a
  concurrent check) is left out and counted in ``skipped``: a stale result is never stored.
* **Outage.** When the registry is unavailable (:class:`PipelineError` ``pipeline.registry_unavailable``) or
  anything else fails, the batches before it stay committed and the error propagates; run the stage again to
  finish.
* ``on_progress(persons_done)`` is called after each committed batch.

:func:`check_persons` is the in-transaction variant for a caller that already holds a connection (the
corrections flow re-checks one person inside the transaction that changed it).

Nothing here logs citizen IDs, names or dates of birth: log lines carry counts and person row ids only.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from vaxcred.model import DateOfBirth
from vaxcred.pipeline.records.cccd import Gender, IdType
from vaxcred.pipeline.records.model import Person
from vaxcred.pipeline.registry.lookup import PopulationRegistry, RegistryResult, RegistryStatus, match
from vaxcred.storage import Database
from vaxcred.storage.schema import persons, registry_checks

__all__ = [
    "BATCH_SIZE",
    "RegistryCheckReport",
    "check_persons",
    "registry_source",
    "run_registry_check",
    "unchecked_count",
]

logger = logging.getLogger(__name__)

#: persons per registry lookup and per transaction
BATCH_SIZE = 1000
#: ``registry_checks.source`` is at most this long
_MAX_SOURCE = 200

ProgressCallback = Callable[[int], None]
_Row: TypeAlias = Row[*tuple[Any, ...]]

_COLUMNS = (
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


def registry_source(registry: PopulationRegistry) -> str:
    """What ``registry_checks.source`` records for ``registry``: its ``source`` attribute when it has one,
    else its class name and, for an HTTP registry, its URL."""
    source = getattr(registry, "source", None)
    if not isinstance(source, str) or not source:
        url = getattr(registry, "url", None)
        source = type(registry).__name__ + (f" {url}" if isinstance(url, str) else "")
    return source[:_MAX_SOURCE]


def _utc(now: dt.datetime) -> dt.datetime:
    if not isinstance(now, dt.datetime):
        raise TypeError("now must be a datetime")
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware (UTC)")
    return now.astimezone(dt.UTC)


def _person(row: _Row) -> Person:
    return Person(
        citizen_id=row.citizen_id,
        id_type=IdType(row.id_type),
        full_name=row.full_name,
        dob=DateOfBirth.from_text(row.dob),
        gender=Gender(row.gender),
    )


def _lookup_and_match(
    registry: PopulationRegistry, rows: Sequence[_Row], now: dt.datetime
) -> list[RegistryResult]:
    found = registry.lookup([row.citizen_id for row in rows])
    return [match(_person(row), found.get(row.citizen_id), now=now) for row in rows]


def _store(
    conn: Connection,
    rows: Sequence[_Row],
    results: Sequence[RegistryResult],
    *,
    source: str,
) -> RegistryCheckReport:
    """Insert one history row per result and copy the status onto the person; returns the counts."""
    if not rows:
        return RegistryCheckReport()
    conn.execute(
        registry_checks.insert(),
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
    )
    conn.execute(
        persons.update()
        .where(persons.c.id == sa.bindparam("b_id"))
        .values(registry_status=sa.bindparam("b_status"), registry_checked_at=sa.bindparam("b_at")),
        [
            {"b_id": row.id, "b_status": result.status.value, "b_at": result.checked_at}
            for row, result in zip(rows, results, strict=True)
        ],
    )
    statuses = [result.status for result in results]
    return RegistryCheckReport(
        checked=len(results),
        verified=statuses.count(RegistryStatus.VERIFIED),
        mismatch=statuses.count(RegistryStatus.MISMATCH),
        not_found=statuses.count(RegistryStatus.NOT_FOUND),
        invalid_id=statuses.count(RegistryStatus.INVALID_ID),
    )


def _check_batch_size(batch_size: int) -> None:
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError("batch_size must be an int >= 1")


def _person_id_chunks(person_ids: Iterable[int], size: int) -> list[list[int]]:
    ids = sorted({int(i) for i in person_ids})
    return [ids[i : i + size] for i in range(0, len(ids), size)]


def run_registry_check(
    db: Database,
    registry: PopulationRegistry,
    *,
    now: dt.datetime,
    batch_size: int = BATCH_SIZE,
    recheck: bool = False,
    person_ids: Iterable[int] | None = None,
    on_progress: ProgressCallback | None = None,
    source: str | None = None,
) -> RegistryCheckReport:
    """Check persons against ``registry`` in id order, ``batch_size`` per lookup and per transaction.

    Selects persons never checked; ``recheck=True`` every person; ``person_ids`` exactly those persons
    (whatever their status; ids not stored are ignored). ``now`` (aware) is the time stored with each result;
    ``source`` (default :func:`registry_source`) names the registry in the history. See the module docstring
    for crash, outage and concurrency behaviour; errors propagate after the earlier batches were committed.
    """
    now = _utc(now)
    _check_batch_size(batch_size)
    source = (source or registry_source(registry))[:_MAX_SOURCE]
    total = RegistryCheckReport()
    chunks = iter(_person_id_chunks(person_ids, batch_size)) if person_ids is not None else None
    pending = None if recheck else persons.c.registry_status.is_(None)
    last_id = 0
    while True:
        if chunks is not None:
            chunk = next(chunks, None)
            if chunk is None:
                break
            where: sa.ColumnElement[bool] = persons.c.id.in_(chunk)
        else:
            where = persons.c.id > last_id if pending is None else sa.and_(pending, persons.c.id > last_id)
        with db.connect() as conn:
            rows = conn.execute(
                sa.select(*_COLUMNS).where(where).order_by(persons.c.id).limit(batch_size)
            ).all()
        if not rows:
            if chunks is not None:
                continue
            break
        last_id = rows[-1].id
        try:
            results = _lookup_and_match(registry, rows, now)
        except Exception:
            logger.warning(
                "registry check stopped: %d persons checked in this run; run it again to finish",
                total.checked,
            )
            raise
        with db.begin() as conn:
            current = {
                row.id: tuple(row)
                for row in conn.execute(
                    sa.select(*_COLUMNS)
                    .where(persons.c.id.in_([row.id for row in rows]))
                    .order_by(persons.c.id)
                    .with_for_update()
                )
            }
            # only persons whose fields and registry state are still those that were checked
            keep = [i for i, row in enumerate(rows) if current.get(row.id) == tuple(row)]
            stored = _store(conn, [rows[i] for i in keep], [results[i] for i in keep], source=source)
        skipped = len(rows) - len(keep)
        if skipped:
            logger.info("registry check: %d persons changed while being checked; left for a re-run", skipped)
        total = total + stored + RegistryCheckReport(skipped=skipped)
        if on_progress is not None:
            on_progress(total.checked)
    return total


def check_persons(
    conn: Connection,
    registry: PopulationRegistry,
    person_ids: Iterable[int],
    *,
    now: dt.datetime,
    source: str | None = None,
) -> RegistryCheckReport:
    """Check ``person_ids`` now, inside the caller's transaction on ``conn`` (one lookup).

    For small sets (a correction re-checking its person): the registry is called while the transaction is
    open. The persons are locked (``FOR UPDATE`` on PostgreSQL) before the lookup, so the stored result is for
    the data as it is in this transaction. Registry errors propagate; the caller's transaction decides.
    """
    now = _utc(now)
    source = (source or registry_source(registry))[:_MAX_SOURCE]
    ids = sorted({int(i) for i in person_ids})
    if not ids:
        return RegistryCheckReport()
    rows = conn.execute(
        sa.select(*_COLUMNS).where(persons.c.id.in_(ids)).order_by(persons.c.id).with_for_update()
    ).all()
    results = _lookup_and_match(registry, rows, now)
    return _store(conn, rows, results, source=source)


def unchecked_count(db: Database, *, recheck: bool = False) -> int:
    """Persons a run would check: never checked (every person with ``recheck``); a progress bar's length."""
    query = sa.select(sa.func.count()).select_from(persons)
    if not recheck:
        query = query.where(persons.c.registry_status.is_(None))
    with db.connect() as conn:
        return int(conn.execute(query).scalar_one())
