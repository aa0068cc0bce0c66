"""Migration 0004 (site_signatures gains batch columns) on both backends, from 0003 with passports stored: the
upgrade all the way to head keeps every row, and SQLite's rebuilds of ``site_signatures`` (0004, 0009) and of
``passport_doses`` (0008) leave no dangling reference. Head -> 0003 likewise."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.engine import Connection

from vaxcred.storage import Database
from vaxcred.storage.database import _alembic_config
from vaxcred.storage.schema import (
    corrections,
    doses,
    issuance_claims,
    issuance_log,
    log_tree_heads,
    metadata,
    passport_doses,
    passports,
    persons,
    registry_checks,
    revocations,
    site_certificates,
    site_signatures,
    sites,
)

AT = dt.datetime(2023, 1, 2, 10, 30, 5, tzinfo=dt.UTC)
LATER = AT + dt.timedelta(days=3)
CERT_A, CERT_B = b"\xaa" * 32, b"\xbb" * 32


def _fill_0003(conn: Connection) -> None:
    """Every table of 0003 holds rows, as a pipeline run at 0003 left them: two sites and certificates, two
    people with three doses each, v1 site signatures (one superseded by a correction, one without a certificate
    link), a passport revoked and superseded by a second one, their links, a revocation, claims and log rows.

    Written through schema.py's tables with 0003's columns only (the columns added since are not named)."""
    conn.execute(
        sites.insert(), [{"site_id": "A", "province_code": "001"}, {"site_id": "B", "province_code": None}]
    )
    conn.execute(
        site_certificates.insert(),
        [
            {"fingerprint": f, "site_id": s, "kid": s.encode() * 8, "der": b"d", "not_before": AT,
             "not_after": LATER}
            for f, s in ((CERT_A, "A"), (CERT_B, "B"))
        ],
    )  # fmt: skip
    conn.execute(
        persons.insert(),
        [
            {"id": p, "citizen_id": f"00109001234{p}", "id_type": "CCCD", "full_name": f"P{p}", "dob": "1990",
             "gender": "F", "province_code": "001", "registry_status": "VERIFIED", "registry_checked_at": AT}
            for p in (1, 2)
        ],
    )  # fmt: skip
    conn.execute(
        doses.insert(),
        [
            {"id": 10 * p + n, "person_id": p, "dose_number": n, "date": dt.date(2022, n, p),
             "site_id": "A" if n < 3 else "B", "vaccine": "C", "lot": f"L{n}"}
            for p in (1, 2) for n in (1, 2, 3)
        ],
    )  # fmt: skip
    signature: dict[str, Any] = {"kid": b"k" * 8, "signed_at": AT, "superseded_at": None}
    conn.execute(
        site_signatures.insert(),
        [
            {"id": 100 + d, "dose_id": d, "site_id": "A" if d % 10 < 3 else "B",
             "certificate": None if d == 13 else (CERT_A if d % 10 < 3 else CERT_B), "cose": b"\xd2v1" + bytes([d]),
             **signature}
            for d in (11, 12, 13, 21, 22, 23)
        ]
        + [{"id": 99, "dose_id": 11, "site_id": "A", "certificate": CERT_A, "cose": b"\xd2old", "kid": b"k" * 8,
            "signed_at": AT, "superseded_at": AT}],
    )  # fmt: skip
    conn.execute(
        corrections.insert().values(
            id=1, dose_id=11, site_id="A", field="lot", proposed_value="L1", state="resolved", filed_at=AT,
            due_at=LATER, resolved_at=AT, resolution="fixed",
        )
    )  # fmt: skip
    conn.execute(
        registry_checks.insert(),
        [{"id": p, "person_id": p, "checked_at": AT, "status": "VERIFIED", "source": "test"} for p in (1, 2)],
    )
    passport: dict[str, Any] = {"hc1": "HC1:", "kid": b"p" * 8, "iat": AT, "exp": LATER, "issued_at": AT}
    conn.execute(
        passports.insert(),
        [
            {"id": 1, "person_id": 1, "uvci": "U1", "status": "revoked", "revoked_at": AT, "supersedes": None,
             "registry_check_id": 1, **passport},
            {"id": 2, "person_id": 1, "uvci": "U2", "status": "active", "revoked_at": None, "supersedes": 1,
             "registry_check_id": 1, **passport},
            {"id": 3, "person_id": 2, "uvci": "U3", "status": "active", "revoked_at": None, "supersedes": None,
             "registry_check_id": 2, **passport},
        ],
    )  # fmt: skip
    conn.execute(
        passport_doses.insert(),
        [{"passport_id": 1, "dose_id": 11, "site_signature_id": 99}]
        + [{"passport_id": 2, "dose_id": d, "site_signature_id": 100 + d} for d in (11, 12, 13)]
        + [{"passport_id": 3, "dose_id": d, "site_signature_id": 100 + d} for d in (21, 22, 23)],
    )
    conn.execute(
        revocations.insert().values(
            id=1, passport_id=1, hash_type="UCI", hash=b"h" * 16, kid=b"p" * 8, revoked_at=AT, expires=LATER,
            reason="superseded",
        )
    )  # fmt: skip
    conn.execute(
        issuance_claims.insert(),
        [{"person_id": p, "state": "done", "worker": "w", "claimed_at": AT} for p in (1, 2)],
    )
    conn.execute(
        issuance_log.insert(),
        [
            {"seq": s, "kind": "passport", "object_id": s + 1, "entry": b"e", "leaf_hash": bytes([s]) * 32,
             "logged_at": AT}
            for s in (0, 1, 2)
        ],
    )  # fmt: skip
    conn.execute(log_tree_heads.insert().values(tree_size=3, root_hash=b"r" * 32, signed_at=AT, cose=b"c"))
    conn.exec_driver_sql("UPDATE log_state SET size = 3")


def _columns_at_0003(db: Database) -> dict[str, list[str]]:
    """Each table of revision 0003 (alembic's own aside) and its columns."""
    inspector = sa.inspect(db.engine)
    return {
        name: [c["name"] for c in inspector.get_columns(name)]
        for name in inspector.get_table_names()
        if name != "alembic_version"
    }


def _rows(db: Database, columns: dict[str, list[str]]) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of these tables, these columns only, in primary-key order."""
    stored = {}
    with db.connect() as conn:
        for name, names in columns.items():
            table = metadata.tables[name]
            order = list(table.primary_key.columns)
            stored[name] = [
                tuple(r) for r in conn.execute(sa.select(*(table.c[n] for n in names)).order_by(*order))
            ]
    return stored


def _foreign_key_problems(db: Database) -> list[Any]:
    if db.backend != "sqlite":
        return []
    with db.connect() as conn:
        return conn.exec_driver_sql("PRAGMA foreign_key_check").all()


@pytest.fixture
def at_0003(empty_database: Database) -> Database:
    empty_database.migrate("0003")
    with empty_database.begin() as conn:
        _fill_0003(conn)
    return empty_database


def test_upgrading_a_database_with_passports_from_0003_to_head_keeps_every_row(at_0003: Database) -> None:
    """Passports at 0003 (passport_doses pointing at site_signatures): the upgrade to head succeeds (on SQLite
    0004's rebuild of site_signatures used to fail on those references), every row of every 0003 table is as
    it was, v1 rows carry no batch, and no reference dangles."""
    columns = _columns_at_0003(at_0003)
    before = _rows(at_0003, columns)
    assert all(before.values()), "every 0003 table holds rows"

    at_0003.migrate()

    assert at_0003.current_revision() == at_0003.head_revision()
    assert _rows(at_0003, columns) == before
    with at_0003.connect() as conn:
        batched = conn.execute(
            sa.select(sa.func.count()).where(
                sa.or_(
                    site_signatures.c.batch_id.is_not(None),
                    site_signatures.c.leaf_index.is_not(None),
                    site_signatures.c.proof.is_not(None),
                )
            )
        ).scalar_one()
    assert batched == 0
    assert _foreign_key_problems(at_0003) == []


def test_0004_keeps_site_signatures_keys(at_0003: Database) -> None:
    """After the upgrade to 0004 site_signatures still refuses a dose, site or certificate that does not exist and
    a batch that does not exist (the rebuilt table keeps 0001's keys and gains 0004's)."""
    at_0003.migrate("0004")
    row: dict[str, Any] = {"dose_id": 12, "site_id": "A", "certificate": CERT_A, "kid": b"k", "cose": b"c",
                           "signed_at": AT, "superseded_at": AT}  # fmt: skip
    for wrong in ({"dose_id": 99}, {"site_id": "Z"}, {"certificate": b"\x00" * 32}, {"batch_id": 5}):
        with pytest.raises(sa.exc.IntegrityError), at_0003.begin() as conn:
            conn.execute(site_signatures.insert().values(row | wrong))
    with at_0003.begin() as conn:
        conn.execute(site_signatures.insert().values(row))


def test_downgrading_a_database_with_passports_from_head_to_0003_keeps_every_row(at_0003: Database) -> None:
    """Head -> 0003 with passports: on SQLite 0005's downgrade (doses, referenced by signatures, corrections and
    links) and 0004's (site_signatures, referenced by the links again after 0008's downgrade) used to fail on
    those references; every row of every 0003 table comes back and no reference dangles."""
    columns = _columns_at_0003(at_0003)
    before = _rows(at_0003, columns)
    at_0003.migrate()

    with at_0003.begin() as conn, _alembic_config(conn) as config:
        command.downgrade(config, "0003")

    assert at_0003.current_revision() == "0003"
    assert _columns_at_0003(at_0003) == columns
    assert _rows(at_0003, columns) == before
    assert _foreign_key_problems(at_0003) == []
