"""Storing a batch of validated import rows: a temporary staging table, then set-based statements.

::

    rows ─> vaxcred_import_stage (temporary, one per connection; seq = file order)
              ├─ INSERT sites    SELECT DISTINCT site_id            ORDER BY site_id          ON CONFLICT DO NOTHING
              ├─ INSERT persons  first row per citizen_id           ORDER BY citizen_id, seq  ON CONFLICT DO NOTHING
              ├─ INSERT doses    first row per natural key, joined  ORDER BY natural key, seq ON CONFLICT DO NOTHING
              └─ SELECT          rows whose stored person differs; rows whose natural key is stored with
                                 another vaccine or lot (PostgreSQL: from the batch itself when every key
                                 was new to the table, see _PG_SCRIPT; SQLite: the persons alone when every
                                 row inserted its dose)

* **PostgreSQL**: the batch goes in with ``COPY … FROM STDIN`` (psycopg's ``Cursor.copy``, text format: a batch
  whose cells need no escaping as one text built here, any other row by row through psycopg, which escapes tabs,
  line breaks and backslashes: :func:`_copy_text`), then the statements in **one round trip** (the simple query
  protocol runs them in order; the staging table is ``ON COMMIT DELETE ROWS``); a second round trip only for a
  batch holding a key that was already stored (a re-import).
* **Doses by a plain insert first (PostgreSQL, :class:`StoredKeys`).** While no batch of the import has met a
  stored natural key, doses go in by a plain ``INSERT`` inside a savepoint, without ``ON CONFLICT``'s speculative
  insertion (a probe of the unique index before each row and a confirmation record after it). A natural key
  already stored — a re-import, another import committing the same key first — makes the plain ``INSERT`` fail
  with a unique violation (after waiting for the other transaction, exactly as ``ON CONFLICT`` waits); the
  savepoint is rolled back and the batch stored by the ``ON CONFLICT`` statements, as are the import's later
  batches on that connection. Persons keep ``ON CONFLICT``: a person's rows often straddle two batches.
* **SQLite**: ``executemany`` into the staging table, the same statements (``CROSS JOIN`` keeps the staging
  table the outer loop), then ``DELETE`` of the staging rows.

The same stored result as row-at-a-time inserts: the first row of a citizen ID (in file order) creates the
person, the first row of a natural key the dose; the rest are counted. Locks are taken in a fixed order (site,
citizen ID, natural key), so two imports of overlapping files cannot deadlock. Driver errors come out as
SQLAlchemy's (``OperationalError`` …) with their PostgreSQL details withheld (they may quote row values).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from sqlalchemy.engine import Connection

from vaxcred.pipeline.records.validation import StagedRow
from vaxcred.storage.database import driver_errors

__all__ = ["STAGE_TABLE", "BatchCounts", "NewSites", "StoredKeys", "canceller", "prepare", "store_batch"]

STAGE_TABLE = "vaxcred_import_stage"
#: a missing value in COPY's text format
_COPY_NULL = "\\N"
#: the columns in :data:`~vaxcred.pipeline.records.validation.STAGED_COLUMNS` order (a test checks)
_PG_COPY = "COPY vaxcred_import_stage (citizen_id, id_type, full_name, dob, gender, province_code, vaccine, lot, date, dose_number, site_id) FROM STDIN"
_SQLITE_STAGE = "INSERT INTO vaxcred_import_stage (citizen_id, id_type, full_name, dob, gender, province_code, vaccine, lot, date, dose_number, site_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"

#: the sites of a batch, sorted, in a transaction of their own ahead of it (:class:`NewSites`)
_PG_SITES = (
    "INSERT INTO sites (site_id) SELECT unnest(%s::text[]) ORDER BY 1 ON CONFLICT (site_id) DO NOTHING"
)
#: site IDs a :class:`NewSites` remembers at most (Viet Nam has ~11,000 communes; past this it starts again)
_KNOWN_SITES_MAX = 100_000

#: how long a cancel request may take to reach the server before we stop asking
_CANCEL_SECONDS = 5.0

_PG_CREATE = """
CREATE TEMPORARY TABLE IF NOT EXISTS vaxcred_import_stage (
    seq bigint GENERATED ALWAYS AS IDENTITY, citizen_id text NOT NULL, id_type text NOT NULL,
    full_name text NOT NULL, dob text NOT NULL, gender text NOT NULL, province_code text, vaccine text NOT NULL,
    lot text NOT NULL, date date NOT NULL, dose_number smallint NOT NULL, site_id text NOT NULL
) ON COMMIT DELETE ROWS
"""
_SQLITE_CREATE = """
CREATE TEMPORARY TABLE IF NOT EXISTS vaxcred_import_stage (
    seq INTEGER PRIMARY KEY, citizen_id TEXT NOT NULL, id_type TEXT NOT NULL, full_name TEXT NOT NULL,
    dob TEXT NOT NULL, gender TEXT NOT NULL, province_code TEXT, vaccine TEXT NOT NULL, lot TEXT NOT NULL,
    date TEXT NOT NULL, dose_number INTEGER NOT NULL, site_id TEXT NOT NULL
)
"""
#: rows whose stored person differs from the row; rows whose natural key is stored with another vaccine or lot
_COUNT_CONFLICTS = """
SELECT
    count(*) FILTER (WHERE p.id_type <> s.id_type OR p.full_name <> s.full_name OR p.dob <> s.dob
                     OR p.gender <> s.gender),
    count(*) FILTER (WHERE d.vaccine <> s.vaccine OR d.lot <> s.lot)
FROM vaxcred_import_stage AS s CROSS JOIN persons AS p CROSS JOIN doses AS d
WHERE p.citizen_id = s.citizen_id AND d.person_id = p.id AND d.dose_number = s.dose_number
    AND d.date = s.date AND d.site_id = s.site_id
"""
#: SQLite, a batch every row of which inserted its dose (no key stored before, none twice in the batch): each row's
#: stored dose is its own, so no dose conflict; the person conflicts need the persons alone (one index probe a
#: row instead of two: 2.3 → 1.1 µs a row of the one writer's time, measured)
_SQLITE_COUNT_PERSON_CONFLICTS = """
SELECT count(*), 0
FROM vaxcred_import_stage AS s CROSS JOIN persons AS p
WHERE p.citizen_id = s.citizen_id
    AND (p.id_type <> s.id_type OR p.full_name <> s.full_name OR p.dob <> s.dob OR p.gender <> s.gender)
"""
#: the staging table (one batch, no statistics) drives every join through the unique indexes: without these
#: the planner may hash whole tables per batch (measured 45 ms a batch at 60,000 doses, growing with the table)
_PG_PLAN = "SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off"
_PG_INSERTS = """
INSERT INTO sites (site_id)
    SELECT DISTINCT site_id FROM vaxcred_import_stage ORDER BY site_id
    ON CONFLICT (site_id) DO NOTHING;
INSERT INTO persons (citizen_id, id_type, full_name, dob, gender, province_code)
    SELECT DISTINCT ON (citizen_id) citizen_id, id_type, full_name, dob, gender, province_code
    FROM vaxcred_import_stage ORDER BY citizen_id, seq
    ON CONFLICT (citizen_id) DO NOTHING;
WITH batch AS MATERIALIZED (
    SELECT p.id AS person_id, s.dose_number, s.date, s.site_id, s.vaccine, s.lot,
        row_number() OVER key = 1 AS first_of_key,
        (p.id_type <> s.id_type OR p.full_name <> s.full_name OR p.dob <> s.dob OR p.gender <> s.gender)
            AS person_differs,
        (s.vaccine <> first_value(s.vaccine) OVER key OR s.lot <> first_value(s.lot) OVER key) AS dose_differs
    FROM vaxcred_import_stage AS s JOIN persons AS p ON p.citizen_id = s.citizen_id
    WINDOW key AS (PARTITION BY p.id, s.dose_number, s.date, s.site_id ORDER BY s.seq)
), inserted AS (
    INSERT INTO doses (person_id, dose_number, date, site_id, vaccine, lot)
    SELECT person_id, dose_number, date, site_id, vaccine, lot FROM batch WHERE first_of_key
    ORDER BY person_id, dose_number, date, site_id
    ON CONFLICT (person_id, dose_number, date, site_id) DO NOTHING
    RETURNING 1
)
SELECT (SELECT count(*) FROM inserted), count(*) FILTER (WHERE first_of_key),
    count(*) FILTER (WHERE person_differs), count(*) FILTER (WHERE dose_differs)
FROM batch
"""
#: one simple-protocol query: the plan settings, three statements, one result (inserted doses, natural keys in
#: the batch, person conflicts, rows differing from the first row of their key). When every key of the batch
#: was inserted by it (a first import), the stored dose of a row is its key's first row and the conflicts are
#: counted from the batch alone: no second probe of persons and doses per row (measured at 100,000 people:
#: 2.75 of the import's 7.6 s of server CPU); otherwise :data:`_COUNT_CONFLICTS` compares with the stored doses
_PG_SCRIPT = ";".join((_PG_PLAN, _PG_INSERTS))
#: the same with a plain INSERT of the doses inside a savepoint (:class:`StoredKeys`): a batch none of whose
#: natural keys is stored yet. Only the doses' ``ON CONFLICT`` clause differs (a test checks); persons keep theirs:
#: a person's rows often straddle two batches, so the second batch meets its stored person (every few batches)
_PG_PLAIN_SCRIPT = ";".join(
    (
        "SAVEPOINT vaxcred_plain_insert",
        _PG_PLAN,
        _PG_INSERTS.replace("\n    ON CONFLICT (person_id, dose_number, date, site_id) DO NOTHING", ""),
        "RELEASE SAVEPOINT vaxcred_plain_insert",
    )
)
_PG_PLAIN_UNDO = "ROLLBACK TO SAVEPOINT vaxcred_plain_insert"
#: PostgreSQL's unique_violation: a natural key already stored (or committed meanwhile)
_UNIQUE_VIOLATION = "23505"
_SQLITE_STATEMENTS = (
    """INSERT INTO sites (site_id)
        SELECT DISTINCT site_id FROM vaxcred_import_stage WHERE true ORDER BY site_id
        ON CONFLICT (site_id) DO NOTHING""",
    # SQLite inserts in ORDER BY order: the first row of a citizen ID (lowest seq) wins, the others conflict
    """INSERT INTO persons (citizen_id, id_type, full_name, dob, gender, province_code)
        SELECT citizen_id, id_type, full_name, dob, gender, province_code
        FROM vaxcred_import_stage WHERE true ORDER BY citizen_id, seq
        ON CONFLICT (citizen_id) DO NOTHING""",
    """INSERT INTO doses (person_id, dose_number, date, site_id, vaccine, lot)
        SELECT p.id, s.dose_number, s.date, s.site_id, s.vaccine, s.lot
        FROM vaxcred_import_stage AS s CROSS JOIN persons AS p WHERE p.citizen_id = s.citizen_id
        ORDER BY p.id, s.dose_number, s.date, s.site_id, s.seq
        ON CONFLICT (person_id, dose_number, date, site_id) DO NOTHING""",
)


class BatchCounts(NamedTuple):
    inserted: int  #: doses newly stored
    person_conflicts: int  #: rows whose person is stored with another name / dob / gender / ID type
    dose_conflicts: int  #: rows whose natural key is stored with another vaccine or lot


class NewSites:
    """Stores, in a short transaction of its own ahead of a batch, the batch's sites not stored yet (PostgreSQL).

    For an import on several connections (:mod:`~vaxcred.pipeline.records.streams`): a site that two streams'
    batches both insert would otherwise make one batch transaction wait for the other's commit (``ON CONFLICT``
    waits for an uncommitted conflicting row), serialising the streams while new sites keep appearing. Committed
    first, a site is found by the batch's own ``INSERT … ON CONFLICT DO NOTHING`` without a wait; two streams'
    site transactions wait on each other at most for one short statement, in site order (no deadlock). A site so
    committed stays if its batch then fails (with its ID only, as an import creates it; the re-run's rows use it).
    Remembers the sites it committed or found, so that a batch of known sites costs no round trip."""

    def __init__(self) -> None:
        self._known: set[str] = set()

    def store(self, conn: Connection, rows: Sequence[StagedRow]) -> None:
        new = sorted({row[10] for row in rows}.difference(self._known))
        if not new:
            return
        with conn.begin(), driver_errors(conn) as driver:
            driver.execute(_PG_SITES, (new,))
        if len(self._known) + len(new) > _KNOWN_SITES_MAX:
            self._known.clear()
        self._known.update(new)


class StoredKeys:
    """Whether a batch of this import (on one connection) has met a natural key already stored (PostgreSQL).

    Until one has, each batch first tries a plain ``INSERT`` of its doses (no speculative insertion); the first
    batch that meets a stored natural key is stored by the ``ON CONFLICT`` statements, and so is every later
    batch (a re-import: most batches would fail again).
    ``fallbacks`` counts the batches that tried and fell back (at most one a connection)."""

    def __init__(self) -> None:
        self.met = False
        self.fallbacks = 0


def prepare(conn: Connection) -> None:
    """Create this connection's staging table (once; it lives as long as the connection)."""
    with conn.begin(), driver_errors(conn) as driver:
        driver.execute(_PG_CREATE if conn.dialect.name == "postgresql" else _SQLITE_CREATE)


def canceller(conn: Connection) -> Callable[[], None]:
    """A function that stops the statement running on ``conn``, called from another thread: PostgreSQL's cancel
    request, SQLite's ``sqlite3_interrupt``. The statement then fails and its transaction rolls back; with
    nothing running it does nothing."""
    driver: Any = conn.connection.driver_connection
    if conn.dialect.name == "postgresql":
        return lambda: driver.cancel_safe(timeout=_CANCEL_SECONDS)
    interrupt: Callable[[], None] = driver.interrupt
    return interrupt


def store_batch(conn: Connection, rows: Sequence[StagedRow], keys: StoredKeys | None = None) -> BatchCounts:
    """Store ``rows`` (in file order) inside the caller's transaction on ``conn`` (prepared by :func:`prepare`).
    ``keys``: the import's :class:`StoredKeys` on this connection (PostgreSQL: plain inserts while no key was met;
    without it, ``ON CONFLICT`` always)."""
    if not rows:
        return BatchCounts(0, 0, 0)
    with driver_errors(conn) as driver:
        if conn.dialect.name == "postgresql":
            return _store_postgres(driver, rows, keys)
        return _store_sqlite(driver, rows)


def _copy_text(rows: Sequence[StagedRow]) -> str | None:
    """The batch in ``COPY``'s text format when no cell needs escaping — what psycopg's ``write_row`` writes for
    it, at ~0.7 instead of ~1.7 µs a row —, else ``None`` (psycopg escapes row by row). Checked on the whole
    text: exactly one tab between cells and one line feed a row, a backslash only in the ``\\N`` of each
    missing province code, no carriage return, no NUL; a cell holding any of them fails a count, and so does a
    missing value in another column (it would read ``None``: psycopg sends it as NULL, refused there)."""
    nulls = sum([row.count(None) for row in rows])
    text = "".join(
        [
            f"{a}\t{b}\t{c}\t{d}\t{e}\t{_COPY_NULL if f is None else f}\t{g}\t{h}\t{i}\t{j}\t{k}\n"
            for a, b, c, d, e, f, g, h, i, j, k in rows
        ]
    )
    if (
        text.count("\\") != nulls
        or text.count("\t") != 10 * len(rows)
        or text.count("\n") != len(rows)
        or "\r" in text
        or "\x00" in text
    ):
        return None
    return text


def _run_script(cursor: Any, script: str) -> tuple[int, ...]:
    """Run a store script (no parameters: one simple-protocol round trip); its one result row."""
    cursor.execute(script)
    results: list[tuple[int, ...]] = []
    while True:
        if cursor.description is not None:
            results.append(cursor.fetchone())
        if not cursor.nextset():
            break
    (result,) = results
    return result


def _store_postgres(driver: Any, rows: Sequence[StagedRow], stored_keys: StoredKeys | None) -> BatchCounts:
    with driver.cursor() as cursor:
        with cursor.copy(_PG_COPY) as copy:
            text = _copy_text(rows)
            if text is not None:
                copy.write(text)
            else:
                for row in rows:
                    copy.write_row(row)
        result: tuple[int, ...] | None = None
        if stored_keys is not None and not stored_keys.met:
            try:
                result = _run_script(cursor, _PG_PLAIN_SCRIPT)
            except Exception as error:  # the driver's; only a stored key means "use ON CONFLICT"
                if getattr(error, "sqlstate", None) != _UNIQUE_VIOLATION:
                    raise
                cursor.execute(_PG_PLAIN_UNDO)
                stored_keys.met = True
                stored_keys.fallbacks += 1
        if result is None:
            result = _run_script(cursor, _PG_SCRIPT)
        inserted, keys, person_conflicts, dose_conflicts = result
        if inserted != keys:  # some keys were stored before (a re-import): compare with the stored doses
            person_conflicts, dose_conflicts = cursor.execute(_COUNT_CONFLICTS).fetchone()
    return BatchCounts(int(inserted), int(person_conflicts), int(dose_conflicts))


def _store_sqlite(driver: Any, rows: Sequence[StagedRow]) -> BatchCounts:
    cursor = driver.cursor()
    try:
        cursor.executemany(_SQLITE_STAGE, rows)
        inserted = 0
        for statement in _SQLITE_STATEMENTS:
            cursor.execute(statement)
            inserted = cursor.rowcount  # the last statement's: the doses stored
        count = _SQLITE_COUNT_PERSON_CONFLICTS if inserted == len(rows) else _COUNT_CONFLICTS
        person_conflicts, dose_conflicts = cursor.execute(count).fetchone()
        cursor.execute("DELETE FROM vaxcred_import_stage")
    finally:
        cursor.close()
    return BatchCounts(inserted, int(person_conflicts), int(dose_conflicts))
