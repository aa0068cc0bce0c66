"""Migration 0012 on both backends: a batch member names only its batch (its site, certificate and kid are the
batch's; a v1 row keeps its own). The upgrade keeps every row and reference and clears the members' copies,
refuses a member that disagrees with its batch before changing anything, and downgrades back (the copies
restored from the batch); upgrade → downgrade → upgrade with rows."""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command

from tests.pipeline.test_member_batch_key import (
    AT,
    CERT_A,
    CERT_B,
    _fill_0008,
    _foreign_key_problems,
    _rows,
    assert_upgrade_blocked_by_row_11,
)
from vaxcred.storage import Database
from vaxcred.storage.database import _alembic_config
from vaxcred.storage.schema import site_signatures

COPIED = ("site_id", "certificate", "kid")


@pytest.fixture
def at_0011(empty_database: Database) -> Database:
    """0008's rows (two members of batch 7 of site A, a v1 row of site B, a passport on both), at 0011."""
    empty_database.migrate("0008")
    with empty_database.begin() as conn:
        _fill_0008(conn)
    empty_database.migrate("0011")
    return empty_database


def _downgrade(db: Database, revision: str) -> None:
    with db.begin() as conn, _alembic_config(conn) as config:
        command.downgrade(config, revision)


def _without_copies(rows: list[Any]) -> list[tuple[Any, ...]]:
    """The rows as 0012 stores them: a member's site, certificate and kid cleared, a v1 row's kept."""
    return [
        tuple(None if c in COPIED and row.batch_id is not None else v for c, v in row._mapping.items())
        for row in rows
    ]


def _member(**changes: Any) -> dict[str, Any]:
    """A member row of batch 7 as 0012 stores it, superseded (outside the one-current-signature index)."""
    row: dict[str, Any] = {
        "dose_id": 3,
        "cose": b"m2",
        "signed_at": AT,
        "batch_id": 7,
        "leaf_index": 2,
        "proof": b"",
        "superseded_at": AT,
    }
    return row | changes


def test_upgrade_clears_the_members_copies_and_keeps_every_row(at_0011: Database) -> None:
    """0011 → 0012: every row, batch and passport link kept (SQLite: the table rebuilt under passport_doses'
    rows); members' site, certificate and kid NULL, the v1 row's kept; then down to 0011 and up again, rows
    with the copies restored from their batch, then cleared again."""
    signatures, batches, links = _rows(at_0011)

    at_0011.migrate("0012")
    assert at_0011.current_revision() == "0012"
    after = _rows(at_0011)
    assert [tuple(r) for r in after[0]] == _without_copies(signatures)
    assert after[1:] == (batches, links)
    assert _foreign_key_problems(at_0011) == []

    _downgrade(at_0011, "0011")
    assert at_0011.current_revision() == "0011"
    assert _rows(at_0011) == (signatures, batches, links)
    assert _foreign_key_problems(at_0011) == []

    at_0011.migrate("0012")
    assert [tuple(r) for r in _rows(at_0011)[0]] == _without_copies(signatures)


@pytest.mark.parametrize(
    "changes",
    [
        {"site_id": "A"},  # its batch's site, repeated
        {"certificate": CERT_A},
        {"kid": b"A" * 8},
        {"site_id": "B", "certificate": CERT_B, "kid": b"B" * 8},  # another site's
        {"batch_id": 8},  # no such batch
        {"batch_id": None},  # a v1 row must name its site and kid
    ],
    ids=["site", "certificate", "kid", "another site", "no batch", "v1 without site"],
)
def test_a_member_names_only_its_batch(at_0011: Database, changes: dict[str, Any]) -> None:
    """At 0012 a member naming a site, certificate or kid (even its batch's) or no stored batch is refused, and
    a v1 row must name its site and kid; a member naming only its batch is stored."""
    at_0011.migrate()
    with pytest.raises(sa.exc.IntegrityError), at_0011.begin() as conn:
        conn.execute(site_signatures.insert().values(_member(**changes)))
    with at_0011.begin() as conn:
        conn.execute(site_signatures.insert().values(_member()))
        conn.execute(
            site_signatures.insert().values(
                _member(batch_id=None, leaf_index=None, proof=None, site_id="B", kid=b"B" * 8)
            )
        )


@pytest.mark.parametrize("column", COPIED)
def test_a_member_that_disagrees_with_its_batch_blocks_the_upgrade(at_0011: Database, column: str) -> None:
    """A member whose kid, site or certificate was changed by SQL at 0011 (the key checks neither the kid nor a
    site and certificate changed together): the upgrade stops with storage.migration_blocked naming the row,
    and the database stays at 0011 exactly as it was (clearing the copies would erase the evidence)."""
    other = {"site_id": "B", "certificate": CERT_B, "kid": b"B" * 8}
    changes = other if column != "kid" else {"kid": other["kid"]}
    # a site and certificate changed together: past the key, as a superuser (or a plain sqlite3 connection,
    # foreign keys off by default) could
    if at_0011.backend == "sqlite":
        raw = sqlite3.connect(str(at_0011.engine.url.database))
        with raw:
            raw.execute(
                f"UPDATE site_signatures SET {', '.join(f'{c} = ?' for c in changes)} WHERE id = 11",
                list(changes.values()),
            )
        raw.close()
    else:
        with at_0011.begin() as conn:
            conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
            conn.execute(site_signatures.update().where(site_signatures.c.id == 11).values(changes))
    assert_upgrade_blocked_by_row_11(at_0011, "0011")
