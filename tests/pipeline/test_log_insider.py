"""The issuance log's audit against an insider editing rows by hand: tampering the first audit missed."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from tests.pipeline.test_corrections import (
    DUC,
    Pipeline,
    dsc,  # noqa: F401 - fixture
    pipeline,  # noqa: F401 - fixture
    site_ca,  # noqa: F401 - fixture
    site_keys,  # noqa: F401 - fixture
)
from tests.pipeline.test_log import NOW, _audit, _tamper, history, log_signer  # noqa: F401 - fixtures
from vaxcred import keys
from vaxcred.pipeline import log
from vaxcred.pipeline.errors import PipelineError
from vaxcred.storage.schema import PassportStatus, issuance_log, log_tree_heads, passports, persons


def test_a_passport_moved_to_another_person_is_found(
    history: Pipeline,  # noqa: F811
    log_signer: keys.KeyPair,  # noqa: F811
) -> None:
    """Re-pointing a passport row at another person (its person_id) no longer rebuilds to the logged entry."""
    owner = history.person(DUC).id
    passport = history.passports_of(DUC)[0].id

    def move(conn: sa.Connection) -> None:
        other = conn.execute(sa.select(sa.func.min(persons.c.id)).where(persons.c.id != owner)).scalar_one()
        conn.execute(sa.update(passports).where(passports.c.id == passport).values(person_id=other))

    _tamper(history, move)
    assert _audit(history, log_signer) == {"log.object_altered"}


def test_a_revoked_passport_marked_active_again_is_found(
    history: Pipeline,  # noqa: F811
    log_signer: keys.KeyPair,  # noqa: F811
) -> None:
    """A passport with a logged revocation set back to ACTIVE by hand is reported (its status is not logged)."""
    revoked, successor = (p.id for p in history.passports_of(DUC))

    def undo(conn: sa.Connection) -> None:
        conn.execute(
            sa.update(passports)
            .where(passports.c.id == successor)
            .values(status=PassportStatus.REVOKED.value)
        )
        conn.execute(
            sa.update(passports)
            .where(passports.c.id == revoked)
            .values(status=PassportStatus.ACTIVE.value, revoked_at=None)
        )

    _tamper(history, undo)
    assert _audit(history, log_signer) == {"log.revocation_undone"}


def test_the_untampered_history_has_no_revocation_undone(
    history: Pipeline,  # noqa: F811
    log_signer: keys.KeyPair,  # noqa: F811
) -> None:
    """The revocation check finds nothing in an honest log (one passport revoked, its successor active)."""
    assert _audit(history, log_signer) == set()


def _published_head(pipe: Pipeline) -> bytes:
    with pipe.db.connect() as conn:
        return bytes(conn.execute(sa.select(log_tree_heads.c.cose)).scalar_one())


def test_a_published_head_deleted_from_the_database_is_found(
    history: Pipeline,  # noqa: F811
    log_signer: keys.KeyPair,  # noqa: F811
) -> None:
    """Deleting every stored head makes the stored log look merely unsigned; the head an auditor kept says not."""
    kept = _published_head(history)
    _tamper(history, lambda conn: conn.execute(sa.delete(log_tree_heads)))
    assert _audit(history, log_signer) == set()
    with history.db.connect() as conn:
        report = log.audit_log(conn, log_certificate=log_signer.certificate, published=[kept])
    assert {f.code for f in report.findings} == {"log.head_missing"}


def test_a_consistent_rewrite_re_signed_is_found_by_a_published_head(
    history: Pipeline,  # noqa: F811
    log_signer: keys.KeyPair,  # noqa: F811
) -> None:
    """An insider with the log key reorders entries, drops the old head and signs a new one: the stored log audits
    clean, and only the head published before the rewrite betrays it."""
    kept = _published_head(history)

    def rewrite(conn: sa.Connection) -> None:
        conn.execute(sa.update(issuance_log).where(issuance_log.c.seq == 0).values(seq=-1))
        conn.execute(sa.update(issuance_log).where(issuance_log.c.seq == 1).values(seq=0))
        conn.execute(sa.update(issuance_log).where(issuance_log.c.seq == -1).values(seq=1))
        conn.execute(sa.delete(log_tree_heads))
        log.sign_tree_head(conn, log_signer.signer(), now=NOW + dt.timedelta(hours=1))

    _tamper(history, rewrite)
    assert _audit(history, log_signer) == set()
    with history.db.connect() as conn:
        report = log.audit_log(conn, log_certificate=log_signer.certificate, published=[kept])
    assert {f.code for f in report.findings} == {"log.head_root_mismatch", "log.head_missing"}


def test_a_published_head_that_does_not_verify_is_a_finding(
    history: Pipeline,  # noqa: F811
    log_signer: keys.KeyPair,  # noqa: F811
) -> None:
    """A kept head with a flipped byte (or not a head at all) is reported, never trusted."""
    kept = bytearray(_published_head(history))
    kept[-1] ^= 0x01
    with history.db.connect() as conn:
        report = log.audit_log(
            conn, log_certificate=log_signer.certificate, published=[bytes(kept), b"not a head"]
        )
    assert [f.code for f in report.findings] == ["log.head_signature", "log.head_signature"]


def _grow(conn: sa.Connection) -> None:
    """One more passport logged the honest way (a copy of passport 1 under a new UVCI)."""
    row = conn.execute(sa.select(passports).where(passports.c.id == 1)).one()._asdict()
    del row["id"]
    row.update(uvci="URN:UVCI:01:VN:BYT/GROWN#0", status="revoked", supersedes=None)
    new_id = conn.execute(sa.insert(passports).values(**row).returning(passports.c.id)).scalar_one()
    log.append(conn, log.Kind.PASSPORT, [new_id], now=NOW)


def test_sign_head_refuses_a_log_that_no_longer_extends_the_last_head(
    history: Pipeline,  # noqa: F811
    log_signer: keys.KeyPair,  # noqa: F811
) -> None:
    """Once entries under a signed head are reordered, signing a new head over the grown log is refused (it
    would bless the rewrite) and nothing is stored; the same log untampered is signed as before."""
    _tamper(history, _grow)

    def reorder(conn: sa.Connection) -> None:
        for a, b in ((0, -1), (1, 0), (-1, 1)):
            conn.execute(sa.update(issuance_log).where(issuance_log.c.seq == a).values(seq=b))

    _tamper(history, reorder)
    with pytest.raises(PipelineError) as caught, history.db.begin() as conn:
        log.sign_tree_head(conn, log_signer.signer(), now=NOW + dt.timedelta(hours=1))
    assert caught.value.code == "log.head_root_mismatch"
    with history.db.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(log_tree_heads)).scalar_one() == 1
    _tamper(history, reorder)  # undone: the same swap again
    with history.db.begin() as conn:
        head = log.sign_tree_head(conn, log_signer.signer(), now=NOW + dt.timedelta(hours=1))
    assert _audit(history, log_signer) == set()
    assert head.tree_size == _published_size(history)


def _published_size(pipe: Pipeline) -> int:
    with pipe.db.connect() as conn:
        return int(conn.execute(sa.select(sa.func.max(log_tree_heads.c.tree_size))).scalar_one())
