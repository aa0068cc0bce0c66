"""Batch site signatures stored and checked on both backends: issuance rejects every forged or altered member,
mixed v1/batch rows, corrections superseding part of a batch, the log audit, the 0003 -> 0004 migration."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography import x509
from sqlalchemy.engine import Connection

from tests.pipeline.test_registry_check import NOW as CHECK_TIME
from tests.pipeline.test_registry_check import SITES, load_people, registry_for
from vaxcred import keys
from vaxcred.codec import cbor, cose
from vaxcred.crypto import Signer
from vaxcred.pipeline.issuance.rows import SiteCertificates, load_candidates
from vaxcred.pipeline.issuance.select import Eligible, Reason, evaluate
from vaxcred.pipeline.log import Kind, audit_log, build_entries
from vaxcred.pipeline.records.model import DoseRecord
from vaxcred.pipeline.registry.check import run_registry_check
from vaxcred.pipeline.reports.certificate_data import certificate_data
from vaxcred.pipeline.site_signing.record import sign_dose, verify_dose
from vaxcred.pipeline.site_signing.sign_rows import _certificate_row, _sign_rows
from vaxcred.pipeline.site_signing.stage import (
    run_site_signing,
    supersede_signature,
    verify_stored_signatures,
)
from vaxcred.pipeline.site_signing.store import _store_batch
from vaxcred.pipeline.site_signing.work_queue import _DoseRow, _to_sign
from vaxcred.pipeline.site_signing.workers import _recheck
from vaxcred.storage import Database, open_database
from vaxcred.storage.schema import (
    doses,
    issuance_log,
    passport_doses,
    passports,
    persons,
    site_signature_batches,
    site_signatures,
)

KEY_TIME = dt.datetime(2022, 12, 1, tzinfo=dt.UTC)
NOW = dt.datetime(2023, 1, 2, 10, 30, 5, tzinfo=dt.UTC)
ISSUE_TIME = NOW + dt.timedelta(hours=1)
PER_SIGNATURE = 16
KEYED = SITES[:2]


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


@pytest.fixture
def signed(database: Database, signers: dict[str, Signer]) -> Database:
    """The synthetic people imported, checked, and their doses at keyed sites signed in batches of 16."""
    load_people(database, invalid=False)
    run_registry_check(database, registry_for(), now=CHECK_TIME)
    report = run_site_signing(database, signers, now=NOW, per_signature=PER_SIGNATURE)
    assert report.signed > 3 * PER_SIGNATURE
    return database


def _verdicts(db: Database, site_ca: x509.Certificate) -> dict[int, Eligible | Reason]:
    """Issuance's rules (1)–(7) for every verified person whose doses are all at keyed sites."""
    with db.connect() as conn:
        ids = [
            pid
            for (pid,) in conn.execute(
                sa.select(persons.c.id)
                .where(persons.c.registry_status == "VERIFIED")
                .where(~sa.exists().where(doses.c.person_id == persons.c.id, doses.c.site_id.not_in(KEYED)))
                .order_by(persons.c.id)
            )
        ]
        candidates = load_candidates(conn, ids)
        certificates = SiteCertificates(site_ca)
        certificates.load(conn, candidates)
    return {
        c.person_id: evaluate(c, certificates, now=ISSUE_TIME, certificate_issuer="Bộ Y tế")
        for c in candidates
    }


_BATCH_NAMED = ("site_id", "certificate", "kid")


def _members(conn: Connection) -> list[Any]:
    return list(
        conn.execute(
            sa.select(
                *(c for c in site_signatures.c if c.name not in _BATCH_NAMED),
                # a member's site, certificate and kid are its batch's (0012)
                *(
                    sa.func.coalesce(site_signature_batches.c[c], site_signatures.c[c]).label(c)
                    for c in _BATCH_NAMED
                ),
                doses.c.person_id,
            )
            .join(doses, doses.c.id == site_signatures.c.dose_id)
            .outerjoin(site_signature_batches, site_signature_batches.c.id == site_signatures.c.batch_id)
            .where(site_signatures.c.superseded_at.is_(None))
            .order_by(site_signatures.c.id)
        )
    )


def _person_of_signature(db: Database, signature_id: int) -> int:
    with db.connect() as conn:
        return int(
            conn.execute(
                sa.select(doses.c.person_id)
                .join(site_signatures, site_signatures.c.dose_id == doses.c.id)
                .where(site_signatures.c.id == signature_id)
            ).scalar_one()
        )


def test_every_person_is_eligible_and_every_member_verifies(signed: Database, site_ca: keys.KeyPair) -> None:
    """Untouched batches: issuance finds every person eligible; the stored-signature audit and log audit agree."""
    verdicts = _verdicts(signed, site_ca.certificate)
    assert verdicts
    assert all(isinstance(v, Eligible) for v in verdicts.values())
    assert all(check.ok for check in verify_stored_signatures(signed, site_ca=site_ca.certificate, now=NOW))
    with signed.connect() as conn:
        heads = conn.execute(sa.select(site_signature_batches)).all()
        members = _members(conn)
        assert audit_log(conn, log_certificate=site_ca.certificate).intact
    assert all(0 < h.size <= PER_SIGNATURE for h in heads)
    assert sum(h.size for h in heads) == len(members)
    assert all(m.batch_id is not None and len(m.proof) % 32 == 0 for m in members)


def test_batch_entries_built_at_signing_are_the_stored_rows_entries(signed: Database) -> None:
    """Site signing logs each batch's entry from the values it inserted: byte for byte what the rows read back give."""
    with signed.connect() as conn:
        logged = {
            row.object_id: bytes(row.entry)
            for row in conn.execute(
                sa.select(issuance_log.c.object_id, issuance_log.c.entry).where(
                    issuance_log.c.kind == Kind.DOSE_BATCH.value
                )
            )
        }
        assert (
            len(logged)
            == conn.execute(sa.select(sa.func.count()).select_from(site_signature_batches)).scalar()
        )
        assert logged == build_entries(conn, Kind.DOSE_BATCH, list(logged))


def _tamper_payload(conn: Connection, m: Any, _: list[Any]) -> None:
    lot = m.cose.index(b"clot") + 5  # the first byte of the lot text
    payload = m.cose[:lot] + bytes([m.cose[lot] ^ 0x01]) + m.cose[lot + 1 :]
    conn.execute(site_signatures.update().where(site_signatures.c.id == m.id).values(cose=payload))


def _neighbour(m: Any, members: list[Any]) -> Any:
    return next(o for o in members if o.batch_id == m.batch_id and o.id != m.id)


def _set(**values: Callable[[Any, list[Any]], object]) -> Callable[[Connection, Any, list[Any]], None]:
    def change(conn: Connection, m: Any, members: list[Any]) -> None:
        conn.execute(
            site_signatures.update()
            .where(site_signatures.c.id == m.id)
            .values({k: f(m, members) for k, f in values.items()})
        )

    return change


def _other_batch(same_site: bool) -> Callable[[Any, list[Any]], object]:
    def pick(m: Any, members: list[Any]) -> object:
        return next(
            o.batch_id for o in members if o.batch_id != m.batch_id and (o.site_id == m.site_id) == same_site
        )

    return pick


def _alter_head(conn: Connection, m: Any, _: list[Any]) -> None:
    head = conn.execute(
        sa.select(site_signature_batches.c.head).where(site_signature_batches.c.id == m.batch_id)
    ).scalar_one()
    altered = head[:-5] + bytes([head[-5] ^ 0x80]) + head[-4:]
    conn.execute(
        site_signature_batches.update().where(site_signature_batches.c.id == m.batch_id).values(head=altered)
    )


TAMPERING: dict[str, tuple[Callable[[Connection, Any, list[Any]], None], Reason]] = {
    "payload tampered": (_tamper_payload, Reason.SIGNATURE_INVALID),
    "another member's proof": (_set(proof=lambda m, ms: _neighbour(m, ms).proof), Reason.SIGNATURE_INVALID),
    "proof cut short": (_set(proof=lambda m, _: m.proof[:-32]), Reason.SIGNATURE_INVALID),
    "proof made longer": (_set(proof=lambda m, _: m.proof + m.proof[:32]), Reason.SIGNATURE_INVALID),
    "proof not whole hashes": (_set(proof=lambda m, _: m.proof[:-1]), Reason.SIGNATURE_INVALID),
    "wrong index": (_set(leaf_index=lambda m, ms: _neighbour(m, ms).leaf_index), Reason.SIGNATURE_INVALID),
    "no index": (_set(leaf_index=lambda m, _: None), Reason.SIGNATURE_INVALID),
    "head of another batch (swapped root)": (_set(batch_id=_other_batch(True)), Reason.SIGNATURE_INVALID),
    # since 0012 a member's site and certificate are its batch's: it moves with its batch
    "head of another site": (_set(batch_id=_other_batch(False)), Reason.SIGNATURE_INVALID),
    # a v1 row names its own site and kid (0012's CHECK): its batch's copied into it
    "member read as a v1 record": (
        _set(
            batch_id=lambda m, _: None,
            **{column: (lambda c: lambda m, _: getattr(m, c))(column) for column in _BATCH_NAMED},
        ),
        Reason.SIGNATURE_INVALID,
    ),
    "head bytes altered": (_alter_head, Reason.SIGNATURE_INVALID),
    "another person's member copied": (
        _set(
            **{
                column: (lambda c: lambda m, ms: getattr(_neighbour(m, ms), c))(column)
                for column in ("cose", "leaf_index", "proof")
            }
        ),
        Reason.CITIZEN_MISMATCH,
    ),
}


@pytest.mark.parametrize("how", sorted(TAMPERING))
def test_issuance_rejects_an_altered_member(signed: Database, site_ca: keys.KeyPair, how: str) -> None:
    """Each way of altering a stored batch member by SQL: its person is refused with the existing reason, the
    stored-signature audit and the log audit report it; the other people stay eligible."""
    change, reason = TAMPERING[how]
    judged = _verdicts(signed, site_ca.certificate)
    with signed.begin() as conn:
        members = _members(conn)
        victim = next(m for m in members[PER_SIGNATURE:] if m.person_id in judged)
        change(conn, victim, members)
    verdicts = _verdicts(signed, site_ca.certificate)
    assert verdicts[victim.person_id] == reason
    refused = {pid for pid, v in verdicts.items() if not isinstance(v, Eligible)}
    checks = verify_stored_signatures(signed, site_ca=site_ca.certificate, now=NOW)
    assert victim.dose_id in {c.dose_id for c in checks if not c.ok}
    if how == "head bytes altered":  # every member of that batch falls with its head
        assert len(refused) > 1
    else:
        assert refused == {victim.person_id}
    with signed.connect() as conn:
        report = audit_log(conn, log_certificate=site_ca.certificate)
    assert "log.object_altered" in {f.code for f in report.findings}


def test_a_row_forged_into_a_valid_batch_is_rejected(signed: Database, site_ca: keys.KeyPair) -> None:
    """A signature row inserted by SQL for a person's dose (its real one superseded), naming a valid batch with
    another person's member (payload, index, path): issuance refuses the person; the log audit finds the batch
    altered (its entry lists its members)."""
    judged = _verdicts(signed, site_ca.certificate)
    with signed.begin() as conn:
        members = _members(conn)
        victim = next(m for m in members[PER_SIGNATURE:] if m.person_id in judged)
        model = next(m for m in members if m.batch_id == victim.batch_id and m.person_id != victim.person_id)
        conn.execute(
            site_signatures.update().where(site_signatures.c.id == victim.id).values(superseded_at=NOW)
        )
        copied = ("cose", "signed_at", "batch_id", "leaf_index", "proof")
        conn.execute(
            site_signatures.insert().values(dose_id=victim.dose_id, **{c: getattr(model, c) for c in copied})
        )
    verdicts = _verdicts(signed, site_ca.certificate)
    assert verdicts[victim.person_id] == Reason.CITIZEN_MISMATCH
    assert {pid for pid, v in verdicts.items() if not isinstance(v, Eligible)} == {victim.person_id}
    with signed.connect() as conn:
        codes = {f.code for f in audit_log(conn, log_certificate=site_ca.certificate).findings}
    assert codes == {"log.object_altered"}


def test_mixed_v1_and_batch_rows_are_both_accepted(
    signed: Database, site_ca: keys.KeyPair, signers: dict[str, Signer]
) -> None:
    """v1 rows stored before batch signing (their own COSE_Sign1, no batch) verify beside batch members."""
    judged = _verdicts(signed, site_ca.certificate)
    with signed.begin() as conn:
        members = [m for m in _members(conn) if m.person_id in judged][:5]
        for m in members:
            row = conn.execute(
                sa.select(doses, persons.c.citizen_id)
                .join(persons, persons.c.id == doses.c.person_id)
                .where(doses.c.id == m.dose_id)
            ).one()
            record = DoseRecord(
                citizen_id=row.citizen_id,
                vaccine=row.vaccine,
                lot=row.lot,
                date=row.date.isoformat(),
                dose_number=row.dose_number,
                site_id=row.site_id,
            )
            v1 = sign_dose(record, signer=signers[row.site_id], now=NOW)
            conn.execute(
                site_signatures.update()
                .where(site_signatures.c.id == m.id)
                .values(
                    cose=v1.cose,
                    batch_id=None,
                    leaf_index=None,
                    proof=None,
                    **{c: getattr(m, c) for c in _BATCH_NAMED},  # a v1 row names its own (0012)
                )
            )
    verdicts = _verdicts(signed, site_ca.certificate)
    assert all(isinstance(v, Eligible) for v in verdicts.values())
    assert {m.person_id for m in members} <= set(verdicts)
    assert all(check.ok for check in verify_stored_signatures(signed, site_ca=site_ca.certificate))


def test_a_batch_partly_superseded_by_a_correction(
    signed: Database, site_ca: keys.KeyPair, signers: dict[str, Signer]
) -> None:
    """A correction supersedes one member: the rest of its batch stays valid, the dose is signed again in a new
    batch of one, and everything verifies (issuance, stored-signature audit, log audit)."""
    later = NOW + dt.timedelta(minutes=5)
    with signed.begin() as conn:
        victim = _members(conn)[PER_SIGNATURE + 3]
        conn.execute(doses.update().where(doses.c.id == victim.dose_id).values(lot="FIXED-1"))
        assert supersede_signature(conn, victim.dose_id, now=later)
    assert _verdicts(signed, site_ca.certificate)[victim.person_id] == Reason.DOSE_UNSIGNED
    assert run_site_signing(signed, signers, now=later, per_signature=PER_SIGNATURE).signed == 1
    verdicts = _verdicts(signed, site_ca.certificate)
    assert all(isinstance(v, Eligible) for v in verdicts.values())
    assert all(check.ok for check in verify_stored_signatures(signed, site_ca=site_ca.certificate))
    with signed.connect() as conn:
        fresh = conn.execute(
            sa.select(site_signature_batches.c.size)
            .join(site_signatures, site_signatures.c.batch_id == site_signature_batches.c.id)
            .where(site_signatures.c.dose_id == victim.dose_id, site_signatures.c.superseded_at.is_(None))
        ).scalar_one()
        assert fresh == 1
        assert audit_log(conn, log_certificate=site_ca.certificate).intact


def test_a_removed_member_is_found_by_the_log_audit(signed: Database, site_ca: keys.KeyPair) -> None:
    """A member row deleted by SQL: the log audit reports its batch altered; a batch row deleted with its
    members: reported missing."""
    with signed.begin() as conn:
        victim = _members(conn)[PER_SIGNATURE + 1]
        conn.execute(site_signatures.delete().where(site_signatures.c.id == victim.id))
        assert {f.code for f in audit_log(conn, log_certificate=site_ca.certificate).findings} == {
            "log.object_altered"
        }
        conn.execute(site_signatures.delete().where(site_signatures.c.batch_id == victim.batch_id))
        if (
            signed.backend == "postgresql"
        ):  # batches are never deleted (0011's triggers): a superuser's tampering
            conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
        conn.execute(site_signature_batches.delete().where(site_signature_batches.c.id == victim.batch_id))
        codes = {f.code for f in audit_log(conn, log_certificate=site_ca.certificate).findings}
    assert codes == {"log.object_missing"}


def test_a_v1_row_inserted_outside_the_log_is_found(signed: Database, site_ca: keys.KeyPair) -> None:
    """A signature row without a batch (a v1 record) is logged on its own: one inserted by SQL is unlogged."""
    with signed.begin() as conn:
        m = _members(conn)[0]
        conn.execute(site_signatures.update().where(site_signatures.c.id == m.id).values(superseded_at=NOW))
        copied = ("site_id", "certificate", "kid", "cose", "signed_at")
        conn.execute(site_signatures.insert().values(dose_id=m.dose_id, **{c: getattr(m, c) for c in copied}))
        codes = {f.code for f in audit_log(conn, log_certificate=site_ca.certificate).findings}
    assert codes == {"log.object_unlogged"}


def test_migrating_from_0003_keeps_v1_signatures(database_url: str, site_ca: keys.KeyPair) -> None:
    """A database at 0003 holding v1 signatures upgrades to 0004: the rows are kept (no batch), and at most one
    current signature per dose is still enforced."""
    db = open_database(database_url)
    try:
        db.migrate("0003")
        with db.begin() as conn:
            conn.execute(sa.text("INSERT INTO sites (site_id) VALUES ('VN001-S01')"))
            conn.execute(
                sa.text(
                    "INSERT INTO persons (id, citizen_id, id_type, full_name, dob, gender) "
                    "VALUES (1, '001090012345', 'CCCD', 'A', '1990', 'M')"
                )
            )
            conn.execute(
                sa.text(
                    "INSERT INTO doses (id, person_id, dose_number, date, site_id, vaccine, lot) "
                    "VALUES (1, 1, 1, '2022-01-01', 'VN001-S01', 'Comirnaty', 'L1')"
                )
            )
            conn.execute(
                sa.text(
                    "INSERT INTO site_signatures (dose_id, site_id, kid, cose, signed_at) "
                    "VALUES (1, 'VN001-S01', :kid, :cose, :at)"
                ),
                {"kid": b"k" * 8, "cose": b"\xd2v1", "at": "2022-01-02 00:00:00"},
            )
        db.migrate()
        assert db.current_revision() == db.head_revision()
        with db.connect() as conn:
            row = conn.execute(sa.select(site_signatures)).one()
        assert (row.cose, row.batch_id, row.leaf_index, row.proof) == (b"\xd2v1", None, None, None)
        with pytest.raises(sa.exc.IntegrityError), db.begin() as conn:
            conn.execute(
                site_signatures.insert().values(
                    dose_id=1, site_id="VN001-S01", kid=b"k" * 8, cose=b"\xd2v1", signed_at=NOW
                )
            )
    finally:
        db.dispose()


def test_certificate_data_carries_each_dose_record_standalone(
    signed: Database, site_ca: keys.KeyPair, site_keys: dict[str, keys.KeyPair]
) -> None:
    """The certificate's doses carry the records the passport relied on, each verifiable on its own (batch head
    included) with its site certificate."""
    judged = _verdicts(signed, site_ca.certificate)
    with signed.begin() as conn:
        person_id, verdict = next((p, v) for p, v in judged.items() if isinstance(v, Eligible))
        assert isinstance(verdict, Eligible)
        citizen_id = conn.execute(
            sa.select(persons.c.citizen_id).where(persons.c.id == person_id)
        ).scalar_one()
        check_id = verdict.check_id
        passport_id = conn.execute(
            passports.insert()
            .values(
                person_id=person_id,
                uvci="URN:UVCI:01:VN:TEST",
                hc1="HC1:TEST",
                kid=b"k" * 8,
                iat=ISSUE_TIME,
                exp=ISSUE_TIME + dt.timedelta(days=365),
                issued_at=ISSUE_TIME,
                registry_check_id=check_id,
            )
            .returning(passports.c.id)
        ).scalar_one()
        conn.execute(
            passport_doses.insert(),
            [
                {"passport_id": passport_id, "dose_id": dose_id, "site_signature_id": signature_id}
                for dose_id, signature_id in verdict.links
            ],
        )
    data = certificate_data(signed, citizen_id)
    assert data.doses
    certificates = {pair.kid: pair.certificate for pair in site_keys.values()}
    for dose in data.doses:
        record = dose.site_record
        assert record.startswith(b"\x85\x02")
        kid = cose.decode_sign1(cbor.loads(record, max_depth=2)[1]).kid
        assert kid is not None
        claims = verify_dose(
            record, site_certificate=certificates[kid], site_ca=site_ca.certificate, citizen_id=citizen_id
        )
        assert (claims.dose_number, claims.date, claims.lot) == (dose.dose_number, dose.date, dose.lot)


def test_a_worker_stores_only_what_still_holds_when_it_commits(
    database: Database, site_ca: keys.KeyPair, site_keys: dict[str, keys.KeyPair], signers: dict[str, Signer]
) -> None:
    """A worker's batch signed outside the transaction: a dose changed meanwhile is signed again under a fresh
    head of one, a person no longer VERIFIED is left out, the rest is stored under the batch head as signed."""
    load_people(database, invalid=False)
    run_registry_check(database, registry_for(), now=CHECK_TIME)
    site = KEYED[0]
    certificates = {s: _certificate_row(signer) for s, signer in signers.items()}
    with database.connect() as conn:
        rows = [_DoseRow(*r) for r in conn.execute(_to_sign(site, 0, 40))]
    outcomes = _sign_rows(rows, signers, NOW, PER_SIGNATURE)
    changed, dropped = rows[3], next(r for r in rows[5:] if r.citizen_id != rows[3].citizen_id)
    with database.begin() as conn:
        conn.execute(doses.update().where(doses.c.id == changed.id).values(lot="CHANGED-1"))
        person = conn.execute(sa.select(doses.c.person_id).where(doses.c.id == dropped.id)).scalar_one()
        conn.execute(persons.update().where(persons.c.id == person).values(registry_status="MISMATCH"))
    with database.begin() as conn:
        kept_rows, kept = _recheck(conn, rows, outcomes, signers, NOW, PER_SIGNATURE)
        stored, failed = _store_batch(database, conn, kept_rows, kept, certificates)
    gone = {r.id for r in rows if r.citizen_id == dropped.citizen_id}
    assert (stored, failed) == (len(rows) - len(gone), 0)
    with database.connect() as conn:
        sizes = {
            int(dose_id): int(size)
            for dose_id, size in conn.execute(
                sa.select(site_signatures.c.dose_id, site_signature_batches.c.size).join(
                    site_signature_batches, site_signature_batches.c.id == site_signatures.c.batch_id
                )
            )
        }
    assert sizes[changed.id] == 1
    assert not gone & set(sizes)
    assert {sizes[r.id] for r in rows if r.id != changed.id and r.id not in gone} == {
        PER_SIGNATURE,
        40 - 2 * PER_SIGNATURE,
    }
    checks = verify_stored_signatures(database, site_ca=site_ca.certificate)
    assert checks
    assert all(c.ok for c in checks)


def test_a_batch_row_whose_columns_disagree_with_its_head(signed: Database, site_ca: keys.KeyPair) -> None:
    """The batch row's size or time changed by SQL: verification reads the signed head only (people stay
    eligible), and the log audit reports the batch altered."""
    with signed.begin() as conn:
        batch_id = _members(conn)[0].batch_id
        conn.execute(
            site_signature_batches.update()
            .where(site_signature_batches.c.id == batch_id)
            .values(size=PER_SIGNATURE * 4, signed_at=NOW - dt.timedelta(days=1))
        )
    assert all(isinstance(v, Eligible) for v in _verdicts(signed, site_ca.certificate).values())
    with signed.connect() as conn:
        codes = {f.code for f in audit_log(conn, log_certificate=site_ca.certificate).findings}
    assert codes == {"log.object_altered"}


def test_a_batchs_members_are_read_by_index(signed: Database) -> None:
    """Regression: reading a batch's members (its log entry, the audit) scanned every signature (quadratic in the
    signatures stored); the plan must use ix_site_signatures_batch_id."""
    if signed.backend != "sqlite":
        pytest.skip("the query plan is checked on SQLite (PostgreSQL picks by statistics)")
    with signed.connect() as conn:
        plan = " ".join(
            str(row[-1])
            for row in conn.exec_driver_sql(
                "EXPLAIN QUERY PLAN SELECT id, cose FROM site_signatures WHERE batch_id IN (1, 2, 3) ORDER BY batch_id, id"
            )
        )
    assert "ix_site_signatures_batch_id" in plan


def test_a_back_dated_member_is_found_by_the_log_audit(signed: Database, site_ca: keys.KeyPair) -> None:
    """Regression: a member row's own columns (its signing time: what the anomaly report reads) were not in its
    batch's entry, so back-dating one by SQL went unseen; now the batch is reported altered."""
    with signed.begin() as conn:
        victim = _members(conn)[PER_SIGNATURE + 2]
        conn.execute(
            site_signatures.update()
            .where(site_signatures.c.id == victim.id)
            .values(signed_at=NOW - dt.timedelta(days=30))
        )
        codes = {f.code for f in audit_log(conn, log_certificate=site_ca.certificate).findings}
    assert codes == {"log.object_altered"}


def test_a_batch_whose_doses_were_signed_meanwhile_stores_only_the_rest(
    database: Database, signers: dict[str, Signer], site_ca: keys.KeyPair
) -> None:
    """Regression guard for the store's conflict path: doses a concurrent run signed after this batch was read
    are skipped (PostgreSQL: the plain INSERT refused by the one-current-signature index, then the savepoint
    rolled back and the batch stored without them), the others are stored once, and the log lists each
    stored member once."""
    load_people(database, invalid=False)
    run_registry_check(database, registry_for(), now=CHECK_TIME)
    certificates = {s: _certificate_row(signer) for s, signer in signers.items()}
    with database.connect() as conn:
        rows = [_DoseRow(*r) for r in conn.execute(_to_sign(KEYED[0], 0, 40))]
    first = rows[5:12]  # the other run's batch: in the middle of this one
    with database.begin() as conn:
        assert _store_batch(
            database, conn, first, _sign_rows(first, signers, NOW, PER_SIGNATURE), certificates
        ) == (len(first), 0)
    with database.begin() as conn:
        stored, failed = _store_batch(
            database, conn, rows, _sign_rows(rows, signers, NOW, PER_SIGNATURE), certificates
        )
    assert (stored, failed) == (len(rows) - len(first), 0)
    with database.connect() as conn:
        current = (
            conn.execute(
                sa.select(site_signatures.c.dose_id).where(site_signatures.c.superseded_at.is_(None))
            )
            .scalars()
            .all()
        )
        assert audit_log(conn, log_certificate=site_ca.certificate).intact
    assert sorted(current) == sorted(r.id for r in rows)
