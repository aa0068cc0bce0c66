"""The storage layer on both backends: migrations, constraints, times, transactions, privacy of errors."""

from __future__ import annotations

import datetime as dt
import sqlite3
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection

from tests.pipeline import pg
from vaxcred.storage import Database, open_database
from vaxcred.storage.database import SQLITE_BUSY_TIMEOUT_MS
from vaxcred.storage.schema import (
    STATEMENT_CHECKED_KEYS,
    PassportStatus,
    doses,
    metadata,
    passports,
    persons,
    registry_checks,
    site_signatures,
    sites,
)

CITIZEN_ID = "001090012345"
ICT = dt.timezone(dt.timedelta(hours=7))
NOW = dt.datetime(2022, 4, 15, 9, 30, tzinfo=ICT)


def _person(conn: Connection, citizen_id: str = CITIZEN_ID) -> int:
    conn.execute(sa.insert(sites).values(site_id="HN-001", province_code="001"))
    return int(
        conn.execute(
            sa.insert(persons)
            .values(
                citizen_id=citizen_id,
                id_type="CCCD",
                full_name="Nguyễn Văn An",
                dob="1990-05-17",
                gender="M",
                province_code="001",
            )
            .returning(persons.c.id)
        ).scalar_one()
    )


def _dose(person_id: int, **overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "person_id": person_id,
        "dose_number": 1,
        "date": dt.date(2021, 8, 1),
        "site_id": "HN-001",
        "vaccine": "Comirnaty",
        "lot": "FK1234",
    }
    values.update(overrides)
    return values


def _check(conn: Connection, person_id: int, checked_at: dt.datetime = NOW) -> int:
    return int(
        conn.execute(
            sa.insert(registry_checks)
            .values(person_id=person_id, checked_at=checked_at, status="VERIFIED", source="table")
            .returning(registry_checks.c.id)
        ).scalar_one()
    )


def _passport(person_id: int, check_id: int, uvci: str, **overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "person_id": person_id,
        "uvci": uvci,
        "hc1": "HC1:...",
        "kid": b"12345678",
        "iat": NOW,
        "exp": NOW + dt.timedelta(days=365),
        "issued_at": NOW,
        "registry_check_id": check_id,
    }
    values.update(overrides)
    return values


def test_migrate_creates_every_table_from_an_empty_database(empty_database: Database) -> None:
    """An empty database has no revision; migrate() brings it to head with every table of the schema."""
    assert empty_database.current_revision() is None
    empty_database.migrate()
    assert empty_database.current_revision() == empty_database.head_revision() == "0013"
    tables = set(sa.inspect(empty_database.engine).get_table_names())
    assert tables == set(metadata.tables) | {"alembic_version"}


def test_migrate_twice_changes_nothing(database: Database) -> None:
    """Running the migrations again on a migrated database is a no-op."""
    database.migrate()
    assert database.current_revision() == "0013"


def test_migrations_match_the_table_definitions(database: Database) -> None:
    """The migrated schema is exactly schema.py (columns, types, nullability, indexes, constraints); on
    PostgreSQL less the foreign keys that statement triggers check instead (migration 0011), and those only."""
    with database.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diffs = compare_metadata(context, metadata)
    if database.backend == "postgresql":
        assert all(kind == "add_fk" for kind, *_ in diffs), diffs
        assert {diff[1].name for diff in diffs} == STATEMENT_CHECKED_KEYS
    else:
        assert diffs == []


def test_migrations_ship_inside_the_package() -> None:
    """env.py and the revisions are found through importlib.resources (no alembic.ini on disk)."""
    root = resources.files("vaxcred.storage") / "migrations"
    assert (root / "env.py").is_file()
    assert (root / "versions" / "0001_initial.py").is_file()


def test_dose_natural_key_is_unique(database: Database) -> None:
    """A second dose with the same (person, dose number, date, site) is refused; another dose number is not."""
    with database.begin() as conn:
        person_id = _person(conn)
        conn.execute(sa.insert(doses), [_dose(person_id), _dose(person_id, dose_number=2)])
    with pytest.raises(sa.exc.IntegrityError), database.begin() as conn:
        conn.execute(sa.insert(doses), [_dose(person_id, lot="OTHER-LOT")])
    with database.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(doses)).scalar_one() == 2


def test_insert_ignoring_conflicts_returns_only_new_rows(database: Database) -> None:
    """ON CONFLICT DO NOTHING on the natural key skips stored doses; RETURNING yields only inserted ones."""
    with database.begin() as conn:
        person_id = _person(conn)
        statement = database.insert_ignoring_conflicts(
            doses, on=["person_id", "dose_number", "date", "site_id"]
        ).returning(doses.c.id)
        first = conn.execute(statement, [_dose(person_id), _dose(person_id)]).all()
        second = conn.execute(statement, [_dose(person_id), _dose(person_id, dose_number=2)]).all()
    assert (len(first), len(second)) == (1, 1)


def test_citizen_id_is_unique(database: Database) -> None:
    """Two persons cannot share a citizen ID."""
    with database.begin() as conn:
        _person(conn)
    with pytest.raises(sa.exc.IntegrityError), database.begin() as conn:
        conn.execute(
            sa.insert(persons).values(
                citizen_id=CITIZEN_ID, id_type="CCCD", full_name="X Y", dob="", gender=""
            )
        )


def test_foreign_keys_are_enforced(database: Database) -> None:
    """A dose of an unknown person is refused (SQLite too: foreign_keys=ON on every connection)."""
    with database.begin() as conn:
        _person(conn)
    with pytest.raises(sa.exc.IntegrityError), database.begin() as conn:
        conn.execute(sa.insert(doses), [_dose(999_999)])


def test_states_are_checked(database: Database) -> None:
    """A passport status outside active/revoked is refused by a CHECK constraint."""
    with database.begin() as conn:
        person_id = _person(conn)
        check_id = _check(conn, person_id)
    bad = _passport(person_id, check_id, "URN:UVCI:01:VN:A", status="x")
    with pytest.raises(sa.exc.IntegrityError), database.begin() as conn:
        conn.execute(sa.insert(passports).values(bad))


def test_one_active_passport_per_person(database: Database) -> None:
    """A second active passport is refused; once the first is revoked its successor is accepted."""
    with database.begin() as conn:
        person_id = _person(conn)
        check_id = _check(conn, person_id)
        first = conn.execute(
            sa.insert(passports)
            .values(_passport(person_id, check_id, "URN:UVCI:01:VN:A"))
            .returning(passports.c.id)
        ).scalar_one()
    with pytest.raises(sa.exc.IntegrityError), database.begin() as conn:
        conn.execute(sa.insert(passports).values(_passport(person_id, check_id, "URN:UVCI:01:VN:B")))
    with database.begin() as conn:
        conn.execute(
            sa.update(passports)
            .where(passports.c.id == first)
            .values(status=PassportStatus.REVOKED.value, revoked_at=NOW)
        )
        conn.execute(
            sa.insert(passports).values(_passport(person_id, check_id, "URN:UVCI:01:VN:B", supersedes=first))
        )
    with database.connect() as conn:
        statuses = conn.execute(sa.select(passports.c.status).order_by(passports.c.id)).scalars().all()
    assert statuses == ["revoked", "active"]


def test_one_current_site_signature_per_dose(database: Database) -> None:
    """Signing a dose again is ignored while its signature is current; after superseding, a new one lands."""
    with database.begin() as conn:
        person_id = _person(conn)
        dose_id = conn.execute(sa.insert(doses).values(_dose(person_id)).returning(doses.c.id)).scalar_one()
        signature = {"dose_id": dose_id, "site_id": "HN-001", "kid": b"k", "cose": b"\xd2", "signed_at": NOW}
        statement = database.insert_ignoring_conflicts(
            site_signatures, on=["dose_id"], where=site_signatures.c.superseded_at.is_(None)
        ).returning(site_signatures.c.id)
        assert len(conn.execute(statement, [signature]).all()) == 1
        assert conn.execute(statement, [signature]).all() == []
        conn.execute(sa.update(site_signatures).values(superseded_at=NOW))
        assert len(conn.execute(statement, [signature]).all()) == 1


def test_times_come_back_as_aware_utc(database: Database) -> None:
    """A time stored in UTC+7 reads back as the same instant, in UTC."""
    with database.begin() as conn:
        check_id = _check(conn, _person(conn), checked_at=NOW)
    with database.connect() as conn:
        stored = conn.execute(
            sa.select(registry_checks.c.checked_at).where(registry_checks.c.id == check_id)
        ).scalar_one()
    assert stored == NOW
    assert stored.utcoffset() == dt.timedelta(0)


def test_naive_times_are_refused(database: Database) -> None:
    """A naive datetime is a caller mistake (ValueError), never silently taken as local time."""
    with pytest.raises(sa.exc.StatementError) as caught, database.begin() as conn:
        _check(conn, _person(conn), checked_at=dt.datetime(2022, 4, 15, 9, 30))
    assert isinstance(caught.value.orig, ValueError)


def test_times_order_by_instant(database: Database) -> None:
    """Times written from different zones sort by instant (SQLite stores UTC text)."""
    early = dt.datetime(2022, 4, 15, 8, 0, tzinfo=ICT)  # 01:00 UTC
    late = dt.datetime(2022, 4, 15, 2, 0, tzinfo=dt.UTC)
    with database.begin() as conn:
        person_id = _person(conn)
        _check(conn, person_id, checked_at=late)
        _check(conn, person_id, checked_at=early)
    with database.connect() as conn:
        ordered = conn.execute(sa.select(registry_checks.c.checked_at).order_by("checked_at")).scalars().all()
    assert ordered == [early, late]


def test_a_failed_transaction_leaves_nothing(database: Database) -> None:
    """An exception inside begin() rolls the whole transaction back."""

    def crash_midway() -> None:
        with database.begin() as conn:
            _person(conn)
            raise RuntimeError("crash")

    with pytest.raises(RuntimeError):
        crash_midway()
    with database.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(persons)).scalar_one() == 0


def test_database_errors_do_not_carry_personal_data(database: Database) -> None:
    """A violation's message, repr and chained cause hold no citizen ID or name (parameters, DETAIL withheld)."""
    with database.begin() as conn:
        _person(conn)
    with pytest.raises(sa.exc.IntegrityError) as caught, database.begin() as conn:
        conn.execute(
            sa.insert(persons).values(
                citizen_id=CITIZEN_ID, id_type="CCCD", full_name="Trần Thị Bích", dob="1985", gender="F"
            )
        )
    chain = [caught.value, caught.value.__cause__, caught.value.__context__, caught.value.orig]
    text = "".join(f"{e}{e!r}" for e in chain if e is not None)
    assert CITIZEN_ID not in text
    assert "Trần" not in text
    assert "citizen_id" in text  # which constraint failed is still said


def test_sqlite_connections_use_wal_foreign_keys_and_busy_timeout(tmp_path: Path) -> None:
    """Every SQLite connection runs in WAL mode with foreign keys on and a busy timeout."""
    db = open_database(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        with db.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == SQLITE_BUSY_TIMEOUT_MS
    finally:
        db.dispose()


def test_sqlite_write_transactions_take_the_lock_at_begin(tmp_path: Path) -> None:
    """begin() is BEGIN IMMEDIATE: it holds the write lock from the start, so a second writer must wait."""
    path = tmp_path / "x.db"
    db = open_database(f"sqlite:///{path}")
    try:
        db.migrate()
        with db.begin():
            other = sqlite3.connect(path, timeout=0.05, isolation_level=None)
            try:
                with pytest.raises(sqlite3.OperationalError, match="locked"):
                    other.execute("BEGIN IMMEDIATE")
            finally:
                other.close()
    finally:
        db.dispose()


@pytest.mark.parametrize("url", ["mysql://u@h/db", "oracle://x", "sqlite+aiosqlite:///x.db"])
def test_open_database_refuses_other_backends(url: str) -> None:
    """Only SQLite and PostgreSQL (psycopg 3) are supported."""
    with pytest.raises(ValueError, match="unsupported"):
        open_database(url)


def test_postgres_urls_use_psycopg3() -> None:
    """postgresql:// and postgres:// mean psycopg 3 (psycopg2 is not a dependency)."""
    for url in ("postgresql://u@127.0.0.1/db", "postgres://u@127.0.0.1/db"):
        db = open_database(url)
        assert db.engine.url.drivername == "postgresql+psycopg"
        assert db.backend == "postgresql"
        db.dispose()


def test_missing_postgresql_fails_loudly_with_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the server binaries the fixture fails (never skips silently) and says how to install them."""
    monkeypatch.setattr(pg, "PG_BIN_GLOB", "/nonexistent/postgresql/*/bin")
    with pytest.raises(pg.PostgresMissing, match=r"make test.*VAXCRED_SKIP_PG=1"):
        pg.find_pg_bin()


def test_a_passport_is_superseded_at_most_once(database: Database) -> None:
    """Migration 0002: two passports cannot both supersede the same predecessor."""
    indexes = {ix["name"]: ix for ix in sa.inspect(database.engine).get_indexes("passports")}
    assert indexes["uq_passports_supersedes"]["unique"]


def test_for_batches_plans_with_indexes_in_every_transaction_on_postgresql(database: Database) -> None:
    """Database.for_batches: on PostgreSQL each transaction (read or write) runs with sequential scans, hash and
    merge joins and materialisation off, and only that database's; the plain one keeps the planner's defaults."""
    batches = database.for_batches()
    settings = sa.text(
        "SELECT current_setting('enable_seqscan'), current_setting('enable_hashjoin'), "
        "current_setting('enable_material')"
    )
    if database.backend != "postgresql":
        with batches.begin() as conn:
            assert conn.execute(sa.text("SELECT 1")).scalar_one() == 1
        return
    with batches.connect() as conn:
        assert tuple(conn.execute(settings).one()) == ("off", "off", "off")
    with batches.begin() as conn:
        assert tuple(conn.execute(settings).one()) == ("off", "off", "off")
    with database.connect() as conn:
        assert tuple(conn.execute(settings).one()) == ("on", "on", "on")
