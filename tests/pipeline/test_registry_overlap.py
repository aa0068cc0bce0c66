"""The registry check's store thread on both backends: the store of a batch overlaps the next batch's read and
lookup, and every error path (the store failing, the registry failing, ``on_progress`` raising) ends the run
promptly with the batches before it committed and nothing left running."""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa

from tests.pipeline.test_registry_check import (
    NOW,
    FailingRegistry,
    check_rows_per_person,
    expected_report,
    load_people,
    registry_for,
)
from vaxcred.pipeline.errors import REGISTRY_UNAVAILABLE, PipelineError
from vaxcred.pipeline.registry.check import RegistryCheckReport, run_registry_check
from vaxcred.pipeline.registry.lookup import RegistryEntry, TableRegistry
from vaxcred.pipeline.registry.matcher import IN_FLIGHT, can_fork
from vaxcred.storage import Database
from vaxcred.storage.schema import persons

BATCH = 50
#: seconds a test waits for what overlap makes happen at once (a serial store would wait this long, then fail)
PATIENCE = 20.0


def match_modes() -> list[bool]:
    return [False, True] if can_fork() else [False]


def person_ids(db: Database) -> list[int]:
    with db.connect() as conn:
        return list(conn.execute(sa.select(persons.c.id).order_by(persons.c.id)).scalars())


def check(
    db: Database, registry: Any, *, match_process: bool, on_progress: Callable[[int], None]
) -> RegistryCheckReport:
    """The stage in batches of :data:`BATCH`, with the store thread (the default on PostgreSQL only)."""
    return run_registry_check(
        db,
        registry,
        now=NOW,
        batch_size=BATCH,
        match_process=match_process,
        on_progress=on_progress,
        store_thread=True,
    )


def assert_nothing_left_running() -> None:
    """No store thread, no matcher or worker process outlives the run."""
    assert [t.name for t in threading.enumerate() if t.name.startswith("vaxcred-registry")] == []
    assert multiprocessing.active_children() == []


class WriteBlocker:
    """Another session holding what the store of one batch needs (PostgreSQL: a row lock on one of its persons;
    SQLite: the write lock) from :meth:`hold` until :meth:`release` — or :data:`PATIENCE` seconds later."""

    def __init__(self, db: Database, person_id: int) -> None:
        self.db, self.person_id = db, person_id
        self.released_by: str | None = None
        self._lock = threading.Lock()
        self._conn: Any = None
        self._timer = threading.Timer(PATIENCE, self.release, args=("timeout",))

    def hold(self) -> None:
        url = self.db.engine.url
        if self.db.backend == "postgresql":
            self._conn = psycopg.connect(
                host=url.host, port=url.port, user=url.username, dbname=url.database, password=url.password
            )
            self._conn.execute("SELECT 1 FROM persons WHERE id = %s FOR UPDATE", (self.person_id,))
        else:
            self._conn = sqlite3.connect(str(url.database), isolation_level=None, check_same_thread=False)
            self._conn.execute("BEGIN IMMEDIATE")
        self._timer.start()

    def release(self, by: str) -> None:
        with self._lock:
            if self.released_by is None and self._conn is not None:
                self.released_by = by
                self._conn.rollback()
                self._conn.close()
        self._timer.cancel()


class BlockingRegistry:
    """A registry that, during its lookup number ``hold_on`` (1-based), has ``blocker`` take its lock and, during
    lookup number ``release_on``, release it."""

    def __init__(self, inner: TableRegistry, blocker: WriteBlocker, *, hold_on: int, release_on: int) -> None:
        self.inner, self.blocker, self.hold_on, self.release_on = inner, blocker, hold_on, release_on
        self.calls = 0

    def lookup(self, citizen_ids: Sequence[str]) -> Mapping[str, RegistryEntry]:
        self.calls += 1
        if self.calls == self.hold_on:
            self.blocker.hold()
        if self.calls == self.release_on:
            self.blocker.release("lookup")
        return self.inner.lookup(citizen_ids)


@pytest.mark.parametrize("match_process", match_modes())
def test_the_store_of_a_batch_overlaps_the_next_batches_lookup(
    database: Database, match_process: bool
) -> None:
    """The store of the second batch is blocked by another session until a lookup that comes after it was
    handed to the store: without the overlap that lookup never came and the lock was held until the timeout.
    The results are those of the serial stage, progress after each committed batch, in order."""
    load_people(database)
    blocker = WriteBlocker(database, person_ids(database)[BATCH])  # a person of the second batch
    handed_over = 2 + IN_FLIGHT if match_process else 2  # the lookup after which the 2nd batch is handed over
    registry = BlockingRegistry(registry_for(), blocker, hold_on=2, release_on=handed_over + 1)
    progress: list[int] = []

    report = check(database, registry, match_process=match_process, on_progress=progress.append)

    assert blocker.released_by == "lookup"
    assert report == expected_report()
    assert set(check_rows_per_person(database).values()) == {1}
    assert progress == [min(BATCH * n, report.checked) for n in range(1, 8)]
    assert_nothing_left_running()


def reject_history_rows_of(db: Database, person_id: int) -> None:
    """A trigger failing every ``INSERT registry_checks`` for ``person_id`` (a store that fails mid-run)."""
    with db.begin() as conn:
        if db.backend == "postgresql":
            conn.exec_driver_sql(
                "CREATE FUNCTION reject_check() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'rejected (test)'; END $$"
            )
            conn.exec_driver_sql(
                "CREATE TRIGGER reject_one BEFORE INSERT ON registry_checks FOR EACH ROW "
                f"WHEN (NEW.person_id = {int(person_id)}) EXECUTE FUNCTION reject_check()"
            )
        else:
            conn.exec_driver_sql(
                "CREATE TRIGGER reject_one BEFORE INSERT ON registry_checks "
                f"WHEN NEW.person_id = {int(person_id)} BEGIN SELECT RAISE(ABORT, 'rejected (test)'); END"
            )


@pytest.mark.parametrize("match_process", match_modes())
def test_a_store_failing_mid_run_ends_it_after_the_batches_before_it(
    database: Database, match_process: bool
) -> None:
    """The store of the 4th batch fails: its error propagates promptly, the three batches before it are
    committed and reported, none after it is stored, nothing is left running; a re-run finishes."""
    load_people(database)
    reject_history_rows_of(database, person_ids(database)[3 * BATCH + 7])
    progress: list[int] = []
    started = time.monotonic()

    with pytest.raises(sa.exc.DBAPIError, match="rejected"):
        check(database, registry_for(), match_process=match_process, on_progress=progress.append)

    assert time.monotonic() - started < PATIENCE
    assert progress == [BATCH, 2 * BATCH, 3 * BATCH]
    assert sum(check_rows_per_person(database).values()) == 3 * BATCH
    assert_nothing_left_running()
    with database.begin() as conn:
        conn.exec_driver_sql(
            "DROP TRIGGER reject_one" + (" ON registry_checks" if conn.dialect.name == "postgresql" else "")
        )
    report = run_registry_check(database, registry_for(), now=NOW, batch_size=BATCH)
    assert report.checked == expected_report().checked - 3 * BATCH
    assert set(check_rows_per_person(database).values()) == {1}


@pytest.mark.parametrize("match_process", match_modes())
def test_a_registry_failing_mid_run_ends_it_after_the_batches_before_it(
    database: Database, match_process: bool
) -> None:
    """The registry fails on the 5th lookup: the four batches before it are committed and reported, then the
    outage propagates, nothing left running."""
    load_people(database)
    progress: list[int] = []

    with pytest.raises(PipelineError) as excinfo:
        check(
            database,
            FailingRegistry(registry_for(), fail_on=5),
            match_process=match_process,
            on_progress=progress.append,
        )

    assert excinfo.value.code == REGISTRY_UNAVAILABLE
    assert progress == [BATCH * n for n in range(1, 5)]
    assert sum(check_rows_per_person(database).values()) == 4 * BATCH
    assert_nothing_left_running()


class ProgressFailed(Exception):
    """The caller's progress callback failed (a closed terminal, a bug)."""


@pytest.mark.parametrize("match_process", match_modes())
def test_on_progress_raising_ends_the_run_with_its_error(database: Database, match_process: bool) -> None:
    """``on_progress`` raises after the 2nd batch: its error propagates promptly, the batches already handed
    to the store are committed (at most the two in hand), none twice, nothing left running; a re-run finishes."""
    load_people(database)
    calls: list[int] = []

    def on_progress(done: int) -> None:
        calls.append(done)
        if len(calls) == 2:
            raise ProgressFailed

    with pytest.raises(ProgressFailed):
        check(database, registry_for(), match_process=match_process, on_progress=on_progress)

    assert calls == [BATCH, 2 * BATCH]
    stored = check_rows_per_person(database)
    assert set(stored.values()) == {1}
    assert 2 * BATCH <= sum(stored.values()) <= 4 * BATCH
    assert_nothing_left_running()
    report = run_registry_check(database, registry_for(), now=NOW, batch_size=BATCH)
    assert report.checked == expected_report().checked - sum(stored.values())
    assert set(check_rows_per_person(database).values()) == {1}


class ThreadWatchingRegistry:
    """A registry noting, at each lookup, whether the store thread is running."""

    def __init__(self, inner: TableRegistry) -> None:
        self.inner = inner
        self.store_thread_seen: list[bool] = []

    def lookup(self, citizen_ids: Sequence[str]) -> Mapping[str, RegistryEntry]:
        names = {t.name for t in threading.enumerate()}
        self.store_thread_seen.append("vaxcred-registry-store" in names)
        return self.inner.lookup(citizen_ids)


def test_the_store_thread_runs_by_default_on_postgresql_only(database: Database) -> None:
    """By default PostgreSQL stores in the thread (its server works while this process reads on) and SQLite in
    line (its engine's work is this process's CPU: the thread measured slower); the results are the same."""
    load_people(database)
    registry = ThreadWatchingRegistry(registry_for())

    report = run_registry_check(database, registry, now=NOW, batch_size=BATCH, match_process=False)

    assert report == expected_report()
    assert set(check_rows_per_person(database).values()) == {1}
    assert registry.store_thread_seen[:2] == [False, False]  # the first batch is stored here, in every mode
    assert any(registry.store_thread_seen) is (database.backend == "postgresql")
    assert_nothing_left_running()
