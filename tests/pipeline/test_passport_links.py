"""Migration 0008: ``passport_doses`` loses its foreign keys (the store checks each link in its own transaction),
keeping every link, its primary key and what the issuance log says about it, on both backends."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic import command

from tests.pipeline.test_issuance import (
    Chain,
    chain,  # noqa: F401 - fixture
    issue,
    plan,
    populate,
)
from tests.pipeline.test_issuance_roundtrip import passport_entries_as_stored
from vaxcred.storage import Database
from vaxcred.storage.database import _alembic_config
from vaxcred.storage.schema import passport_doses


def _links(db: Database) -> list[tuple[int, int, int]]:
    with db.connect() as conn:
        return [
            (row.passport_id, row.dose_id, row.site_signature_id)
            for row in conn.execute(sa.select(passport_doses).order_by(*passport_doses.c))
        ]


def test_migration_0008_keeps_every_link_and_drops_only_their_foreign_keys(
    empty_database: Database,
    chain: Chain,  # noqa: F811
) -> None:
    """Passports at 0007, then the upgrade: the same links, no foreign key left on them, the primary key still
    refusing a second link of a passport to a dose, and every passport's log entry still what the rows give.
    (Issued at head and taken down to 0007: site signing writes 0012's member rows, which 0007 cannot hold.)"""
    db = empty_database
    db.migrate()
    populate(db, chain, [plan(i) for i in range(6)])
    assert issue(db, chain).issued == 6
    with db.begin() as conn, _alembic_config(conn) as config:
        command.downgrade(config, "0007")
    assert db.current_revision() == "0007"
    assert {fk["referred_table"] for fk in sa.inspect(db.engine).get_foreign_keys("passport_doses")} == {
        "passports",
        "doses",
        "site_signatures",
    }
    before = _links(db)
    assert len(before) == 11  # 2 + 1 + 3 + 2 doses, then again

    db.migrate()

    assert _links(db) == before
    inspector = sa.inspect(db.engine)
    assert inspector.get_foreign_keys("passport_doses") == []
    assert inspector.get_pk_constraint("passport_doses")["constrained_columns"] == ["passport_id", "dose_id"]
    passport_id, dose_id, signature_id = before[0]
    with pytest.raises(sa.exc.IntegrityError), db.begin() as conn:
        conn.execute(
            passport_doses.insert().values(
                passport_id=passport_id, dose_id=dose_id, site_signature_id=signature_id
            )
        )
    assert passport_entries_as_stored(db) == 6
