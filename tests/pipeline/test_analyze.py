"""PostgreSQL: each bulk stage leaves statistics of what it changed (``Database.analyze``), so the next stage does
not plan with whatever autovacuum sampled mid-run; below the threshold nothing is analysed."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from tests.pipeline.test_batch_signatures import NOW as SIGN_TIME
from tests.pipeline.test_batch_signatures import signers, site_ca, site_keys  # noqa: F401
from tests.pipeline.test_registry_check import NOW as CHECK_TIME
from tests.pipeline.test_registry_check import load_people, registry_for
from vaxcred.crypto import Signer
from vaxcred.pipeline.registry.check import run_registry_check
from vaxcred.pipeline.site_signing.stage import run_site_signing
from vaxcred.storage import Database
from vaxcred.storage import database as storage_database
from vaxcred.storage.schema import doses, persons, registry_checks, site_signature_batches, site_signatures

_TABLES = (persons, doses, registry_checks, site_signatures, site_signature_batches)


@pytest.fixture
def pg_database(database: Database) -> Database:
    """A migrated PostgreSQL database whose stage tables autovacuum leaves alone (only the stages analyse)."""
    if database.backend != "postgresql":
        pytest.skip("ANALYZE is a PostgreSQL step (SQLite's planner works without statistics)")
    with database.begin() as conn:
        for table in _TABLES:
            conn.exec_driver_sql(f"ALTER TABLE {table.name} SET (autovacuum_enabled = false)")
    return database


def _analysed(db: Database) -> set[str]:
    """The stage tables that have column statistics."""
    with db.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT DISTINCT tablename FROM pg_stats WHERE schemaname = current_schema()")
        ).scalars()
        return {name for name in rows if name in {t.name for t in _TABLES}}


def test_each_bulk_stage_analyses_the_tables_it_filled(
    pg_database: Database,
    signers: dict[str, Signer],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Import: persons and doses; registry check: persons and registry_checks; site signing: its two tables."""
    monkeypatch.setattr(storage_database, "ANALYZE_AFTER_ROWS", 1)
    db = pg_database
    assert _analysed(db) == set()
    load_people(db, invalid=False)
    assert _analysed(db) == {"persons", "doses"}
    run_registry_check(db, registry_for(), now=CHECK_TIME)
    assert _analysed(db) == {"persons", "doses", "registry_checks"}
    assert run_site_signing(db, signers, now=SIGN_TIME).signed > 0
    assert _analysed(db) == {t.name for t in _TABLES}


def test_stages_below_the_threshold_leave_statistics_to_autovacuum(
    pg_database: Database,
    signers: dict[str, Signer],  # noqa: F811
) -> None:
    """A few hundred people (under ANALYZE_AFTER_ROWS): no stage pays for an ANALYZE."""
    db = pg_database
    load_people(db, invalid=False)
    run_registry_check(db, registry_for(), now=CHECK_TIME)
    assert run_site_signing(db, signers, now=SIGN_TIME).signed > 0
    assert _analysed(db) == set()
