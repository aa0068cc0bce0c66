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
  write lock must not wait on it). The write transaction then stores a result only for persons whose fields
  and registry state are still those that were checked: PostgreSQL in one conditional ``UPDATE`` (re-checked on
  the newest row version when a concurrent writer commits first) feeding the history ``INSERT``; SQLite
  (``BEGIN IMMEDIATE`` serialises writers) re-reads the batch's persons and compares. A person changed in between (a correction, a
  concurrent check) is left out and counted in ``skipped``: a stale result is never stored.
* **Outage.** When the registry is unavailable (:class:`PipelineError` ``pipeline.registry_unavailable``) or
  anything else fails, the batches before it stay committed and the error propagates; run the stage again to
  finish.
* ``on_progress(persons_done)`` is called after each committed batch, in order, in the caller's thread.
* **The store overlapped** (``workers`` = 1, from the second batch on): one thread stores batch n on its own
  connection while this one reads and looks up the next (:mod:`vaxcred.pipeline.registry.storer`); batches are
  read by id (``id > last_id``), so a batch still being stored is never read twice nor skipped. The thread is
  joined on every path: errors propagate after the batches before them were committed.
* **Worker processes** (``workers`` > 1): this process reads the batches and calls the registry, worker
  processes match and store them, each batch in the same transaction as above (not faster on a busy 2-core
  machine: docs/pipeline.md) (:mod:`vaxcred.pipeline.registry.parallel`);
  the per-batch pieces are in :mod:`vaxcred.pipeline.registry.batch`. Per batch: one read, one lookup, one write
  transaction (PostgreSQL: one statement; SQLite: the re-read, executemany INSERT ``registry_checks``,
  executemany UPDATE ``persons``).

:func:`check_persons` is the in-transaction variant for a caller that already holds a connection (the
corrections flow re-checks one person inside the transaction that changed it).

Nothing here logs citizen IDs, names or dates of birth: log lines carry counts and person row ids only.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeAlias

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from vaxcred.pipeline.registry.batch import (
    COLUMNS,
    PersonRow,
    RegistryCheckReport,
    lookup_batch,
    match_outcomes,
    person_rows,
    read_person_rows,
)
from vaxcred.pipeline.registry.lookup import PopulationRegistry
from vaxcred.pipeline.registry.matcher import can_fork, check_with_matcher
from vaxcred.pipeline.registry.parallel import check_in_processes
from vaxcred.pipeline.registry.store import store_outcomes
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

#: PostgreSQL, the batch read: no bitmap scan. Before the first ANALYZE of a freshly imported ``persons`` the
#: planner estimates a few rows, bitmap-scans every unchecked person after the last batch and sorts them for
#: each batch (measured at 100,000 persons: 7–15 ms a batch, quadratic in the run); the ordered index scan
#: reads one batch (0.3 ms)
_PG_QUEUE_PLAN = "SET LOCAL enable_bitmapscan = off"

ProgressCallback = Callable[[int], None]
_Row: TypeAlias = Row[*tuple[Any, ...]]


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


def _check_batch_size(batch_size: int) -> None:
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError("batch_size must be an int >= 1")


def _check_workers(workers: int) -> None:
    if not isinstance(workers, int) or isinstance(workers, bool) or not 1 <= workers <= 64:
        raise ValueError("workers must be an int within 1–64")


def _person_id_chunks(person_ids: Iterable[int], size: int) -> list[list[int]]:
    ids = sorted({int(i) for i in person_ids})
    return [ids[i : i + size] for i in range(0, len(ids), size)]


def _batch_query(*, last_id: int, batch_size: int, recheck: bool) -> sa.Select[Any]:
    """The next batch after ``last_id``: every person (``recheck``) or the queue (``registry_status IS NULL``).

    Both walk the primary key from ``last_id`` in id order, stopped at the batch size: the status is not indexed
    (migration 0013: its write is a HOT update), so a run reads every person after its start once, the checked
    ones filtered out (a bitmap scan that would sort them each batch is off: :data:`_PG_QUEUE_PLAN`).
    """
    query = sa.select(*COLUMNS).limit(batch_size).order_by(persons.c.id)
    if recheck:
        return query.where(persons.c.id > last_id)
    return query.where(persons.c.registry_status.is_(None), persons.c.id > last_id)


def _read_batch(db: Database, query: sa.Select[Any]) -> list[PersonRow]:
    """One batch read in its own short transaction that commits (:meth:`~vaxcred.storage.Database.read`: on
    PostgreSQL the queue read stays prepared, ``tests/pipeline/test_registry_prepared.py``)."""
    with db.read() as conn:
        if db.backend == "postgresql":
            conn.exec_driver_sql(_PG_QUEUE_PLAN)
        return read_person_rows(conn, query)


def _batches(
    db: Database, *, batch_size: int, recheck: bool, person_ids: Iterable[int] | None
) -> Iterator[list[PersonRow]]:
    """The persons to check, ``batch_size`` at a time in id order, each batch read in its own short read."""
    chunks = iter(_person_id_chunks(person_ids, batch_size)) if person_ids is not None else None
    last_id = 0
    while True:
        if chunks is not None:
            chunk = next(chunks, None)
            if chunk is None:
                return
            query = sa.select(*COLUMNS).where(persons.c.id.in_(chunk)).order_by(persons.c.id)
        else:
            query = _batch_query(last_id=last_id, batch_size=batch_size, recheck=recheck)
        rows = _read_batch(db, query)
        if not rows:
            if chunks is not None:
                continue
            return
        last_id = rows[-1].id
        yield rows


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
    workers: int = 1,
    match_process: bool | None = None,
    store_thread: bool | None = None,
) -> RegistryCheckReport:
    """Check persons against ``registry`` in id order, ``batch_size`` per lookup and per transaction.

    Selects persons never checked; ``recheck=True`` every person; ``person_ids`` exactly those persons
    (whatever their status; ids not stored are ignored). ``now`` (aware) is the time stored with each result;
    ``source`` (default :func:`registry_source`) names the registry in the history. ``workers`` > 1: this
    process reads and looks up the batches while that many processes match and store them
    (:mod:`vaxcred.pipeline.registry.parallel`); the stored results are the same. ``workers`` = 1: this process
    reads and looks up while, from the second batch on, one of its threads stores when ``store_thread``
    (:mod:`vaxcred.pipeline.registry.storer`; default: on PostgreSQL only — on SQLite the thread measured slower,
    docs/pipeline.md) and one forked process matches
    (:mod:`vaxcred.pipeline.registry.matcher`) when ``match_process`` (default: on two cores or more), else this
    process matches too; the stored results are the same. See the module docstring for crash, outage and
    concurrency behaviour; errors propagate after the earlier batches were committed.
    """
    db = db.for_batches()  # PostgreSQL: index plans for id-keyed batches (Database.for_batches)
    now = _utc(now)
    _check_batch_size(batch_size)
    _check_workers(workers)
    source = (source or registry_source(registry))[:_MAX_SOURCE]
    batches = _batches(db, batch_size=batch_size, recheck=recheck, person_ids=person_ids)
    if workers > 1 and not db.in_memory:  # the processes open the database (Database.url_for_workers)
        report = check_in_processes(
            db, registry, batches, now=now, source=source, workers=workers, on_progress=on_progress
        )
    else:
        if match_process is None:
            match_process = (os.cpu_count() or 1) >= 2
        report = check_with_matcher(
            db,
            registry,
            batches,
            now=now,
            source=source,
            on_progress=on_progress,
            fork=match_process and can_fork(),
            store_thread=db.backend == "postgresql" if store_thread is None else store_thread,
        )
    # PostgreSQL: site signing and issuance plan with the statuses as they now are
    db.analyze(persons, registry_checks, changed_rows=report.checked)
    return report


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
    rows = person_rows(
        conn.execute(
            sa.select(*COLUMNS).where(persons.c.id.in_(ids)).order_by(persons.c.id).with_for_update()
        )
    )
    matched = match_outcomes(rows, lookup_batch(registry, rows))
    return store_outcomes(conn, rows, matched, checked_at=now, source=source)


def unchecked_count(db: Database, *, recheck: bool = False) -> int:
    """Persons a run would check: never checked (every person with ``recheck``); a progress bar's length."""
    query = sa.select(sa.func.count()).select_from(persons)
    if not recheck:
        query = query.where(persons.c.registry_status.is_(None))
    with db.connect() as conn:
        return int(conn.execute(query).scalar_one())
