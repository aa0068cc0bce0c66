"""The registry check's write transaction: a batch's results stored for the persons still unchanged since they
were read (:func:`store_batch`), and the plain store for a caller's own transaction (:func:`store_outcomes`).

PostgreSQL: one conditional statement (the ``UPDATE`` of the persons still as read feeding the history
``INSERT``); SQLite (``BEGIN IMMEDIATE``: no other writer) re-reads the persons and compares. Nothing here logs
citizen IDs, names or dates of birth.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from vaxcred.pipeline.registry.batch import (
    COLUMNS,
    Outcome,
    PersonRow,
    RegistryCheckReport,
    outcomes,
    read_person_rows,
)
from vaxcred.pipeline.registry.lookup import RegistryResult, RegistryStatus
from vaxcred.storage import Database
from vaxcred.storage.bulk import stored_time
from vaxcred.storage.database import driver_errors
from vaxcred.storage.schema import persons

__all__ = ["store_batch", "store_outcomes", "store_results"]

logger = logging.getLogger(__name__)


#: SQLite: two executemany statements (C loops over the rows), no per-row SQLAlchemy parameter processing
_SQLITE_INSERT = (
    "INSERT INTO registry_checks (person_id, checked_at, status, mismatch_fields, name_difference, source) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)
_SQLITE_UPDATE = "UPDATE persons SET registry_status = ?, registry_checked_at = ? WHERE id = ?"
#: PostgreSQL: one statement, one round trip: the history rows (in batch order) and the persons' status, the
#: batch travelling as four arrays; the join walks the primary key (Database.for_batches plans). Parameters go in
#: binary (``%(…)b``): psycopg dumps a 1,000-string list ~6× faster than as array text (1.4 → 0.2 ms a batch
#: and column, measured), and the server reads it without ``array_in``'s text parsing
_PG_STORE = """
WITH batch AS (
    SELECT * FROM unnest(%(ids)b::bigint[], %(statuses)b::text[], %(fields)b::text[], %(differences)b::text[])
        WITH ORDINALITY AS b(person_id, status, mismatch_fields, name_difference, n)
), history AS (
    INSERT INTO registry_checks (person_id, checked_at, status, mismatch_fields, name_difference, source)
    SELECT person_id, %(at)b, status, mismatch_fields, name_difference, %(source)b FROM batch ORDER BY n
)
UPDATE persons AS p SET registry_status = b.status, registry_checked_at = %(at)b
FROM batch AS b WHERE p.id = b.person_id
"""


def _outcome_columns(stored: Sequence[Outcome], checked_at: dt.datetime, source: str) -> dict[str, Any]:
    """The PostgreSQL store statements' outcome parameters: one list per outcome part, the time and the source."""
    return {
        "statuses": [o[0] for o in stored],
        "fields": [o[1] for o in stored],
        "differences": [o[2] for o in stored],
        "at": checked_at,
        "source": source,
    }


def store_outcomes(
    conn: Connection,
    rows: Sequence[PersonRow],
    stored: Sequence[Outcome],
    *,
    checked_at: dt.datetime,
    source: str,
) -> RegistryCheckReport:
    """Insert one history row per outcome, checked at ``checked_at``, and copy the status onto the person
    (inside the caller's transaction on ``conn``); returns the counts."""
    if len(rows) != len(stored):
        raise ValueError("one outcome per row")
    if not rows:
        return RegistryCheckReport()
    with driver_errors(conn) as driver:
        if conn.dialect.name == "postgresql":
            with driver.cursor() as cursor:
                cursor.execute(
                    _PG_STORE,
                    {"ids": [row.id for row in rows], **_outcome_columns(stored, checked_at, source)},
                )
        else:
            at = stored_time(conn, checked_at)  # UtcDateTime's text form, as SQLAlchemy binds it
            cursor = driver.cursor()
            try:
                cursor.executemany(
                    _SQLITE_INSERT,
                    [
                        (row.id, at, status, fields, difference, source)
                        for row, (status, fields, difference) in zip(rows, stored, strict=True)
                    ],
                )
                cursor.executemany(
                    _SQLITE_UPDATE, [(o[0], at, row.id) for row, o in zip(rows, stored, strict=True)]
                )
            finally:
                cursor.close()
    return _counts(stored)


def store_results(
    conn: Connection,
    rows: Sequence[PersonRow],
    results: Sequence[RegistryResult],
    *,
    source: str,
) -> RegistryCheckReport:
    """Insert one history row per result and copy the status onto the person; returns the counts."""
    if len(rows) != len(results):
        raise ValueError("one result per row")
    by_time: dict[dt.datetime, list[int]] = {}
    for i, result in enumerate(results):
        by_time.setdefault(result.checked_at, []).append(i)
    report = RegistryCheckReport()
    for checked_at, picked in sorted(by_time.items()):
        report = report + store_outcomes(
            conn,
            [rows[i] for i in picked],
            outcomes(results[i] for i in picked),
            checked_at=checked_at,
            source=source,
        )
    return report


#: PostgreSQL, :func:`store_batch` in one statement: the UPDATE takes only the persons whose fields and registry
#: state are still those that were read (re-checked on the newest row version after a concurrent writer
#: commits: READ COMMITTED's re-evaluation), and the history rows are inserted for exactly those, in batch
#: order. No ``SELECT … FOR UPDATE`` before it: that re-read locked every row of the batch (one WAL record a
#: person) only for the UPDATE to lock it again. Rows are locked in id order (the batch is sorted; the join
#: walks the primary key from the unnest, Database.for_batches plans). ``{columns}``: the batch's eleven
#: columns, :data:`_JOINED_COLUMNS` or :data:`_ARRAY_COLUMNS`
_PG_STORE_UNCHANGED = """
WITH batch AS (
    SELECT * FROM unnest({columns})
        WITH ORDINALITY AS b(person_id, citizen_id, id_type, full_name, dob, gender, read_status, read_time,
                             status, mismatch_fields, name_difference, n)
), updated AS (
    UPDATE persons AS p SET registry_status = b.status, registry_checked_at = %(at)b
    FROM batch AS b
    WHERE p.id = b.person_id AND p.citizen_id = b.citizen_id AND p.id_type = b.id_type
        AND p.full_name = b.full_name AND p.dob = b.dob AND p.gender = b.gender
        AND p.registry_status IS NOT DISTINCT FROM b.read_status
        AND p.registry_checked_at IS NOT DISTINCT FROM b.read_time
    RETURNING b.n, b.person_id, b.status, b.mismatch_fields, b.name_difference
), history AS (
    INSERT INTO registry_checks (person_id, checked_at, status, mismatch_fields, name_difference, source)
    SELECT person_id, %(at)b, status, mismatch_fields, name_difference, %(source)b FROM updated ORDER BY n
)
SELECT n FROM updated
"""
#: the never-NULL columns of the batch, each as ONE text of its values joined by :data:`_SEPARATOR` and split by
#: the server (``string_to_array``): psycopg dumps a 1,000-value list element by element in Python (~0.3 ms a
#: column, eight columns: ~2.4 µs a person), a joined text in one ``str.join`` (~0.04 ms). The nullable read
#: status and time stay binary arrays. Used when no value holds the separator (counted) and the batch has two
#: persons or more (``string_to_array('', …)`` is empty, not one empty string)
_JOINED_COLUMNS = """
    string_to_array(%(ids)b, %(separator)b)::bigint[], string_to_array(%(citizen_ids)b, %(separator)b),
    string_to_array(%(id_types)b, %(separator)b), string_to_array(%(names)b, %(separator)b),
    string_to_array(%(dobs)b, %(separator)b), string_to_array(%(genders)b, %(separator)b),
    %(read_statuses)b::text[], %(read_times)b::timestamptz[], string_to_array(%(statuses)b, %(separator)b),
    string_to_array(%(fields)b, %(separator)b), string_to_array(%(differences)b, %(separator)b)
"""
#: the batch as eleven binary arrays (a batch whose values hold the separator, a batch of one)
_ARRAY_COLUMNS = """
    %(ids)b::bigint[], %(citizen_ids)b::text[], %(id_types)b::text[], %(names)b::text[], %(dobs)b::text[],
    %(genders)b::text[], %(read_statuses)b::text[], %(read_times)b::timestamptz[],
    %(statuses)b::text[], %(fields)b::text[], %(differences)b::text[]
"""
_PG_STORE_JOINED = _PG_STORE_UNCHANGED.format(columns=_JOINED_COLUMNS)
_PG_STORE_ARRAYS = _PG_STORE_UNCHANGED.format(columns=_ARRAY_COLUMNS)
#: ASCII unit separator: no valid ID, name, date, gender or outcome holds it (names must be printable)
_SEPARATOR = "\x1f"
#: the never-NULL columns that travel joined
_JOINED = ("ids", "citizen_ids", "id_types", "names", "dobs", "genders", "statuses", "fields", "differences")


def _joined(columns: dict[str, Any], count: int) -> dict[str, Any] | None:
    """``columns`` with the :data:`_JOINED` ones joined; None when a value holds :data:`_SEPARATOR`."""
    joined = dict(columns, separator=_SEPARATOR)
    for name in _JOINED:
        text = _SEPARATOR.join(columns[name])
        if text.count(_SEPARATOR) != count - 1:
            return None
        joined[name] = text
    return joined


def _store_unchanged_postgres(
    conn: Connection,
    rows: Sequence[PersonRow],
    stored: Sequence[Outcome],
    *,
    checked_at: dt.datetime,
    source: str,
) -> list[int]:
    """:data:`_PG_STORE_UNCHANGED` for ``rows`` (in id order); the positions in ``rows`` of those stored."""
    if not rows:
        return []
    columns: dict[str, Any] = {
        "ids": [str(row.id) for row in rows],
        "citizen_ids": [row.citizen_id for row in rows],
        "id_types": [row.id_type for row in rows],
        "names": [row.full_name for row in rows],
        "dobs": [row.dob for row in rows],
        "genders": [row.gender for row in rows],
        "read_statuses": [row.registry_status for row in rows],
        "read_times": [row.registry_checked_at for row in rows],
        **_outcome_columns(stored, checked_at, source),
    }
    joined = _joined(columns, len(rows)) if len(rows) > 1 else None
    if joined is None:
        statement, params = _PG_STORE_ARRAYS, dict(columns, ids=[row.id for row in rows])
    else:
        statement, params = _PG_STORE_JOINED, joined
    with driver_errors(conn) as driver, driver.cursor() as cursor:
        cursor.execute(statement, params)
        return sorted(int(n) - 1 for (n,) in cursor.fetchall())


def _counts(stored: Sequence[Outcome]) -> RegistryCheckReport:
    statuses = [o[0] for o in stored]
    return RegistryCheckReport(
        checked=len(stored),
        verified=statuses.count(RegistryStatus.VERIFIED.value),
        mismatch=statuses.count(RegistryStatus.MISMATCH.value),
        not_found=statuses.count(RegistryStatus.NOT_FOUND.value),
        invalid_id=statuses.count(RegistryStatus.INVALID_ID.value),
    )


def store_batch(
    db: Database,
    rows: Sequence[PersonRow],
    stored: Sequence[Outcome],
    *,
    checked_at: dt.datetime,
    source: str,
) -> RegistryCheckReport:
    """One write transaction: store the results of the batch's persons still unchanged since they were read;
    the others are counted in ``skipped``. PostgreSQL: one conditional UPDATE + INSERT
    (:data:`_PG_STORE_UNCHANGED`); SQLite (``BEGIN IMMEDIATE``: no other writer) re-reads the persons and stores
    through :func:`store_outcomes`."""
    if len(rows) != len(stored):
        raise ValueError("one outcome per row")
    order = sorted(range(len(rows)), key=lambda i: rows[i].id)
    rows, stored = [rows[i] for i in order], [stored[i] for i in order]
    with db.begin() as conn:
        if conn.dialect.name == "postgresql":
            keep = _store_unchanged_postgres(conn, rows, stored, checked_at=checked_at, source=source)
            report = _counts([stored[i] for i in keep])
        else:
            current = {
                row.id: row
                for row in read_person_rows(
                    conn,
                    sa.select(*COLUMNS)
                    .where(persons.c.id.in_([row.id for row in rows]))
                    .order_by(persons.c.id),
                )
            }
            # only persons whose fields and registry state are still those that were checked
            keep = [i for i, row in enumerate(rows) if current.get(row.id) == row]
            report = store_outcomes(
                conn, [rows[i] for i in keep], [stored[i] for i in keep], checked_at=checked_at, source=source
            )
    skipped = len(rows) - len(keep)
    if skipped:
        logger.info("registry check: %d persons changed while being checked; left for a re-run", skipped)
    return report + RegistryCheckReport(skipped=skipped)
