"""Withdrawals in the issuance log (issue 9 review): a ``duplicate`` correction logs the withdrawal in its own
transaction; the audit finds a withdrawal set, cleared or moved by hand; migration 0006 adopts the withdrawals
made before the entry kind existed. Both backends (SQLite and a throwaway PostgreSQL cluster)."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from tests.pipeline.test_corrections import Pipeline, dsc, site_ca, site_keys  # noqa: F401 (fixtures)
from tests.pipeline.test_log import log_signer  # noqa: F401 (fixture)
from tests.pipeline.test_withdrawal import (
    CLEAN,
    DAYS,
    FILED,
    NAMES,
    REGISTRY,
    RESOLVED,
    SITES2,
    _dose,
    pipe,  # noqa: F401 (fixture)
)
from vaxcred import keys
from vaxcred.merkle import leaf_hash
from vaxcred.pipeline import log
from vaxcred.pipeline.corrections import file_correction, resolve_correction
from vaxcred.pipeline.errors import PipelineError
from vaxcred.storage import Database
from vaxcred.storage.schema import corrections, doses, issuance_log, log_state, persons, sites


def _audit(db: Database, signer: keys.KeyPair) -> list[str]:
    with db.connect() as conn:
        report = log.audit_log(conn, log_certificate=signer.certificate)
    return sorted(f.code for f in report.findings)


def _withdrawals(db: Database) -> list[tuple[int, int, bytes]]:
    with db.connect() as conn:
        return [
            (row.seq, row.object_id, bytes(row.entry))
            for row in conn.execute(
                sa.select(issuance_log)
                .where(issuance_log.c.kind == "withdrawal")
                .order_by(issuance_log.c.seq)
            )
        ]


def _withdraw_twin(pipe: Pipeline) -> tuple[int, int]:  # noqa: F811
    """(dose id, correction id) of SITES2's dose 2 recorded at the wrong site, withdrawn by its correction."""
    twin = _dose(pipe, SITES2, 2, "2021-09-01", "HCM-017")
    cid = file_correction(pipe.db, citizen_id=SITES2, field="duplicate", dose_id=twin.id, now=FILED)
    resolve_correction(pipe.db, cid, now=RESOLVED, registry=REGISTRY)
    return int(twin.id), cid


def test_a_withdrawal_is_logged_with_its_correction_and_time_only(
    pipe: Pipeline,  # noqa: F811
    log_signer: keys.KeyPair,  # noqa: F811
) -> None:
    """One withdrawal entry: the dose id, the correction id and the time, no personal data; the audit is clean."""
    assert _withdrawals(pipe.db) == []
    dose_id, cid = _withdraw_twin(pipe)
    ((_, object_id, entry),) = _withdrawals(pipe.db)
    kind, logged_id, _, trace = log.decode_entry(entry)
    assert (kind, logged_id, object_id) == (log.Kind.WITHDRAWAL, dose_id, dose_id)
    assert trace == {"correction_id": cid, "withdrawn_at": int(RESOLVED.timestamp()) * 1_000_000}
    assert entry == log.withdrawal_entry(dose_id=dose_id, correction_id=cid, withdrawn_at=RESOLVED)
    for personal in (SITES2.encode(), NAMES[SITES2].encode(), b"C2", b"HCM-017", b"1990"):
        assert personal not in entry
    assert _audit(pipe.db, log_signer) == []


def test_a_failed_withdrawal_logs_nothing(pipe: Pipeline) -> None:  # noqa: F811
    """A refused resolution (the pair's second record after the first was withdrawn) leaves no entry behind."""
    first = _dose(pipe, DAYS, 1, "2021-08-01")
    second = _dose(pipe, DAYS, 1, "2021-08-09")
    a = file_correction(pipe.db, citizen_id=DAYS, field="duplicate", dose_id=first.id, now=FILED)
    b = file_correction(pipe.db, citizen_id=DAYS, field="duplicate", dose_id=second.id, now=FILED)
    resolve_correction(pipe.db, a, now=RESOLVED, registry=REGISTRY)
    with pytest.raises(PipelineError):
        resolve_correction(pipe.db, b, now=RESOLVED, registry=REGISTRY)
    assert [object_id for _, object_id, _ in _withdrawals(pipe.db)] == [first.id]


def test_a_withdrawal_set_by_hand_is_found(
    pipe: Pipeline,  # noqa: F811
    log_signer: keys.KeyPair,  # noqa: F811
) -> None:
    """doses.withdrawn_at set by SQL, without a correction or an entry: log.object_unlogged."""
    dose = _dose(pipe, CLEAN, 1, "2021-08-01")
    with pipe.db.begin() as conn:
        conn.execute(sa.update(doses).where(doses.c.id == dose.id).values(withdrawn_at=RESOLVED))
    assert _audit(pipe.db, log_signer) == ["log.object_unlogged"]


def test_a_withdrawal_cleared_by_hand_is_found(
    pipe: Pipeline,  # noqa: F811
    log_signer: keys.KeyPair,  # noqa: F811
) -> None:
    """A logged withdrawal whose withdrawn_at is set back to NULL (the record in force again): withdrawal_undone."""
    dose_id, _ = _withdraw_twin(pipe)
    with pipe.db.begin() as conn:
        conn.execute(sa.update(doses).where(doses.c.id == dose_id).values(withdrawn_at=None))
    assert _audit(pipe.db, log_signer) == ["log.withdrawal_undone"]


def test_a_withdrawal_moved_in_time_or_to_another_correction_is_found(
    pipe: Pipeline,  # noqa: F811
    log_signer: keys.KeyPair,  # noqa: F811
) -> None:
    """withdrawn_at back-dated, or its correction no longer resolved: the rebuilt entry differs (object_altered)."""
    dose_id, cid = _withdraw_twin(pipe)
    with pipe.db.begin() as conn:
        conn.execute(
            sa.update(doses)
            .where(doses.c.id == dose_id)
            .values(withdrawn_at=RESOLVED - dt.timedelta(days=30))
        )
    assert _audit(pipe.db, log_signer) == ["log.object_altered"]
    with pipe.db.begin() as conn:
        conn.execute(sa.update(doses).where(doses.c.id == dose_id).values(withdrawn_at=RESOLVED))
        conn.execute(sa.update(corrections).where(corrections.c.id == cid).values(state="open"))
    assert _audit(pipe.db, log_signer) == ["log.object_altered"]


def test_migration_0006_adopts_earlier_withdrawals_and_flags_one_made_by_hand(
    empty_database: Database,
    log_signer: keys.KeyPair,  # noqa: F811
) -> None:
    """A database at 0005 with a withdrawal by a resolved correction and one set by hand, upgraded: both get an
    entry equal to the current builder's; the one without a correction is log.withdrawal_uncorrected."""
    db = empty_database
    db.migrate("0005")
    with db.begin() as conn:
        conn.execute(sites.insert().values(site_id="HN-001"))
        person_id = conn.execute(
            persons.insert()
            .values(citizen_id=CLEAN, id_type="CCCD", full_name=NAMES[CLEAN], dob="1990", gender="M")
            .returning(persons.c.id)
        ).scalar_one()
        ids = [
            conn.execute(
                doses.insert()
                .values(
                    person_id=person_id,
                    dose_number=1,
                    date=dt.date(2021, 8, day),
                    site_id="HN-001",
                    vaccine="EU/1/20/1528",
                    lot="D1",
                    withdrawn_at=RESOLVED if day != 3 else None,
                )
                .returning(doses.c.id)
            ).scalar_one()
            for day in (1, 2, 3)
        ]
        cid = conn.execute(
            corrections.insert()
            .values(
                dose_id=ids[0],
                site_id="HN-001",
                field="duplicate",
                proposed_value="withdraw",
                state="resolved",
                filed_at=FILED,
                due_at=FILED + dt.timedelta(hours=48),
                resolved_at=RESOLVED,
            )
            .returning(corrections.c.id)
        ).scalar_one()
    db.migrate()
    assert db.current_revision() == db.head_revision()
    adopted = _withdrawals(db)
    assert [(seq, object_id) for seq, object_id, _ in adopted] == [(0, ids[0]), (1, ids[1])]
    assert adopted[0][2] == log.withdrawal_entry(dose_id=ids[0], correction_id=cid, withdrawn_at=RESOLVED)
    assert adopted[1][2] == log.withdrawal_entry(dose_id=ids[1], correction_id=None, withdrawn_at=RESOLVED)
    with db.connect() as conn:
        assert conn.execute(sa.select(log_state.c.size)).scalar_one() == 2
        stored = (
            conn.execute(sa.select(issuance_log.c.leaf_hash).order_by(issuance_log.c.seq)).scalars().all()
        )
    assert [bytes(h) for h in stored] == [leaf_hash(entry) for _, _, entry in adopted]
    assert _audit(db, log_signer) == ["log.withdrawal_uncorrected"]
