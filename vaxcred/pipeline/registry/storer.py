"""The registry check's store, overlapped: one thread stores batch k while the caller reads and looks up batch k+1.

::

    caller (the stage's thread)                          store thread (one, its own connection)
    ─────────────────────────────────────                ──────────────────────────────────────────
    read batch k+1, registry.lookup(…)   ── batch k ──>  store_batch(k): one write transaction
    (matching: here or the matcher)         (≤ 1 waiting)   (PostgreSQL: the server works, this waits)
    on_progress(…) for each committed    <── counts ───
    batch, in order

A batch's write transaction waits on the database (PostgreSQL: its server backend stores, ~20 µs a person);
in that time the caller reads and looks up the next batch, so the process and its server backend work at once.

* **The same transaction**: :func:`~vaxcred.pipeline.registry.store.store_batch`, batches stored one at a time
  in the order they were handed over (id order), so the stored results are those of the serial stage.
* **Nothing read twice or skipped**: the caller reads its batches by id (``id > last_id`` of the batch before),
  so a batch still being stored (its persons unchecked until it commits) is never read again.
* **Bounded**: one batch in the store, at most one waiting (:meth:`BatchStorer.submit` blocks while one waits).
* **Progress after commit**: :meth:`BatchStorer.take` gives the caller the counts of the batches committed, in
  order; the caller calls ``on_progress`` with them (in its own thread).
* **Errors**: a failed store ends the thread; :meth:`~BatchStorer.take` gives the counts committed before it,
  then raises its exception (the batch waiting behind it is dropped: its persons are still unchecked).
  :meth:`~BatchStorer.close` (on every path, an error of the caller's included) lets the batches handed over
  be stored, as the serial stage stored every batch it had matched before an error propagated, and joins the
  thread: none is left behind. A crash (``kill -9``) loses at most the two batches in hand.

Nothing here logs citizen IDs, names or dates of birth.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Final, TypeAlias

from vaxcred.pipeline.registry.batch import Outcome, PersonRow, RegistryCheckReport

__all__ = ["BatchStorer", "StoreBatch"]

#: stores one batch in one write transaction and returns its counts (``store_batch`` with its database bound)
StoreBatch: TypeAlias = Callable[[Sequence[PersonRow], Sequence[Outcome]], RegistryCheckReport]

_THREAD_NAME: Final = "vaxcred-registry-store"


class BatchStorer:
    """A thread storing the batches handed to it, one at a time, in order (module docstring)."""

    def __init__(self, store: StoreBatch) -> None:
        self._store = store
        self._changed = threading.Condition()
        self._waiting: tuple[Sequence[PersonRow], Sequence[Outcome]] | None = None
        self._busy = False
        self._closing = False
        self._committed: list[RegistryCheckReport] = []
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=_THREAD_NAME, daemon=True)
        self._thread.start()

    def submit(self, rows: Sequence[PersonRow], stored: Sequence[Outcome]) -> None:
        """Hand over the next batch; waits while one is already waiting. After a failed store the batch is
        dropped (:meth:`take` raises the failure)."""
        with self._changed:
            while self._waiting is not None and self._error is None:
                self._changed.wait()
            if self._error is None:
                self._waiting = (rows, stored)
                self._changed.notify_all()

    def take(self, *, wait: bool = False) -> list[RegistryCheckReport]:
        """The counts of the batches committed since the last call, in order; with ``wait``, once every batch
        handed over is committed. When none is left to give and a store failed, raises that store's error."""
        with self._changed:
            if wait:
                while (self._waiting is not None or self._busy) and self._error is None:
                    self._changed.wait()
            committed, self._committed = self._committed, []
            if not committed and self._error is not None:
                raise self._error
            return committed

    def close(self) -> None:
        """Let the batches handed over be stored (unless a store failed) and join the thread (every path)."""
        with self._changed:
            self._closing = True
            self._changed.notify_all()
        self._thread.join()

    def _run(self) -> None:
        while True:
            with self._changed:
                while self._waiting is None and not self._closing:
                    self._changed.wait()
                if self._waiting is None:
                    return
                rows, stored = self._waiting
                self._waiting, self._busy = None, True
                self._changed.notify_all()
            try:
                report = self._store(rows, stored)
            except BaseException as e:  # handed to the caller by take()
                with self._changed:
                    self._error, self._busy = e, False
                    self._changed.notify_all()
                return
            with self._changed:
                self._committed.append(report)
                self._busy = False
                self._changed.notify_all()
