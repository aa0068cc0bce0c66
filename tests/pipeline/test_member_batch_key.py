"""Migration 0009 on both backends: a batch member's batch, site and certificate checked by one composite foreign
key; the upgrade from 0008 keeps every row (SQLite rebuilds the table while passports point at it), refuses a
member that disagrees with its batch before changing anything, and downgrades back to the three keys."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.engine import Connection

from vaxcred.errors import VaxcredError
from vaxcred.storage import Database
from vaxcred.storage.database import _alembic_config
from vaxcred.storage.schema import (
    doses,
    passport_doses,
    passports,
    persons,
    registry_checks,
    site_certificates,
    site_signature_batches,
    site_signatures,
    sites,
)

AT = dt.datetime(2023, 1, 2, 10, 30, 5, tzinfo=dt.UTC)
CERT_A, CERT_B = b"\xaa" * 32, b"\xbb" * 32


def _fill_0008(conn: Connection) -> None:
    """Two sites with a certificate each, three doses; a batch of site A with two members, a v1 row of site B
    without a certificate link, and a passport whose doses point at a member and at the v1 row."""
    conn.execute(sites.insert(), [{"site_id": "A"}, {"site_id": "B"}])
    conn.execute(
        site_certificates.insert(),
        [
            {
                "fingerprint": f,
                "site_id": s,
                "kid": s.encode() * 8,
                "der": b"d",
                "not_before": AT,
                "not_after": AT,
            }
            for f, s in ((CERT_A, "A"), (CERT_B, "B"))
        ],
    )
    conn.execute(
        persons.insert().values(
            id=1, citizen_id="001090012345", id_type="CCCD", full_name="A", dob="", gender=""
        )
    )
    conn.execute(
        doses.insert(),
        [
            {"id": i, "person_id": 1, "dose_number": i, "date": dt.date(2022, 1, i), "site_id": s, "vaccine": "C",
             "lot": "L"}
            for i, s in ((1, "A"), (2, "A"), (3, "B"))
        ],
    )  # fmt: skip
    conn.execute(
        site_signature_batches.insert().values(
            id=7, site_id="A", certificate=CERT_A, kid=b"A" * 8, head=b"h", size=2, signed_at=AT
        )
    )
    member: dict[str, Any] = {"site_id": "A", "certificate": CERT_A, "kid": b"A" * 8, "signed_at": AT}
    conn.execute(
        site_signatures.insert(),
        [
            {"id": 10, "dose_id": 1, "cose": b"m0", "batch_id": 7, "leaf_index": 0, "proof": b"p" * 32, **member},
            {"id": 11, "dose_id": 2, "cose": b"m1", "batch_id": 7, "leaf_index": 1, "proof": b"q" * 32, **member},
            {"id": 12, "dose_id": 3, "site_id": "B", "certificate": None, "kid": b"B" * 8, "cose": b"\xd2v1",
             "signed_at": AT, "batch_id": None, "leaf_index": None, "proof": None},
        ],
    )  # fmt: skip
    conn.execute(
        registry_checks.insert().values(id=1, person_id=1, checked_at=AT, status="VERIFIED", source="test")
    )
    conn.execute(
        passports.insert().values(
            id=1,
            person_id=1,
            uvci="U",
            hc1="HC1:",
            kid=b"k",
            iat=AT,
            exp=AT,
            issued_at=AT,
            registry_check_id=1,
        )
    )
    conn.execute(
        passport_doses.insert(),
        [{"passport_id": 1, "dose_id": 1, "site_signature_id": 10}, {"passport_id": 1, "dose_id": 3,
                                                                    "site_signature_id": 12}],
    )  # fmt: skip


def _rows(db: Database) -> tuple[list[Any], list[Any], list[Any]]:
    with db.connect() as conn:
        return (
            conn.execute(sa.select(site_signatures).order_by(site_signatures.c.id)).all(),
            conn.execute(sa.select(site_signature_batches).order_by(site_signature_batches.c.id)).all(),
            conn.execute(sa.select(passport_doses).order_by(passport_doses.c.dose_id)).all(),
        )


@pytest.fixture
def at_0008(empty_database: Database) -> Database:
    empty_database.migrate("0008")
    with empty_database.begin() as conn:
        _fill_0008(conn)
    return empty_database


def _member(**changes: Any) -> dict[str, Any]:
    """A member row of batch 7, superseded (outside the one-current-signature index: only the keys can refuse it)."""
    row: dict[str, Any] = {
        "dose_id": 3,
        "site_id": "A",
        "certificate": CERT_A,
        "kid": b"A" * 8,
        "cose": b"m2",
        "signed_at": AT,
        "batch_id": 7,
        "leaf_index": 2,
        "proof": b"",
        "superseded_at": AT,
    }
    return row | changes


def _foreign_key_problems(db: Database) -> list[Any]:
    if db.backend != "sqlite":
        return []
    with db.connect() as conn:
        return conn.exec_driver_sql("PRAGMA foreign_key_check").all()


def test_upgrading_from_0008_keeps_every_row_and_reference(at_0008: Database) -> None:
    """Members, the v1 row and the passport's references come through the upgrade unchanged (SQLite: the table
    rebuilt under rows of passport_doses that point at it), and no reference is left dangling."""
    before = _rows(at_0008)

    at_0008.migrate("0009")

    assert at_0008.current_revision() == "0009"
    assert _rows(at_0008) == before
    assert _foreign_key_problems(at_0008) == []


@pytest.mark.parametrize(
    "changes",
    [
        {"site_id": "B"},  # another site than its batch's
        {"certificate": CERT_B},  # another certificate than its batch's
        {"batch_id": 8},  # no such batch
    ],
    ids=["site", "certificate", "batch"],
)
def test_a_member_must_carry_its_batchs_site_and_certificate(
    at_0008: Database, changes: dict[str, Any]
) -> None:
    """After 0009 a member naming another site or certificate than its batch, or no stored batch, is refused
    (before, each column was checked alone: a member of batch 7 under site B was stored). Up to 0011: since
    0012 a member names no site or certificate at all (tests/pipeline/test_members_name_batch.py)."""
    at_0008.migrate("0011")
    with pytest.raises(sa.exc.IntegrityError), at_0008.begin() as conn:
        conn.execute(site_signatures.insert().values(_member(**changes)))
    with at_0008.begin() as conn:
        conn.execute(site_signatures.insert().values(_member()))


def test_a_member_that_disagrees_with_its_batch_blocks_the_upgrade(at_0008: Database) -> None:
    """A member whose site was changed by SQL at 0008: the upgrade stops with storage.migration_blocked naming the
    row, and the database stays at 0008 exactly as it was."""
    with at_0008.begin() as conn:
        conn.execute(site_signatures.update().where(site_signatures.c.id == 11).values(site_id="B"))
    assert_upgrade_blocked_by_row_11(at_0008, "0008")


def assert_upgrade_blocked_by_row_11(db: Database, revision: str) -> None:
    """Migrating ``db`` to head stops with storage.migration_blocked naming row 11; ``db`` stays at
    ``revision`` exactly as it was."""
    before = _rows(db)

    with pytest.raises(VaxcredError) as caught:
        db.migrate()

    assert caught.value.code == "storage.migration_blocked"
    assert "ids 11)" in caught.value.message
    assert db.current_revision() == revision
    assert _rows(db) == before


def test_downgrading_restores_the_three_keys(at_0008: Database) -> None:
    """0009 -> 0008 keeps the rows and checks site and certificate alone again: a member under another site than
    its batch's is stored (what 0009 refuses)."""
    before = _rows(at_0008)
    at_0008.migrate()

    with at_0008.begin() as conn, _alembic_config(conn) as config:
        command.downgrade(config, "0008")

    assert at_0008.current_revision() == "0008"
    assert _rows(at_0008) == before
    assert _foreign_key_problems(at_0008) == []
    with at_0008.begin() as conn:
        conn.execute(site_signatures.insert().values(_member(site_id="B")))
    with pytest.raises(sa.exc.IntegrityError), at_0008.begin() as conn:
        conn.execute(site_signatures.insert().values(_member(site_id="C")))
