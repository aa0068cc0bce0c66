"""Storing a signing batch's members: one INSERT straight through the driver, skipping doses already signed.

SQLAlchemy's per-row parameter processing cost more than the database's own work (measured at 100 k people, SQLite:
2.3 s of the 7.8 s spent storing), and on PostgreSQL a multi-row ``VALUES`` list of ~4,500 placeholders is
re-parsed by psycopg on every execution (a statement that long is past its query cache). So:

* SQLite: ``INSERT … VALUES (?, …), (?, …) …`` a page of :data:`PAGE_ROWS` rows per statement (sqlite3 keeps the
  compiled statement: the text repeats);
* PostgreSQL: ``INSERT … SELECT * FROM unnest(%s::bigint[], …)``, one array per column: nine parameters
  whatever the batch size.

Both end ``ON CONFLICT (dose_id) WHERE superseded_at IS NULL DO NOTHING RETURNING id, dose_id``: a dose that
already holds a current signature (a concurrent run's) is skipped by the unique partial index
``uq_site_signatures_current``, and only stored rows come back.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence
from typing import Any, Final

from sqlalchemy.engine import Connection

from vaxcred.storage.schema import site_signatures

__all__ = ["COLUMNS", "PAGE_ROWS", "insert_members"]

#: the columns of a stored batch member, in the order of :func:`insert_members`' value tuples
COLUMNS: Final = (
    "dose_id",
    "site_id",
    "certificate",
    "kid",
    "cose",
    "signed_at",
    "batch_id",
    "leaf_index",
    "proof",
)
#: SQLite: rows per INSERT (9 parameters each: far below its 32,766)
PAGE_ROWS: Final = 1000
#: PostgreSQL: each column's array type, in :data:`COLUMNS` order
_PG_ARRAYS: Final = (
    "bigint",
    "varchar",
    "bytea",
    "bytea",
    "bytea",
    "timestamptz",
    "bigint",
    "integer",
    "bytea",
)
_ON_CONFLICT: Final = "ON CONFLICT (dose_id) WHERE superseded_at IS NULL DO NOTHING RETURNING id, dose_id"
_SIGNED_AT: Final = COLUMNS.index("signed_at")


@functools.cache
def _sqlite_sql(rows: int) -> str:
    one = "(" + ", ".join(["?"] * len(COLUMNS)) + ")"
    values = ", ".join([one] * rows)
    # built from this module's constants and a row count only: no value reaches the text
    return f"INSERT INTO site_signatures ({', '.join(COLUMNS)}) VALUES {values} {_ON_CONFLICT}"  # noqa: S608


@functools.cache
def _postgres_sql() -> str:
    arrays = ", ".join(
        f"%b::{kind}[]" for kind in _PG_ARRAYS
    )  # %b: binary arrays (text ones escape each value)
    # built from this module's constants only: no value reaches the text
    return f"INSERT INTO site_signatures ({', '.join(COLUMNS)}) SELECT * FROM unnest({arrays}) {_ON_CONFLICT}"  # noqa: S608


def insert_members(conn: Connection, values: Sequence[tuple[Any, ...]]) -> list[tuple[int, int]]:
    """Insert batch members (tuples in :data:`COLUMNS` order) in ``conn``'s transaction; returns the stored
    (signature id, dose id) pairs. The signing time goes through its column type's own bind processor (SQLite
    keeps it as text in SQLAlchemy's format), once per distinct value."""
    if not values:
        return []
    dialect = conn.dialect
    process = site_signatures.c.signed_at.type.dialect_impl(dialect).bind_processor(dialect)
    times: dict[dt.datetime, Any] = {}
    for value in values:
        signed_at = value[_SIGNED_AT]
        if signed_at not in times:
            times[signed_at] = process(signed_at) if process is not None else signed_at
    rows = [(*v[:_SIGNED_AT], times[v[_SIGNED_AT]], *v[_SIGNED_AT + 1 :]) for v in values]
    if dialect.name == "postgresql":
        columns = tuple(list(column) for column in zip(*rows, strict=True))
        return [(int(i), int(d)) for i, d in conn.exec_driver_sql(_postgres_sql(), columns).all()]
    inserted: list[tuple[int, int]] = []
    for start in range(0, len(rows), PAGE_ROWS):
        page = rows[start : start + PAGE_ROWS]
        params = tuple(value for row in page for value in row)
        inserted.extend(
            (int(i), int(d)) for i, d in conn.exec_driver_sql(_sqlite_sql(len(page)), params).all()
        )
    return inserted
