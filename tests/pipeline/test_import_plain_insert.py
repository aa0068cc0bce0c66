"""PostgreSQL: the import's plain dose insert (no ``ON CONFLICT``) while no natural key was met, and the fall-back
to the ``ON CONFLICT`` statements when a batch meets a stored key — stored by an earlier import, or by another
import committing the same key while this batch waits for it (``staging.StoredKeys``)."""

from __future__ import annotations

import datetime as dt
import threading
import time

import sqlalchemy as sa

from tests.pipeline.import_child import HEADER, generated_rows
from tests.pipeline.test_import_overlap import OVERLAP_TIMEOUT
from vaxcred.pipeline.records import staging
from vaxcred.pipeline.records.validation import Chunk, StagedRow, validate_chunk
from vaxcred.storage import Database
from vaxcred.storage.schema import doses, persons

TODAY = dt.date(2022, 1, 1)


def _staged(lines: list[str]) -> list[StagedRow]:
    result = validate_chunk(
        Chunk(first_line=2, lines=tuple(line.rstrip("\n") for line in lines)),
        header=HEADER.strip().split(","),
        today=TODAY,
    )
    assert not result.rejects
    return result.valid


def _rows(start: int, stop: int) -> list[StagedRow]:
    """Rows ``start`` … ``stop - 1`` of :func:`generated_rows` (person ``i // 2``, doses 1 and 2)."""
    return _staged(list(generated_rows(stop))[1 + start :])


def _store(db: Database, rows: list[StagedRow], keys: staging.StoredKeys | None) -> staging.BatchCounts:
    with db.connect() as conn:
        staging.prepare(conn)
        with conn.begin():
            return staging.store_batch(conn, rows, keys)


def _count(db: Database, table: sa.Table) -> int:
    with db.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def test_the_plain_script_differs_only_by_the_doses_conflict_clause() -> None:
    """The plain statements are the ``ON CONFLICT`` ones less the doses' ``ON CONFLICT … DO NOTHING``, in a
    savepoint (the same counts, the same order, the same locks); persons and sites keep theirs."""
    plain = staging._PG_PLAIN_SCRIPT
    assert plain.startswith("SAVEPOINT vaxcred_plain_insert;")
    assert plain.endswith(";RELEASE SAVEPOINT vaxcred_plain_insert")
    body = plain.removeprefix("SAVEPOINT vaxcred_plain_insert;").removesuffix(
        ";RELEASE SAVEPOINT vaxcred_plain_insert"
    )
    assert body.count("ON CONFLICT") == 2  # the sites' and the persons'
    assert staging._PG_SCRIPT.count("ON CONFLICT") == 3
    restored = body.replace(
        "ORDER BY person_id, dose_number, date, site_id\n",
        "ORDER BY person_id, dose_number, date, site_id\n"
        "    ON CONFLICT (person_id, dose_number, date, site_id) DO NOTHING\n",
    )
    assert restored == staging._PG_SCRIPT


def test_fresh_batches_go_plain_and_the_first_stored_key_switches_to_on_conflict(
    pg_database: Database,
) -> None:
    """New natural keys: stored by the plain insert (no fall-back), also when a person's rows straddle two
    batches (the second meets the stored person). A batch holding a stored dose: falls back once, stores exactly
    the new doses and counts the rest; later batches go straight to ``ON CONFLICT`` (no second fall-back)."""
    keys = staging.StoredKeys()
    assert _store(pg_database, _rows(0, 21), keys) == staging.BatchCounts(21, 0, 0)
    assert _store(pg_database, _rows(21, 40), keys) == staging.BatchCounts(19, 0, 0)  # person 10's dose 2
    assert (keys.met, keys.fallbacks) == (False, 0)
    # rows 38-41: person 19 (both doses stored) and person 20 (new)
    assert _store(pg_database, _rows(38, 42), keys) == staging.BatchCounts(2, 0, 0)
    assert (keys.met, keys.fallbacks) == (True, 1)
    assert _store(pg_database, _rows(42, 50), keys) == staging.BatchCounts(8, 0, 0)
    assert keys.fallbacks == 1
    assert (_count(pg_database, persons), _count(pg_database, doses)) == (25, 50)


def test_a_key_another_import_commits_meanwhile_falls_back_without_a_loss(pg_database: Database) -> None:
    """Another session inserts (uncommitted) a person and a dose of this batch: the batch waits for it, and when
    it commits the plain insert falls back to ``ON CONFLICT``: the batch's other rows are stored, that key once;
    when the other session rolls back instead, the plain insert stores everything."""
    for commit in (True, False):
        with pg_database.begin() as conn:  # empty again (the test's own rows; nothing else refers to them)
            conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
            conn.exec_driver_sql("DELETE FROM doses")
            conn.exec_driver_sql("DELETE FROM persons")
        rows = _rows(0, 20)
        holder = pg_database.engine.raw_connection()
        keys = staging.StoredKeys()
        outcome: list[object] = []

        def run(
            rows: list[StagedRow] = rows, keys: staging.StoredKeys = keys, out: list[object] = outcome
        ) -> None:
            try:
                out.append(_store(pg_database, rows, keys))
            except BaseException as e:
                out.append(e)

        storing = threading.Thread(target=run)
        try:
            cursor = holder.cursor()
            cursor.execute("INSERT INTO sites (site_id) VALUES ('HN-003') ON CONFLICT DO NOTHING")
            cursor.execute(
                "INSERT INTO persons (citizen_id, id_type, full_name, dob, gender, province_code) "
                "VALUES ('001090000003', 'CCCD', 'Nguyễn Văn Đức', '1990-05-17', 'M', '001') RETURNING id"
            )
            (person_id,) = cursor.fetchone()
            cursor.execute(
                "INSERT INTO doses (person_id, dose_number, date, site_id, vaccine, lot) "
                "VALUES (%s, 1, '2021-08-01', 'HN-003', 'Comirnaty', 'FK6')",
                (person_id,),
            )
            storing.start()
            deadline = time.monotonic() + OVERLAP_TIMEOUT
            while not _waits_for_a_lock(pg_database) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert _waits_for_a_lock(pg_database), "the plain insert did not wait for the other session's key"
        finally:
            if commit:
                holder.commit()
            else:
                holder.rollback()
            storing.join()
            holder.close()
        (counts,) = outcome
        assert counts == staging.BatchCounts(19 if commit else 20, 0, 0), (commit, counts)
        assert (keys.met, keys.fallbacks) == ((True, 1) if commit else (False, 0))
        assert (_count(pg_database, persons), _count(pg_database, doses)) == (10, 20)


def _waits_for_a_lock(db: Database) -> bool:
    with db.connect() as conn:
        waiting = conn.exec_driver_sql(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
        ).scalar_one()
    return bool(waiting)
