"""Parallel site signing: forked processes that each sign whole sites or id ranges of them (see :func:`_run_parallel`)."""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import multiprocessing
import queue
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection

from vaxcred.crypto import Signer
from vaxcred.pipeline.processes import settle_heap_once
from vaxcred.pipeline.site_signing.member_rows import RowsChanged, _another_current_signature
from vaxcred.pipeline.site_signing.queue_versions import Versions, _queue_batch
from vaxcred.pipeline.site_signing.sign_rows import _sign_rows, _Signed
from vaxcred.pipeline.site_signing.store import ProgressCallback, _store_batch, logger
from vaxcred.pipeline.site_signing.work_queue import _DOSE_COLUMNS, _VERIFIED, _DoseRow, _driver_rows
from vaxcred.storage import Database, open_database
from vaxcred.storage.schema import doses, persons


@dataclass(frozen=True, slots=True)
class _ForkState:
    """What forked signing processes inherit (set only while the pool is being started): no key crosses a pipe."""

    url: str
    signers: Mapping[str, Signer]
    certificates: Mapping[str, dict[str, Any]]
    now: dt.datetime
    batch_size: int
    per_signature: int
    progress: Any  # a multiprocessing queue: (signed, failed) after each committed batch


_FORK_STATE: _ForkState | None = None
_CHILD_DB: Database | None = None
#: the worker process's :func:`~vaxcred.pipeline.processes.settle_heap_once`, called after each batch it stores
_CHILD_SETTLE: Callable[[], None] = lambda: None  # noqa: E731


def _child_init() -> None:
    global _CHILD_DB, _CHILD_SETTLE
    assert _FORK_STATE is not None, "a signing process must be forked by _run_parallel"
    _CHILD_DB = open_database(_FORK_STATE.url).for_batches()  # its own connections, never the parent's
    _CHILD_SETTLE = settle_heap_once(forked=True)


def _read_batch(db: Database, site_id: str, after: int, limit: int) -> tuple[list[_DoseRow], Versions | None]:
    """A unit's next batch (:func:`~vaxcred.pipeline.site_signing.queue_versions._queue_batch`) in a read that
    commits (:meth:`~vaxcred.storage.Database.read`: on PostgreSQL the queue read stays prepared,
    ``tests/pipeline/test_sitesign_prepared.py``; its generic plan walks the site's index like its custom one:
    ``tests/pipeline/test_sitesign_queue_plan.py``)."""
    with db.read() as conn:
        return _queue_batch(conn, site_id, after, limit)


def _sign_site_in_child(unit: tuple[str, int, int | None]) -> tuple[int, int]:
    """A worker process: sign every pending dose of a unit — site ``unit[0]``'s doses with ids after ``unit[1]``
    and up to ``unit[2]`` (``None``: no upper bound) —, batch by batch (see :func:`_run_parallel`).

    Returns the unit's (signed, failed) totals; the queue carries per-batch progress only (a queue's last items
    may still be in flight when the future completes, so totals never depend on it)."""
    state, db = _FORK_STATE, _CHILD_DB
    assert state is not None
    assert db is not None
    site_id, last_id, up_to = unit
    signed = failed = 0
    while True:
        rows, versions = _read_batch(db, site_id, last_id, state.batch_size)
        if up_to is not None and rows and rows[-1].id > up_to:
            rows = [row for row in rows if row.id <= up_to]  # the rest is the next unit's
        if not rows:
            return signed, failed
        last_id = rows[-1].id
        outcomes = _sign_rows(rows, state.signers, state.now, state.per_signature)
        with db.begin() as conn:
            added, bad = _store_checked(
                db,
                conn,
                (rows, outcomes, versions),
                (state.signers, state.certificates),
                state.now,
                state.per_signature,
            )
        signed += added
        failed += bad
        state.progress.put((added, bad))
        _CHILD_SETTLE()


def _run_parallel(
    db: Database,
    signers: Mapping[str, Signer],
    certificates: Mapping[str, dict[str, Any]],
    now: dt.datetime,
    sizes: tuple[int, int],
    on_progress: ProgressCallback | None,
    workers: int,
) -> tuple[int, int]:
    """``workers`` forked processes take the work units (:func:`_units`: whole sites, or id ranges of them when
    the sites are few) one at a time; each reads, signs and stores its unit's batches.

    A batch is read in a short read transaction and signed outside any transaction, so the processes sign at the
    same time (SQLite has one writer: only the stores take turns). Its store keeps a signature only for a dose
    whose stored content and person (still ``VERIFIED``) are exactly what was signed (:func:`_store_checked`:
    on PostgreSQL the member INSERT compares the rows' versions; else, or when a row changed, the batch's doses
    and persons are re-read); a dose changed meanwhile is signed again there, from its current content, inside
    the transaction; a dose whose person is no longer verified is left. So a stored signature always signs the
    dose as it is when the signature commits — as in the serial path — and a crash loses at most the batches
    not yet committed (a re-run signs them).
    """
    global _FORK_STATE
    units = _units(db, sorted(signers), workers)
    context = multiprocessing.get_context("fork")
    progress = context.Queue()
    url = db.url_for_workers()
    db.engine.dispose()  # no open connection is carried across the fork
    signed = failed = 0

    def drain(timeout: float) -> None:
        nonlocal signed, failed
        try:
            added, bad = progress.get(timeout=timeout)
        except queue.Empty:
            return
        signed += added
        failed += bad
        if on_progress is not None:
            on_progress(signed)

    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context, initializer=_child_init) as pool:
        # the processes are forked at the first submit: the state is there for them, and only then
        _FORK_STATE = _ForkState(url, signers, certificates, now, sizes[0], sizes[1], progress)
        try:
            futures = [pool.submit(_sign_site_in_child, unit) for unit in units]
        finally:
            _FORK_STATE = None
        try:
            while not all(f.done() for f in futures):
                drain(0.2)
            # the totals come from the results (a worker's exception, or BrokenProcessPool, propagates)
            totals = [f.result() for f in futures]
        except BaseException:
            for f in futures:
                f.cancel()
            raise
    signed = sum(added for added, _ in totals)
    failed = sum(bad for _, bad in totals)
    if on_progress is not None:
        on_progress(signed)
    return signed, failed


#: below this many units a worker, sites are split into id ranges (see :func:`_units`)
UNITS_PER_WORKER = 16


def _units(db: Database, site_ids: Sequence[str], workers: int) -> list[tuple[str, int, int | None]]:
    """The work units the processes take one at a time, in order: whole sites (``(site, 0, None)``), or, with
    fewer than :data:`UNITS_PER_WORKER` sites a worker, each site's dose ids split into equal ranges
    ``(site, after, up_to]`` — so no process signs a large site alone at the end while the others wait (21
    sites on 2 processes: the last site ran alone for ~4 % of the stage). A dose added after the split above the
    last range is in the last unit (no upper bound); one added below a range's end is signed by its range or
    left for the next run, as a dose added behind a whole site's reader is."""
    parts = -(-workers * UNITS_PER_WORKER // max(len(site_ids), 1))
    if parts <= 1:
        return [(site_id, 0, None) for site_id in site_ids]
    bounds = sa.select(sa.func.min(doses.c.id), sa.func.max(doses.c.id)).where(
        doses.c.site_id == sa.bindparam("site_id")
    )
    units: list[tuple[str, int, int | None]] = []
    with db.connect() as conn:
        for site_id in site_ids:
            low, high = conn.execute(bounds, {"site_id": site_id}).one()
            if low is None:
                units.append((site_id, 0, None))
                continue
            step = -(-(high - low + 1) // parts)
            ends: list[int | None] = [low - 1 + step * k for k in range(1, parts)]
            starts = [0, *(end for end in ends if end is not None)]
            units.extend(zip([site_id] * parts, starts, [*ends, None], strict=True))
    return units


def _recheck_statement(postgres: bool, ids: list[int] | None = None) -> sa.Select[Any]:
    """The batch's doses still to sign, ``FOR SHARE`` of doses and persons. ``doses.id IN (…)``; on PostgreSQL
    ``doses.id = ANY(:ids)``, one array parameter (psycopg re-parses a statement of hundreds of placeholders on
    every execution: too long for its query cache), bound when run (:func:`_driver_rows`)."""
    among = (
        doses.c.id == sa.any_(sa.bindparam("ids", type_=postgresql.ARRAY(sa.BigInteger)))
        if postgres
        else doses.c.id.in_(ids or [])
    )
    return (
        sa.select(*_DOSE_COLUMNS)
        .join(persons, persons.c.id == doses.c.person_id)
        .where(among, doses.c.withdrawn_at.is_(None), persons.c.registry_status == _VERIFIED)
        .order_by(doses.c.id)
        .with_for_update(read=True, of=[doses, persons])
    )


def _recheck(
    conn: Connection,
    rows: Sequence[_DoseRow],
    outcomes: Sequence[_Signed | str],
    signers: Mapping[str, Signer],
    now: dt.datetime,
    per_signature: int,
) -> tuple[list[_DoseRow], list[_Signed | str]]:
    """The batch's rows as stored now (locked on PostgreSQL) with their signatures: a worker's where the row is
    unchanged, a fresh one for a changed row; rows of persons no longer verified are dropped."""
    ids = [row.id for row in rows]
    if conn.dialect.name == "postgresql":
        locked = _driver_rows(conn, ("recheck", True), _recheck_statement, {"ids": ids})
    else:
        locked = [_DoseRow(*row) for row in conn.execute(_recheck_statement(False, ids))]
    current = {row.id: row for row in locked}
    kept_rows: list[_DoseRow] = []
    kept: list[_Signed | str] = []
    changed: list[int] = []  # positions in kept of rows signed again, under fresh batch heads
    for row, outcome in zip(rows, outcomes, strict=True):
        now_row = current.get(row.id)
        if now_row is None:
            continue
        if now_row != row:
            if now_row.site_id not in signers:
                continue
            logger.info("site signing: dose row %d changed while being signed; signed again", row.id)
            changed.append(len(kept))
        kept_rows.append(now_row)
        kept.append(outcome)
    if changed:
        fresh = _sign_rows([kept_rows[i] for i in changed], signers, now, per_signature)
        for i, outcome in zip(changed, fresh, strict=True):
            kept[i] = outcome
    return kept_rows, kept


def _store_checked(
    db: Database,
    conn: Connection,
    batch: tuple[Sequence[_DoseRow], Sequence[_Signed | str], Versions | None],
    keys: tuple[Mapping[str, Signer], Mapping[str, dict[str, Any]]],
    now: dt.datetime,
    per_signature: int,
) -> tuple[int, int]:
    """Store a batch signed outside ``conn``'s transaction, keeping a signature only for a dose still exactly as
    signed, of a person still ``VERIFIED``; returns :func:`_store_batch`'s (stored, failed).

    ``batch`` = (rows, their outcomes, their versions as read: PostgreSQL's :data:`Versions`, ``None`` on
    SQLite); ``keys`` = (signers, certificates). With versions and every row signed, the **row-version guard**:
    the batch is stored in a savepoint by a member INSERT joined to the doses and persons at the versions read
    (the doses locked ``FOR SHARE`` until the commit: a correction of one waits, then supersedes the signature
    stored here; one that committed first gave the row a new version). If any row changed, or a concurrent run
    signed one of the doses, the savepoint is rolled back (its row locks with it) and the batch goes the
    re-checking way, as without versions: :func:`_recheck` re-reads the doses and persons ``FOR SHARE`` (a
    changed dose signed again under a head of its own, a person no longer verified left out), then
    :func:`_store_batch` (a dose signed meanwhile skipped)."""
    rows, outcomes, versions = batch
    signers, certificates = keys
    if versions is not None and not any(isinstance(o, str) for o in outcomes):
        try:
            with conn.begin_nested():
                return _store_batch(db, conn, rows, outcomes, certificates, versions=versions)
        except RowsChanged:
            logger.info("site signing: a batch's rows changed while it was signed; re-checked")
        except sa.exc.IntegrityError as e:
            if not _another_current_signature(e):
                raise
    rows, outcomes = _recheck(conn, rows, outcomes, signers, now, per_signature)
    return _store_batch(db, conn, rows, outcomes, certificates)
