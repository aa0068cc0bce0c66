"""Storing the import's batches in a thread of their own, one at a time, in file order, while the import reads on.

::

    calling thread: assemble batch k+1 (read, validate or take the workers' results, rejects) ─┐
                    ┌──────────────────────────────────────────────────────────────────────────┘
                    └─> collect batch k (its counts, or its error) ─> on_progress ─> submit k+1 ─> assemble k+2 …
    store thread k: COPY / executemany + the set-based statements, commit   (the driver waits on the server, or
                    SQLite runs its statements, without the GIL: the calling thread works meanwhile)

* **Overlap, bounded.** At most one batch is being stored while the next one is assembled: batch k+1 is handed
  over only once batch k is committed, so at most two batches are held and the commits come in file order,
  one transaction a batch, exactly as when the calling thread stored them itself.
* **One thread per batch, one connection.** Each batch is stored by a short-lived thread on the import's one
  connection, which the calling thread does not touch meanwhile; the thread is joined when its batch is
  collected. Threads start only once the validation workers are forked (the importer starts them first).
* **Errors.** A store's error is raised in the calling thread when its batch is collected (at the next chunk,
  or when the next batch is ready), its transaction rolled back, the batches before it committed. When the
  calling thread fails (a worker, ``on_progress``, the rejects file …) the batch being stored is waited for
  (it comes before the failure in file order, so it commits); on ``KeyboardInterrupt`` (or another
  ``BaseException``) its statement is cancelled instead (:func:`~vaxcred.pipeline.records.staging.canceller`:
  it rolls back, as a ``^C`` during a store always did). Either way no thread outlives the import.
* An in-memory SQLite database (a connection per thread, ``check_same_thread``) is stored in the calling thread.
* **Several writers.** A PostgreSQL import may store on two connections at once, a :class:`BatchWriter` each,
  every batch split between them by citizen ID (:mod:`~vaxcred.pipeline.records.streams`); each writer is the
  above, on its own connection.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Sequence
from types import TracebackType
from typing import Final, NamedTuple

from sqlalchemy.engine import Connection
from sqlalchemy.pool import SingletonThreadPool

from vaxcred.pipeline.records import staging
from vaxcred.pipeline.records.validation import StagedRow

__all__ = ["BatchWriter", "Stored"]

#: how often a cancelled store that is still running is cancelled again (seconds)
_CANCEL_AGAIN_SECONDS: Final = 1.0


class Stored(NamedTuple):
    """A committed batch: what it stored, and the import's data rows up to its end."""

    counts: staging.BatchCounts
    rows_done: int


def _store(
    conn: Connection,
    rows: Sequence[StagedRow],
    rows_done: int,
    sites: staging.NewSites | None,
    keys: staging.StoredKeys,
) -> Stored:
    """One batch in one transaction (none for a batch without valid rows), its new ``sites`` first in one of
    their own when given."""
    if not rows:
        return Stored(staging.BatchCounts(0, 0, 0), rows_done)
    if sites is not None:
        sites.store(conn, rows)
    with conn.begin():
        counts = staging.store_batch(conn, rows, keys)
    return Stored(counts, rows_done)


class _StoreThread(threading.Thread):
    def __init__(
        self,
        conn: Connection,
        rows: Sequence[StagedRow],
        rows_done: int,
        sites: staging.NewSites | None,
        keys: staging.StoredKeys,
    ) -> None:
        super().__init__(name="vaxcred-import-store", daemon=True)
        self._args = (conn, rows, rows_done, sites, keys)
        self.stored: Stored | None = None
        self.error: BaseException | None = None
        #: set when the store ended. Waited for instead of ``join``: Python 3.11's ``join`` interrupted by ^C
        #: marks a running thread as stopped (its bpo-45274 fix releases the lock the thread still holds)
        self.done = threading.Event()

    def run(self) -> None:
        try:
            self.stored = _store(*self._args)
        except BaseException as e:  # handed to the calling thread, which raises it
            self.error = e
        finally:
            del self._args  # the batch is not held once stored
            self.done.set()


class BatchWriter:
    """Stores batches on ``conn`` (prepared by :func:`~vaxcred.pipeline.records.staging.prepare`) one at a time,
    each in a thread while the caller assembles the next; use as a context manager (leaving it ends the store in
    flight: waited for, or cancelled on ``BaseException``). ``shared_sites``: another writer stores batches into
    the same tables at once, so each batch's new sites are committed ahead of it
    (:class:`~vaxcred.pipeline.records.staging.NewSites`; PostgreSQL)."""

    def __init__(self, conn: Connection, *, shared_sites: bool = False) -> None:
        self._conn = conn
        self._sites = staging.NewSites() if shared_sites else None
        #: plain inserts until a batch meets a stored key (PostgreSQL; batches are stored one at a time)
        self.keys = staging.StoredKeys()
        self._threaded = not isinstance(conn.engine.pool, SingletonThreadPool)
        self._cancel = staging.canceller(conn)
        self._pending: _StoreThread | None = None
        self._ready: Stored | None = None  # stored in the calling thread, not collected yet

    def submit(self, rows: Sequence[StagedRow], rows_done: int) -> None:
        """Start storing ``rows``, the batch ending at data row ``rows_done``; the previous batch must have been
        collected."""
        if self._pending is not None or self._ready is not None:
            raise RuntimeError("the previous batch was not collected")
        if not self._threaded:
            self._ready = _store(self._conn, rows, rows_done, self._sites, self.keys)
            return
        thread = _StoreThread(self._conn, rows, rows_done, self._sites, self.keys)
        thread.start()
        self._pending = thread

    def collect(self, *, wait: bool) -> Stored | None:
        """The batch submitted last once committed (``None``: none, or not yet when not ``wait``); raises its
        store's error."""
        if self._ready is not None:
            ready, self._ready = self._ready, None
            return ready
        thread = self._pending
        if thread is None or (not wait and not thread.done.is_set()):
            return None
        thread.done.wait()
        thread.join()  # only its last instructions are left
        self._pending = None
        if thread.error is not None:
            raise thread.error
        return thread.stored

    def __enter__(self) -> BatchWriter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        thread, self._pending = self._pending, None
        if thread is None:
            return
        cancel = error is not None and not isinstance(error, Exception)
        while True:
            if cancel:  # again each round: a cancel that came between two statements stopped nothing
                with contextlib.suppress(Exception):  # a cancel that fails leaves the store to finish
                    self._cancel()
            try:
                if thread.done.wait(_CANCEL_AGAIN_SECONDS if cancel else None):
                    break
            except BaseException:  # a second ^C while waiting: cancel (again), never leave the thread behind
                cancel = True
        thread.join()
        # the error being raised says why the import stopped; the store's own error (if any) is dropped
