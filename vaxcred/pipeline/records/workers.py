"""Validating import chunks in worker processes, results in file order, memory bounded.

::

    parent: read lines ─> chunk 0 ─> worker 0 ─┐
                          chunk 1 ─> worker 1 ─┤  round robin: chunk i goes to worker i mod N, and its result
                          chunk 2 ─> worker 0 ─┤  is taken from worker i mod N's outbox, so results come back
                          …                    ┘  in file order without sorting
    parent: write each result's rejects, add its rows to the batch being assembled (a thread stores the one
            before: :mod:`~vaxcred.pipeline.records.writer`)

* **Bounded.** At most :data:`IN_FLIGHT_PER_WORKER` chunks per worker are sent ahead of the one being taken;
  a chunk holds at most :data:`~vaxcred.pipeline.records.importer.CHUNK_ROWS` rows and about
  :data:`~vaxcred.pipeline.records.importer.CHUNK_CHARS` characters.
* **Workers die with the parent.** Each worker asks the kernel for ``SIGKILL`` when its parent dies (Linux
  ``PR_SET_PDEATHSIG``), so a ``kill -9`` of the import takes them too; a worker that dies (or fails) stops the
  import with :class:`~vaxcred.pipeline.errors.PipelineError` ``pipeline.import_worker_failed`` after the
  batches stored so far — run the import again to finish.
* Workers are *forked* on Linux (they start at once; a spawned interpreter spends ~1 s importing the pipeline
  package) and spawned elsewhere, when :func:`validation_processes` is entered: the importer enters it before
  it starts any thread (a fork copies only the forking thread, with every lock the others held). They touch no database, no file and no lock of the parent's — only their two
  queues and the pure :func:`~vaxcred.pipeline.records.validation.validate_chunk` — and send back plain tuples;
  they end with ``os._exit`` (multiprocessing's), so connections inherited from the parent are never closed
  or used by them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import multiprocessing
import os
import queue
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Final

from vaxcred.errors import VaxcredError
from vaxcred.pipeline.errors import PipelineError
from vaxcred.pipeline.processes import die_with_parent, settle_heap_once
from vaxcred.pipeline.records.validation import Chunk, ChunkResult, validate_chunk

__all__ = ["IMPORT_WORKER_FAILED", "IN_FLIGHT_PER_WORKER", "validation_processes"]

#: :class:`PipelineError` code: a validation worker died or failed
IMPORT_WORKER_FAILED: Final = "pipeline.import_worker_failed"
#: chunks sent ahead to each worker (bounds memory; 2 keeps every worker busy while the parent stores)
IN_FLIGHT_PER_WORKER: Final = 2
#: how often a parent waiting for a result checks that its worker is alive (seconds)
_POLL_SECONDS: Final = 1.0
_JOIN_SECONDS: Final = 5.0
#: forked where the platform can (a worker starts at once: it needs no import), else spawned
_FORK: Final = "fork" in multiprocessing.get_all_start_methods()


def _worker_main(
    inbox: Any, outbox: Any, header: tuple[str, ...] | None, today: dt.date | None, parent: int
) -> None:
    """A worker: validate each chunk of ``inbox`` into ``outbox`` until ``None``."""
    die_with_parent(parent)
    settle = settle_heap_once(forked=_FORK)
    while (chunk := inbox.get()) is not None:
        try:
            outbox.put(("ok", validate_chunk(chunk, header=header, today=today)))
            settle()
        except Exception as e:  # a bug: say which kind, never the message (it may quote a row)
            code = e.code if isinstance(e, VaxcredError) else type(e).__name__
            outbox.put(("error", code))
            return


class _Pool:
    def __init__(self, workers: int, header: tuple[str, ...] | None, today: dt.date | None) -> None:
        context = multiprocessing.get_context("fork") if _FORK else multiprocessing.get_context("spawn")
        self.inboxes = [context.Queue() for _ in range(workers)]
        self.outboxes = [context.Queue() for _ in range(workers)]
        self.processes = [
            context.Process(
                target=_worker_main,
                args=(inbox, outbox, header, today, os.getpid()),
                name=f"vaxcred-import-{n}",
                daemon=True,
            )
            for n, (inbox, outbox) in enumerate(zip(self.inboxes, self.outboxes, strict=True))
        ]
        self.finished = False  #: every result was taken: the workers may end after their last chunk
        for process in self.processes:
            process.start()

    def results(self, chunks: Iterable[Chunk]) -> Iterator[ChunkResult]:
        """Each chunk sent to worker ``i mod N`` and its result taken from there: file order, no sorting."""
        workers = len(self.processes)
        pending: deque[int] = deque()
        for number, chunk in enumerate(chunks):
            worker = number % workers
            self.inboxes[worker].put(chunk)
            pending.append(worker)
            if len(pending) > IN_FLIGHT_PER_WORKER * workers:
                yield self.receive(pending.popleft())
        while pending:
            yield self.receive(pending.popleft())
        self.finished = True

    def receive(self, worker: int) -> ChunkResult:
        while True:
            try:
                kind, value = self.outboxes[worker].get(timeout=_POLL_SECONDS)
            except queue.Empty:
                process = self.processes[worker]
                if not process.is_alive():
                    raise PipelineError(
                        f"import worker {worker} died (exit code {process.exitcode}): run the import again",
                        code=IMPORT_WORKER_FAILED,
                    ) from None
                continue
            if kind == "error":
                raise PipelineError(
                    f"import worker {worker} failed ({value}): run the import again",
                    code=IMPORT_WORKER_FAILED,
                )
            assert isinstance(value, ChunkResult)
            return value

    def close(self, *, finished: bool) -> None:
        """Stop the workers: after their last chunk when every result was taken, else at once (they hold
        nothing: a killed worker loses only results nobody will read)."""
        for inbox in self.inboxes:
            with contextlib.suppress(ValueError, OSError):
                inbox.put(None)
        for process in self.processes:
            if finished:
                process.join(_JOIN_SECONDS)
            if process.is_alive():
                process.kill()
            process.join()
        for box in (*self.inboxes, *self.outboxes):
            box.close()
            box.cancel_join_thread()  # chunks never taken (an import that stopped early) are dropped


@contextlib.contextmanager
def validation_processes(
    workers: int, *, header: Sequence[str] | None, today: dt.date | None
) -> Iterator[Callable[[Iterable[Chunk]], Iterator[ChunkResult]]]:
    """Start ``workers`` validation processes *now* (forked before the caller starts any thread: a fork copies
    only the forking thread, and a lock another thread held stays locked in the child) and yield a function
    that gives :func:`~vaxcred.pipeline.records.validation.validate_chunk` of each of its chunks, validated in
    them, in the order of the chunks. Leaving the block stops and reaps the workers."""
    if workers < 1:
        raise ValueError("workers must be at least 1")
    pool = _Pool(workers, tuple(header) if header is not None else None, today)
    try:
        yield pool.results
    finally:
        pool.close(finished=pool.finished)
