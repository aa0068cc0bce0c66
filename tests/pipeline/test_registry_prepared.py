"""The registry check's per-batch statements stay prepared on their connection (PostgreSQL, a real server).

psycopg prepares a statement on the server once a connection has run it five times, and forgets every prepared
statement of the connection at each ROLLBACK. The queue read of each batch ended in one (``db.connect()``
returns the connection with a rollback), so the server parsed, analysed and planned it again for every batch;
it now commits (:func:`vaxcred.pipeline.registry.check._batches`). The store already committed.
"""

from __future__ import annotations

import pytest

from vaxcred.pipeline.registry.check import _batches
from vaxcred.storage import Database
from vaxcred.storage.schema import persons

#: more batches than psycopg's prepare threshold (5)
BATCHES = 8
BATCH_SIZE = 3


@pytest.fixture
def pg(pg_database: Database) -> Database:
    """A migrated PostgreSQL database holding BATCHES batches of unchecked persons, opened as the stage opens it."""
    with pg_database.begin() as conn:
        conn.execute(
            persons.insert().values(
                [
                    {
                        "citizen_id": f"0010900{n:05d}",
                        "id_type": "CCCD",
                        "full_name": "Nguyễn Văn An",
                        "dob": "1990-01-02",
                        "gender": "M",
                    }
                    for n in range(BATCHES * BATCH_SIZE)
                ]
            )
        )
    return pg_database.for_batches()


def _prepared(db: Database) -> list[str]:
    with db.engine.connect() as conn:
        return list(conn.exec_driver_sql("SELECT statement FROM pg_prepared_statements").scalars())


@pytest.mark.parametrize("recheck", [False, True], ids=["queue", "recheck"])
def test_the_batch_read_leaves_its_statement_prepared(pg: Database, recheck: bool) -> None:
    """BATCHES queue reads on one pooled connection: the read is a prepared statement afterwards (with each read
    ended by a rollback, psycopg forgot it after every batch and it never was)."""
    read = [
        row.id
        for batch in _batches(pg, batch_size=BATCH_SIZE, recheck=recheck, person_ids=None)
        for row in batch
    ]
    assert len(read) == len(set(read)) == BATCHES * BATCH_SIZE
    assert pg.engine.pool.checkedin() == 1  # type: ignore[attr-defined]  # one connection did every read
    reads = [text for text in _prepared(pg) if text.lstrip().startswith("SELECT persons.id")]
    assert len(reads) == 1, _prepared(pg)
