"""``open_database(url)``: one engine, migrations, write transactions, conflict-ignoring inserts.

Two backends, the same schema and the same behaviour:

* ``sqlite:///path/to/vaxcred.db`` — the embedded default. Every connection sets ``journal_mode=WAL``
  (readers never block the writer), ``foreign_keys=ON`` and ``busy_timeout``; pysqlite's own transaction
  handling is switched off so that SQLAlchemy's ``BEGIN`` is real (pysqlite would defer it to the first
  write), and :meth:`Database.begin` takes the write lock at once (``BEGIN IMMEDIATE``) so two writing
  processes queue on ``busy_timeout`` instead of failing a lock upgrade.
* ``postgresql+psycopg://user@host:port/db`` (``postgresql://`` and ``postgres://`` mean the same).

Statement parameters hold citizen IDs, names and dates of birth, and must never reach a traceback or a log:
engines are built with ``hide_parameters=True``, and PostgreSQL errors lose their DETAIL / CONTEXT lines
(``Key (citizen_id)=(001090012345) already exists``, ``Failing row contains (…)``): only the primary message
and the SQLSTATE remain. (The server's own log keeps DETAIL unless it runs with ``log_error_verbosity=terse``.)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from importlib import resources
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine, ExceptionContext

from vaxcred._extras import requires_extra

if TYPE_CHECKING:
    from alembic.config import Config

__all__ = ["SQLITE_BUSY_TIMEOUT_MS", "Database", "driver_errors", "open_database", "withhold_details"]

#: how long a SQLite writer waits for the write lock held by another connection or process
SQLITE_BUSY_TIMEOUT_MS = 60_000
#: PostgreSQL advisory lock key held while migrating, so concurrent migrate() calls run one after the other
_MIGRATION_LOCK = 0x7661786372656401  # "vaxcred" + 1
_BEGIN_OPTION = "vaxcred_sqlite_begin"
_BATCH_PLANS_OPTION = "vaxcred_batch_plans"
#: PostgreSQL, every transaction of a batch stage: plan with the indexes (see Database.for_batches)
_PG_BATCH_PLANS = (
    "SET LOCAL enable_seqscan = off; SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off; "
    "SET LOCAL enable_material = off"
)


#: :meth:`Database.analyze` runs for a stage that changed at least this many rows (a small import or a re-check of
#: a few persons leaves the statistics to autovacuum)
ANALYZE_AFTER_ROWS = 10_000


class Database:
    """An engine bound to one vaxcred database; build with :func:`open_database`."""

    def __init__(self, engine: Engine) -> None:
        if engine.dialect.name not in ("sqlite", "postgresql"):
            raise ValueError(f"unsupported database backend {engine.dialect.name!r}")
        self.engine = engine

    def __repr__(self) -> str:
        return f"Database({self.engine.url.render_as_string(hide_password=True)!r})"

    def for_batches(self) -> Database:
        """This database for the batch stages (registry check, site signing, issuance), which read and write by
        id: a batch of ≤ 1,000 persons or doses along an index, never a whole table.

        On PostgreSQL every transaction then plans with the indexes (``SET LOCAL enable_seqscan``,
        ``enable_hashjoin``, ``enable_mergejoin``, ``enable_material`` off). The planner otherwise judges by
        statistics, and a table that grows from empty during a run (a fresh national database; claims and
        passports during the first issuance) has none that fit. Measured at 50,000 people on the default planner:
        whole tables scanned once per batch (``doses`` 193 times in site signing, ``registry_checks`` 129 times
        in issuance: the cost per batch grew with the tables, quadratic); with hash and merge joins off but
        materialisation allowed, issuance's anti-join on ``issuance_claims`` became a nested loop over a
        materialised list of the run's claims per person (server CPU 14 → 115 s). With all four off, every
        batch statement walks an index: server CPU registry check 2.4 → 1.9 s, site signing 7.2 → 5.6 s,
        issuance 14.1 → 5.8 s. SQLite: unchanged. The same connection pool; reports and audits keep the default
        planner.
        """
        return Database(self.engine.execution_options(**{_BATCH_PLANS_OPTION: True}))

    @property
    def backend(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self.engine.dialect.name

    @property
    def in_memory(self) -> bool:
        """An in-memory SQLite database (``sqlite://``, ``sqlite:///:memory:``, a ``mode=memory`` URI): it lives
        in this process only. A stage that would open it in worker processes (:meth:`url_for_workers`) works it
        in its own process instead: another process would open an empty database of its own."""
        if self.backend != "sqlite":
            return False
        url = self.engine.url
        return url.database in (None, "", ":memory:") or url.query.get("mode") == "memory"

    def url_for_workers(self) -> str:
        """The URL a forked or spawned worker opens this database with (password included: it crosses to the
        worker in memory and is never logged). ``ValueError`` for an :attr:`in_memory` database, which no other
        process can open."""
        if self.in_memory:
            raise ValueError("an in-memory SQLite database cannot be opened by another process")
        return self.engine.url.render_as_string(hide_password=False)

    @contextlib.contextmanager
    def begin(self) -> Iterator[Connection]:
        """A write transaction: committed when the block ends, rolled back if it raises."""
        with self.engine.connect() as conn:
            conn.execution_options(**{_BEGIN_OPTION: "IMMEDIATE"})
            with conn.begin():
                yield conn

    @contextlib.contextmanager
    def writer(self) -> Iterator[Connection]:
        """One connection for a series of write transactions (``with conn.begin():`` each, SQLite: ``BEGIN
        IMMEDIATE``), for work that keeps session state between them (a temporary staging table)."""
        with self.engine.connect() as conn:
            conn.execution_options(**{_BEGIN_OPTION: "IMMEDIATE"})
            yield conn

    @contextlib.contextmanager
    def read(self) -> Iterator[Connection]:
        """A short read transaction that **commits** when the block ends (rolled back if it raises): a batch
        stage's per-batch read. It writes nothing, so a commit ends it exactly as a rollback would; a read-only
        transaction has no xid and writes no WAL. SQLite: ``BEGIN DEFERRED``, no write lock (:meth:`begin` would
        take it).

        PostgreSQL: psycopg prepares a statement on the server once a connection has run it five times, and
        forgets every statement it prepared on that connection at each ``ROLLBACK``. A read through
        :meth:`connect` returns the connection to the pool with a rollback, so a statement read once a batch
        never reached the threshold and the server parsed, analysed and planned it again for every batch
        (measured in session 7, site signing at 100 k people: as many plans as calls, ~330 ms of planning of the
        server's ~8 s). Read here, the connection keeps it prepared from the sixth batch on
        (``tests/pipeline/test_database_read.py``)."""
        with self.engine.connect() as conn, conn.begin():
            yield conn

    @contextlib.contextmanager
    def connect(self) -> Iterator[Connection]:
        """A connection for reading (SQLite: a deferred transaction that takes no write lock)."""
        with self.engine.connect() as conn:
            yield conn

    def insert_ignoring_conflicts(
        self,
        table: sa.Table,
        *,
        on: Sequence[str],
        where: sa.ColumnElement[bool] | None = None,
    ) -> sa.Insert:
        """``INSERT … ON CONFLICT (on…) [WHERE where] DO NOTHING`` in this backend's dialect.

        ``on`` names the columns of a unique constraint or index (``where`` its predicate, for a partial
        index). Rows that would violate it are skipped; with ``.returning(…)`` only inserted rows come back.
        """
        insert = postgresql.insert if self.backend == "postgresql" else sqlite.insert
        statement = insert(table)
        return statement.on_conflict_do_nothing(index_elements=list(on), index_where=where)

    def analyze(self, *tables: sa.Table, changed_rows: int) -> None:
        """PostgreSQL: ``ANALYZE`` these tables when a stage has changed ``changed_rows`` ≥
        :data:`ANALYZE_AFTER_ROWS` rows of them in bulk, so that the next
        stage plans with statistics that fit (PostgreSQL's "Populating a Database" advice). Otherwise autovacuum
        takes them whenever a table crosses its threshold, mid-stage: seen at 100,000 people, ``persons`` analysed
        while most were still unchecked made site signing's reads ~10x slower (86 against 29 µs of server CPU a
        dose). A sample of 30,000 rows a table: about a second at a million rows. SQLite: nothing (its planner
        works from the indexes without statistics, and ``ANALYZE`` would read every index)."""
        if self.backend != "postgresql" or not tables or changed_rows < ANALYZE_AFTER_ROWS:
            return
        names = ", ".join(self.engine.dialect.identifier_preparer.format_table(t) for t in tables)
        with self.begin() as conn:
            conn.exec_driver_sql(f"ANALYZE {names}")

    def migrate(self, revision: str = "head") -> None:
        """Upgrade the schema to ``revision`` (Alembic, programmatic: no alembic.ini), in one transaction."""
        with self.begin() as conn:
            if self.backend == "postgresql":
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_MIGRATION_LOCK)))
            with _alembic_config(conn) as config:
                from alembic import command

                command.upgrade(config, revision)

    def current_revision(self) -> str | None:
        """The schema revision the database is at (``None`` for an empty database)."""
        from alembic.runtime.migration import MigrationContext

        with self.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    def head_revision(self) -> str | None:
        """The newest revision this version of vaxcred knows."""
        from alembic.script import ScriptDirectory

        with self.connect() as conn, _alembic_config(conn) as config:
            return ScriptDirectory.from_config(config).get_current_head()

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.dispose()


@contextlib.contextmanager
def _alembic_config(conn: Connection) -> Iterator[Config]:
    # Alembic is imported where a migration or a revision is asked for, not with the module: a stage's worker
    # process opens the database and never migrates (importing it there cost ~2 s of CPU a process when no
    # bytecode is cached)
    from alembic.config import Config

    with resources.as_file(resources.files("vaxcred.storage") / "migrations") as script_location:
        config = Config()
        config.set_main_option("script_location", str(script_location))
        config.set_main_option("path_separator", "os")
        config.attributes["connection"] = conn
        yield config


def open_database(url: str = "sqlite:///vaxcred.db", **engine_options: Any) -> Database:
    """Open (not migrate) the database at ``url``: ``sqlite:///path`` or ``postgresql+psycopg://…``.

    ``engine_options`` go to :func:`sqlalchemy.create_engine` (``pool_size``, ``echo``, …).
    """
    parsed = sa.make_url(url)
    if parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg"):
        parsed = parsed.set(drivername="postgresql+psycopg")
        options: dict[str, Any] = {"hide_parameters": True, "pool_pre_ping": True}
        options.update(engine_options)
        with requires_extra("postgres", feature="PostgreSQL storage"):  # the dialect imports psycopg here
            engine = sa.create_engine(parsed, **options)
        _withhold_postgres_details(engine)
        _configure_postgres(engine)
        return Database(engine)
    if parsed.drivername in ("sqlite", "sqlite+pysqlite"):
        options = {"hide_parameters": True}
        options.update(engine_options)
        engine = sa.create_engine(parsed, **options)
        _configure_sqlite(engine)
        return Database(engine)
    raise ValueError(
        f"unsupported database URL scheme {parsed.drivername!r}: use sqlite:///path or postgresql+psycopg://…"
    )


def _configure_sqlite(engine: Engine) -> None:
    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # pysqlite would otherwise BEGIN only before the first write and COMMIT before DDL
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA foreign_keys = ON")
            cursor.execute("PRAGMA journal_mode = WAL")
        finally:
            cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get(_BEGIN_OPTION, "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {'IMMEDIATE' if mode == 'IMMEDIATE' else 'DEFERRED'}")


def _configure_postgres(engine: Engine) -> None:
    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        if conn.get_execution_options().get(_BATCH_PLANS_OPTION):
            conn.exec_driver_sql(_PG_BATCH_PLANS)


def _withhold_postgres_details(engine: Engine) -> None:
    @sa.event.listens_for(engine, "handle_error")
    def _on_error(context: ExceptionContext) -> BaseException | None:
        original = context.original_exception
        if not withhold_details(original):
            return None
        wrapped = context.sqlalchemy_exception
        if not isinstance(wrapped, sa.exc.DBAPIError) or not isinstance(original, Exception):
            return None
        return type(wrapped)(
            wrapped.statement,
            None,
            original,
            hide_parameters=True,
            connection_invalidated=wrapped.connection_invalidated,
        )


@contextlib.contextmanager
def driver_errors(conn: Connection) -> Iterator[Any]:
    """The driver's own connection under ``conn`` (``COPY``, ``executemany`` without SQLAlchemy's per-row
    parameter processing), inside ``conn``'s transaction; its errors re-raised as SQLAlchemy's
    (``OperationalError`` …) with PostgreSQL details withheld and no parameters shown."""
    dbapi_error: type[Exception] = conn.dialect.loaded_dbapi.Error
    try:
        yield conn.connection.driver_connection
    except dbapi_error as e:
        withhold_details(e)
        raise sa.exc.DBAPIError.instance(None, None, e, dbapi_error, hide_parameters=True) from e


def withhold_details(error: BaseException) -> bool:
    """Cut a PostgreSQL error's message to its primary line and SQLSTATE, in place (DETAIL / CONTEXT lines may
    quote row values: ``Key (citizen_id)=(…)``, ``COPY …, line 3: "…"``); False if it is no server error.

    The engine does this for statements run through SQLAlchemy; code using the driver directly (``COPY``)
    calls it on what it catches."""
    diag = getattr(error, "diag", None)  # psycopg.Error
    primary = getattr(diag, "message_primary", None)
    if not primary:
        return False
    sqlstate = getattr(diag, "sqlstate", None) or "?"
    # the chained original is printed in tracebacks too: rewrite it in place
    error.args = (f"{primary} [SQLSTATE {sqlstate}; details withheld: they may hold personal data]",)
    return True
