"""Site signing on two cores with one writer: a forked child reads and signs while this process stores.

::

    parent: ask 0, ask 1 ─> child                     step i: [receive batch i ─] store it ─> ask for i+2
    child:  read 0 + sign 0 ─> parent                 the child reads (its own connection, a read that commits:
            read 1 + sign 1 ─> parent                 no write, no lock on SQLite's WAL) and signs batch i+1
    parent: store 0 ─> ask 2;  store 1 ─> ask 3 …     meanwhile, so the reads and the signing overlap the writes
                                                      and the commits

* **One writer.** Only this process writes, one connection, one write transaction per step (SQLite: ``BEGIN
  IMMEDIATE``), so SQLite's single writer lock is never contended by the stage itself; the child only reads, and
  holds :data:`IN_FLIGHT` batches at most (memory bounded). Until session 10 this process read too and the child
  only signed: on SQLite at 100 k people the parent used ~7.2 CPU-s against the child's ~3.7, so one core waited
  on the other (≈1.4 of 2 busy); reading in the child balances them (~5.5 and ~5.7).
* **Checked on store.** A batch is signed outside the transaction that stores it, so its store makes sure each
  dose is still exactly as signed, as the parallel workers do
  (:func:`~vaxcred.pipeline.site_signing.workers._store_checked`). PostgreSQL: the queue read returns each row's
  versions (``doses.xmin``, ``persons.xmin``) and the member INSERT stores the batch only if every row is still at
  them, under the signing lock held shared (a correction holds it exclusive: it waits for the commit and then
  supersedes the fresh signature); if any row changed, the batch is re-read
  (:func:`~vaxcred.pipeline.site_signing.workers._recheck`, ``FOR SHARE`` of doses and persons: a changed dose
  signed again inside the transaction, a person no longer ``VERIFIED`` left out). SQLite: the re-read is skipped
  when no other connection has committed anything between the request for the batch and its store (``PRAGMA
  data_version`` on this connection, taken before the request — the child's read comes after it — and again in
  the storing transaction: unchanged, the rows are exactly as read; this connection's own commits and the
  child's reads leave it); any other commit in between, a correction's or not, makes it re-read.
* **Exactly once, resumable.** Stores go through :func:`~vaxcred.pipeline.site_signing.store._store_batch` like
  every other path (the unique partial index skips a dose signed meanwhile). A ``kill -9`` loses the batches in
  flight only; a re-run signs them.
* **The child dies with the stage** (``PR_SET_PDEATHSIG``, :func:`~vaxcred.pipeline.processes.die_with_parent`); a
  child that dies or fails stops the run with :class:`PipelineError` ``pipeline.site_signing_worker_failed``
  after the batches stored before it (nothing half-stored: a re-run finishes).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import multiprocessing
import os
import queue
import signal
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Final

from sqlalchemy.engine import Connection

from vaxcred.crypto import Signer
from vaxcred.errors import VaxcredError
from vaxcred.pipeline.errors import PipelineError
from vaxcred.pipeline.processes import die_with_parent, settle_heap_once
from vaxcred.pipeline.site_signing.queue_versions import Versions, _queue_batch
from vaxcred.pipeline.site_signing.sign_rows import _Head, _sign_rows, _Signed
from vaxcred.pipeline.site_signing.store import ProgressCallback, _store_batch
from vaxcred.pipeline.site_signing.work_queue import _DoseRow
from vaxcred.pipeline.site_signing.workers import _store_checked
from vaxcred.storage import Database, open_database

__all__ = ["IN_FLIGHT", "SIGNING_WORKER_FAILED"]

#: :class:`PipelineError` code: the signing child process died or failed
SIGNING_WORKER_FAILED: Final = "pipeline.site_signing_worker_failed"
#: batches sent to the child and not stored yet: one being signed, one waiting, so the child never idles
IN_FLIGHT: Final = 2
#: how often a parent waiting for a signed batch checks that the child is alive (seconds)
_POLL_SECONDS: Final = 1.0
_JOIN_SECONDS: Final = 5.0

_Outcomes = list[_Signed | str]


def _child_main(
    inbox: Any,
    outbox: Any,
    signing: tuple[Mapping[str, Signer], dt.datetime, int],
    queue_of: tuple[str, Sequence[str], int],
    parent: int,
) -> None:
    """The signing child: for each request of ``inbox`` read the next batch of the work queue on its own
    connection (a read that commits: it writes nothing) and sign it into ``outbox``, until ``None``.
    ``signing`` = (signers, now, per_signature); ``queue_of`` = (the database URL, the sites, batch size)."""
    die_with_parent(parent)
    # the parent decides when to stop (a terminal's ^C, or a service manager's SIGTERM to the whole group, reach
    # the child too; the service's own handlers were inherited through the fork): the child ends with the parent
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signers, now, per_signature = signing
    url, site_ids, batch_size = queue_of
    settle = settle_heap_once(forked=True)
    db = open_database(url).for_batches()  # its own connections, never the parent's
    work = _Queue(site_ids, batch_size)
    try:
        while inbox.get() is not None:
            try:
                with db.read() as conn:
                    rows, versions = work.next_batch(conn)
                packed = _pack(_sign_rows(rows, signers, now, per_signature)) if rows else None
                outbox.put(("ok", (rows, versions, packed)))
                settle()
            except Exception as e:  # a bug: its type and code only (a message may quote a record)
                outbox.put(("error", e.code if isinstance(e, VaxcredError) else type(e).__name__))
                return
    finally:
        db.dispose()


#: a batch's outcomes as they cross the pipe: its heads once, then per row the error code or (dose id, the head's
#: position among the heads, leaf index, path, payload, log digest)
_Packed = tuple[list[_Head], list[str | tuple[int, int, int, bytes, bytes, bytes]]]


def _pack(outcomes: _Outcomes) -> _Packed:
    """``outcomes`` in plain tuples (pickling a named tuple a dose, and rebuilding it on the other side, cost
    ~1 µs a dose more; the heads, shared by ~128 rows each, go once)."""
    heads: dict[int, tuple[int, _Head]] = {}
    rows: list[str | tuple[int, int, int, bytes, bytes, bytes]] = []
    for o in outcomes:
        if isinstance(o, str):
            rows.append(o)
            continue
        position = heads.setdefault(id(o.head), (len(heads), o.head))[0]
        rows.append((o.dose_id, position, o.leaf_index, o.proof, o.payload, o.digest))
    return [head for _, head in heads.values()], rows


def _unpack(packed: _Packed) -> _Outcomes:
    """The outcomes :func:`_pack` packed (equal to them, each head one object again)."""
    heads, rows = packed
    return [o if isinstance(o, str) else _Signed(o[0], heads[o[1]], o[2], o[3], o[4], o[5]) for o in rows]


class _SigningChild:
    """The forked child and its two queues; batches come back in the order they were asked for."""

    def __init__(
        self, signing: tuple[Mapping[str, Signer], dt.datetime, int], queue_of: tuple[str, Sequence[str], int]
    ) -> None:
        context = multiprocessing.get_context("fork")
        self.inbox = context.Queue()
        self.outbox = context.Queue()
        self.process = context.Process(
            target=_child_main,
            args=(self.inbox, self.outbox, signing, queue_of, os.getpid()),
            name="vaxcred-site-signing",
            daemon=True,
        )
        self.process.start()

    def request(self) -> None:
        """Ask for the next batch: the child reads it (after this call) and signs it."""
        self.inbox.put(True)

    def receive(self) -> tuple[list[_DoseRow], Versions | None, _Outcomes] | None:
        """The next batch asked for: (rows, their versions on PostgreSQL, outcomes); ``None`` once the work queue
        is exhausted."""
        while True:
            try:
                kind, value = self.outbox.get(timeout=_POLL_SECONDS)
            except queue.Empty:
                if not self.process.is_alive():
                    raise PipelineError(
                        f"the site-signing process died (exit code {self.process.exitcode}): the batches before "
                        "it are stored; run the signing again to finish",
                        code=SIGNING_WORKER_FAILED,
                    ) from None
                continue
            if kind == "error":
                raise PipelineError(
                    f"the site-signing process failed ({value}): the batches before it are stored; run the "
                    "signing again to finish",
                    code=SIGNING_WORKER_FAILED,
                )
            assert isinstance(value, tuple)
            rows, versions, packed = value
            if packed is None:
                return None
            return rows, versions, _unpack(packed)

    def close(self, *, finished: bool) -> None:
        """Stop the child: after its last batch when every result was taken, else at once (it holds nothing
        that is not re-signed by the next run)."""
        with contextlib.suppress(ValueError, OSError):
            self.inbox.put(None)
        if finished:
            self.process.join(_JOIN_SECONDS)
        if self.process.is_alive():
            self.process.kill()
        self.process.join()
        for box in (self.inbox, self.outbox):
            box.close()
            box.cancel_join_thread()  # batches never taken (a run that stopped early) are dropped


@contextlib.contextmanager
def _signing_child(
    signing: tuple[Mapping[str, Signer], dt.datetime, int], queue_of: tuple[str, Sequence[str], int]
) -> Iterator[_SigningChild]:
    child = _SigningChild(signing, queue_of)
    finished = False
    try:
        yield child
        finished = True
    finally:
        child.close(finished=finished)


def _data_version(conn: Connection) -> int | None:
    """SQLite: a number that changes when another connection commits (``PRAGMA data_version``, this connection's
    own commits leave it); PostgreSQL: ``None`` (no such cheap test: every store re-reads)."""
    if conn.dialect.name != "sqlite":
        return None
    return int(conn.exec_driver_sql("PRAGMA data_version").scalar_one())


class _Queue:
    """The stage's work queue, site after site, each along the index (site_id, id): the next batch to sign."""

    def __init__(self, site_ids: Sequence[str], batch_size: int) -> None:
        self._sites = deque(site_ids)
        self._after = 0
        self._batch_size = batch_size

    @property
    def exhausted(self) -> bool:
        return not self._sites

    def next_batch(self, conn: Connection) -> tuple[list[_DoseRow], Versions | None]:
        """The next batch and, on PostgreSQL, its rows' versions (:func:`_queue_batch`)."""
        while self._sites:
            rows, versions = _queue_batch(conn, self._sites[0], self._after, self._batch_size)
            if rows:
                self._after = rows[-1].id
                return rows, versions
            self._sites.popleft()
            self._after = 0
        return [], None


def _run_pipelined(
    db: Database,
    signers: Mapping[str, Signer],
    certificates: Mapping[str, dict[str, Any]],
    now: dt.datetime,
    sizes: tuple[int, int],
    on_progress: ProgressCallback | None,
) -> tuple[int, int]:
    """Read and sign in the forked child, store here (see the module documentation); returns (signed, failed)."""
    batch_size, per_signature = sizes
    url = db.url_for_workers()
    # per batch asked for, what its store checks against: SQLite's data_version on this connection *before* the
    # request (the child reads after it: any other connection's commit in between changes it); PostgreSQL:
    # nothing here (the rows' versions come with the batch)
    asked: deque[int | None] = deque()
    signed = failed = 0
    with (
        _signing_child((signers, now, per_signature), (url, sorted(signers), batch_size)) as child,
        db.writer() as conn,
    ):
        with conn.begin():
            version = _data_version(conn)
        for _ in range(IN_FLIGHT):
            child.request()
            asked.append(version)
        while asked:
            read_version = asked.popleft()
            batch = child.receive()  # before the write lock: nobody waits on the child
            if batch is None:
                continue  # the queue is exhausted: the requests still out come back empty too
            rows, versions, outcomes = batch
            with conn.begin():
                version = _data_version(conn)
                if versions is not None or version != read_version:
                    stored = _store_checked(
                        db, conn, (rows, outcomes, versions), (signers, certificates), now, per_signature
                    )
                else:
                    stored = _store_batch(db, conn, rows, outcomes, certificates)
                child.request()
                asked.append(version)
            signed += stored[0]
            failed += stored[1]
            if on_progress is not None:
                on_progress(signed)
    return signed, failed
