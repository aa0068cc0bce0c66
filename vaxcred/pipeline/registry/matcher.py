"""The registry check on two cores: one forked process matches, one thread stores, while this one reads and looks up.

::

    this process                                              matcher process (forked, one)
    ────────────────────────────────────────                  ──────────────────────────────────
    read batch n+1, registry.lookup(its IDs) ── (rows, ──>    match every person (pure, CPU)
                                                 answer)      ──> outcomes (plain tuples)
                                             <── outcomes ──
    store thread (:mod:`~vaxcred.pipeline.registry.storer`): batch n-2's one write transaction, meanwhile
    (PostgreSQL; on SQLite this process stores, in line)

SQLite has one writer, and the registry adapter (an HTTP client, a file handle) stays in one process: so this
process keeps every database transaction and every lookup, exactly as the single-process stage does, and hands
only the pure, CPU-bound matching to the other core. The write transaction is the same
(:func:`~vaxcred.pipeline.registry.store.store_batch`), batches are stored in id order, so the stored results
are identical and a crash (``kill -9``) loses at most the batches in flight: their persons are still unchecked.
From the second batch on, the store runs in a thread on its own connection
(:class:`~vaxcred.pipeline.registry.storer.BatchStorer`): while the server stores batch n, this process reads
and looks up the next ones (the batches are read by id, ``id > last_id``: one still being stored is never read
again). ``on_progress`` runs in this thread, after each batch committed, in order. The thread is used on
PostgreSQL, whose server stores while this process waits; on SQLite the engine's work is this process's own
CPU, and a store thread (its GIL released and retaken around every ``sqlite3_step``) measured slower (100 k
people, quiet, in line vs thread, twice: SQLite 2.1 vs 2.9–3.0 s, PostgreSQL 3.4 vs 2.9 s), so SQLite stores in
line (``store_thread=False``; :func:`~vaxcred.pipeline.registry.check.run_registry_check` decides).

* **Started only when it pays**: the first batch is matched and stored here; the matcher process is forked,
  then the store thread started, at the second batch (a run of one batch, a correction's re-check, never forks
  and starts no thread; no fork happens once a thread runs), and the matcher only where ``fork`` exists.
* **Bounded**: at most :data:`IN_FLIGHT` batches are handed out ahead of the one handed to the store, which
  holds at most two (one storing, one waiting).
* **Errors**: a registry error stops the reading; the batches already handed out are matched and stored, then
  the error propagates (as in the single-process stage). A matcher that fails or dies stops the run with
  :class:`~vaxcred.pipeline.errors.PipelineError` ``pipeline.registry_check_worker_failed`` after the batches
  handed to the store are stored. A store that fails propagates its error after the batches committed before
  it were reported. On every path the store thread is joined and the matcher stopped before the error
  propagates. The matcher dies with this process (:func:`~vaxcred.pipeline.processes.die_with_parent`).
* The forked process touches no database, file or lock of this one's: only its two queues and the pure
  :func:`~vaxcred.pipeline.registry.batch.match_outcomes`; it ends with ``os._exit`` (multiprocessing's), so
  inherited connections are never used or closed there.

Nothing here logs citizen IDs, names or dates of birth.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import logging
import multiprocessing
import os
import queue
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final

from vaxcred.errors import VaxcredError
from vaxcred.pipeline.errors import PipelineError
from vaxcred.pipeline.processes import close_abandoned_queue, die_with_parent, settle_heap_once
from vaxcred.pipeline.registry.batch import (
    Outcome,
    PersonRow,
    RegistryCheckReport,
    lookup_batch,
    match_outcomes,
    match_plain_outcomes,
    plain_entries,
)
from vaxcred.pipeline.registry.lookup import PopulationRegistry
from vaxcred.pipeline.registry.parallel import WORKER_FAILED
from vaxcred.pipeline.registry.store import store_batch
from vaxcred.pipeline.registry.storer import BatchStorer
from vaxcred.storage import Database

__all__ = ["IN_FLIGHT", "MATCHER_FAILED", "can_fork", "check_with_matcher"]

logger = logging.getLogger(__name__)

#: :class:`PipelineError` code: the matcher process failed or died (the parallel workers' code)
MATCHER_FAILED: Final = WORKER_FAILED
#: batches handed to the matcher ahead of the one being stored (2: it always has the next one waiting)
IN_FLIGHT: Final = 2
#: how often this process, waiting for outcomes, checks that the matcher is alive (seconds)
_POLL: Final = 1.0
_JOIN: Final = 5.0


def can_fork() -> bool:
    """Whether a matcher process can be forked here (Linux and the BSDs; not Windows)."""
    return "fork" in multiprocessing.get_all_start_methods()


def _matcher_main(inbox: Any, outbox: Any, parent: int) -> None:
    """The matcher: match each ``(rows, found)`` of ``inbox`` into ``outbox`` until ``None``."""
    die_with_parent(parent)
    settle = settle_heap_once(forked=True)
    while (task := inbox.get()) is not None:
        rows, entries = task
        try:
            outbox.put(("ok", match_plain_outcomes([PersonRow._make(row) for row in rows], entries)))
            settle()
        except Exception as e:  # a bug or a caller mistake: its kind, never its message (it may quote data)
            outbox.put(("error", e.code if isinstance(e, VaxcredError) else type(e).__name__))
            return


class _Matcher:
    """The forked matcher process and its two queues."""

    def __init__(self) -> None:
        context = multiprocessing.get_context("fork")
        self.inbox = context.Queue()
        self.outbox = context.Queue()
        self.process = context.Process(
            target=_matcher_main,
            args=(self.inbox, self.outbox, os.getpid()),
            name="vaxcred-registry-matcher",
            daemon=True,
        )
        self.process.start()

    def send(self, rows: Sequence[PersonRow], found: dict[str, Any]) -> None:
        # plain tuples: a PersonRow would be rebuilt field by field when unpickled, a RegistryEntry too
        self.inbox.put(([tuple(row) for row in rows], plain_entries(found)))

    def receive(self) -> list[Outcome]:
        while True:
            try:
                kind, value = self.outbox.get(timeout=_POLL)
            except queue.Empty:
                if not self.process.is_alive():
                    raise PipelineError(
                        f"registry-check matcher process died (exit code {self.process.exitcode}): "
                        "run the check again to finish",
                        code=MATCHER_FAILED,
                    ) from None
                continue
            if kind == "error":
                raise PipelineError(
                    f"registry-check matcher process failed ({value}): run the check again to finish",
                    code=MATCHER_FAILED,
                )
            assert isinstance(value, list)
            return value

    def close(self, *, finished: bool) -> None:
        """Stop the matcher: after its last batch when every result was taken, else at once (it holds nothing
        that is not also unchecked in the database)."""
        with contextlib.suppress(ValueError, OSError):
            self.inbox.put(None)
        if finished:
            self.process.join(_JOIN)
        if self.process.is_alive():
            self.process.kill()
        self.process.join()
        close_abandoned_queue(self.inbox)  # batches never matched (a run that stopped early) are dropped
        self.outbox.close()


def check_with_matcher(
    db: Database,
    registry: PopulationRegistry,
    batches: Iterable[Sequence[PersonRow]],
    *,
    now: dt.datetime,
    source: str,
    on_progress: Callable[[int], None] | None,
    fork: bool,
    store_thread: bool,
) -> RegistryCheckReport:
    """Check ``batches``: look up here, match in a forked process from the second batch on when ``fork``
    (module docstring), else match here too; store from the second batch on in a thread while the next batch
    is read and looked up when ``store_thread`` (:mod:`vaxcred.pipeline.registry.storer`), else store here.
    The stored results are the same."""
    total = RegistryCheckReport()

    def committed(reports: Iterable[RegistryCheckReport]) -> None:
        nonlocal total
        for report in reports:
            total = total + report
            if on_progress is not None:
                on_progress(total.checked)

    def store(rows: Sequence[PersonRow], stored: Sequence[Outcome]) -> None:
        if storer is None:  # the first batch: stored here (a run of one batch starts no thread)
            committed([store_batch(db, rows, stored, checked_at=now, source=source)])
        else:
            storer.submit(rows, stored)
            committed(storer.take())

    def flush() -> None:
        while storer is not None and (reports := storer.take(wait=True)):
            committed(reports)

    matcher: _Matcher | None = None
    storer: BatchStorer | None = None
    pending: deque[Sequence[PersonRow]] = deque()
    finished = False
    try:
        for number, rows in enumerate(batches):
            try:
                found = lookup_batch(registry, rows)
            except Exception:  # the registry failed: store what was handed out, then raise
                while pending and matcher is not None:
                    store(pending.popleft(), matcher.receive())
                flush()
                logger.warning(
                    "registry check stopped: %d persons checked in this run; run it again to finish",
                    total.checked,
                )
                raise
            if number == 1:  # the matcher is forked before the store thread starts (no fork with threads)
                matcher = _Matcher() if fork else None
                if store_thread:
                    storer = BatchStorer(functools.partial(store_batch, db, checked_at=now, source=source))
            if matcher is None:
                store(rows, match_outcomes(rows, found))
                continue
            matcher.send(rows, found)
            pending.append(rows)
            if len(pending) > IN_FLIGHT:
                store(pending.popleft(), matcher.receive())
        while pending:
            assert matcher is not None
            store(pending.popleft(), matcher.receive())
        flush()
        finished = True
    finally:
        if storer is not None:
            storer.close()
        if matcher is not None:
            matcher.close(finished=finished)
    return total
