"""The registry check on several cores: this process reads and looks up, worker processes match and store.

::

    this process                                        worker processes (spawned, N)
    ───────────────────────────────                     ─────────────────────────────────────────────
    read a batch (persons, id order)                    match every person (pure, CPU)
    registry.lookup(its citizen IDs)   ── (rows, ──>    one write transaction: store the results of the
    next batch while the workers work      answer)        batch's persons still unchanged
                                       <── counts ──    (registry_checks + persons.registry_status)

The registry adapter stays in this process (an HTTP client, a file handle: nothing to pickle, one place for its
retries and outage errors); a batch travels as plain tuples, the registry's entries too
(:func:`~vaxcred.pipeline.registry.batch.plain_entries`). The transaction a worker
runs is the one the single-process stage runs (:func:`~vaxcred.pipeline.registry.store.store_batch`), so the
stored results are the same and a crash loses at most the batches in flight (their persons are still unchecked).
At most ``2 × workers`` batches wait in the queue (bounded memory). A registry error stops the reading: the
batches already handed out are finished and committed, then the error propagates. A failing worker stops the
run with :class:`~vaxcred.pipeline.errors.PipelineError` ``pipeline.registry_check_worker_failed``. Workers exit
when this process is gone (they poll for it while waiting for work). Once they are gone, what is left in the
task queue is dropped (:func:`~vaxcred.pipeline.processes.close_abandoned_queue`): its feeder thread, blocked
writing batches into a pipe no worker reads, hung the interpreter at exit after all workers had died.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import multiprocessing
import os
import queue
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final

from vaxcred.pipeline.errors import PipelineError
from vaxcred.pipeline.processes import (
    close_abandoned_queue,
    die_with_parent,
    failure_message,
    settle_heap_once,
)
from vaxcred.pipeline.registry.batch import (
    PersonRow,
    RegistryCheckReport,
    lookup_batch,
    match_plain_outcomes,
    plain_entries,
)
from vaxcred.pipeline.registry.lookup import PopulationRegistry
from vaxcred.pipeline.registry.store import store_batch
from vaxcred.storage import Database, open_database

__all__ = ["WORKER_FAILED", "check_in_processes"]

logger = logging.getLogger(__name__)

#: :class:`PipelineError` code: a registry-check worker process failed (its message says how)
WORKER_FAILED: Final = "pipeline.registry_check_worker_failed"
#: seconds a worker waits for a batch before it looks whether its parent is still there
_POLL: Final = 1.0


def _worker_main(
    url: str, now: dt.datetime, source: str, tasks: Any, results: Any, write_lock: Any, parent: int
) -> None:
    """A worker process: match and store each batch from ``tasks`` until ``None``; report counts on
    ``results``. ``write_lock`` (SQLite: its one writer) makes the workers queue for the write transaction on a
    lock that wakes the next one at once, rather than on ``busy_timeout``'s sleeps (up to 100 ms each). Dies
    with its parent, like every stage's workers (:func:`~vaxcred.pipeline.processes.die_with_parent`; a batch
    is stored in one transaction, so nothing is half-stored)."""
    die_with_parent(parent)
    try:
        db = open_database(url).for_batches()
        settle = settle_heap_once()
        try:
            while True:
                try:
                    task = tasks.get(timeout=_POLL)
                except queue.Empty:
                    if os.getppid() != parent:
                        return  # the run is gone: its batches in flight stay unchecked
                    continue
                if task is None:
                    break
                rows, entries = task
                matched = match_plain_outcomes(rows, entries)
                with write_lock or contextlib.nullcontext():
                    stored = store_batch(db, rows, matched, checked_at=now, source=source)
                results.put(("batch", stored))
                settle()
        finally:
            db.dispose()
    except BaseException as e:  # report anything, then exit non-zero
        results.put(("error", failure_message(e)))
        raise SystemExit(1) from None
    results.put(("done", None))


def check_in_processes(
    db: Database,
    registry: PopulationRegistry,
    batches: Iterable[Sequence[PersonRow]],
    *,
    now: dt.datetime,
    source: str,
    workers: int,
    on_progress: Callable[[int], None] | None,
) -> RegistryCheckReport:
    """Look up ``batches`` here and have ``workers`` spawned processes match and store them (module docstring)."""
    context = multiprocessing.get_context("spawn")
    tasks = context.Queue(maxsize=2 * workers)
    results = context.Queue()
    url = db.url_for_workers()
    write_lock = context.Lock() if db.backend == "sqlite" else None
    processes = [
        context.Process(
            target=_worker_main,
            args=(url, now, source, tasks, results, write_lock, os.getpid()),
            name=f"vaxcred-registry-{i}",
            daemon=True,
        )
        for i in range(workers)
    ]
    state = _Collector(results, processes, on_progress)
    failure: BaseException | None = None
    try:
        for process in processes:
            process.start()
        try:
            for rows in batches:
                found = lookup_batch(registry, rows)
                while not state.errors:
                    try:
                        tasks.put((list(rows), plain_entries(found)), timeout=0.5)
                        break
                    except queue.Full:
                        state.collect(wait=0.0)
                        state.check_alive()
                if state.errors:
                    break
                state.collect(wait=0.0)
        except Exception as e:  # the registry failed: finish what was handed out, then raise
            failure = e
        state.stop(tasks)
        state.wait_all()
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()  # whatever it had not committed stays unchecked
            if process.pid is not None:  # started
                process.join()
        close_abandoned_queue(tasks)  # batches no worker took: else the interpreter hangs at exit
        results.close()
    if failure is not None:
        logger.warning(
            "registry check stopped: %d persons checked in this run; run it again to finish",
            state.total.checked,
        )
        raise failure
    if state.errors:
        raise PipelineError("registry check worker failed: " + "; ".join(state.errors), code=WORKER_FAILED)
    return state.total


class _Collector:
    """The workers' reports: counts, progress, errors, and how many have finished."""

    def __init__(
        self,
        results: Any,
        processes: Sequence[multiprocessing.process.BaseProcess],
        on_progress: Callable[[int], None] | None,
    ) -> None:
        self._results = results
        self._processes = processes
        self._on_progress = on_progress
        self.total = RegistryCheckReport()
        self.errors: list[str] = []
        self.finished = 0

    def collect(self, *, wait: float) -> bool:
        """Take one report (waiting up to ``wait`` seconds); False when there was none."""
        try:
            kind, payload = self._results.get(timeout=wait) if wait else self._results.get_nowait()
        except queue.Empty:
            return False
        if kind == "batch":
            self.total = self.total + payload
            if self._on_progress is not None:
                self._on_progress(self.total.checked)
        else:
            self.finished += 1
            if kind == "error":
                self.errors.append(str(payload))
        return True

    def check_alive(self) -> None:
        """An error when every worker has exited (whatever it reported)."""
        if not self.errors and all(p.exitcode is not None for p in self._processes):
            self.errors.append("every worker process exited before the last batch")

    def stop(self, tasks: Any) -> None:
        """One ``None`` per worker after the last batch (while any worker is alive to take it)."""
        for _ in self._processes:
            while True:
                try:
                    tasks.put(None, timeout=0.5)
                    break
                except queue.Full:
                    self.collect(wait=0.0)
                    if all(p.exitcode is not None for p in self._processes):
                        return

    def wait_all(self) -> None:
        """Collect until every worker has reported its end (or exited without one)."""
        while self.finished < len(self._processes):
            if self.collect(wait=0.5):
                continue
            if all(p.exitcode is not None for p in self._processes) and not self.collect(wait=2.0):
                codes = sorted(p.exitcode for p in self._processes if p.exitcode)
                missing = len(self._processes) - self.finished
                self.errors.append(f"{missing} worker process(es) ended without reporting {codes}")
                return
