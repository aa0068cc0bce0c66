"""Migration 0010 (issuance writes less: ``ix_issuance_claims_state_claimed_at`` and ``ix_passport_doses_dose_id``
dropped, ``ix_passports_person_id`` narrowed to revoked passports, ``issuance_claims`` at fillfactor 50 on
PostgreSQL) on both backends, up and down with rows present; and what it is for: a claim turning ``done`` is a
HOT update on PostgreSQL, and the predecessor lookup still finds its index."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command

from vaxcred.pipeline.corrections import predecessors_of
from vaxcred.storage import Database
from vaxcred.storage.database import _alembic_config
from vaxcred.storage.schema import issuance_claims, passport_doses, passports, persons, registry_checks

AT = dt.datetime(2022, 4, 15, 9, 0, tzinfo=dt.UTC)
PEOPLE = 300

#: index name → (table, present at 0009, present at 0010)
INDEXES = {
    "ix_issuance_claims_state_claimed_at": ("issuance_claims", True, False),
    "ix_passport_doses_dose_id": ("passport_doses", True, False),
    "ix_passports_person_id": ("passports", True, False),
    "ix_passports_revoked_person_id": ("passports", False, True),
    "uq_passports_active_person": ("passports", True, True),
}
TABLES = (persons, registry_checks, passports, passport_doses, issuance_claims)


def _indexes(db: Database) -> set[str]:
    inspector = sa.inspect(db.engine)
    tables = {table for table, _, _ in INDEXES.values()}
    return {index["name"] or "" for table in tables for index in inspector.get_indexes(table)}


def _expect(db: Database, revision: str) -> None:
    present = _indexes(db)
    for name, (_, at_0009, at_0010) in INDEXES.items():
        assert (name in present) is (at_0010 if revision == "0010" else at_0009), (revision, name)


def _fillfactor(db: Database) -> list[str] | None:
    with db.connect() as conn:
        options: list[str] | None = conn.exec_driver_sql(
            "SELECT reloptions FROM pg_class WHERE relname = 'issuance_claims'"
        ).scalar_one()
    return options


def _populate(db: Database) -> None:
    """Persons, each with a check, a passport (every tenth also an earlier revoked one) and links; a claim each."""
    with db.begin() as conn:
        conn.execute(
            persons.insert(),
            [
                {"id": i, "citizen_id": f"0010900{i:05d}", "id_type": "CCCD", "full_name": f"Người {i}"}
                | {"dob": "1990-01-01", "gender": "F", "registry_status": "VERIFIED"}
                for i in range(1, PEOPLE + 1)
            ],
        )
        conn.execute(
            registry_checks.insert(),
            [
                {"id": i, "person_id": i, "checked_at": AT, "status": "VERIFIED", "source": "t"}
                for i in range(1, PEOPLE + 1)
            ],
        )
        rows: list[dict[str, Any]] = []
        for i in range(1, PEOPLE + 1):
            if i % 10 == 0:
                rows.append(_passport(PEOPLE + i, i, "revoked"))
            rows.append(_passport(i, i, "active", supersedes=PEOPLE + i if i % 10 == 0 else None))
        conn.execute(passports.insert(), rows)
        conn.execute(
            passport_doses.insert(),
            [
                {"passport_id": i, "dose_id": 10 * i + k, "site_signature_id": 10 * i + k}
                for i in range(1, PEOPLE + 1)
                for k in (1, 2)
            ],
        )
        conn.execute(
            issuance_claims.insert(),
            [
                {"person_id": i, "state": "done", "worker": "w", "claimed_at": AT}
                for i in range(1, PEOPLE + 1)
            ],
        )


def _passport(
    passport_id: int, person_id: int, status: str, *, supersedes: int | None = None
) -> dict[str, Any]:
    return {
        "id": passport_id,
        "person_id": person_id,
        "uvci": f"URN:UVCI:01:VN:T/{passport_id}",
        "hc1": "HC1:…",
        "kid": b"k" * 8,
        "iat": AT,
        "exp": AT + dt.timedelta(days=365),
        "issued_at": AT,
        "status": status,
        "registry_check_id": person_id,
        "supersedes": supersedes,
    }


def _downgrade(db: Database, revision: str) -> None:
    with db.begin() as conn, _alembic_config(conn) as config:
        command.downgrade(config, revision)


def _stored(db: Database) -> list[list[tuple[object, ...]]]:
    with db.connect() as conn:
        return [
            [tuple(r) for r in conn.execute(sa.select(t).order_by(*t.primary_key.columns))] for t in TABLES
        ]


def test_0010_drops_and_narrows_the_indexes_and_keeps_every_row_up_and_down(empty_database: Database) -> None:
    """0009 → 0010 → 0009 → 0010 with passports, links and claims stored: the indexes (and, on PostgreSQL, the
    claims' fillfactor) follow each revision, every row stays as it was."""
    db = empty_database
    db.migrate("0009")
    _populate(db)
    before = _stored(db)
    _expect(db, "0009")
    postgresql = db.backend == "postgresql"

    db.migrate("0010")
    assert db.current_revision() == "0010"
    _expect(db, "0010")
    assert _stored(db) == before
    if postgresql:
        assert _fillfactor(db) == ["fillfactor=50"]

    _downgrade(db, "0009")
    _expect(db, "0009")
    assert _stored(db) == before
    if postgresql:
        assert _fillfactor(db) is None

    db.migrate("0010")
    _expect(db, "0010")
    assert _stored(db) == before
    with db.connect() as conn:  # the readers by person still answer (the revoked index: predecessors)
        assert predecessors_of(conn, range(1, PEOPLE + 1)) == {}  # every revoked one is superseded


@pytest.mark.parametrize("revision", ["0009", "0010"])
def test_a_claim_turning_done_is_a_hot_update_from_0010(empty_database: Database, revision: str) -> None:
    """PostgreSQL: a batch of claims inserted, then turned ``done`` as issuance's store does — at 0010 every one
    of those updates is heap-only (no index entry written); at 0009 (state and time indexed) none is."""
    db = empty_database
    if db.backend != "postgresql":
        pytest.skip("HOT updates and fillfactor are PostgreSQL's")
    db.migrate(revision)
    with db.begin() as conn:
        conn.execute(
            persons.insert(),
            [
                {
                    "id": i,
                    "citizen_id": f"0010900{i:05d}",
                    "id_type": "CCCD",
                    "full_name": "N",
                    "dob": "",
                    "gender": "",
                }
                for i in range(1, PEOPLE + 1)
            ],
        )
        conn.exec_driver_sql(
            "INSERT INTO issuance_claims (person_id, state, worker, claimed_at) "
            "SELECT id, 'claimed', 'w', now() FROM generate_series(1, %(n)s) AS id",
            {"n": PEOPLE},
        )
    with db.begin() as conn:
        conn.exec_driver_sql(
            "UPDATE issuance_claims SET state = 'done', claimed_at = now() "
            "WHERE person_id = ANY(%(ids)s) AND worker = 'w' AND state = 'claimed'",
            {"ids": list(range(1, PEOPLE + 1))},
        )
        updated, hot = conn.exec_driver_sql(
            "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_xact_user_tables WHERE relname = 'issuance_claims'"
        ).one()
    assert updated == PEOPLE
    assert hot == (PEOPLE if revision == "0010" else 0)
