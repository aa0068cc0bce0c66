"""``Database.read()``: the batch stages' per-batch read, a short transaction that commits.

PostgreSQL (a real server): psycopg prepares a statement once a connection has run it five times and forgets
every statement it prepared at each ROLLBACK; a read that ends by committing keeps it prepared. SQLite: the read
is deferred and takes no write lock (``Database.begin()`` would).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import Connection

from vaxcred.storage import Database, open_database
from vaxcred.storage.schema import sites

#: more reads than psycopg's prepare threshold (5)
READS = 8
QUERY = sa.select(sites.c.site_id).where(sites.c.site_id == sa.bindparam("site_id"))


def _prepared(db: Database) -> list[str]:
    with db.engine.connect() as conn:
        return list(conn.exec_driver_sql("SELECT statement FROM pg_prepared_statements").scalars())


def _read_many(db: Database, reader: Callable[[], AbstractContextManager[Connection]]) -> None:
    for n in range(READS):
        with reader() as conn:
            assert conn.execute(QUERY, {"site_id": f"S{n}"}).first() is None
    assert db.engine.pool.checkedin() == 1  # type: ignore[attr-defined]  # one connection did every read


def test_a_repeated_read_stays_prepared_on_postgresql(pg_database: Database) -> None:
    db = pg_database.for_batches()
    _read_many(db, db.read)
    reads = [text for text in _prepared(db) if "FROM sites" in text]
    assert len(reads) == 1, _prepared(db)


def test_a_read_ended_by_a_rollback_is_never_prepared(pg_database: Database) -> None:
    """Why :meth:`Database.read` exists: the same reads through ``connect()`` (returned with a rollback) leave
    nothing prepared. If psycopg stops forgetting its statements at a rollback, this fails and the reason for
    ``read()`` is gone."""
    db = pg_database.for_batches()
    _read_many(db, db.connect)
    assert [text for text in _prepared(db) if "FROM sites" in text] == []


def test_a_read_that_raises_is_rolled_back_and_raises(database: Database) -> None:
    def failing_read() -> None:
        with database.read() as conn:
            conn.execute(sites.insert().values(site_id="S-READ", name="Read", province_code="001"))
            raise LookupError("the block failed")

    with pytest.raises(LookupError):
        failing_read()
    with database.connect() as conn:
        assert conn.execute(sa.select(sites.c.site_id).where(sites.c.site_id == "S-READ")).first() is None


def test_a_read_on_sqlite_takes_no_write_lock(tmp_path: Path) -> None:
    """Another connection can start a write transaction while a read is open (with ``begin()``, the read's
    ``BEGIN IMMEDIATE`` held the write lock and the writer below failed at once)."""
    path = tmp_path / "vaxcred.db"
    database = open_database(f"sqlite:///{path}")
    database.migrate()
    with database.read() as conn:
        assert conn.execute(QUERY, {"site_id": "S0"}).first() is None
        other = sqlite3.connect(path, timeout=0, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            other.execute("ROLLBACK")
        finally:
            other.close()
    database.dispose()
