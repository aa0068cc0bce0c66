"""Issuance's commit and a correction meet on the person's row (PostgreSQL): the commit locks the persons it
stores ``FOR KEY SHARE`` before its re-check (vaxcred.pipeline.issuance.store.lock_persons, and the same
statement in the batch function), a correction locks its person ``FOR UPDATE`` before it changes anything. Each
test would fail if its side took no lock: the other's change would slip between the re-check and the commit."""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

import pytest
import sqlalchemy as sa

from tests.pipeline.issuance_child import NOW
from tests.pipeline.test_corrections import (
    DUC,
    FILED,
    FIXED,
    ISSUED,
    REGISTRY,
    RESOLVED,
    Pipeline,
    dsc,  # noqa: F401 - fixture
    pipeline,  # noqa: F401 - fixture
    site_ca,  # noqa: F401 - fixture
    site_keys,  # noqa: F401 - fixture
)
from tests.pipeline.test_issuance import (
    Chain,
    _MeddlingIssuer,
    _person_id,
    active_passports,
    assert_exactly_one_each,
    chain,  # noqa: F401 - fixture
    plan,
    populate,
)
from vaxcred.pipeline.corrections import file_correction, resolve_correction
from vaxcred.pipeline.issuance import Reason, run_issuance
from vaxcred.pipeline.issuance.store import lock_persons
from vaxcred.storage import Database
from vaxcred.storage.schema import doses, persons

#: how long the other transaction holds its lock: the waiting side must still be waiting when it lets go
_HOLD = 1.0


def _postgresql_only(db: Database) -> None:
    if db.backend != "postgresql":
        pytest.skip("SQLite serialises writers (BEGIN IMMEDIATE): no row locks to meet on")


def _add_a_dose_holding_the_person(db: Database, person_id: int) -> Any:
    """While the batch is being signed: a transaction locks the person ``FOR UPDATE`` (as a correction does
    first), records a new dose for them (a missing-dose correction: no signature is touched), and commits
    ``_HOLD`` seconds later — after the batch's commit has started waiting for the person."""

    def meddle(now: dt.datetime) -> None:
        conn = db.engine.connect()
        transaction = conn.begin()
        conn.execute(sa.select(persons.c.id).where(persons.c.id == person_id).with_for_update()).all()
        dose = conn.execute(sa.select(doses).where(doses.c.person_id == person_id).limit(1)).one()._asdict()
        del dose["id"]
        conn.execute(doses.insert().values({**dose, "dose_number": 9, "date": dt.date(2022, 3, 1)}))

        def commit() -> None:
            transaction.commit()
            conn.close()

        threading.Timer(_HOLD, commit).start()

    return meddle


def test_a_batch_commit_waits_for_a_correction_holding_the_person_and_sees_its_change(
    database: Database,
    chain: Chain,  # noqa: F811
) -> None:
    """A correction holding the person (uncommitted) when the batch commits: the commit waits for it, then its
    re-check sees the new dose — that person gets no passport (record.changed), the others do."""
    _postgresql_only(database)
    people = [plan(i) for i in range(4)]
    populate(database, chain, people)
    victim = _person_id(database, people[2])

    report = run_issuance(
        database,
        lambda: _MeddlingIssuer(chain, _add_a_dose_holding_the_person(database, victim)),
        now=NOW,
        site_ca=chain.site_ca.certificate,
        workers=1,
    )

    assert (report.issued, dict(report.reasons)) == (3, {Reason.RECORD_CHANGED: 1})
    assert people[2].citizen_id not in active_passports(database)
    assert_exactly_one_each(database, [p for p in people if p is not people[2]])


def test_a_correction_waits_for_a_batch_commit_holding_the_person(pipeline: Pipeline) -> None:  # noqa: F811
    """A batch commit holding the person (its lock taken, not committed): resolving a correction of that person
    waits until the commit ends, then resolves."""
    db = pipeline.db
    _postgresql_only(db)
    pipeline.check(REGISTRY, ISSUED)
    dose = pipeline.doses_of(DUC)[0]
    cid = file_correction(
        db, citizen_id=DUC, dose_id=dose.id, field="full_name", proposed_value=FIXED, now=FILED
    )
    results: list[Any] = []
    with db.begin() as conn:
        lock_persons(conn, [pipeline.person(DUC).id])
        worker = threading.Thread(
            target=lambda: results.append(resolve_correction(db, cid, now=RESOLVED, registry=REGISTRY))
        )
        worker.start()
        worker.join(_HOLD)
        assert worker.is_alive(), "the correction did not wait for the commit holding its person"
    worker.join(30)
    assert not worker.is_alive()
    assert len(results) == 1
    assert results[0].dose_id == dose.id
