"""Site signing's work queue read with each row's versions (PostgreSQL): for a batch signed outside the
transaction that stores it (the workers and the pipelined signing), whose member INSERT keeps a signature only
where the row is still the version that was signed (the row-version guard of
:mod:`~vaxcred.pipeline.site_signing.member_rows`)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from vaxcred.pipeline.site_signing.driver_reads import driver_fetch
from vaxcred.pipeline.site_signing.work_queue import (
    _DOSE_COLUMNS,
    _PG_QUEUE_PLAN,
    _DoseRow,
    _queue_rows,
    _queue_statement,
)

#: a batch's row versions, PostgreSQL: dose id → (``doses.xmin``, ``persons.xmin``) as read with the row (the
#: server's text of each ``xid``). The store's member INSERT keeps a signature only where both are still the
#: same (:mod:`~vaxcred.pipeline.site_signing.member_rows`, the row-version guard); ``None`` on SQLite
Versions = dict[int, tuple[str, str]]
#: the row versions the PostgreSQL queue read adds to :data:`_DOSE_COLUMNS`
_VERSION_COLUMNS: tuple[sa.ColumnClause[Any], ...] = (
    sa.literal_column("doses.xmin"),
    sa.literal_column("persons.xmin"),
)


def _queue_batch(
    conn: Connection, site_id: str, after: int, limit: int
) -> tuple[list[_DoseRow], Versions | None]:
    """:func:`_queue_rows` for a batch signed outside the transaction that stores it, with each row's versions
    on PostgreSQL (:data:`Versions`; SQLite: ``None``)."""
    if conn.dialect.name != "postgresql":
        return _queue_rows(conn, site_id, after, limit), None
    conn.exec_driver_sql(_PG_QUEUE_PLAN)
    fetched = driver_fetch(
        conn,
        ("queue-versions", False),
        _versioned_queue_statement,
        {"site_id": site_id, "after": after, "limit": limit},
    )
    width = len(_DOSE_COLUMNS)
    return [_DoseRow._make(row[:width]) for row in fetched], {
        row[0]: (row[width], row[width + 1]) for row in fetched
    }


def _versioned_queue_statement(_: bool) -> sa.Select[Any]:
    """:func:`~vaxcred.pipeline.site_signing.work_queue._queue_statement` (not locking) with
    :data:`_VERSION_COLUMNS` after the dose columns."""
    return _queue_statement(False).add_columns(*_VERSION_COLUMNS)
