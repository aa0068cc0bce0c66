"""Pipelined site signing (a forked child signs, the stage reads and stores) on both backends: it stores what a
serial run stores, a dose changed between signing and storing is signed again, a child that dies or fails stops
the run with a typed error and loses nothing."""

from __future__ import annotations

import datetime as dt
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography import x509

from tests.pipeline.test_registry_check import NOW as CHECK_TIME
from tests.pipeline.test_registry_check import SITES, load_people, registry_for
from vaxcred import keys
from vaxcred.crypto import Algorithm, Signer
from vaxcred.pipeline.errors import PipelineError
from vaxcred.pipeline.log import audit_log
from vaxcred.pipeline.registry.check import run_registry_check
from vaxcred.pipeline.site_signing.pipelined import SIGNING_WORKER_FAILED
from vaxcred.pipeline.site_signing.stage import (
    SigningReport,
    run_site_signing,
    unsigned_count,
    verify_stored_signatures,
)
from vaxcred.pipeline.site_signing.work_queue import _DoseRow, _to_sign
from vaxcred.storage import Database, open_database
from vaxcred.storage.schema import doses, persons, site_signature_batches, site_signatures

KEY_TIME = dt.datetime(2022, 12, 1, tzinfo=dt.UTC)
NOW = dt.datetime(2023, 1, 2, 10, 30, 5, tzinfo=dt.UTC)
KEYED = SITES[:2]
#: small batches and Merkle batches, so that a run has many of each and the boundaries fall unevenly
BATCH_SIZE = 37
PER_SIGNATURE = 16


@pytest.fixture(scope="module")
def site_ca() -> keys.KeyPair:
    return keys.make_site_ca(now=KEY_TIME)


@pytest.fixture(scope="module")
def site_keys(site_ca: keys.KeyPair) -> dict[str, keys.KeyPair]:
    return {
        site: keys.make_site_certificate(site_ca, site_id=site, site_name=f"Trạm Y tế {site}", now=KEY_TIME)
        for site in KEYED
    }


@pytest.fixture
def signers(site_keys: dict[str, keys.KeyPair]) -> dict[str, Signer]:
    return {site: pair.signer() for site, pair in site_keys.items()}


def _checked(db: Database) -> Database:
    load_people(db, invalid=False)
    run_registry_check(db, registry_for(), now=CHECK_TIME)
    return db


@pytest.fixture
def checked(database: Database) -> Database:
    return _checked(database)


@pytest.fixture
def twin(database_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Database]:
    """A second database on the same backend as ``database``, with the same people checked."""
    if database_url.startswith("sqlite"):
        url = f"sqlite:///{tmp_path / 'twin.db'}"
        drop = None
    else:
        cluster = request.getfixturevalue("pg_cluster")
        url = cluster.create_database()
        drop = cluster.drop_database
    db = open_database(url)
    try:
        db.migrate()
        yield _checked(db)
    finally:
        db.dispose()
        if drop is not None:
            drop(url)


class _ChildSigner:
    """A site signer that, in a forked signing process only (never in the test's own), does ``act`` once at its
    ``at``-th signature: a stand-in for a crash, a bug or a concurrent correction during the run."""

    def __init__(
        self, inner: Signer, act: str, at: int, url: str = "", dose_ids: tuple[int, ...] = ()
    ) -> None:
        self._inner, self._act, self._at, self._url, self._dose_ids = inner, act, at, url, dose_ids
        self._parent = os.getpid()
        self._calls = 0

    @property
    def algorithm(self) -> Algorithm:
        return self._inner.algorithm

    @property
    def certificate(self) -> x509.Certificate:
        return self._inner.certificate

    @property
    def kid(self) -> bytes:
        return self._inner.kid

    def sign(self, data: bytes) -> bytes:
        if os.getpid() != self._parent:
            self._calls += 1
            if self._calls == self._at:
                self._do()
        return self._inner.sign(data)

    def _do(self) -> None:
        if self._act == "killed":
            # the batches signed before are sent by the queue's feeder thread: let it hand them over first
            # (else the kill may take them too, and nothing reaches the stage: correct, but nothing to check)
            time.sleep(1.0)
            os.kill(os.getpid(), signal.SIGKILL)
        if self._act == "raises":
            raise RuntimeError("a bug in the signing process")
        # "correction": another connection changes one dose and un-verifies another's person, and commits
        changed, unverified = self._dose_ids
        db = open_database(self._url)
        try:
            with db.begin() as conn:
                conn.execute(doses.update().where(doses.c.id == changed).values(lot="CHANGED-WHILE-SIGNING"))
                person = conn.execute(
                    sa.select(doses.c.person_id).where(doses.c.id == unverified)
                ).scalar_one()
                conn.execute(
                    persons.update().where(persons.c.id == person).values(registry_status="MISMATCH")
                )
        finally:
            db.dispose()


def _members(db: Database) -> list[tuple[int, str, int, int, int]]:
    """Each current signature's (dose id, site, leaf index, its batch's size, its batch's first dose id):
    what two runs over the same doses must store alike (salts and signatures aside)."""
    with db.connect() as conn:
        rows = conn.execute(
            sa.select(
                site_signatures.c.dose_id,
                site_signatures.c.site_id,
                site_signatures.c.leaf_index,
                site_signature_batches.c.size,
                site_signatures.c.batch_id,
            )
            .join(site_signature_batches, site_signature_batches.c.id == site_signatures.c.batch_id)
            .where(site_signatures.c.superseded_at.is_(None))
            .order_by(site_signatures.c.dose_id)
        ).all()
    first: dict[int, int] = {}
    for dose_id, _, _, _, batch_id in rows:
        first.setdefault(batch_id, dose_id)
    return [(d, s, i, n, first[b]) for d, s, i, n, b in rows]


def _sign(db: Database, signers: dict[str, Signer], *, pipelined: bool = True) -> SigningReport:
    return run_site_signing(
        db, signers, now=NOW, batch_size=BATCH_SIZE, per_signature=PER_SIGNATURE, pipelined=pipelined
    )


def _all_verify(db: Database, site_ca: keys.KeyPair) -> None:
    checks = verify_stored_signatures(db, site_ca=site_ca.certificate, now=NOW)
    assert checks
    assert [c for c in checks if not c.ok] == []
    with db.connect() as conn:
        assert audit_log(conn, log_certificate=site_ca.certificate).intact


def test_a_pipelined_run_stores_what_a_serial_run_stores(
    checked: Database, twin: Database, signers: dict[str, Signer], site_ca: keys.KeyPair
) -> None:
    """The same doses signed, under the same batch heads (grouping, leaf indexes, sizes), the same counts and log
    entries; everything verifies and the log audit passes on both; a re-run signs nothing."""
    pipelined = _sign(checked, signers, pipelined=True)
    serial = _sign(twin, signers, pipelined=False)
    assert pipelined == serial
    assert pipelined.signed > 3 * BATCH_SIZE
    assert _members(checked) == _members(twin)
    with checked.connect() as a, twin.connect() as b:
        count = sa.select(sa.func.count()).select_from(site_signature_batches)
        assert a.execute(count).scalar_one() == b.execute(count).scalar_one()
    _all_verify(checked, site_ca)
    _all_verify(twin, site_ca)
    assert _sign(checked, signers) == SigningReport(
        signed=0, skipped_no_key=serial.skipped_no_key, skipped_unverified=serial.skipped_unverified
    )


def test_signing_times_are_stored_in_the_columns_own_format(
    checked: Database, signers: dict[str, Signer]
) -> None:
    """Regression: members inserted through the driver had their signing time bound by sqlite3's default adapter
    (``2023-01-02 10:30:05``, no microseconds) instead of the column type's text (``…05.000000``, as every other
    time is stored): the raw stored value must be the batch head row's, byte for byte."""
    _sign(checked, signers)
    with checked.connect() as conn:
        pairs = conn.exec_driver_sql(
            "SELECT DISTINCT s.signed_at, b.signed_at FROM site_signatures s "
            "JOIN site_signature_batches b ON b.id = s.batch_id"
        ).all()
    assert pairs
    assert all(member == head for member, head in pairs)


def test_a_dose_changed_between_signing_and_storing_is_signed_again(
    checked: Database, database_url: str, site_keys: dict[str, keys.KeyPair], site_ca: keys.KeyPair
) -> None:
    """A correction committed while the child signs a batch: the store sees it (SQLite: another connection's
    commit; PostgreSQL: every store re-reads), signs the changed dose again as it is now (under a head of its
    own) and leaves out the dose whose person is no longer VERIFIED; everything stored verifies against the
    doses as they are."""
    site = KEYED[0]
    with checked.connect() as conn:
        first = [_DoseRow(*row) for row in conn.execute(_to_sign(site, 0, BATCH_SIZE))]
    changed = first[2]
    unverified = next(r for r in first[5:] if r.citizen_id != changed.citizen_id)
    dose_ids = (changed.id, unverified.id)
    signers: dict[str, Signer] = {s: pair.signer() for s, pair in site_keys.items()}
    signers[site] = _ChildSigner(signers[site], "correction", 1, database_url, dose_ids)
    report = _sign(checked, signers)
    assert report.failed == 0
    members = {dose_id: size for dose_id, _, _, size, _ in _members(checked)}
    assert members[changed.id] == 1
    gone = {r.id for r in first if r.citizen_id == unverified.citizen_id}
    assert not gone & members.keys()
    assert len(members) == report.signed
    _all_verify(checked, site_ca)
    with checked.connect() as conn:
        lot = conn.execute(sa.select(doses.c.lot).where(doses.c.id == changed.id)).scalar_one()
    assert lot == "CHANGED-WHILE-SIGNING"


@pytest.mark.parametrize("how", ["killed", "raises"])
def test_a_signing_child_that_dies_stops_the_run_typed_and_loses_nothing(
    checked: Database, site_keys: dict[str, keys.KeyPair], site_ca: keys.KeyPair, how: str
) -> None:
    """The child killed (-9) or failing at its 5th signature: PipelineError pipeline.site_signing_worker_failed
    after whole batches only; what was stored verifies and the log audit passes; a re-run signs exactly the
    rest, each dose once."""
    plain: dict[str, Signer] = {s: pair.signer() for s, pair in site_keys.items()}
    waiting = unsigned_count(checked, KEYED)
    doomed: dict[str, Signer] = dict(plain)
    doomed[KEYED[0]] = _ChildSigner(plain[KEYED[0]], how, 5)
    with pytest.raises(PipelineError) as caught:
        _sign(checked, doomed)
    assert caught.value.code == SIGNING_WORKER_FAILED
    members = _members(checked)
    stored = len(members)
    assert 0 < stored < waiting
    sizes = {first: size for _, _, _, size, first in members}
    assert sum(sizes.values()) == stored  # no Merkle batch half-stored: every head has all its members
    _all_verify(checked, site_ca)
    rerun = _sign(checked, plain)
    assert rerun.failed == 0
    members = _members(checked)
    assert len(members) == stored + rerun.signed == waiting
    assert len({m[0] for m in members}) == len(members)
    _all_verify(checked, site_ca)
    assert run_site_signing(checked, plain, now=NOW).signed == 0


@pytest.mark.parametrize(("url", "workers"), [("sqlite://", 1), ("sqlite:///:memory:", 1), ("sqlite://", 2)])
def test_an_in_memory_database_is_signed_in_this_process(
    url: str, workers: int, signers: dict[str, Signer], site_ca: keys.KeyPair
) -> None:
    """A forked process cannot open another process's in-memory SQLite database (it would read an empty one):
    the stage reads and signs such a database itself, and signs everything, as a file database is signed."""
    db = open_database(url)
    try:
        assert db.in_memory
        db.migrate()
        _checked(db)
        report = run_site_signing(
            db, signers, now=NOW, batch_size=BATCH_SIZE, per_signature=PER_SIGNATURE, workers=workers
        )
        assert report.signed > 3 * BATCH_SIZE
        assert report.failed == 0
        assert unsigned_count(db, KEYED) == 0
        _all_verify(db, site_ca)
    finally:
        db.dispose()


def test_only_an_in_memory_database_counts_as_in_memory(database: Database, tmp_path: Path) -> None:
    assert not database.in_memory  # a file, or a PostgreSQL server
    assert not open_database(f"sqlite:///{tmp_path / 'v.db'}").in_memory
