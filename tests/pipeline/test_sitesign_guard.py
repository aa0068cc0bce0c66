"""Site signing's row-version guard on a real PostgreSQL server, raced deterministically with two connections.

A batch is read (with each row's ``doses.xmin`` / ``persons.xmin``), signed outside any transaction, then stored
by a member INSERT joined to the rows at those versions, under the signing lock held shared until the commit
(:func:`vaxcred.pipeline.site_signing.workers._store_checked`; a correction takes it exclusive first). Each test here pauses one side at the point
that matters and lets the other run: a store paused between its INSERT and its commit while a correction of
one of its doses runs (the correction waits, then supersedes the fresh signature); a correction of the person
or a registry result committed between the read and the store (the person's doses are left out); a
correction of the person through *another* of their doses paused before its commit while the store's INSERT
runs (the store waits, then leaves the person's doses out); a store about to re-read a batch while a
correction of the person runs (the store holds no lock then: no deadlock); a lot correction paused before its
commit while the store's INSERT runs (the store waits, then signs the corrected dose); a store in flight holding
no dose row lock. Without the store's shared lock the paused-correction tests fail; without the correction's
exclusive lock the first test does. The race tests fail without the
guard (a store without the version join and without the re-read), the in-flight person one also without the
corrections' new dose versions, and the last one if the store keeps its dose locks through the re-read.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from tests.pipeline.pg import PostgresCluster
from tests.pipeline.test_registry_check import NOW as CHECK_TIME
from tests.pipeline.test_registry_check import PEOPLE, load_people, registry_for
from tests.pipeline.test_site_signing import KEYED, NOW, site_ca, site_keys  # noqa: F401 - fixtures
from vaxcred import keys
from vaxcred.crypto import Signer
from vaxcred.pipeline.corrections import file_correction, resolve_correction
from vaxcred.pipeline.corrections import resolution as resolution_module
from vaxcred.pipeline.registry.check import run_registry_check
from vaxcred.pipeline.registry.lookup import TableRegistry
from vaxcred.pipeline.site_signing import workers
from vaxcred.pipeline.site_signing.member_rows import SIGNING_LOCK
from vaxcred.pipeline.site_signing.queue_versions import _queue_batch
from vaxcred.pipeline.site_signing.sign_rows import _certificate_row, _sign_rows
from vaxcred.pipeline.site_signing.stage import run_site_signing, verify_stored_signatures
from vaxcred.pipeline.site_signing.work_queue import _DoseRow
from vaxcred.pipeline.site_signing.workers import _store_checked
from vaxcred.storage import Database, open_database
from vaxcred.storage.schema import doses, persons, site_signatures

PER_SIGNATURE = 16
BATCH = 60
CORRECTED_AT = NOW + dt.timedelta(hours=1)
#: how long a test waits for the other connection to block or finish (seconds)
WAIT = 30.0


@contextlib.contextmanager
def checked_database(pg_cluster: PostgresCluster) -> Iterator[Database]:
    """A PostgreSQL database with the synthetic people imported and checked against the registry (dropped
    after)."""
    url = pg_cluster.create_database()
    db = open_database(url)
    try:
        db.migrate()
        load_people(db, invalid=False)
        run_registry_check(db, registry_for(), now=CHECK_TIME)
        yield db
    finally:
        db.dispose()
        pg_cluster.drop_database(url)


@pytest.fixture
def pg(pg_cluster: PostgresCluster) -> Iterator[Database]:
    """A PostgreSQL database with the synthetic people imported and checked against the registry."""
    with checked_database(pg_cluster) as db:
        yield db


@pytest.fixture
def signers(site_keys: dict[str, keys.KeyPair]) -> dict[str, Signer]:  # noqa: F811 - fixture
    return {site: pair.signer() for site, pair in site_keys.items()}


class _Batch:
    """One batch of the first keyed site as the work queue reads it (rows and versions), signed."""

    def __init__(self, db: Database, signers: dict[str, Signer]) -> None:
        with db.for_batches().connect() as conn:
            self.rows, self.versions = _queue_batch(conn, KEYED[0], 0, BATCH)
        assert len(self.rows) == BATCH
        assert self.versions is not None
        self.outcomes = _sign_rows(self.rows, signers, NOW, PER_SIGNATURE)
        self.signers = signers
        self.certificates = {site: _certificate_row(signer) for site, signer in signers.items()}

    def without(self, dose_id: int) -> None:
        """Leave ``dose_id`` out of the batch (as if the queue had not read it)."""
        kept = [i for i, row in enumerate(self.rows) if row.id != dose_id]
        self.rows = [self.rows[i] for i in kept]
        self.outcomes = [self.outcomes[i] for i in kept]

    def store(self, db: Database, conn: sa.Connection) -> tuple[int, int]:
        return _store_checked(
            db,
            conn,
            (self.rows, self.outcomes, self.versions),
            (self.signers, self.certificates),
            NOW,
            PER_SIGNATURE,
        )


def _person_of(db: Database, row: _DoseRow) -> tuple[int, list[int]]:
    """The person of ``row`` and all their doses' ids."""
    with db.connect() as conn:
        person = conn.execute(sa.select(doses.c.person_id).where(doses.c.id == row.id)).scalar_one()
        ids = conn.execute(sa.select(doses.c.id).where(doses.c.person_id == person)).scalars().all()
    return int(person), sorted(int(i) for i in ids)


def _registry_without(citizen_id: str) -> TableRegistry:
    return TableRegistry(p.entry for p in PEOPLE if p.entry is not None and p.entry.citizen_id != citizen_id)


def _signatures(db: Database) -> dict[int, bool]:
    """Dose id → whether its signature is current, for every stored signature."""
    with db.connect() as conn:
        rows = conn.execute(sa.select(site_signatures.c.dose_id, site_signatures.c.superseded_at)).all()
    assert len({dose_id for dose_id, _ in rows}) == len(rows)  # one signature a dose in these tests
    return {int(dose_id): superseded is None for dose_id, superseded in rows}


def _status(db: Database, person_id: int) -> str | None:
    with db.connect() as conn:
        status: str | None = conn.execute(
            sa.select(persons.c.registry_status).where(persons.c.id == person_id)
        ).scalar_one()
    return status


def _blocked_or_done(db: Database, thread: threading.Thread) -> bool:
    """Wait until another backend of this database waits on a lock (True) or ``thread`` ended (False)."""
    deadline = time.monotonic() + WAIT
    with db.connect() as conn:
        while time.monotonic() < deadline:
            waiting = conn.execute(
                sa.text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
                )
            ).scalar_one()
            conn.rollback()  # pg_stat_activity is read once per transaction: the next poll reads it afresh
            if waiting:
                return True
            if not thread.is_alive():
                return False
            time.sleep(0.05)
    raise AssertionError("neither blocked nor finished")


class _Run(threading.Thread):
    """``work`` in a thread, keeping its result or exception."""

    def __init__(self, work: Callable[[], Any]) -> None:
        super().__init__(daemon=True)
        self._work = work
        self.result: Any = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = self._work()
        except BaseException as e:  # handed to the test
            self.error = e

    def outcome(self) -> Any:
        self.join(WAIT)
        assert not self.is_alive()
        if self.error is not None:
            raise self.error
        return self.result


def _pause_before_revocation(monkeypatch: pytest.MonkeyPatch) -> tuple[threading.Event, threading.Event]:
    """Make a correction's resolution stop inside its transaction (its locks held) just before it revokes:
    ``paused`` is set there, and it goes on once ``go`` is set."""
    paused, go = threading.Event(), threading.Event()
    revoke = resolution_module.revoke_active_passport

    def revoke_after_pause(*args: Any, **kwargs: Any) -> int | None:
        paused.set()
        assert go.wait(WAIT)
        return revoke(*args, **kwargs)

    monkeypatch.setattr(resolution_module, "revoke_active_passport", revoke_after_pause)
    return paused, go


def _store_during_correction(
    pg: Database, batch: _Batch, correction: int, registry: TableRegistry, monkeypatch: pytest.MonkeyPatch
) -> tuple[bool, Any, tuple[int, int]]:
    """Resolve ``correction`` on a second connection, paused inside its transaction before it revokes (its
    changes made, its locks held); meanwhile store ``batch`` on another thread; then let the correction commit.
    Returns (whether the store waited on a lock, the resolution, the store's (stored, failed))."""
    paused, go = _pause_before_revocation(monkeypatch)
    second = open_database(pg.engine.url.render_as_string(hide_password=False))
    try:
        fix = _Run(lambda: resolve_correction(second, correction, now=CORRECTED_AT, registry=registry))
        fix.start()
        assert paused.wait(WAIT)

        def store() -> tuple[int, int]:
            with pg.for_batches().begin() as conn:
                return batch.store(pg, conn)

        storing = _Run(store)
        storing.start()
        waited = _blocked_or_done(pg, storing)
        go.set()
        resolved = fix.outcome()
        stored: tuple[int, int] = storing.outcome()
    finally:
        go.set()
        second.dispose()
    return waited, resolved, stored


def test_a_correction_of_a_dose_waits_for_the_store_in_flight_and_supersedes_its_signature(
    pg: Database,
    signers: dict[str, Signer],
    site_ca: keys.KeyPair,  # noqa: F811 - fixture
) -> None:
    """A store paused between its member INSERT and its commit holds the doses: a correction of one of them
    waits for the commit, then supersedes the signature just stored (none current signs the old lot)."""
    batch = _Batch(pg, signers)
    target = batch.rows[3]
    correction = file_correction(
        pg, citizen_id=target.citizen_id, dose_id=target.id, field="lot", proposed_value="FIXED1", now=NOW
    )
    second = open_database(pg.engine.url.render_as_string(hide_password=False))
    try:
        with pg.for_batches().connect() as conn:
            transaction = conn.begin()
            assert batch.store(pg, conn) == (BATCH, 0)
            fix = _Run(
                lambda: resolve_correction(second, correction, now=CORRECTED_AT, registry=registry_for())
            )
            fix.start()
            assert _blocked_or_done(pg, fix), "the correction did not wait for the store's commit"
            transaction.commit()
        resolved = fix.outcome()
    finally:
        second.dispose()
    assert resolved.superseded_signature
    stored = _signatures(pg)
    assert stored[target.id] is False
    assert sum(stored.values()) == BATCH - 1
    run_site_signing(pg, signers, now=CORRECTED_AT)  # the corrected dose signed again: everything verifies
    assert all(
        check.ok for check in verify_stored_signatures(pg, site_ca=site_ca.certificate, now=CORRECTED_AT)
    )


@pytest.mark.parametrize("field", ["full_name", "registry"])
def test_a_person_changed_between_the_read_and_the_store_is_left_out(
    pg: Database,
    signers: dict[str, Signer],
    site_ca: keys.KeyPair,  # noqa: F811 - fixture
    field: str,
) -> None:
    """A correction of the person's name (reset, then re-checked against a registry without them) or a registry
    result other than VERIFIED, committed after the batch was read: the store keeps no signature of theirs
    (their rows' versions changed: re-read, left out) and stores every other dose."""
    batch = _Batch(pg, signers)
    target = batch.rows[5]
    person, their_doses = _person_of(pg, target)
    registry = _registry_without(target.citizen_id)
    if field == "full_name":
        correction = file_correction(
            pg,
            citizen_id=target.citizen_id,
            dose_id=target.id,
            field="full_name",
            proposed_value="Nguyễn Văn Khác",
            now=NOW,
        )
        resolve_correction(pg, correction, now=CORRECTED_AT, registry=registry)
    else:
        run_registry_check(pg, registry, now=CORRECTED_AT, person_ids=[person])
    assert _status(pg, person) not in (None, "VERIFIED")
    in_batch = {row.id for row in batch.rows} & set(their_doses)
    with pg.for_batches().begin() as conn:
        added, failed = batch.store(pg, conn)
    stored = _signatures(pg)
    assert not in_batch & stored.keys()
    assert (added, failed) == (BATCH - len(in_batch), 0)
    assert all(
        check.ok for check in verify_stored_signatures(pg, site_ca=site_ca.certificate, now=CORRECTED_AT)
    )


def test_a_person_correction_through_another_dose_in_flight_makes_the_store_wait_and_leave_them_out(
    pg: Database, signers: dict[str, Signer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A correction of the person filed on one dose, paused after its updates and before its commit, while the
    store's INSERT runs over a batch holding another dose of that person: the store waits for the correction
    (it gave every dose of the person a new version), then re-reads them and leaves them out (the person is no
    longer VERIFIED)."""
    batch = _Batch(pg, signers)
    held = next(r for r in batch.rows if len(_person_of(pg, r)[1]) > 1)
    person, their_doses = _person_of(pg, held)
    named = next(d for d in their_doses if d != held.id)
    batch.without(named)
    correction = file_correction(
        pg,
        citizen_id=held.citizen_id,
        dose_id=named,
        field="full_name",
        proposed_value="Trần Thị Khác",
        now=NOW,
    )
    waited, _, (added, failed) = _store_during_correction(
        pg, batch, correction, _registry_without(held.citizen_id), monkeypatch
    )
    assert waited, "the store did not wait for the correction in flight"
    in_batch = {row.id for row in batch.rows} & set(their_doses)
    assert held.id in in_batch
    assert not in_batch & _signatures(pg).keys()
    assert (added, failed) == (len(batch.rows) - len(in_batch), 0)
    assert _status(pg, person) != "VERIFIED"


def test_an_unchanged_batch_is_stored_without_the_re_read(
    pg: Database,
    signers: dict[str, Signer],
    site_ca: keys.KeyPair,  # noqa: F811 - fixture
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Nothing changed while signing: pipelined and parallel runs store every batch through the guarded INSERT
    alone (the re-read, replaced here by a failure, never runs) and sign every dose."""

    def no_re_read(*_: Any, **__: Any) -> Any:
        raise AssertionError("re-read")

    monkeypatch.setattr(workers, "_recheck", no_re_read)
    report = run_site_signing(pg, {KEYED[0]: signers[KEYED[0]]}, now=NOW, batch_size=BATCH)
    assert report.signed > BATCH
    assert report.failed == 0
    report = run_site_signing(pg, signers, now=NOW, batch_size=BATCH, workers=2)
    assert report.signed > BATCH
    assert report.failed == 0
    assert all(check.ok for check in verify_stored_signatures(pg, site_ca=site_ca.certificate, now=NOW))


def test_a_batch_signed_meanwhile_by_another_run_is_stored_exactly_once(
    pg: Database,
    signers: dict[str, Signer],
    site_ca: keys.KeyPair,  # noqa: F811 - fixture
) -> None:
    """Another run stored part of the batch while it was signed: the guarded INSERT meets the one-current-
    signature index, the store falls back to re-reading and skipping, and every dose ends with one signature."""
    batch = _Batch(pg, signers)
    other = _Batch(pg, signers)
    other.rows, other.outcomes = other.rows[10:20], other.outcomes[10:20]
    with pg.for_batches().begin() as conn:
        assert other.store(pg, conn) == (10, 0)
    with pg.for_batches().begin() as conn:
        assert batch.store(pg, conn) == (BATCH - 10, 0)
    assert sorted(_signatures(pg)) == sorted(row.id for row in batch.rows)
    assert all(check.ok for check in verify_stored_signatures(pg, site_ca=site_ca.certificate, now=NOW))


def test_a_batch_re_read_holds_no_lock_a_person_correction_waits_for(
    pg: Database, signers: dict[str, Signer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch with one dose of a person changed (it drops out of the guarded INSERT) and another dose of theirs
    unchanged: by the time the store re-reads, the INSERT's row locks are gone with its savepoint, so a
    correction of the person runs its updates to the end without waiting for the store (which then waits for the
    correction and leaves the person out) — no deadlock between a store holding one dose and re-reading
    another and a correction holding the person's doses."""
    batch = _Batch(pg, signers)
    held = next(
        r
        for r in batch.rows
        if len({d for d in _person_of(pg, r)[1] if d in {row.id for row in batch.rows}}) > 1
    )
    person, their_doses = _person_of(pg, held)
    changed = next(d for d in their_doses if d != held.id and d in {row.id for row in batch.rows})
    with pg.begin() as conn:
        conn.execute(doses.update().where(doses.c.id == changed).values(lot="CHANGED1"))
    correction = file_correction(
        pg,
        citizen_id=held.citizen_id,
        dose_id=held.id,
        field="full_name",
        proposed_value="Lê Văn Khác",
        now=NOW,
    )
    re_reading, re_read = threading.Event(), threading.Event()
    recheck = workers._recheck

    def recheck_after_pause(*args: Any, **kwargs: Any) -> Any:
        re_reading.set()
        assert re_read.wait(WAIT)
        return recheck(*args, **kwargs)

    monkeypatch.setattr(workers, "_recheck", recheck_after_pause)
    paused, go = _pause_before_revocation(monkeypatch)
    second = open_database(pg.engine.url.render_as_string(hide_password=False))
    try:

        def store() -> tuple[int, int]:
            with pg.for_batches().begin() as conn:
                return batch.store(pg, conn)

        storing = _Run(store)
        storing.start()
        assert re_reading.wait(WAIT)
        fix = _Run(
            lambda: resolve_correction(
                second, correction, now=CORRECTED_AT, registry=_registry_without(held.citizen_id)
            )
        )
        fix.start()
        reached = paused.wait(WAIT / 3)  # its updates done: it never waited for the store
        re_read.set()
        assert _blocked_or_done(pg, storing)  # the re-read waits for the correction's commit
        go.set()
        fix.outcome()
        added, failed = storing.outcome()
    finally:
        re_read.set()
        go.set()
        second.dispose()
    assert reached, "the correction waited for a lock the store held while re-reading"
    in_batch = {row.id for row in batch.rows} & set(their_doses)
    assert not in_batch & _signatures(pg).keys()
    assert (added, failed) == (BATCH - len(in_batch), 0)
    assert _status(pg, person) != "VERIFIED"


def test_a_dose_correction_in_flight_makes_the_store_wait_then_the_dose_is_signed_as_corrected(
    pg: Database,
    signers: dict[str, Signer],
    site_ca: keys.KeyPair,  # noqa: F811 - fixture
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A lot correction paused after its update and its (empty) supersede, before its commit, while the store's
    INSERT runs over a batch holding that dose: the store waits on the signing lock the correction holds
    exclusive, then finds the dose at a new version and signs it again as corrected. Without the store's shared
    lock it would not wait: its INSERT would see the old row and commit a signature of the old lot that the
    correction (already past its supersede) leaves current."""
    batch = _Batch(pg, signers)
    target = batch.rows[7]
    correction = file_correction(
        pg, citizen_id=target.citizen_id, dose_id=target.id, field="lot", proposed_value="FIXED2", now=NOW
    )
    waited, resolved, (added, failed) = _store_during_correction(
        pg, batch, correction, registry_for(), monkeypatch
    )
    assert waited, "the store did not wait for the correction in flight"
    assert not resolved.superseded_signature  # nothing was signed when it superseded
    assert (added, failed) == (BATCH, 0)
    assert _signatures(pg)[target.id] is True
    assert all(
        check.ok for check in verify_stored_signatures(pg, site_ca=site_ca.certificate, now=CORRECTED_AT)
    )


def test_a_store_in_flight_holds_no_dose_row_lock(pg: Database, signers: dict[str, Signer]) -> None:
    """Between its member INSERT and its commit a store holds the signing lock, not its doses: another
    connection locks every dose of the batch ``FOR UPDATE NOWAIT`` at once (before session 10 the INSERT locked
    each dose ``FOR SHARE``: a lock, a WAL record and a dirtied page a dose), but cannot take the signing lock
    exclusive."""
    batch = _Batch(pg, signers)
    ids = [row.id for row in batch.rows]
    with pg.for_batches().connect() as conn:
        transaction = conn.begin()
        assert batch.store(pg, conn) == (BATCH, 0)
        with pg.connect() as other:
            locked = other.execute(
                sa.select(doses.c.id).where(doses.c.id.in_(ids)).with_for_update(nowait=True)
            ).scalars()
            assert sorted(locked) == sorted(ids)
            assert (
                other.execute(sa.select(sa.func.pg_try_advisory_xact_lock(SIGNING_LOCK))).scalar_one()
                is False
            )
            other.rollback()
        transaction.commit()
    assert sum(_signatures(pg).values()) == BATCH
