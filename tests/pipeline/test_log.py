"""vaxcred.pipeline.log: the tamper-evident issuance log on both backends — appended with every signed object,
signed tree heads, passport inclusion proofs, and an audit that finds each way of tampering with the data."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest
import sqlalchemy as sa

from tests.pipeline.test_corrections import (  # the corrections tests' pipeline: import, check, sign, issue
    DUC,
    FILED,
    FIXED,
    REGISTRY,
    RESOLVED,
    Pipeline,
    _issued_with_typo,
    dsc,  # noqa: F401 - fixture
    pipeline,  # noqa: F401 - fixture
    site_ca,  # noqa: F401 - fixture
    site_keys,  # noqa: F401 - fixture
)
from vaxcred import keys
from vaxcred.errors import SignatureError
from vaxcred.keys.purpose_signers import make_log_signer
from vaxcred.merkle import leaf_hash
from vaxcred.pipeline import log
from vaxcred.pipeline.corrections import file_correction, resolve_correction
from vaxcred.storage.schema import (
    issuance_log,
    log_state,
    log_tree_heads,
    passport_doses,
    passports,
    revocations,
    site_signature_batches,
    site_signatures,
)

NOW = RESOLVED + dt.timedelta(hours=1)


@pytest.fixture(scope="module")
def log_signer() -> keys.KeyPair:
    return make_log_signer(
        keys.make_csca(now=dt.datetime(2022, 1, 1, tzinfo=dt.UTC)), now=dt.datetime(2022, 1, 1, tzinfo=dt.UTC)
    )


@pytest.fixture
def history(pipeline: Pipeline, log_signer: keys.KeyPair) -> Pipeline:  # noqa: F811
    """Passports issued, one revoked by a correction and re-issued, and a signed tree head over all of it."""
    _issued_with_typo(pipeline)
    dose = pipeline.doses_of(DUC)[0]
    cid = file_correction(
        pipeline.db, citizen_id=DUC, dose_id=dose.id, field="full_name", proposed_value=FIXED, now=FILED
    )
    resolve_correction(pipeline.db, cid, now=RESOLVED, registry=REGISTRY, reissue=lambda _p: None)
    pipeline.sign(RESOLVED + dt.timedelta(minutes=1))
    pipeline.issue(RESOLVED + dt.timedelta(minutes=2))
    with pipeline.db.begin() as conn:
        log.sign_tree_head(conn, log_signer.signer(), now=NOW)
    return pipeline


def _audit(pipe: Pipeline, signer: keys.KeyPair) -> set[str]:
    with pipe.db.connect() as conn:
        report = log.audit_log(conn, log_certificate=signer.certificate)
    return {f.code for f in report.findings}


def _tamper(pipe: Pipeline, change: Callable[[sa.Connection], None]) -> None:
    with pipe.db.begin() as conn:
        change(conn)


def test_every_signed_object_is_logged_and_the_log_is_intact(
    history: Pipeline, log_signer: keys.KeyPair
) -> None:
    """Each site-signature batch, passport and revocation has exactly one entry; the audit finds nothing."""
    with history.db.connect() as conn:
        counts = {
            kind: conn.execute(
                sa.select(sa.func.count()).select_from(issuance_log).where(issuance_log.c.kind == kind.value)
            ).scalar_one()
            for kind in log.Kind
        }
        report = log.audit_log(conn, log_certificate=log_signer.certificate)
        size = log.log_size(conn)
    assert counts[log.Kind.PASSPORT] == history.count(passports) >= 3
    # every site signature is a batch member, logged in its batch's entry (v1 records had an entry each)
    assert counts[log.Kind.DOSE_BATCH] == history.count(site_signature_batches) >= 1
    assert counts[log.Kind.DOSE_RECORD] == 0
    assert history.count(site_signatures) >= 4
    assert counts[log.Kind.REVOCATION] == history.count(revocations) == 2
    assert report.intact, report.findings
    assert (report.entries, report.heads, report.uncovered) == (size, 1, 0)


def test_entries_hold_no_personal_data(history: Pipeline) -> None:
    """No citizen ID, name or date of birth appears in any entry's bytes."""
    with history.db.connect() as conn:
        blob = b"".join(bytes(e) for e in conn.execute(sa.select(issuance_log.c.entry)).scalars())
    for secret in (DUC, FIXED, "1990-05-17", "Nguyễn"):
        assert secret.encode() not in blob


def test_a_passport_row_removed_is_found(history: Pipeline, log_signer: keys.KeyPair) -> None:
    """Deleting the newest passport (and its links) leaves its entry pointing at nothing."""

    def remove(conn: sa.Connection) -> None:
        newest = conn.execute(sa.select(sa.func.max(passports.c.id))).scalar_one()
        conn.execute(sa.delete(passport_doses).where(passport_doses.c.passport_id == newest))
        conn.execute(sa.delete(passports).where(passports.c.id == newest))

    _tamper(history, remove)
    assert _audit(history, log_signer) == {"log.object_missing"}


@pytest.mark.parametrize(
    "values",
    [{"hc1": "HC1:FORGED"}, {"issued_at": dt.datetime(2022, 1, 2, tzinfo=dt.UTC)}, {"kid": b"\x00" * 8}],
    ids=["altered", "back-dated", "other-key"],
)
def test_a_passport_row_altered_or_back_dated_is_found(
    history: Pipeline, log_signer: keys.KeyPair, values: dict[str, object]
) -> None:
    """A changed HC1, issuance time or kid no longer rebuilds to the logged entry."""
    _tamper(
        history, lambda conn: conn.execute(sa.update(passports).where(passports.c.id == 1).values(**values))
    )
    assert _audit(history, log_signer) == {"log.object_altered"}


def test_a_passport_inserted_outside_the_log_is_found(history: Pipeline, log_signer: keys.KeyPair) -> None:
    """A passport row added by hand (no log entry) is reported as unlogged."""

    def insert(conn: sa.Connection) -> None:
        row = conn.execute(sa.select(passports).where(passports.c.id == 1)).one()._asdict()
        row.update(id=None, uvci="URN:UVCI:01:VN:BYT/FORGED#0", status="revoked", supersedes=None)
        del row["id"]
        conn.execute(sa.insert(passports).values(**row))

    _tamper(history, insert)
    assert _audit(history, log_signer) == {"log.object_unlogged"}


def test_a_log_entry_removed_is_found(history: Pipeline, log_signer: keys.KeyPair) -> None:
    """Deleting entry 2 leaves a gap, a size mismatch, an unlogged object and a head larger than the log."""
    _tamper(history, lambda conn: conn.execute(sa.delete(issuance_log).where(issuance_log.c.seq == 2)))
    assert {"log.gap", "log.size_mismatch", "log.object_unlogged", "log.head_beyond_log"} <= _audit(
        history, log_signer
    )


def test_log_entries_reordered_consistently_are_found_by_the_signed_head(
    history: Pipeline, log_signer: keys.KeyPair
) -> None:
    """Swapping two entries' positions keeps every row self-consistent; only the signed root betrays it."""

    def swap(conn: sa.Connection) -> None:
        conn.execute(sa.update(issuance_log).where(issuance_log.c.seq == 0).values(seq=-1))
        conn.execute(sa.update(issuance_log).where(issuance_log.c.seq == 1).values(seq=0))
        conn.execute(sa.update(issuance_log).where(issuance_log.c.seq == -1).values(seq=1))

    _tamper(history, swap)
    assert _audit(history, log_signer) == {"log.head_root_mismatch"}


def test_an_object_and_its_entry_rewritten_together_are_found_by_the_signed_head(
    history: Pipeline, log_signer: keys.KeyPair
) -> None:
    """An insider who back-dates a passport *and* rebuilds its entry and leaf hash is still caught by the head."""

    def rewrite(conn: sa.Connection) -> None:
        conn.execute(
            sa.update(passports)
            .where(passports.c.id == 1)
            .values(issued_at=dt.datetime(2022, 1, 2, tzinfo=dt.UTC))
        )
        entry = log.build_entries(conn, log.Kind.PASSPORT, [1])[1]
        conn.execute(
            sa.update(issuance_log)
            .where(issuance_log.c.kind == "passport", issuance_log.c.object_id == 1)
            .values(entry=entry, leaf_hash=leaf_hash(entry))
        )

    _tamper(history, rewrite)
    assert _audit(history, log_signer) == {"log.head_root_mismatch"}


def test_a_forged_or_foreign_tree_head_is_found(history: Pipeline, log_signer: keys.KeyPair) -> None:
    """A head whose signature bytes changed fails; a head checked with another log key fails."""

    def corrupt(conn: sa.Connection) -> None:
        head = bytearray(conn.execute(sa.select(log_tree_heads.c.cose)).scalar_one())
        head[-1] ^= 0x01
        conn.execute(sa.update(log_tree_heads).values(cose=bytes(head)))

    other = make_log_signer(keys.make_csca(now=FILED), now=FILED)
    assert _audit(history, other) == {"log.head_signature"}
    _tamper(history, corrupt)
    assert _audit(history, log_signer) == {"log.head_signature"}


def test_the_log_size_row_altered_is_found(history: Pipeline, log_signer: keys.KeyPair) -> None:
    """A log_state size that disagrees with the entries is a finding."""
    _tamper(history, lambda conn: conn.execute(sa.update(log_state).values(size=1)))
    assert "log.size_mismatch" in _audit(history, log_signer)


def test_a_passport_proof_verifies_offline_and_nothing_else_does(
    history: Pipeline, log_signer: keys.KeyPair
) -> None:
    """The proof for a passport verifies with its HC1 and the log certificate; another HC1, another key, or a
    tampered path does not."""
    (first, *_rest) = history.passports_of(DUC)
    with history.db.connect() as conn:
        proof = log.passport_proof(conn, first.uvci)
    assert proof is not None
    assert log.verify_passport_proof(first.hc1, proof, log_signer.certificate)
    assert not log.verify_passport_proof(first.hc1 + "A", proof, log_signer.certificate)
    other = make_log_signer(keys.make_csca(now=FILED), now=FILED)
    assert not log.verify_passport_proof(first.hc1, proof, other.certificate)
    if proof.path:
        bad_path = (bytes(32), *proof.path[1:])
        from dataclasses import replace

        assert not log.verify_passport_proof(first.hc1, replace(proof, path=bad_path), log_signer.certificate)
    garbage = log.PassportProof(entry=b"\xff", leaf_index=0, path=(), tree_head=b"\x00")
    assert not log.verify_passport_proof(first.hc1, garbage, log_signer.certificate)


def test_only_the_log_signer_signs_tree_heads(history: Pipeline) -> None:
    """A DSC cannot sign a tree head (one key, one purpose)."""
    with history.db.begin() as conn, pytest.raises(SignatureError) as e:
        log.sign_tree_head(conn, history.dsc.signer(), now=NOW)
    assert e.value.code == "log.wrong_key"


def test_entries_after_the_newest_head_are_reported_as_uncovered(
    history: Pipeline, log_signer: keys.KeyPair
) -> None:
    """Objects logged after the last head are counted as not yet covered by a signature (not a finding)."""
    dose = history.doses_of(DUC)[1]
    cid = file_correction(
        history.db, citizen_id=DUC, dose_id=dose.id, field="lot", proposed_value="FK9999", now=NOW
    )
    resolve_correction(
        history.db, cid, now=NOW + dt.timedelta(hours=1), registry=REGISTRY, reissue=lambda _p: None
    )
    with history.db.connect() as conn:
        report = log.audit_log(conn, log_certificate=log_signer.certificate)
    assert report.intact, report.findings
    assert report.uncovered >= 2


def test_anomaly_report_finds_night_signing_oversigning_and_unverified_passports(history: Pipeline) -> None:
    """A site signature at 05:00 local time, a site with far more signatures than doses, and a passport whose
    registry check is not VERIFIED each show in the report; the clean history shows none."""
    with history.db.connect() as conn:
        clean = log.anomaly_report(conn)
    assert clean.passports_without_verified_registry == 0
    before = {s.site_id: s.signatures for s in clean.outside_hours}  # the re-signing at 20:01 local is one
    assert sum(before.values()) == 1
    assert clean.oversigning == ()
    assert clean.busiest_hours[0].signatures >= 1

    def abuse(conn: sa.Connection) -> None:
        row = conn.execute(sa.select(site_signatures).order_by(site_signatures.c.id).limit(1)).one()._asdict()
        del row["id"]
        for minute in range(4):  # four more signatures of one dose, at 05:0x local (22:0x UTC)
            row.update(signed_at=dt.datetime(2022, 4, 20, 22, minute, tzinfo=dt.UTC), superseded_at=NOW)
            conn.execute(sa.insert(site_signatures).values(**row))
        check_id = conn.execute(
            sa.select(passports.c.registry_check_id).where(passports.c.id == 1)
        ).scalar_one()
        from vaxcred.storage.schema import registry_checks

        conn.execute(
            sa.update(registry_checks).where(registry_checks.c.id == check_id).values(status="MISMATCH")
        )

    _tamper(history, abuse)
    with history.db.connect() as conn:
        report = log.anomaly_report(conn)
    night = report.outside_hours[0]  # worst first
    assert night.signatures == before.get(night.site_id, 0) + 4
    assert [s.site_id for s in report.oversigning] == [night.site_id]
    assert report.passports_without_verified_registry == 1
    assert report.busiest_hours[0].signatures == 4
    assert report.busiest_hours[0].hour.hour == 5


def test_appended_entries_read_back_as_given(history: Pipeline) -> None:
    """append_entries (driver-bound rows, vaxcred.storage.bulk) stores each entry at the next leaf index, in
    object-id order, with its leaf hash and the time given, read back through the schema's types; the size row
    follows (checked in the same transaction, then rolled back)."""
    at = dt.datetime(2024, 2, 29, 23, 59, 58, 123456, tzinfo=dt.UTC)
    entries = {9_000_002: b"\xa1\x01\x02", 9_000_001: b"\x80"}
    with history.db.engine.connect() as conn, conn.begin() as transaction:
        size = log.log_size(conn)
        added = log.append_entries(conn, log.Kind.REVOCATION, entries, now=at)
        rows = conn.execute(
            sa.select(
                issuance_log.c.seq,
                issuance_log.c.kind,
                issuance_log.c.object_id,
                issuance_log.c.entry,
                issuance_log.c.leaf_hash,
                issuance_log.c.logged_at,
            )
            .where(issuance_log.c.seq >= size)
            .order_by(issuance_log.c.seq)
        ).all()
        assert log.log_size(conn) == size + 2
        transaction.rollback()
    assert added == range(size, size + 2)
    assert [tuple(row) for row in rows] == [
        (size, "revocation", 9_000_001, b"\x80", leaf_hash(b"\x80"), at),
        (size + 1, "revocation", 9_000_002, b"\xa1\x01\x02", leaf_hash(b"\xa1\x01\x02"), at),
    ]
