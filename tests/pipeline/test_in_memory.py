"""An in-memory SQLite database lives in one process: every stage asked for worker processes works it in its own
process instead (a worker opening the URL would get an empty database of its own), and stores what it would
have stored with them; :meth:`Database.url_for_workers` refuses to hand such a database to another process."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.pipeline.issuance_child import NOW, issuer_factory
from tests.pipeline.test_issuance import (
    CHECK_TIME,
    HEADER,
    SIGN_TIME,
    Chain,
    assert_exactly_one_each,
    plan,
)
from vaxcred.pipeline.issuance.stage import pending_count, run_issuance
from vaxcred.pipeline.records.importer import import_lines
from vaxcred.pipeline.registry.check import run_registry_check
from vaxcred.pipeline.registry.lookup import TableRegistry
from vaxcred.pipeline.site_signing.stage import run_site_signing, unsigned_count
from vaxcred.storage import open_database

pytest_plugins = ["tests.pipeline.test_issuance"]  # its chain, key_folder and passphrase fixtures


def test_every_stage_with_workers_runs_an_in_memory_database_in_its_own_process(
    chain: Chain, key_folder: Path, passphrase: None
) -> None:
    db = open_database("sqlite://")
    try:
        assert db.in_memory
        db.migrate()
        people = [plan(i) for i in range(12)]
        imported = import_lines(db, [HEADER, *(row for p in people for row in p.rows())], format="csv")
        assert imported.rejected == 0

        checked = run_registry_check(
            db, TableRegistry([p.entry() for p in people]), now=CHECK_TIME, workers=2
        )
        assert checked.verified == len(people)

        signers = {site: pair.signer() for site, pair in chain.sites.items()}
        signed = run_site_signing(db, signers, now=SIGN_TIME, workers=2)
        assert (signed.signed, signed.failed) == (imported.imported, 0)
        assert unsigned_count(db, sorted(signers)) == 0

        issued = run_issuance(
            db, issuer_factory(key_folder), now=NOW, site_ca=chain.site_ca.certificate, workers=2
        )
        assert (issued.issued, issued.failed) == (len(people), 0)
        assert_exactly_one_each(db, people)
        assert pending_count(db) == 0
    finally:
        db.dispose()


def test_only_a_database_another_process_can_open_has_a_url_for_workers(tmp_path: Path) -> None:
    for url in ("sqlite://", "sqlite:///:memory:"):
        with pytest.raises(ValueError, match="in-memory"):
            open_database(url).url_for_workers()
    path = tmp_path / "v.db"
    assert open_database(f"sqlite:///{path}").url_for_workers() == f"sqlite:///{path}"
