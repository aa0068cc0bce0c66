"""Storing a signing batch's members: one INSERT straight through the driver, skipping doses already signed.

SQLAlchemy's per-row parameter processing cost more than the database's own work (measured at 100 k people, SQLite:
2.3 s of the 7.8 s spent storing), and on PostgreSQL a multi-row ``VALUES`` list of ~4,500 placeholders is
re-parsed by psycopg on every execution (a statement that long is past its query cache). So:

* SQLite: multi-row ``INSERT … VALUES`` pages through :func:`vaxcred.storage.bulk.insert_rows` (sqlite3 keeps the
  compiled statement of a full page: the text repeats);
* PostgreSQL: ``INSERT … SELECT … FROM unnest(%s::bigint[], …)``, one array per column: six parameters
  whatever the batch size; the signing time (one a transaction) is bound once, as a scalar, when all members
  agree on it. A member names only its batch: its site, certificate and kid are the batch's (migration 0012).

A dose that already holds a current signature (a concurrent run's) is skipped by the unique partial index
``uq_site_signatures_current``, and only stored rows come back (``RETURNING id, dose_id``): on SQLite through
``ON CONFLICT (dose_id) WHERE superseded_at IS NULL DO NOTHING``; on PostgreSQL a plain INSERT in a savepoint is
tried first and that statement only if the index refuses a row (:func:`_insert_postgres`). Times are bound as
:func:`vaxcred.storage.bulk.stored_time` makes them (the column's own format).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, cast

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from vaxcred.storage import Database
from vaxcred.storage.bulk import insert_rows, stored_time
from vaxcred.storage.database import driver_errors
from vaxcred.storage.schema import site_certificates, site_signature_batches, site_signatures

__all__ = ["COLUMNS", "SIGNING_LOCK", "RowsChanged", "insert_certificates", "insert_heads", "insert_members"]

#: the columns of a stored batch member, in the order of :func:`insert_members`' value tuples
COLUMNS: Final = ("dose_id", "cose", "signed_at", "batch_id", "leaf_index", "proof")
#: PostgreSQL: each column's array type, in :data:`COLUMNS` order
_PG_ARRAYS: Final = ("bigint", "bytea", "timestamptz", "bigint", "integer", "bytea")
_ON_CONFLICT_SKIP: Final = "ON CONFLICT (dose_id) WHERE superseded_at IS NULL DO NOTHING"
_SIGNED_AT: Final = COLUMNS.index("signed_at")


#: the unique partial index that keeps one current signature per dose (storage.schema)
_CURRENT_INDEX: Final = "uq_site_signatures_current"
_UNIQUE_VIOLATION: Final = "23505"


#: the column every member of a transaction's batch usually shares (one signing time): bound once as a scalar,
#: not as an array of one repeated value (psycopg dumps each array element in Python). A member's site,
#: certificate and kid are its batch's, not stored with it (migration 0012)
_SHARED: Final = frozenset({"signed_at"})
_SHARED_AT: Final = tuple(i for i, name in enumerate(COLUMNS) if name in _SHARED)
_VARYING_AT: Final = tuple(i for i, name in enumerate(COLUMNS) if name not in _SHARED)


#: the row-version guard (PostgreSQL): each member joined to its dose and person rows *as read* by the work
#: queue (``xmin``, the version a row's writer gave it). A row whose dose or person changed since the read drops
#: out. No row lock: the INSERT runs under :data:`SIGNING_LOCK` held shared (:func:`_hold_signing_lock`), which
#: every writer of a dose or signature takes exclusive first (:func:`vaxcred.pipeline.site_signing.stage.
#: lock_out_signing`) — a writer in flight is waited for (its change committed: the row drops out), one that comes
#: later waits for this transaction's commit and supersedes the signature stored here (see :func:`insert_members`)
_GUARD: Final = (
    " JOIN doses AS d ON d.id = u.dose_id AND d.xmin = u.dose_version"
    " JOIN persons AS p ON p.id = d.person_id AND p.xmin = u.person_version"
)
#: PostgreSQL advisory lock key (one for the whole database) that orders the guarded member INSERT against every
#: change of a dose or of a current signature: taken **shared** by the guarded INSERT's savepoint (signing runs do
#: not exclude one another: the one-current-signature index does that) and **exclusive** by each writer, first
#: in its transaction. Before session 10 each dose was locked ``FOR SHARE`` instead (a lock per dose: a heap
#: write, a WAL record and a dirtied page each)
SIGNING_LOCK: Final = 0x7661786372656402  # "vaxcred" + 2 (the migrations' lock is + 1)
_SHARED_LOCK: Final = "SELECT pg_advisory_xact_lock_shared(%s)"
#: the versions travel as two texts of comma-separated ``xid`` numbers, split by the server (psycopg dumps a list
#: element by element in Python, ~0.6 µs each; a ``str.join`` of the texts the queue read returned costs ~0.05)
_VERSION_ARRAYS: Final = ", string_to_array(%b, ',')::xid[], string_to_array(%b, ',')::xid[]"


@functools.cache
def _postgres_sql(*, skip_signed: bool, shared: bool, guarded: bool = False) -> str:
    """The INSERT of :func:`_insert_postgres`: every column an array (``shared`` False), or the columns of
    :data:`_SHARED` as scalars and the others as arrays, in :data:`COLUMNS` order either way; ``guarded``: two
    more arrays, each member's dose and person row versions, and :data:`_GUARD`."""
    if guarded:
        names = [COLUMNS[i] for i in _VARYING_AT] if shared else list(COLUMNS)
        arrays = ", ".join(f"%b::{_PG_ARRAYS[COLUMNS.index(name)]}[]" for name in names) + _VERSION_ARRAYS
        picked = ", ".join(
            f"%b::{kind}" if shared and name in _SHARED else f"u.{name}"
            for name, kind in zip(COLUMNS, _PG_ARRAYS, strict=True)
        )
        source = (
            f"SELECT {picked} FROM unnest({arrays}) "  # noqa: S608
            f"AS u({', '.join(names)}, dose_version, person_version){_GUARD}"
        )
    elif shared:
        varying = [COLUMNS[i] for i in _VARYING_AT]
        arrays = ", ".join(f"%b::{_PG_ARRAYS[i]}[]" for i in _VARYING_AT)
        picked = ", ".join(
            f"%b::{kind}" if name in _SHARED else f"u.{name}"
            for name, kind in zip(COLUMNS, _PG_ARRAYS, strict=True)
        )
        source = f"SELECT {picked} FROM unnest({arrays}) AS u({', '.join(varying)})"  # noqa: S608
    else:
        arrays = ", ".join(
            f"%b::{kind}[]" for kind in _PG_ARRAYS
        )  # %b: binary arrays (text ones escape each value)
        source = f"SELECT * FROM unnest({arrays})"  # noqa: S608
    # built from this module's constants only: no value reaches the text
    return (
        f"INSERT INTO site_signatures ({', '.join(COLUMNS)}) {source} "
        f"{_ON_CONFLICT_SKIP if skip_signed else ''} RETURNING id, dose_id"
    )


@functools.cache
def _encoders() -> tuple[Callable[[Sequence[Any]], Any], ...]:
    """Each column's array encoder, in :data:`COLUMNS` order (:mod:`~vaxcred.storage.pg_arrays`:
    the server's binary array format written at once, ~1 µs of client CPU a member less than psycopg's
    element-by-element dump; other types: a list). Imported here, on PostgreSQL only: psycopg is the
    ``postgres`` extra's, and SQLite installs sign without it."""
    from vaxcred.storage import pg_arrays

    encoders: dict[str, Callable[[Sequence[Any]], Any]] = {
        "bigint": pg_arrays.bigint_array,
        "integer": pg_arrays.integer_array,
        "bytea": pg_arrays.bytea_array,
    }
    return tuple(encoders.get(kind, list) for kind in _PG_ARRAYS)


def _postgres_parameters(rows: Sequence[tuple[Any, ...]]) -> tuple[bool, tuple[Any, ...]]:
    """(shared, parameters) for :func:`_postgres_sql`, in its placeholders' order: the :data:`_SHARED` columns
    as scalars when every row has the same values in them, else every column as an array."""
    columns = list(zip(*rows, strict=True))
    encoders = _encoders()
    if all(columns[i].count(columns[i][0]) == len(rows) for i in _SHARED_AT):
        # the text's placeholders: the scalars (in the SELECT list), then the arrays (in unnest)
        return True, (
            *(columns[i][0] for i in _SHARED_AT),
            *(encoders[i](columns[i]) for i in _VARYING_AT),
        )
    return False, tuple(encode(column) for encode, column in zip(encoders, columns, strict=True))


def _register_arrays(conn: Connection) -> None:
    """Let ``conn``'s psycopg connection send :func:`_encoders`' arrays (PostgreSQL only)."""
    from vaxcred.storage import pg_arrays

    with driver_errors(conn) as driver:
        pg_arrays.register(driver)


def _another_current_signature(error: sa.exc.IntegrityError) -> bool:
    """Whether ``error`` is a dose that holds a current signature already (a concurrent run stored it)."""
    diag = getattr(error.orig, "diag", None)
    return (
        getattr(error.orig, "sqlstate", None) == _UNIQUE_VIOLATION
        and getattr(diag, "constraint_name", None) == _CURRENT_INDEX
    )


def _insert_postgres(conn: Connection, rows: Sequence[tuple[Any, ...]]) -> list[tuple[int, int]]:
    """A plain INSERT in a savepoint; only if a dose was signed meanwhile (a concurrent run) the savepoint is rolled
    back and the rows inserted again skipping those. ``ON CONFLICT`` on every batch cost a speculative insertion
    per row (a check of the index, a token lock and a confirmation record; measured, 20 k people, two workers:
    the stage's server CPU 30.7 -> 29.0 us a dose, WAL -4.5 %); the plain INSERT's unique check waits for and
    then refuses the same conflicting rows."""
    shared, parameters = _postgres_parameters(rows)
    _register_arrays(conn)
    try:
        with conn.begin_nested():
            stored = conn.exec_driver_sql(_postgres_sql(skip_signed=False, shared=shared), parameters).all()
    except sa.exc.IntegrityError as e:
        if not _another_current_signature(e):
            raise
        stored = conn.exec_driver_sql(_postgres_sql(skip_signed=True, shared=shared), parameters).all()
    return [(int(i), int(d)) for i, d in stored]


class RowsChanged(Exception):
    """The guarded member INSERT stored fewer rows than given: a dose or person changed since the batch was
    read, or a concurrent run signed one of its doses. The caller rolls back to its savepoint and stores the
    batch the re-checking way (:func:`vaxcred.pipeline.site_signing.workers._store_checked`)."""


def _hold_signing_lock(conn: Connection) -> None:
    """:data:`SIGNING_LOCK` shared until the end of ``conn``'s transaction — or of its savepoint, if that is
    rolled back (PostgreSQL releases a subtransaction's locks with it; the re-read path then holds row locks
    instead). Its own statement, before the INSERT: the INSERT's snapshot is taken once the lock is granted, so
    it sees every writer that held the lock before."""
    conn.exec_driver_sql(_SHARED_LOCK, (SIGNING_LOCK,))


def _insert_guarded(
    conn: Connection, rows: Sequence[tuple[Any, ...]], versions: Sequence[tuple[str, str]]
) -> list[tuple[int, int]]:
    """The guarded INSERT (:data:`_GUARD`) under :data:`SIGNING_LOCK` held shared: every row stored, or
    :class:`RowsChanged` (the rows stored so far, and the lock, are left for the caller's savepoint to roll
    back). A dose holding a current signature already (a concurrent run's) raises the unique index's
    IntegrityError, also left to the caller."""
    shared, parameters = _postgres_parameters(rows)
    _register_arrays(conn)
    dose_versions, person_versions = (",".join(column) for column in zip(*versions, strict=True))
    _hold_signing_lock(conn)
    stored = conn.exec_driver_sql(
        _postgres_sql(skip_signed=False, shared=shared, guarded=True),
        (*parameters, dose_versions, person_versions),
    ).all()
    if len(stored) != len(rows):
        raise RowsChanged(f"{len(rows) - len(stored)} of {len(rows)} rows changed since they were read")
    return [(int(i), int(d)) for i, d in stored]


def insert_members(
    conn: Connection,
    values: Sequence[tuple[Any, ...]],
    *,
    versions: Sequence[tuple[str, str]] | None = None,
) -> list[tuple[int, int]]:
    """Insert batch members (tuples in :data:`COLUMNS` order) in ``conn``'s transaction; returns the stored
    (signature id, dose id) pairs.

    ``versions`` (PostgreSQL; one per value: the ``doses.xmin`` and ``persons.xmin`` its row was read with)
    stores them only if every dose and person row is still that version, holding :data:`SIGNING_LOCK` shared
    until the commit (:data:`_GUARD`); otherwise it raises :class:`RowsChanged` (or the unique index's
    IntegrityError) and the caller's savepoint must be rolled back."""
    if not values:
        return []
    # a batch holds few signing times: each converted once
    times = {signed_at: stored_time(conn, signed_at) for signed_at in {v[_SIGNED_AT] for v in values}}
    rows = [(*v[:_SIGNED_AT], times[v[_SIGNED_AT]], *v[_SIGNED_AT + 1 :]) for v in values]
    if conn.dialect.name == "postgresql":
        if versions is not None:
            return _insert_guarded(conn, rows, versions)
        return _insert_postgres(conn, rows)
    if versions is not None:
        raise ValueError("row versions are PostgreSQL's")
    returned = insert_rows(
        conn, site_signatures, COLUMNS, rows, on_conflict=_ON_CONFLICT_SKIP, returning=("id", "dose_id")
    )
    return [(cast(int, i), cast(int, d)) for i, d in returned]  # RETURNING two BIGINT columns


#: the batch heads' columns, in the order of :func:`insert_heads`' value tuples, and their PostgreSQL types
HEAD_COLUMNS: Final = ("site_id", "certificate", "kid", "head", "size", "signed_at")
_PG_HEAD_ARRAYS: Final = ("varchar", "bytea", "bytea", "bytea", "integer", "timestamptz")
_PG_HEADS: Final = (
    f"INSERT INTO site_signature_batches ({', '.join(HEAD_COLUMNS)}) "  # noqa: S608 - constants only
    f"SELECT * FROM unnest({', '.join(f'%b::{kind}[]' for kind in _PG_HEAD_ARRAYS)}) RETURNING id, head"
)
_HEAD: Final = HEAD_COLUMNS.index("head")
_HEAD_SIGNED_AT: Final = HEAD_COLUMNS.index("signed_at")


def insert_heads(conn: Connection, values: Sequence[tuple[Any, ...]]) -> list[int]:
    """Insert batch heads (tuples in :data:`HEAD_COLUMNS` order) in ``conn``'s transaction; returns their ids in
    the order given. PostgreSQL: one ``INSERT … SELECT FROM unnest(…)`` straight through the driver, each id
    matched to its head by the head's bytes (unique: each carries its own signature over a root of salted
    leaves), not by the order rows come back in; SQLite: SQLAlchemy's multi-row INSERT … RETURNING, sorted by
    parameter order."""
    if not values:
        return []
    if conn.dialect.name != "postgresql":
        statement = sa.insert(site_signature_batches).returning(
            site_signature_batches.c.id, sort_by_parameter_order=True
        )
        return list(
            conn.execute(statement, [dict(zip(HEAD_COLUMNS, v, strict=True)) for v in values]).scalars()
        )
    rows = [(*v[:_HEAD_SIGNED_AT], stored_time(conn, v[_HEAD_SIGNED_AT])) for v in values]
    with driver_errors(conn) as driver, driver.cursor() as cursor:
        cursor.execute(_PG_HEADS, [list(column) for column in zip(*rows, strict=True)])
        ids = {bytes(head): int(i) for i, head in cursor.fetchall()}
    if len(ids) != len(values):
        raise RuntimeError("batch heads must be distinct")  # never: each has its own signature
    return [ids[v[_HEAD]] for v in values]


#: a site certificate's columns, in the order of :func:`insert_certificates`' value tuples
CERTIFICATE_COLUMNS: Final = ("fingerprint", "site_id", "kid", "der", "not_before", "not_after")
_PG_CERTIFICATE: Final = (
    f"INSERT INTO site_certificates ({', '.join(CERTIFICATE_COLUMNS)}) "  # noqa: S608 - constants only
    f"VALUES ({', '.join(['%s'] * len(CERTIFICATE_COLUMNS))}) ON CONFLICT (fingerprint) DO NOTHING"
)


def insert_certificates(db: Database, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Store the site certificates ``rows`` (column → value) that are not stored yet, in ``conn``'s transaction
    (PostgreSQL: straight through the driver, a compiled statement a batch cost more than the insert)."""
    if conn.dialect.name != "postgresql":
        conn.execute(db.insert_ignoring_conflicts(site_certificates, on=["fingerprint"]), list(rows))
        return
    with driver_errors(conn) as driver, driver.cursor() as cursor:
        for row in rows:
            cursor.execute(
                _PG_CERTIFICATE,
                [
                    *(row[name] for name in CERTIFICATE_COLUMNS[:4]),
                    stored_time(conn, row["not_before"]),
                    stored_time(conn, row["not_after"]),
                ],
            )
