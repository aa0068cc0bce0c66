"""PostgreSQL: a site-signing read compiled once per process and run on the driver's own cursor (the work queue
of :mod:`~vaxcred.pipeline.site_signing.work_queue` and :mod:`~vaxcred.pipeline.site_signing.queue_versions`, the
workers' reads of :mod:`~vaxcred.pipeline.site_signing.workers`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from vaxcred.storage.database import driver_errors

#: PostgreSQL: the SQL text and fixed parameters of each dose-row read, compiled once per process
_COMPILED: dict[tuple[str, bool], tuple[str, dict[str, Any]]] = {}


def driver_fetch(
    conn: Connection,
    key: tuple[str, bool],
    build: Callable[[bool], sa.Select[Any]],
    parameters: Mapping[str, Any],
) -> list[tuple[Any, ...]]:
    """The rows of the statement ``build(key[1])``, PostgreSQL only: compiled once by SQLAlchemy for this
    dialect, then run on the driver's own cursor in ``conn``'s transaction and fetched at once (per batch,
    building, caching and compiling the statement cost more than reading its rows, and SQLAlchemy's result
    fetched them one by one: ~1 µs a row; psycopg returns the columns' Python types)."""
    compiled = _COMPILED.get(key)
    if compiled is None:
        statement = build(key[1]).compile(dialect=conn.dialect)
        compiled = _COMPILED[key] = (str(statement), dict(statement.params))
    text, fixed = compiled
    with driver_errors(conn) as driver, driver.cursor() as cursor:
        cursor.execute(text, {**fixed, **parameters})
        fetched: list[tuple[Any, ...]] = cursor.fetchall()
        return fetched
