"""The site-signing work queue's PostgreSQL plan: a batch is read along the (site_id, id) index, not by walking
the primary key and dropping every other site's doses, nor by a bitmap of the site's remaining doses (what the
planner chose with its default page costs)."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from vaxcred.pipeline.site_signing.work_queue import _PG_QUEUE_PLAN, _to_sign
from vaxcred.storage import Database

SITES = 21  # as many as the benchmark's dataset: each site holds ~1/21 of the doses
PEOPLE = 6000


def _fill(db: Database) -> None:
    """PEOPLE verified persons with two doses each, the doses spread over the sites in id order."""
    with db.begin() as conn:
        conn.execute(sa.text("INSERT INTO sites (site_id) SELECT 'S' || lpad(i::text, 2, '0') FROM generate_series(0, :n - 1) i"), {"n": SITES})  # fmt: skip
        conn.execute(
            sa.text(
                "INSERT INTO persons (id, citizen_id, id_type, full_name, dob, gender, registry_status) "
                "SELECT i, lpad(i::text, 12, '0'), 'CCCD', 'X', '', '', 'VERIFIED' FROM generate_series(1, :n) i"
            ),
            {"n": PEOPLE},
        )
        conn.execute(
            sa.text(
                "INSERT INTO doses (person_id, dose_number, date, site_id, vaccine, lot) "
                "SELECT (i + 1) / 2, 1 + i % 2, DATE '2021-09-01' + i % 300, "
                "'S' || lpad((i % :sites)::text, 2, '0'), 'Comirnaty', 'L' FROM generate_series(1, :n) i"
            ),
            {"n": 2 * PEOPLE, "sites": SITES},
        )
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("ANALYZE"))


def _plans(db: Database, *, queue_plan: bool) -> tuple[str, str]:
    """The queue read's custom plan (parameters known) and generic plan (what a prepared statement may use)."""
    statement = _to_sign("S07", 4000, 500).compile(dialect=postgresql.dialect())
    names: list[str] = []

    def positional(match: re.Match[str]) -> str:
        names.append(match.group(1))
        return f"${len(names)}"

    text = re.sub(r"%\((\w+)\)s", positional, str(statement))
    values = ", ".join(repr(statement.params[n]) for n in names)
    with db.for_batches().begin() as conn:
        if queue_plan:
            conn.exec_driver_sql(_PG_QUEUE_PLAN)
        conn.exec_driver_sql(f"PREPARE queue AS {text}")
        custom = "\n".join(conn.exec_driver_sql(f"EXPLAIN EXECUTE queue({values})").scalars())
        conn.exec_driver_sql("SET LOCAL plan_cache_mode = force_generic_plan")
        generic = "\n".join(conn.exec_driver_sql(f"EXPLAIN EXECUTE queue({values})").scalars())
        conn.exec_driver_sql("DEALLOCATE queue")
    return custom, generic


def test_the_queue_is_read_along_the_site_index(database: Database) -> None:
    """Regression: the read walked pk_doses from the last id and filtered by site (~21 rows read per dose kept:
    the generic plan) or gathered the site's remaining doses in a bitmap and sorted them (the custom plan); with
    the queue's plan setting both walk ix_doses_site_id_id and stop after the batch, and without it they do not
    (so this test sees the setting's effect, not the planner's mood)."""
    if database.backend != "postgresql":
        pytest.skip("SQLite walks the index already (its planner prefers the equality on site_id)")
    _fill(database)
    walks = "Index Scan using ix_doses_site_id_id"
    for plan in _plans(database, queue_plan=True):
        assert walks in plan, plan
        assert "Bitmap" not in plan, plan
    assert not all(walks in plan for plan in _plans(database, queue_plan=False))
