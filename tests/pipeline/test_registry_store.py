"""The registry check's write transaction (registry.store.store_batch) on both backends: a result is stored only
for a person still as it was read, whatever column changed, and a writer that commits while the store waits for
its row lock (PostgreSQL) makes the store skip that person."""

from __future__ import annotations

import datetime as dt
import threading
import time

import pytest
import sqlalchemy as sa

from vaxcred.pipeline.registry.batch import (
    COLUMNS,
    Outcome,
    PersonRow,
    RegistryCheckReport,
    person_rows,
)
from vaxcred.pipeline.registry.store import store_batch
from vaxcred.storage import Database
from vaxcred.storage.schema import persons, registry_checks

NOW = dt.datetime(2023, 1, 1, 9, 0, tzinfo=dt.UTC)
EARLIER = NOW - dt.timedelta(days=30)
VERIFIED: Outcome = ("VERIFIED", "", "none")


def _store_persons(db: Database, count: int) -> list[int]:
    with db.begin() as conn:
        return list(
            conn.execute(
                persons.insert()
                .values(
                    [
                        {
                            "citizen_id": f"0010900{n:05d}",
                            "id_type": "CCCD",
                            "full_name": "Nguyễn Văn An",
                            "dob": "1990-01-02",
                            "gender": "M",
                        }
                        for n in range(count)
                    ]
                )
                .returning(persons.c.id)
            ).scalars()
        )


def _read(db: Database) -> list[PersonRow]:
    with db.connect() as conn:
        return list(person_rows(conn.execute(sa.select(*COLUMNS).order_by(persons.c.id))))


def _history(db: Database) -> dict[int, int]:
    with db.connect() as conn:
        rows = conn.execute(
            sa.select(registry_checks.c.person_id, sa.func.count()).group_by(registry_checks.c.person_id)
        )
        return {int(person_id): int(count) for person_id, count in rows}


@pytest.mark.parametrize(
    "change",
    [
        {"citizen_id": "001090099999"},
        {"id_type": "CMND"},
        {"full_name": "Nguyễn Văn Ân"},
        {"dob": "1990-01-03"},
        {"gender": "F"},
        {"registry_status": "MISMATCH", "registry_checked_at": EARLIER},
        {"registry_checked_at": EARLIER},
    ],
    ids=lambda change: "+".join(change),
)
def test_a_result_is_stored_only_for_a_person_unchanged_since_read(
    database: Database, change: dict[str, object]
) -> None:
    """Any column the check read, changed after the read, keeps that person's result out (history and status)."""
    ids = _store_persons(database, 3)
    rows = _read(database)
    with database.begin() as conn:
        conn.execute(persons.update().where(persons.c.id == ids[1]).values(**change))

    report = store_batch(database, rows, [VERIFIED] * 3, checked_at=NOW, source="test")

    assert report == RegistryCheckReport(checked=2, verified=2, skipped=1)
    assert _history(database) == {ids[0]: 1, ids[2]: 1}
    with database.connect() as conn:
        status = dict(conn.execute(sa.select(persons.c.id, persons.c.registry_status)).all())
    assert status[ids[1]] == change.get("registry_status")
    assert (status[ids[0]], status[ids[2]]) == ("VERIFIED", "VERIFIED")


def test_a_recheck_stores_over_a_previous_result_read_with_it(database: Database) -> None:
    """A person read with its earlier result (status and time) is still unchanged: the new result is stored."""
    ids = _store_persons(database, 2)
    with database.begin() as conn:
        conn.execute(persons.update().values(registry_status="MISMATCH", registry_checked_at=EARLIER))
    rows = _read(database)

    report = store_batch(database, rows, [VERIFIED] * 2, checked_at=NOW, source="test")

    assert report == RegistryCheckReport(checked=2, verified=2)
    assert _history(database) == {ids[0]: 1, ids[1]: 1}


def test_a_batch_given_out_of_id_order_stores_each_result_with_its_person(database: Database) -> None:
    """The outcomes follow their rows whatever order the caller gives them in."""
    ids = _store_persons(database, 3)
    rows = _read(database)[::-1]
    outcomes: list[Outcome] = [("NOT_FOUND", "", "none"), ("MISMATCH", "dob", "none"), VERIFIED]

    report = store_batch(database, rows, outcomes, checked_at=NOW, source="test")

    assert (report.verified, report.mismatch, report.not_found) == (1, 1, 1)
    with database.connect() as conn:
        stored = dict(conn.execute(sa.select(registry_checks.c.person_id, registry_checks.c.status)).all())
    assert stored == {ids[2]: "NOT_FOUND", ids[1]: "MISMATCH", ids[0]: "VERIFIED"}


def test_a_change_committed_while_the_store_waits_for_its_lock_is_seen(database: Database) -> None:
    """PostgreSQL: a correction holding a person's row lock when the store starts, committed afterwards, makes
    the store skip that person (the conditional UPDATE re-checks the newest row version), not overwrite it."""
    if database.backend != "postgresql":
        pytest.skip("SQLite has one writer: BEGIN IMMEDIATE waits before the store reads")
    ids = _store_persons(database, 3)
    rows = _read(database)
    results: list[RegistryCheckReport] = []
    with database.engine.connect() as correction:
        transaction = correction.begin()
        correction.execute(persons.update().where(persons.c.id == ids[1]).values(full_name="Nguyễn Văn Sửa"))
        worker = threading.Thread(
            target=lambda: results.append(
                store_batch(database, rows, [VERIFIED] * 3, checked_at=NOW, source="test")
            )
        )
        worker.start()
        with database.connect() as conn:  # wait until the store is blocked on the correction's lock
            for _ in range(600):
                waiting = conn.exec_driver_sql(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE wait_event_type = 'Lock' AND datname = current_database()"
                ).scalar_one()
                conn.rollback()  # pg_stat_activity is a snapshot per transaction: a fresh one each time
                if waiting:
                    break
                time.sleep(0.05)
        assert waiting, "the store never waited for the correction's row lock"
        transaction.commit()
        worker.join(30)
    assert results == [RegistryCheckReport(checked=2, verified=2, skipped=1)]
    assert _history(database) == {ids[0]: 1, ids[2]: 1}


ODD_VALUES = {
    "separator-in-name": {"full_name": "Nguyễn\x1fVăn An"},
    "empty-dob": {"dob": ""},
    "empty-dob-and-gender": {"dob": "", "gender": ""},
}


@pytest.mark.parametrize("count", [1, 3])
@pytest.mark.parametrize("odd", list(ODD_VALUES.values()), ids=list(ODD_VALUES))
def test_a_batch_with_values_the_joined_form_cannot_carry_is_stored_whole(
    database: Database, odd: dict[str, str], count: int
) -> None:
    """PostgreSQL sends the batch's columns as joined texts unless a value holds the separator or the batch is
    of one (an empty text splits into no value): then as arrays. Either way every unchanged person gets its own
    outcome, and a person changed after the read is skipped."""
    ids = _store_persons(database, count)
    with database.begin() as conn:
        conn.execute(persons.update().where(persons.c.id == ids[0]).values(**odd))
    rows = _read(database)
    changed = ids[1:] and ids[-1:]  # the last person changes after the read (a batch of more than one)
    with database.begin() as conn:
        conn.execute(persons.update().where(persons.c.id.in_(changed)).values(full_name="Nguyễn Văn Ân"))
    given: list[Outcome] = [("MISMATCH", "name", "different"), ("NOT_FOUND", "", "none"), VERIFIED]

    report = store_batch(database, rows, given[:count], checked_at=NOW, source="test")

    kept = ids[: count - len(changed)]
    assert (report.checked, report.skipped) == (len(kept), len(changed))
    assert _history(database) == dict.fromkeys(kept, 1)
    with database.connect() as conn:
        stored = dict(
            conn.execute(sa.select(registry_checks.c.person_id, registry_checks.c.mismatch_fields)).all()
        )
    assert stored == {person_id: given[n][1] for n, person_id in enumerate(kept)}
