"""The successor link: which revoked passport a person's next passport supersedes."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from vaxcred.storage import Database
from vaxcred.storage.bulk import among
from vaxcred.storage.schema import PassportStatus, passports


def predecessors_of(conn: Connection, person_ids: Sequence[int]) -> dict[int, int]:
    """Person id → the passport a new passport of theirs supersedes: their newest revoked passport that no
    passport supersedes yet (persons issued their first passport are absent). For the issuance commit:
    ``"supersedes": predecessors.get(person_id)`` in the transaction that stores the new passports."""
    if not person_ids:
        return {}
    successor = passports.alias("successor")
    query = (
        sa.select(passports.c.person_id, sa.func.max(passports.c.id))
        .where(
            among(conn, passports.c.person_id, sorted({int(p) for p in person_ids})),  # one parameter
            passports.c.status == PassportStatus.REVOKED.value,
            ~sa.exists().where(successor.c.supersedes == passports.c.id),
        )
        .group_by(passports.c.person_id)
    )
    return {int(person): int(passport) for person, passport in conn.execute(query)}


def predecessor_of(conn: Connection, person_id: int) -> int | None:
    """:func:`predecessors_of` for one person (``None``: a first passport)."""
    return predecessors_of(conn, [person_id]).get(int(person_id))


def pending_reissues(db: Database) -> list[int]:
    """Person ids waiting for a successor passport: a revoked, not yet superseded passport and no active one."""
    successor = passports.alias("successor")
    active = passports.alias("active")
    query = (
        sa.select(passports.c.person_id)
        .where(
            passports.c.status == PassportStatus.REVOKED.value,
            ~sa.exists().where(successor.c.supersedes == passports.c.id),
            ~sa.exists().where(
                active.c.person_id == passports.c.person_id, active.c.status == PassportStatus.ACTIVE.value
            ),
        )
        .distinct()
        .order_by(passports.c.person_id)
    )
    with db.connect() as conn:
        return [int(pid) for pid in conn.execute(query).scalars()]


def link_successors(db: Database) -> int:
    """Set ``supersedes`` on active passports stored without it while their holder has an unlinked revoked
    passport issued before them; returns how many were linked. Idempotent: a repair for passports stored by
    an issuance run that did not call :func:`predecessor_of`."""
    earlier = passports.alias("earlier")
    successor = passports.alias("successor")
    waiting = (
        sa.select(passports.c.id, passports.c.person_id)
        .where(
            passports.c.status == PassportStatus.ACTIVE.value,
            passports.c.supersedes.is_(None),
            sa.exists().where(
                earlier.c.person_id == passports.c.person_id,
                earlier.c.status == PassportStatus.REVOKED.value,
                earlier.c.id < passports.c.id,
                ~sa.exists().where(successor.c.supersedes == earlier.c.id),
            ),
        )
        .order_by(passports.c.id)
    )
    linked = 0
    with db.begin() as conn:
        for passport_id, person_id in conn.execute(waiting).all():
            previous = predecessor_of(conn, person_id)
            if previous is not None and previous < passport_id:
                conn.execute(
                    passports.update().where(passports.c.id == passport_id).values(supersedes=previous)
                )
                linked += 1
    return linked
