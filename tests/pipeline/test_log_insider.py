"""The issuance log's audit against an insider editing rows by hand: tampering the first audit missed."""

from __future__ import annotations

import sqlalchemy as sa

from tests.pipeline.test_corrections import (
    DUC,
    Pipeline,
    dsc,  # noqa: F401 - fixture
    pipeline,  # noqa: F401 - fixture
    site_ca,  # noqa: F401 - fixture
    site_keys,  # noqa: F401 - fixture
)
from tests.pipeline.test_log import _audit, _tamper, history, log_signer  # noqa: F401 - fixtures
from vaxcred import keys
from vaxcred.storage.schema import PassportStatus, passports, persons


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
