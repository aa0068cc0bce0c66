"""PostgreSQL: the foreign keys checked by statement triggers (migration 0011) guarantee what the foreign keys did.

Each converted key refuses an orphan row by plain SQL with SQLSTATE 23503 and the constraint's name — one row, or
one bad row among good ones in a multi-row statement (nothing of it stored) —, and a key column updated to a
missing parent; the parents refuse DELETE, TRUNCATE and a changed key (the unlocked check cannot be raced). A real
server (the suite's cluster). Without the triggers (the keys dropped and nothing in their place) every refusal
test fails; the parent tests fail on 0010's foreign keys too (they let an unreferenced parent go).
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.engine import Connection

from tests.pipeline.pg import PostgresCluster
from vaxcred.storage import Database, open_database
from vaxcred.storage.database import _alembic_config
from vaxcred.storage.schema import (
    KEPT_PARENTS,
    STATEMENT_CHECKED_KEYS,
    doses,
    issuance_claims,
    passports,
    persons,
    registry_checks,
    site_certificates,
    site_signature_batches,
    site_signatures,
    sites,
)

AT = dt.datetime(2022, 4, 15, 9, 30, tzinfo=dt.UTC)
SECRET_CID = "001090099887"  # a citizen ID: never in an error
MISSING = 987_654_321  # an id no parent row has
CERT = bytes(range(32))
OTHER_CERT = bytes(32)


@pytest.fixture
def pg_db(pg_database: Database) -> Database:
    return pg_database


class Rows:
    """One of each parent: a site, a person, a dose, a certificate, a batch (its id), a member signature."""

    def __init__(self, conn: Connection, site: str = "HN-001", citizen_id: str = SECRET_CID) -> None:
        self.site = site
        conn.execute(sa.insert(sites).values(site_id=site))
        self.person = conn.execute(
            sa.insert(persons)
            .values(
                citizen_id=citizen_id, id_type="CCCD", full_name="Nguyễn Văn An", dob="1990-05-17", gender="M"
            )
            .returning(persons.c.id)
        ).scalar_one()
        self.dose = conn.execute(
            sa.insert(doses).values(**dose_row(self.person, site)).returning(doses.c.id)
        ).scalar_one()
        cert = CERT if site == "HN-001" else OTHER_CERT
        self.certificate = cert
        conn.execute(
            sa.insert(site_certificates).values(
                fingerprint=cert, site_id=site, kid=b"k" * 32, der=b"der", not_before=AT, not_after=AT
            )
        )
        self.check = conn.execute(
            sa.insert(registry_checks).values(**check_row(self.person)).returning(registry_checks.c.id)
        ).scalar_one()
        self.batch = conn.execute(
            sa.insert(site_signature_batches)
            .values(site_id=site, certificate=cert, kid=b"k" * 32, head=b"head", size=1, signed_at=AT)
            .returning(site_signature_batches.c.id)
        ).scalar_one()


def dose_row(person_id: int, site: str = "HN-001", number: int = 1) -> dict[str, Any]:
    return {
        "person_id": person_id,
        "dose_number": number,
        "date": dt.date(2021, 8, 1),
        "site_id": site,
        "vaccine": "Comirnaty",
        "lot": "FK1234",
    }


def member_row(rows: Rows, **overrides: Any) -> dict[str, Any]:
    """A batch member as stored since 0012 (its site, certificate and kid are its batch's)."""
    values: dict[str, Any] = {
        "dose_id": rows.dose,
        "cose": b"payload",
        "signed_at": AT,
        "batch_id": rows.batch,
        "leaf_index": 0,
        "proof": b"",
        "superseded_at": None,
    }
    values.update(overrides)
    return values


def copies(rows: Rows) -> dict[str, Any]:
    """What a member repeated of its batch until 0012 (a v1 row's own site, certificate and kid)."""
    return {"site_id": rows.site, "certificate": rows.certificate, "kid": b"k" * 32}


def check_row(person_id: int) -> dict[str, Any]:
    return {"person_id": person_id, "checked_at": AT, "status": "VERIFIED", "source": "table"}


def passport_row(person_id: int, check_id: int, uvci: str = "URN:UVCI:01:VN:A") -> dict[str, Any]:
    return {
        "person_id": person_id,
        "uvci": uvci,
        "hc1": "HC1:...",
        "kid": b"12345678",
        "iat": AT,
        "exp": AT,
        "issued_at": AT,
        "status": "revoked",  # any number a person (one active)
        "registry_check_id": check_id,
    }


def claim_row(person_id: int) -> dict[str, Any]:
    return {"person_id": person_id, "state": "claimed", "worker": "w", "claimed_at": AT}


def refused(db: Database, statement: Callable[[Connection], object], constraint: str | None = None) -> str:
    """Runs ``statement`` in its own transaction; asserts SQLSTATE 23503 (and the constraint's name); the
    error's text."""
    with pytest.raises(sa.exc.IntegrityError) as caught, db.begin() as conn:
        statement(conn)
    error = caught.value.orig
    assert isinstance(error, psycopg.errors.ForeignKeyViolation), error
    assert error.sqlstate == "23503"
    if constraint is not None:
        assert error.diag.constraint_name == constraint
    return str(caught.value)


def count(db: Database, table: sa.Table) -> int:
    with db.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


@pytest.fixture
def rows(pg_db: Database) -> Rows:
    with pg_db.begin() as conn:
        return Rows(conn)


# (constraint, table, a good row, the same row with its key naming no parent)
CASES: dict[str, tuple[sa.Table, Callable[[Rows], dict[str, Any]], Callable[[Rows], dict[str, Any]]]] = {
    "fk_site_signatures_dose_id_doses": (
        site_signatures,
        lambda r: member_row(r),
        lambda r: member_row(r, dose_id=MISSING),
    ),
    "fk_site_signatures_batch_id_site_signature_batches": (
        site_signatures,
        lambda r: member_row(r),
        lambda r: member_row(r, batch_id=MISSING, superseded_at=AT),  # superseded: not the current one
    ),
    "fk_doses_person_id_persons": (
        doses,
        lambda r: dose_row(r.person, number=2),
        lambda r: dose_row(MISSING, number=2),
    ),
    "fk_doses_site_id_sites": (
        doses,
        lambda r: dose_row(r.person, number=2),
        lambda r: dose_row(r.person, site="HN-SECRET", number=3),
    ),
    "fk_registry_checks_person_id_persons": (
        registry_checks,
        lambda r: check_row(r.person),
        lambda r: check_row(MISSING),
    ),
    "fk_passports_person_id_persons": (
        passports,
        lambda r: passport_row(r.person, r.check, f"URN:UVCI:01:VN:{r.person}"),
        lambda r: passport_row(MISSING, r.check, "URN:UVCI:01:VN:BAD"),
    ),
    "fk_passports_registry_check_id_registry_checks": (
        passports,
        lambda r: passport_row(r.person, r.check, f"URN:UVCI:01:VN:{r.person}"),
        lambda r: passport_row(r.person, MISSING, "URN:UVCI:01:VN:BAD"),
    ),
    "fk_issuance_claims_person_id_persons": (
        issuance_claims,
        lambda r: claim_row(r.person),
        lambda r: claim_row(MISSING),
    ),
}


def test_every_statement_checked_key_has_a_case() -> None:
    assert set(CASES) == STATEMENT_CHECKED_KEYS


def test_the_keys_are_triggers_not_foreign_keys(pg_db: Database) -> None:
    """At head none of the converted keys is a foreign key any more; each has its insert and update trigger."""
    with pg_db.connect() as conn:
        constraints = set(
            conn.exec_driver_sql("SELECT conname FROM pg_constraint WHERE contype = 'f'").scalars()
        )
        triggers = set(conn.exec_driver_sql("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal").scalars())
    assert not constraints & STATEMENT_CHECKED_KEYS
    for name in STATEMENT_CHECKED_KEYS:
        short = "vaxcred_" + name.removeprefix("fk_")[:40]
        assert {f"{short}_ins", f"{short}_upd"} <= triggers


@pytest.mark.parametrize("constraint", sorted(CASES))
def test_an_orphan_row_is_refused(pg_db: Database, rows: Rows, constraint: str) -> None:
    """One row naming no parent: 23503 with the constraint's name; no key value in the error."""
    table, _good, bad = CASES[constraint]
    before = count(pg_db, table)
    text = refused(pg_db, lambda conn: conn.execute(sa.insert(table).values(**bad(rows))), constraint)
    for secret in (str(MISSING), "HN-SECRET", SECRET_CID):
        assert secret not in text
    assert count(pg_db, table) == before


@pytest.mark.parametrize("constraint", sorted(CASES))
def test_one_orphan_among_good_rows_fails_the_whole_statement(
    pg_db: Database, rows: Rows, constraint: str
) -> None:
    """A multi-row INSERT (one statement) with one bad row among good ones: refused, none of its rows stored; the
    good rows alone go in."""
    table, good, bad = CASES[constraint]
    with pg_db.begin() as conn:
        second = Rows(conn, site="HN-002", citizen_id="001090011111")
    good_rows = [good(rows), good(second)]
    before = count(pg_db, table)
    # one statement: INSERT … SELECT over a VALUES list (executemany might send one statement a row)
    batch = [good_rows[0], bad(rows), good_rows[1]]
    refused(pg_db, lambda conn: conn.execute(sa.insert(table).values(batch)), constraint)
    assert count(pg_db, table) == before
    with pg_db.begin() as conn:
        conn.execute(sa.insert(table).values(good_rows))
    assert count(pg_db, table) == before + 2


def test_a_null_batch_key_is_not_checked(pg_db: Database, rows: Rows) -> None:
    """MATCH SIMPLE as before: a row with its batch NULL (a v1 signature) is not checked against the batches."""
    with pg_db.begin() as conn:
        conn.execute(
            sa.insert(site_signatures).values(
                **member_row(rows, batch_id=None, **copies(rows) | {"certificate": OTHER_CERT})
            )
        )
    assert count(pg_db, site_signatures) == 1


def test_copy_is_checked(pg_db: Database, rows: Rows) -> None:
    """COPY fills the transition table too: an orphan dose by COPY is refused."""

    def copy() -> None:
        with pg_db.begin() as conn:
            cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
            with cursor.copy(
                "COPY doses (person_id, dose_number, date, site_id, vaccine, lot) FROM STDIN"
            ) as out:
                out.write_row((MISSING, 1, dt.date(2021, 8, 1), rows.site, "Comirnaty", "FK1"))

    with pytest.raises(psycopg.errors.ForeignKeyViolation) as caught:
        copy()
    assert caught.value.diag.constraint_name == "fk_doses_person_id_persons"
    assert count(pg_db, doses) == 1


# (constraint, table, the key column(s) set to a missing parent)
UPDATES: dict[str, tuple[sa.Table, Callable[[Rows], dict[str, Any]]]] = {
    "fk_site_signatures_dose_id_doses": (site_signatures, lambda r: {"dose_id": MISSING}),
    "fk_site_signatures_batch_id_site_signature_batches": (site_signatures, lambda r: {"batch_id": MISSING}),
    "fk_doses_person_id_persons": (doses, lambda r: {"person_id": MISSING}),
    "fk_doses_site_id_sites": (doses, lambda r: {"site_id": "HN-SECRET"}),
    "fk_registry_checks_person_id_persons": (registry_checks, lambda r: {"person_id": MISSING}),
    "fk_passports_person_id_persons": (passports, lambda r: {"person_id": MISSING}),
    "fk_passports_registry_check_id_registry_checks": (passports, lambda r: {"registry_check_id": MISSING}),
    "fk_issuance_claims_person_id_persons": (issuance_claims, lambda r: {"person_id": MISSING}),
}


@pytest.mark.parametrize("constraint", sorted(UPDATES))
def test_a_key_column_updated_to_a_missing_parent_is_refused(
    pg_db: Database, rows: Rows, constraint: str
) -> None:
    """UPDATE of a key column to a value naming no parent: 23503; to an existing parent (the other rows): allowed."""
    table, missing = UPDATES[constraint]
    with pg_db.begin() as conn:
        conn.execute(sa.insert(site_signatures).values(**member_row(rows)))
        conn.execute(sa.insert(passports).values(**passport_row(rows.person, rows.check)))
        conn.execute(sa.insert(issuance_claims).values(**claim_row(rows.person)))
        second = Rows(conn, site="HN-002", citizen_id="001090011111")
    refused(pg_db, lambda conn: conn.execute(sa.update(table).values(**missing(rows))), constraint)
    existing = {
        "fk_site_signatures_dose_id_doses": {"dose_id": second.dose},
        "fk_site_signatures_batch_id_site_signature_batches": {"batch_id": second.batch},
        "fk_doses_person_id_persons": {"person_id": second.person, "dose_number": 7},
        "fk_doses_site_id_sites": {"site_id": second.site, "dose_number": 7},
        "fk_registry_checks_person_id_persons": {"person_id": second.person},
        "fk_passports_person_id_persons": {"person_id": second.person},
        "fk_passports_registry_check_id_registry_checks": {"registry_check_id": second.check},
        "fk_issuance_claims_person_id_persons": {"person_id": second.person},
    }[constraint]
    first = {
        site_signatures: site_signatures.c.dose_id == rows.dose,
        doses: doses.c.id == rows.dose,
        registry_checks: registry_checks.c.id == rows.check,
    }.get(table, sa.true())
    with pg_db.begin() as conn:
        assert conn.execute(sa.update(table).where(first).values(**existing)).rowcount == 1


PARENT_TABLES = {
    "doses": doses,
    "persons": persons,
    "sites": sites,
    "site_signature_batches": site_signature_batches,
    "registry_checks": registry_checks,
}
KEY_CHANGES: dict[str, Callable[[Rows], dict[str, Any]]] = {
    "doses": lambda r: {"id": MISSING},
    "persons": lambda r: {"id": MISSING},
    "sites": lambda r: {"site_id": "HN-009"},
    "site_signature_batches": lambda r: {"certificate": OTHER_CERT},
    "registry_checks": lambda r: {"id": MISSING},
}


def test_every_kept_parent_has_a_case() -> None:
    assert set(PARENT_TABLES) == set(KEY_CHANGES) == KEPT_PARENTS


@pytest.mark.parametrize("parent", sorted(PARENT_TABLES))
def test_a_parent_is_never_deleted_truncated_or_rekeyed(pg_db: Database, parent: str) -> None:
    """DELETE (even of a row nothing references), TRUNCATE (even CASCADE) and a changed key are refused; a no-op key
    update (``SET id = id``: the corrections' new row version) and other columns' updates are not."""
    with pg_db.begin() as conn:
        rows = Rows(conn)
        Rows(conn, site="HN-002", citizen_id="001090011111")  # an unreferenced… nothing: every row is kept
    table = PARENT_TABLES[parent]
    before = count(pg_db, table)
    refused(pg_db, lambda conn: conn.execute(sa.delete(table)))
    refused(pg_db, lambda conn: conn.exec_driver_sql(f"TRUNCATE {parent} CASCADE"))
    refused(pg_db, lambda conn: conn.execute(sa.update(table).values(**KEY_CHANGES[parent](rows))))
    assert count(pg_db, table) == before
    with pg_db.begin() as conn:
        key = next(iter(table.primary_key.columns))
        conn.execute(sa.update(table).values({key.name: key}))  # a new row version, the same key


def test_an_unreferenced_parent_is_refused_too(pg_db: Database) -> None:
    """A site nothing points to yet: its DELETE is refused all the same (a child could be inserted concurrently
    and checked before the DELETE commits: the check takes no lock)."""
    with pg_db.begin() as conn:
        conn.execute(sa.insert(sites).values(site_id="HN-777"))
    refused(pg_db, lambda conn: conn.execute(sa.delete(sites).where(sites.c.site_id == "HN-777")))
    assert count(pg_db, sites) == 1


def _foreign_keys(db: Database) -> set[str]:
    with db.connect() as conn:
        return set(conn.exec_driver_sql("SELECT conname FROM pg_constraint WHERE contype = 'f'").scalars())


def test_migration_down_and_up_with_rows(pg_cluster: PostgresCluster) -> None:
    """0010 with rows → 0011 → 0010 → 0011: the rows stay; at 0010 the foreign keys are back, validated, and
    refuse an orphan (and the parents' guards are gone: an unreferenced site can be deleted); at 0011 the
    triggers refuse it."""
    url = pg_cluster.create_database()
    db = open_database(url)
    try:
        db.migrate("0010")
        with db.begin() as conn:
            rows = Rows(conn)
            conn.execute(sa.insert(site_signatures).values(**member_row(rows, **copies(rows))))  # before 0012
            conn.execute(sa.insert(passports).values(**passport_row(rows.person, rows.check)))
            conn.execute(sa.insert(issuance_claims).values(**claim_row(rows.person)))
        assert _foreign_keys(db) >= STATEMENT_CHECKED_KEYS
        db.migrate("0011")
        assert not STATEMENT_CHECKED_KEYS & _foreign_keys(db)
        refused(db, lambda conn: conn.execute(sa.insert(doses).values(**dose_row(MISSING))))
        _downgrade(db, "0010")
        assert db.current_revision() == "0010"
        assert _foreign_keys(db) >= STATEMENT_CHECKED_KEYS
        with db.connect() as conn:
            invalid = conn.exec_driver_sql(
                "SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND NOT convalidated"
            ).scalar_one()
            triggers = conn.exec_driver_sql(
                "SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal"
            ).scalar_one()
        assert invalid == 0
        assert triggers == 0
        refused(db, lambda conn: conn.execute(sa.insert(doses).values(**dose_row(MISSING))))
        with db.begin() as conn:
            conn.execute(sa.insert(sites).values(site_id="HN-777"))
            conn.execute(sa.delete(sites).where(sites.c.site_id == "HN-777"))
        db.migrate("0011")
        assert db.current_revision() == "0011"
        refused(db, lambda conn: conn.execute(sa.insert(doses).values(**dose_row(MISSING))))
        for table, expected in (
            (persons, 1),
            (doses, 1),
            (site_signatures, 1),
            (registry_checks, 1),
            (passports, 1),
            (issuance_claims, 1),
        ):
            assert count(db, table) == expected
    finally:
        db.dispose()
        pg_cluster.drop_database(url)


def _downgrade(db: Database, revision: str) -> None:
    with db.begin() as conn, _alembic_config(conn) as config:
        command.downgrade(config, revision)


def test_a_parent_another_transaction_is_inserting(pg_db: Database, rows: Rows) -> None:
    """Concurrency, as the import's two streams meet a new site: a dose naming a site another transaction has
    inserted but not committed is refused (the foreign key did not wait either); the import's upsert of the site
    waits for that transaction, and once it committed the dose is checked against the site and stored."""
    first = pg_db.engine.raw_connection()
    second = pg_db.engine.raw_connection()
    try:
        first.cursor().execute("INSERT INTO sites (site_id) VALUES ('HN-NEW')")  # not committed
        with pytest.raises(psycopg.errors.ForeignKeyViolation):
            second.cursor().execute(
                "INSERT INTO doses (person_id, dose_number, date, site_id, vaccine, lot) "
                "VALUES (%s, 5, '2021-08-01', 'HN-NEW', 'Comirnaty', 'FK1')",
                (rows.person,),
            )
        second.rollback()
        committer = threading.Timer(0.5, first.commit)
        committer.start()
        cursor = second.cursor()
        cursor.execute("INSERT INTO sites (site_id) VALUES ('HN-NEW') ON CONFLICT (site_id) DO NOTHING")
        assert cursor.rowcount == 0  # it waited for the first transaction, whose site it found
        cursor.execute(
            "INSERT INTO doses (person_id, dose_number, date, site_id, vaccine, lot) "
            "VALUES (%s, 5, '2021-08-01', 'HN-NEW', 'Comirnaty', 'FK1')",
            (rows.person,),
        )
        second.commit()
        committer.join()
    finally:
        first.close()
        second.close()
    assert count(pg_db, doses) == 2
