"""Site signing's worker reads keep psycopg's prepared statements (PostgreSQL, a real server).

psycopg prepares a statement on the server once a connection has run it five times, and forgets every prepared
statement of the connection at each ROLLBACK. A worker's batch read that ended in a rollback therefore made the
server parse, analyse and plan every statement of every batch again; the read now commits
(:func:`vaxcred.pipeline.site_signing.workers._read_batch`).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.pipeline.pg import PostgresCluster
from tests.pipeline.test_site_signing import KEYED
from tests.pipeline.test_sitesign_guard import checked_database
from vaxcred.pipeline.site_signing.workers import _read_batch
from vaxcred.storage import Database

#: more reads than psycopg's prepare threshold (5)
READS = 8


@pytest.fixture
def pg(pg_cluster: PostgresCluster) -> Iterator[Database]:
    """A PostgreSQL database with the synthetic people imported and checked, opened as a worker opens it."""
    with checked_database(pg_cluster) as db:
        yield db.for_batches()


def _prepared(db: Database) -> list[str]:
    with db.engine.connect() as conn:
        return list(conn.exec_driver_sql("SELECT statement FROM pg_prepared_statements").scalars())


def test_a_worker_batch_read_leaves_its_statement_prepared(pg: Database) -> None:
    """READS batch reads on one pooled connection: the queue read is a prepared statement afterwards (with the
    read ended by a rollback, psycopg forgot it after each batch and it never was)."""
    after, read = 0, 0
    for _ in range(READS):
        rows, versions = _read_batch(pg, KEYED[0], after, 2)
        assert rows
        assert versions is not None
        assert set(versions) == {row.id for row in rows}
        after = rows[-1].id
        read += len(rows)
    assert pg.engine.pool.checkedin() == 1  # type: ignore[attr-defined]  # one connection did every read
    queue_reads = [text for text in _prepared(pg) if "doses.xmin" in text and "persons.xmin" in text]
    assert len(queue_reads) == 1, _prepared(pg)
    assert read == 2 * READS
