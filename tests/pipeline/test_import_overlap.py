"""The import stores batch k in a thread while it reads and validates batch k+1: overlap, order, errors, threads."""

from __future__ import annotations

import multiprocessing
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from tests.pipeline.import_child import generated_rows
from vaxcred.pipeline.errors import PipelineError
from vaxcred.pipeline.records import importer, staging, workers
from vaxcred.pipeline.records.importer import import_lines
from vaxcred.pipeline.records.validation import ChunkResult, StagedRow
from vaxcred.pipeline.records.workers import IMPORT_WORKER_FAILED
from vaxcred.pipeline.records.writer import BatchWriter
from vaxcred.storage import Database, open_database
from vaxcred.storage.schema import doses, persons

WORKERS = pytest.mark.parametrize("workers", [0, 2], ids=["here", "workers"])
#: how long a test waits for something that overlap makes happen at once (a failure, not a slow machine)
OVERLAP_TIMEOUT = 30.0
STORE_THREAD = "vaxcred-import-store"


def _count(db: Database, table: sa.Table) -> int:
    with db.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def _store_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == STORE_THREAD]


def _nothing_left_running() -> None:
    assert not _store_threads(), "a store thread outlived the import"
    assert not multiprocessing.active_children(), "a validation worker outlived the import"


class Counted:
    """The lines of ``generated_rows(rows)``, counting how many the import has taken; optionally raising
    ``KeyboardInterrupt`` in place of line ``interrupt_at`` (1-based, the header being 1)."""

    def __init__(self, rows: int, *, interrupt_at: int | None = None) -> None:
        self.rows, self.interrupt_at, self.taken = rows, interrupt_at, 0

    def __iter__(self) -> Iterator[str]:
        for line in generated_rows(self.rows):
            if self.taken + 1 == self.interrupt_at:
                raise KeyboardInterrupt
            self.taken += 1
            yield line


@WORKERS
def test_the_next_batch_is_validated_while_a_batch_is_stored(
    database: Database, monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    """The first batch's store waits until the whole second batch has been validated and taken in: storing in
    the calling thread (no overlap), it would wait in vain and the test fail."""
    batch = 50
    taken = 0
    second_batch_taken = threading.Event()
    real_add, real_store = importer._Totals.add, staging.store_batch

    def counting_add(self: Any, result: ChunkResult) -> None:
        nonlocal taken
        real_add(self, result)
        taken += result.rows
        if taken >= 2 * batch:
            second_batch_taken.set()

    waited: list[bool] = []

    def store_after_the_next_batch(conn: Any, rows: list[StagedRow], *more: Any) -> Any:
        if not waited:
            waited.append(second_batch_taken.wait(OVERLAP_TIMEOUT))
        return real_store(conn, rows, *more)

    monkeypatch.setattr(importer._Totals, "add", counting_add)
    monkeypatch.setattr(staging, "store_batch", store_after_the_next_batch)
    report = import_lines(
        database, generated_rows(5 * batch), format="csv", batch_size=batch, workers=workers
    )
    assert waited == [True], "batch 2 was not validated while batch 1 was being stored"
    assert report.imported == 5 * batch
    _nothing_left_running()


def test_progress_comes_in_order_from_the_calling_thread(database: Database) -> None:
    """on_progress is called in the caller's thread, once per committed batch, in file order, the end last."""
    seen: list[tuple[int, int]] = []

    def on_progress(done: int) -> None:
        seen.append((done, threading.get_ident()))
        assert _count(database, doses) == done  # said after its commit (every row here is a new dose)

    import_lines(database, generated_rows(25), format="csv", batch_size=10, on_progress=on_progress)
    assert seen == [(10, threading.get_ident()), (20, threading.get_ident()), (25, threading.get_ident())]


@WORKERS
def test_a_store_failing_mid_import_stops_it_promptly_after_the_batches_before_it(
    database: Database, monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    """The third batch's store fails (after its statements, before its commit): the import raises that error
    within a few batches, not at the end of the file, with the two batches before it committed; nothing runs on."""
    real_store = staging.store_batch
    calls = 0

    def failing_store(conn: Any, rows: list[StagedRow], *more: Any) -> Any:
        nonlocal calls
        calls += 1
        result = real_store(conn, rows, *more)
        if calls == 3:
            raise ConnectionError("connection lost")
        return result

    monkeypatch.setattr(staging, "store_batch", failing_store)
    lines = Counted(2_000)
    with pytest.raises(ConnectionError, match="connection lost"):
        import_lines(database, lines, format="csv", batch_size=10, workers=workers)
    assert calls == 3  # no batch was stored after the failed one
    assert lines.taken < 200, lines.taken
    assert (_count(database, doses), _count(database, persons)) == (20, 10)
    _nothing_left_running()
    monkeypatch.setattr(staging, "store_batch", real_store)
    report = import_lines(database, generated_rows(2_000), format="csv", batch_size=10, workers=workers)
    assert (report.imported, report.duplicates) == (1_980, 20)


@WORKERS
def test_an_on_progress_that_raises_stops_the_import_after_its_batch(
    database: Database, monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    """on_progress raising after the third commit: the import raises it, exactly three batches stored (the next
    one was assembled, never handed to the store), promptly; nothing runs on."""
    stored: list[int] = []
    real_store = staging.store_batch

    def recording_store(conn: Any, rows: list[StagedRow], *more: Any) -> Any:
        stored.append(len(rows))
        return real_store(conn, rows, *more)

    def crash_after_three_batches(done: int) -> None:
        if done == 30:
            raise RuntimeError("simulated crash")

    monkeypatch.setattr(staging, "store_batch", recording_store)
    lines = Counted(2_000)
    with pytest.raises(RuntimeError, match="simulated crash"):
        import_lines(
            database,
            lines,
            format="csv",
            batch_size=10,
            on_progress=crash_after_three_batches,
            workers=workers,
        )
    assert stored == [10, 10, 10]
    assert lines.taken < 200, lines.taken
    assert _count(database, doses) == 30
    _nothing_left_running()


def test_a_failed_worker_lets_the_batch_being_stored_commit(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker failing on batch 3 while batch 2 is being stored: the import raises the worker's failure after
    batch 2 committed (it comes first in file order), and stops its threads and workers."""
    real_store = staging.store_batch
    real_validate = workers.validate_chunk
    storing_batch_2 = threading.Event()

    def slow_second_store(conn: Any, rows: list[StagedRow], *more: Any) -> Any:
        if rows[0][0] == "001090000005":  # the second batch (rows 11-20: persons 5-9)
            storing_batch_2.set()
            time.sleep(0.5)  # still storing when the worker's failure arrives
        return real_store(conn, rows, *more)

    def failing_on_batch_3(chunk: Any, **kwargs: Any) -> ChunkResult:
        if chunk.first_line >= 22:  # batch 3 starts at line 22 (header, then 10 rows a batch)
            raise ValueError("a bug")
        return real_validate(chunk, **kwargs)

    monkeypatch.setattr(staging, "store_batch", slow_second_store)
    monkeypatch.setattr(workers, "validate_chunk", failing_on_batch_3)  # forked: the workers see it
    with pytest.raises(PipelineError) as raised:
        import_lines(database, generated_rows(200), format="csv", batch_size=10, workers=2)
    assert raised.value.code == IMPORT_WORKER_FAILED
    assert storing_batch_2.is_set()
    assert _count(database, doses) == 20
    _nothing_left_running()


@WORKERS
def test_a_keyboard_interrupt_leaves_whole_batches_and_no_thread(database: Database, workers: int) -> None:
    """^C while reading (a store in flight, or just done): the import raises KeyboardInterrupt with whole
    batches stored, nothing running on; the re-run stores the rest once."""
    lines = Counted(200, interrupt_at=36)  # in the fourth batch (header, then 10 rows a batch)
    with pytest.raises(KeyboardInterrupt):
        import_lines(database, lines, format="csv", batch_size=10, workers=workers)
    stored = _count(database, doses)
    assert stored in (0, 10, 20, 30), stored
    _nothing_left_running()
    report = import_lines(database, generated_rows(200), format="csv", batch_size=10, workers=workers)
    assert (report.imported, report.duplicates) == (200 - stored, stored)


@pytest.mark.parametrize("writers", [1, 2], ids=["one-writer", "two-writers"])
def test_a_keyboard_interrupt_cancels_a_store_stuck_on_a_lock(database: Database, writers: int) -> None:
    """A real SIGINT while the store waits on a lock another session holds (the import waiting for that store;
    with two writers, both streams' stores waiting): every store's statement is cancelled (it rolls back) and
    the import raises KeyboardInterrupt at once instead of waiting for the lock. (SQLite's busy wait can be
    interrupted neither by ^C, before this change, nor by ``sqlite3_interrupt``: PostgreSQL only.)"""
    if database.backend != "postgresql":
        pytest.skip("SQLite waits out its busy timeout whatever happens (as it always did)")
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("a signal reaches the main thread only")
    main = threading.main_thread().ident
    assert main is not None
    ended = threading.Event()
    holder = database.engine.raw_connection()
    handler = signal.signal(signal.SIGINT, signal.default_int_handler)  # a pytest-xdist worker ignores ^C
    try:
        holder.cursor().execute("LOCK TABLE doses IN SHARE MODE")  # every insert into doses waits for it
        interrupter = threading.Thread(
            target=_interrupt_once_waiting_on_a_lock, args=(database, main, ended, writers)
        )
        interrupter.start()
        started = time.monotonic()
        try:
            with pytest.raises(KeyboardInterrupt):
                import_lines(database, generated_rows(200), format="csv", batch_size=10, writers=writers)
            elapsed = time.monotonic() - started
        finally:
            ended.set()
            interrupter.join()
            holder.rollback()
    finally:
        signal.signal(signal.SIGINT, handler)
        holder.close()
    assert elapsed < OVERLAP_TIMEOUT / 2, elapsed
    assert _count(database, doses) == 0
    _nothing_left_running()


def _interrupt_once_waiting_on_a_lock(
    database: Database, main: int, ended: threading.Event, sessions: int = 1
) -> None:
    """Send SIGINT to the main thread once ``sessions`` sessions of ``database`` wait on a lock; if the import has not
    ended :data:`OVERLAP_TIMEOUT` seconds later (the test failing), end the sessions holding locks so that it
    cannot hang."""
    deadline = time.monotonic() + OVERLAP_TIMEOUT
    with database.connect() as conn:
        while time.monotonic() < deadline and not ended.is_set():
            waiting = conn.exec_driver_sql("SELECT count(*) FROM pg_locks WHERE NOT granted").scalar_one()
            conn.rollback()
            if waiting >= sessions:
                signal.pthread_kill(main, signal.SIGINT)
                break
            time.sleep(0.05)
        if not ended.wait(OVERLAP_TIMEOUT):
            conn.exec_driver_sql(
                "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE relation = 'doses'::regclass AND granted"
                " AND mode = 'ShareLock' AND pid <> pg_backend_pid()"
            )


def test_the_workers_are_forked_before_any_store_thread(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Forking with another thread running copies its locks held: the workers start while only the threads
    that were there before the import exist."""
    before = set(threading.enumerate())
    at_fork: list[set[threading.Thread]] = []
    real_init = workers._Pool.__init__

    def recording_init(self: Any, *args: Any) -> None:
        at_fork.append(set(threading.enumerate()))
        real_init(self, *args)

    monkeypatch.setattr(workers._Pool, "__init__", recording_init)
    report = import_lines(database, generated_rows(100), format="csv", batch_size=10, workers=2)
    assert report.imported == 100
    assert at_fork == [before]
    _nothing_left_running()


def test_an_in_memory_sqlite_database_is_stored_in_the_calling_thread() -> None:
    """A ``sqlite://`` database (a connection per thread) imports like any other, no thread started."""
    db = open_database("sqlite://")
    try:
        db.migrate()
        started: list[threading.Thread] = []
        real_start = threading.Thread.start

        def recording_start(self: threading.Thread) -> None:
            started.append(self)
            real_start(self)

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(threading.Thread, "start", recording_start)
            report = import_lines(db, generated_rows(25), format="csv", batch_size=10)
        assert (report.rows, report.imported) == (25, 25)
        assert not [t for t in started if t.name == STORE_THREAD]
        assert _count(db, doses) == 25
    finally:
        db.dispose()


def test_a_batch_is_collected_before_the_next_is_submitted(database: Database) -> None:
    """The writer holds one batch at a time: a second submit before collecting is a caller's bug."""
    with database.writer() as conn:
        staging.prepare(conn)
        with BatchWriter(conn) as writer:
            writer.submit([], 0)
            with pytest.raises(RuntimeError, match="not collected"):
                writer.submit([], 0)
            stored = writer.collect(wait=True)
            assert stored is not None
            assert stored.rows_done == 0
            assert writer.collect(wait=True) is None
