"""Migration 0013 (``ix_persons_registry_status_id`` dropped, ``persons`` at fillfactor 45 on PostgreSQL) on both
backends, up and down with imported and checked persons; and what it is for: the registry check's status write is
a HOT update on PostgreSQL, and the work queues read along the primary key without a sort."""

from __future__ import annotations

import datetime as dt
import json

import pytest
import sqlalchemy as sa
from alembic import command

from vaxcred.pipeline.records.importer import import_lines
from vaxcred.pipeline.registry.batch import read_person_rows
from vaxcred.pipeline.registry.check import _batch_query, run_registry_check
from vaxcred.pipeline.registry.lookup import TableRegistry
from vaxcred.pipeline.registry.store import _store_unchanged_postgres
from vaxcred.pipeline.synthetic import SyntheticPerson, generate_people
from vaxcred.storage import Database
from vaxcred.storage.database import _alembic_config
from vaxcred.storage.schema import doses, persons, registry_checks

NOW = dt.datetime(2023, 1, 9, 8, 0, tzinfo=dt.UTC)
PEOPLE = tuple(generate_people(120, seed=13))
INDEX = "ix_persons_registry_status_id"


def _lines(people: tuple[SyntheticPerson, ...]) -> list[str]:
    return [
        json.dumps(row.to_fields(), ensure_ascii=False) + "\n" for person in people for row in person.rows
    ]


def _person_indexes(db: Database) -> set[str]:
    return {index["name"] or "" for index in sa.inspect(db.engine).get_indexes("persons")}


def _fillfactor(db: Database) -> list[str] | None:
    with db.connect() as conn:
        options: list[str] | None = conn.exec_driver_sql(
            "SELECT reloptions FROM pg_class WHERE relname = 'persons'"
        ).scalar_one()
    return options


def _stored(db: Database) -> list[list[tuple[object, ...]]]:
    with db.connect() as conn:
        return [
            [tuple(r) for r in conn.execute(sa.select(t).order_by(t.c.id))]
            for t in (persons, doses, registry_checks)
        ]


def _downgrade(db: Database, revision: str) -> None:
    with db.begin() as conn, _alembic_config(conn) as config:
        command.downgrade(config, revision)


def test_0013_drops_the_status_index_and_keeps_every_row_up_and_down(empty_database: Database) -> None:
    """0012 with imported and checked persons → 0013 → 0012 → 0013: the index (and, on PostgreSQL, the
    fillfactor) follows each revision, every row stays, and the import and the check go on where they stopped."""
    db = empty_database
    db.migrate("0012")
    first, rest = PEOPLE[:60], PEOPLE[60:]
    registry = TableRegistry(p.entry for p in PEOPLE if p.entry is not None)
    assert import_lines(db, _lines(first), format="jsonl", today=NOW.date()).rejected == 0
    assert run_registry_check(db, registry, now=NOW).checked == len(first)
    before = _stored(db)
    assert INDEX in _person_indexes(db)
    postgresql = db.backend == "postgresql"

    db.migrate("0013")
    assert db.current_revision() == "0013"
    assert INDEX not in _person_indexes(db)
    assert _stored(db) == before
    if postgresql:
        assert _fillfactor(db) == ["fillfactor=45"]

    _downgrade(db, "0012")
    assert INDEX in _person_indexes(db)
    assert _stored(db) == before
    if postgresql:
        assert _fillfactor(db) is None

    db.migrate("0013")
    assert INDEX not in _person_indexes(db)
    report = import_lines(db, _lines(PEOPLE), format="jsonl", today=NOW.date())
    assert report.imported == sum(len(p.rows) for p in rest)
    assert run_registry_check(db, registry, now=NOW).checked == len(rest)  # only the persons never checked
    with db.connect() as conn:
        unchecked = conn.execute(
            sa.select(sa.func.count()).select_from(persons).where(persons.c.registry_status.is_(None))
        ).scalar_one()
        checks = conn.execute(sa.select(sa.func.count()).select_from(registry_checks)).scalar_one()
    assert (unchecked, checks) == (0, len(PEOPLE))


@pytest.mark.parametrize("revision", ["0012", "0013"])
def test_the_registry_status_write_is_a_hot_update_from_0013(empty_database: Database, revision: str) -> None:
    """PostgreSQL: freshly imported persons read from the queue and stored as the registry check's store does
    (its conditional ``UPDATE``) — at 0013 every one of those updates is heap-only (no index entry written); at
    0012 (the status indexed) none is."""
    db = empty_database
    if db.backend != "postgresql":
        pytest.skip("HOT updates and fillfactor are PostgreSQL's")
    db.migrate(revision)
    assert import_lines(db, _lines(PEOPLE), format="jsonl", today=NOW.date()).rejected == 0
    with db.begin() as conn:
        rows = read_person_rows(conn, _batch_query(last_id=0, batch_size=len(PEOPLE), recheck=False))
        assert len(rows) == len(PEOPLE)
        stored = _store_unchanged_postgres(
            conn, rows, [("VERIFIED", "", "none")] * len(rows), checked_at=NOW, source="test"
        )
        assert len(stored) == len(rows)
        updated, hot = conn.exec_driver_sql(
            "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_xact_user_tables WHERE relname = 'persons'"
        ).one()
    assert updated == len(PEOPLE)
    assert hot == (len(PEOPLE) if revision == "0013" else 0)


def test_the_registry_queue_walks_the_primary_key_without_a_sort(database: Database) -> None:
    """Both backends at 0013: the queue read (unchecked persons after the last id, in id order) is a range scan
    of the primary key stopped at the batch size — no sort of the queue, no scan of the whole table."""
    query = _batch_query(last_id=10, batch_size=50, recheck=False)
    sql = str(query.compile(dialect=database.engine.dialect, compile_kwargs={"literal_binds": True}))
    with database.for_batches().connect() as conn:
        if database.backend == "postgresql":
            conn.exec_driver_sql("SET enable_bitmapscan = off")
            plan = "\n".join(conn.exec_driver_sql("EXPLAIN " + sql).scalars())
            assert "Index Scan using pk_persons" in plan
        else:
            plan = "\n".join(str(row[-1]) for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql))
            assert "USING INTEGER PRIMARY KEY (rowid>?)" in plan
    assert "Sort" not in plan
    assert "TEMP B-TREE" not in plan
