"""Bulk INSERTs written for the driver (central issuance's commit, the issuance log's appends): multi-row ``VALUES`` with positional
parameters, sent through the caller's connection (its transaction) without SQLAlchemy's per-row work.

A batch stores ~1,000 passports and ~2,500 links; SQLAlchemy's executemany path (``insertmanyvalues``) builds a
parameter dictionary per row and runs every value through its type's bind processor, which cost more CPU than
the database spent storing the rows. Here the caller gives rows as tuples of values the driver takes as they are
(int, str, bytes, None, and times through :func:`stored_time`, the one conversion a backend needs), and each
page of rows is one statement: the same rows as the SQLAlchemy insert stores (tests/pipeline/test_issuance_bulk.py
reads them back through the schema's types), one round trip per page.

SQL text is built only from the schema's table and column names (constants, never data); every value is bound.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Final

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection

__all__ = ["MAX_PARAMETERS", "among", "id_rows", "insert_rows", "stored_time"]

#: bound parameters per statement: under SQLite's 32,766 (its default SQLITE_MAX_VARIABLE_NUMBER since 3.32)
#: and PostgreSQL's 65,535
MAX_PARAMETERS: Final = 32_000


def stored_time(conn: Connection, value: dt.datetime) -> dt.datetime | str:
    """An aware time as the driver should bind it for a :class:`~vaxcred.storage.schema.UtcDateTime` column:
    PostgreSQL takes the aware datetime (``timestamptz``); SQLite the UTC wall time as the text SQLAlchemy's
    SQLite ``DATETIME`` stores (``YYYY-MM-DD HH:MM:SS.ffffff``, sortable). ``ValueError`` for a naive time."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("naive datetime: pass an aware UTC time")
    value = value.astimezone(dt.UTC)
    if conn.dialect.name != "sqlite":
        return value
    # SQLAlchemy's format, not strftime's: %Y does not pad years before 1000 to four digits everywhere
    return _SQLITE_TIME % (
        value.year,
        value.month,
        value.day,
        value.hour,
        value.minute,
        value.second,
        value.microsecond,
    )


_SQLITE_TIME: Final = "%04d-%02d-%02d %02d:%02d:%02d.%06d"


def insert_rows(
    conn: Connection,
    table: sa.Table,
    columns: Sequence[str],
    rows: Sequence[tuple[object, ...]],
    *,
    on_conflict: str = "",
    returning: Sequence[str] = (),
) -> list[tuple[object, ...]]:
    """``INSERT INTO table (columns) VALUES (…), (…) [on_conflict] [RETURNING returning]`` for ``rows``, in pages
    of at most :data:`MAX_PARAMETERS` values; returns the RETURNING rows of every page (in no promised order).

    ``on_conflict`` is SQL text the caller writes from constants (e.g. ``ON CONFLICT (person_id) WHERE status =
    'ACTIVE' DO NOTHING``), never from data. ``ValueError`` for a column the table does not have or a row of
    another width.
    """
    width = len(columns)
    known = set(table.c.keys())
    for name in (*columns, *returning):
        if name not in known:
            raise ValueError(f"{table.name} has no column {name!r}")
    if any(len(row) != width for row in rows):
        raise ValueError(f"every row must hold {width} values")
    if not rows:
        return []
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    one_row = "(" + ", ".join([mark] * width) + ")"
    # names checked against the table's columns above; every value is a bound parameter
    head = f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES "  # noqa: S608
    tail = (f" {on_conflict}" if on_conflict else "") + (
        f" RETURNING {', '.join(returning)}" if returning else ""
    )
    page = max(1, MAX_PARAMETERS // width)
    out: list[tuple[object, ...]] = []
    for start in range(0, len(rows), page):
        chunk = rows[start : start + page]
        sql = head + ", ".join([one_row] * len(chunk)) + tail
        parameters = tuple(value for row in chunk for value in row)
        result = conn.exec_driver_sql(sql, parameters)
        if returning:
            out.extend(tuple(row) for row in result)
    return out


def among(conn: Connection, column: sa.ColumnElement[int], ids: Sequence[int]) -> sa.ColumnElement[bool]:
    """``column IN ids`` for a batch's ids from one parameter: on PostgreSQL ``column = ANY(:ids)`` (an array), on
    SQLite ``column IN (SELECT value FROM json_each(:ids))`` (a JSON array): the same index lookups as an IN list,
    without a thousand parameters to render, bind and parse. SQLAlchemy's expanding ``IN`` rebuilt the statement
    text and its parameters for every execution (~15 µs a passport of an issuance worker's CPU on SQLite)."""
    if conn.dialect.name == "postgresql":
        values = [int(i) for i in ids]
        return column == sa.any_(sa.bindparam(None, values, type_=postgresql.ARRAY(sa.BigInteger)))
    return column.in_(sa.select(id_rows(conn, ids).c.value))


def id_rows(conn: Connection, ids: Sequence[int]) -> sa.TableValuedAlias:
    """``ids`` as rows of one column ``value``, in the order given, from one parameter: PostgreSQL
    ``unnest(:ids)`` (a ``BIGINT[]``), SQLite ``json_each(:ids)`` (a JSON array of integers)."""
    values = [int(i) for i in ids]
    if conn.dialect.name == "postgresql":
        array = sa.bindparam(None, values, type_=postgresql.ARRAY(sa.BigInteger))
        return sa.func.unnest(array).table_valued("value").render_derived()
    return sa.func.json_each(sa.bindparam(None, json.dumps(values), type_=sa.Text)).table_valued("value")
