"""Appending to the issuance log, inside the caller's transaction.

::

    BEGIN (the stage's own write transaction: store the signed objects ...)
      SELECT size FROM log_state WHERE id = 1 FOR UPDATE      every appender queues here (SQLite: BEGIN
                                                               IMMEDIATE already serialises writers)
      INSERT issuance_log (seq = size, size + 1, ...)          gap-free leaf indexes, one per object
      UPDATE log_state SET size = size + n
    COMMIT                                                      the objects and their entries, or neither

Guarantees, and what enforces them:

* **an object is logged in the transaction that stores it**: the stages call :func:`append` before they
  commit; a crash loses both or neither;
* **gap-free, totally ordered leaf indexes**: ``seq`` is taken from the locked ``log_state`` row, so two
  concurrent batches (worker processes, hosts) never interleave or reuse an index;
* **an object is logged once**: UNIQUE (kind, object_id).

Nothing here reads the clock: ``now`` is a parameter.
"""

from __future__ import annotations

__all__ = ["append", "append_entries", "leaf_hashes", "log_size"]

from collections.abc import Mapping, Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from vaxcred.merkle import leaf_hash
from vaxcred.pipeline.log.entries import Kind
from vaxcred.pipeline.log.stored import build_entries
from vaxcred.storage import bulk
from vaxcred.storage.schema import issuance_log, log_state

_LOG_COLUMNS = ("seq", "kind", "object_id", "entry", "leaf_hash", "logged_at")


def log_size(conn: Connection, *, lock: bool = False) -> int:
    """The number of entries in the log (``lock``: hold the append lock until the transaction ends)."""
    query = sa.select(log_state.c.size).where(log_state.c.id == 1)
    if lock:
        query = query.with_for_update()
    return int(conn.execute(query).scalar_one())


def append(conn: Connection, kind: Kind, object_ids: Sequence[int], *, now: datetime) -> range:
    """Log these freshly stored objects in ``conn``'s transaction; returns their leaf indexes."""
    entries = build_entries(conn, kind, object_ids)
    missing = set(object_ids) - entries.keys()
    if missing:
        raise ValueError(f"cannot log {kind.value} rows that do not exist: {sorted(missing)[:5]}")
    return append_entries(conn, kind, entries, now=now)


def append_entries(conn: Connection, kind: Kind, entries: Mapping[int, bytes], *, now: datetime) -> range:
    """Log objects whose entries the caller built from the values it stored in ``conn``'s transaction (e.g.
    :func:`~vaxcred.pipeline.log.passport_entries.passport_entry`), in object-id order; returns their leaf indexes.

    The caller vouches that each entry is what :func:`build_entries` would read back (the audit recomputes every
    entry from the rows and reports any difference); this saves re-reading a batch it has just inserted.
    """
    size = log_size(conn, lock=True)
    logged_at = bulk.stored_time(conn, now)
    rows = [
        (size + i, kind.value, object_id, entry, leaf_hash(entry), logged_at)
        for i, (object_id, entry) in enumerate(sorted(entries.items()))
    ]
    if rows:
        # multi-row VALUES pages through the driver (vaxcred.storage.bulk): no per-row bind processing
        bulk.insert_rows(conn, issuance_log, _LOG_COLUMNS, rows)
        conn.execute(sa.update(log_state).where(log_state.c.id == 1).values(size=size + len(rows)))
    return range(size, size + len(rows))


def leaf_hashes(conn: Connection, tree_size: int) -> list[bytes]:
    """The stored leaf hashes of the first ``tree_size`` entries, in order."""
    return [
        bytes(h)
        for h in conn.execute(
            sa.select(issuance_log.c.leaf_hash)
            .where(issuance_log.c.seq < tree_size)
            .order_by(issuance_log.c.seq)
        ).scalars()
    ]
