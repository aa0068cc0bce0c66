"""Central issuance, storing a claimed batch: the claims turn ``done``, the re-check that what the passports
relied on is still current, the passports, their dose links and their log entries, in one transaction
(:func:`commit`; person by person after an integrity error).

See :mod:`vaxcred.pipeline.issuance.stage` for the guarantees this transaction gives and how. On PostgreSQL a
worker stores through :mod:`~vaxcred.pipeline.issuance.roundtrip` (the same checks, server-side, together with
the next claim); this is SQLite's path, and PostgreSQL's fallback after an integrity error. Nothing here logs
personal data.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from vaxcred.issue import IssuedPassport
from vaxcred.pipeline import log
from vaxcred.pipeline.corrections import predecessors_of
from vaxcred.pipeline.issuance.claims import Job, utc
from vaxcred.pipeline.issuance.select import Eligible, Reason
from vaxcred.storage import Database
from vaxcred.storage.bulk import among, insert_rows, stored_time
from vaxcred.storage.schema import (
    ClaimState,
    PassportStatus,
    doses,
    issuance_claims,
    passport_doses,
    passports,
    persons,
    registry_checks,
    site_signatures,
)

__all__ = ["PASSPORT_COLUMNS", "Signed", "commit", "lock_persons"]

logger = logging.getLogger(__name__)

#: the conflict clause of the passports INSERT: the partial unique index ``uq_passports_active_person`` (an ON
#: CONFLICT target must name the index's predicate), skipping a person someone else's ACTIVE passport holds
_ONE_ACTIVE_PASSPORT: Final = (
    f"ON CONFLICT (person_id) WHERE status = '{PassportStatus.ACTIVE.value}' DO NOTHING"
)
PASSPORT_COLUMNS: Final = (
    "person_id",
    "uvci",
    "hc1",
    "kid",
    "iat",
    "exp",
    "issued_at",
    "status",
    "registry_check_id",
    "supersedes",
)


@dataclass(frozen=True, slots=True)
class Signed:
    """An eligible person and the passport signed for them, not stored yet."""

    eligible: Eligible
    passport: IssuedPassport


# --- storing --------------------------------------------------------------------------------------------------


def lock_persons(conn: Connection, person_ids: Sequence[int]) -> None:
    """``FOR KEY SHARE`` on ``person_ids``' rows, in id order (PostgreSQL; SQLite serialises writers): the lock
    the passports' foreign key takes anyway, taken before the re-check. A correction locks its person ``FOR
    UPDATE`` before it changes anything (:func:`vaxcred.pipeline.corrections.resolve_correction`), so either it
    waits for this transaction (and then revokes the passport stored), or this waits for it and the re-check,
    read after the lock, sees its change. One lock a passport, on a row the claim has already written (was:
    ``FOR SHARE`` on every signature relied on — a lock, a WAL record and a dirtied page each)."""
    if person_ids and conn.dialect.name == "postgresql":  # SQLite: the write transaction is the lock
        conn.execute(
            sa.select(persons.c.id)
            .where(among(conn, persons.c.id, person_ids))
            .order_by(persons.c.id)
            .with_for_update(read=True, key_share=True)
        ).all()


def _still_current(conn: Connection, signed: Sequence[Signed]) -> set[int]:
    """The persons whose signatures, newest registry check and dose set are still those relied on (read after
    :func:`lock_persons`)."""
    if not signed:
        return set()
    person_ids = sorted(s.eligible.person_id for s in signed)
    signature_ids = sorted(sig for s in signed for _, sig in s.eligible.links)
    lock_persons(conn, person_ids)
    current_signatures = set(
        conn.execute(
            sa.select(site_signatures.c.id).where(
                among(conn, site_signatures.c.id, signature_ids), site_signatures.c.superseded_at.is_(None)
            )
        ).scalars()
    )
    newest_check = dict(
        conn.execute(
            sa.select(registry_checks.c.person_id, sa.func.max(registry_checks.c.id))
            .where(among(conn, registry_checks.c.person_id, person_ids))
            .group_by(registry_checks.c.person_id)
        ).all()
    )
    dose_ids: dict[int, set[int]] = {}
    for person_id, dose_id in conn.execute(
        sa.select(doses.c.person_id, doses.c.id).where(
            among(conn, doses.c.person_id, person_ids), doses.c.withdrawn_at.is_(None)
        )
    ):
        dose_ids.setdefault(person_id, set()).add(dose_id)
    keep = set()
    for s in signed:
        e = s.eligible
        if (
            newest_check.get(e.person_id) == e.check_id
            and dose_ids.get(e.person_id, set()) == {d for d, _ in e.links}
            and all(sig in current_signatures for _, sig in e.links)
        ):
            keep.add(e.person_id)
    return keep


def _drafts(job: Job, signed: Sequence[Signed]) -> dict[int, log.PassportEntryDraft]:
    """Each signed passport's log entry but for its passport id and predecessor, written before the storing
    transaction (the write lock is not held meanwhile)."""
    return {
        s.eligible.person_id: log.passport_entry_draft(
            person_id=s.eligible.person_id,
            hc1=s.passport.hc1,
            kid=s.passport.kid,
            iat=s.passport.iat,
            exp=s.passport.exp,
            issued_at=job.now,
            registry_check_id=s.eligible.check_id,
            doses=s.eligible.links,
        )
        for s in signed
    }


def _store(
    db: Database,
    conn: Connection,
    job: Job,
    worker: str,
    claimed: Sequence[int],
    signed: Sequence[Signed],
    drafts: dict[int, log.PassportEntryDraft],
) -> tuple[int, dict[int, Reason]]:
    """One commit: our claims → done, the passports and their links. Returns (issued, reasons by person)."""
    reasons: dict[int, Reason] = {}
    done_at = utc(job.clock(), "clock()")
    owned = set(
        conn.execute(
            sa.update(issuance_claims)
            .where(
                among(conn, issuance_claims.c.person_id, sorted(claimed)),
                issuance_claims.c.worker == worker,
                issuance_claims.c.state == ClaimState.CLAIMED.value,
            )
            .values(state=ClaimState.DONE.value, claimed_at=done_at)
            .returning(issuance_claims.c.person_id)
        ).scalars()
    )
    mine = [s for s in signed if s.eligible.person_id in owned]
    for s in signed:
        if s.eligible.person_id not in owned:
            reasons[s.eligible.person_id] = Reason.CLAIM_LOST
    current = _still_current(conn, mine)
    to_insert = []
    for s in mine:
        if s.eligible.person_id not in current:
            reasons[s.eligible.person_id] = Reason.RECORD_CHANGED
        else:
            to_insert.append(s)
    if not to_insert:
        return 0, reasons
    to_insert.sort(key=lambda s: s.eligible.person_id)
    # a re-issue after a correction names the revoked passport it replaces (only one ACTIVE passport can)
    predecessors = predecessors_of(conn, [s.eligible.person_id for s in to_insert])
    times: dict[dt.datetime, object] = {}  # iat, exp and issued_at repeat across a batch: converted once each

    def bound(value: dt.datetime) -> object:
        found = times.get(value)
        if found is None:
            found = times[value] = stored_time(conn, value)
        return found

    issued_at = bound(job.now)
    rows = [
        (
            s.eligible.person_id,
            s.passport.uvci,
            s.passport.hc1,
            s.passport.kid,
            bound(s.passport.iat),
            bound(s.passport.exp),
            issued_at,
            PassportStatus.ACTIVE.value,
            s.eligible.check_id,
            predecessors.get(s.eligible.person_id),
        )
        for s in to_insert
    ]
    # the bulk INSERT of vaxcred.storage.bulk: the rows as the driver binds them, one statement a page
    inserted = {
        int(person_id): int(passport_id)  # type: ignore[call-overload]
        for passport_id, person_id in insert_rows(
            conn,
            passports,
            PASSPORT_COLUMNS,
            rows,
            on_conflict=_ONE_ACTIVE_PASSPORT,
            returning=("id", "person_id"),
        )
    }
    links: list[tuple[object, ...]] = []
    entries: dict[int, bytes] = {}
    for s in to_insert:
        passport_id = inserted.get(s.eligible.person_id)
        if passport_id is None:  # someone else's ACTIVE passport won the unique index
            reasons[s.eligible.person_id] = Reason.ALREADY_ACTIVE
            continue
        links.extend((passport_id, dose_id, sig_id) for dose_id, sig_id in s.eligible.links)
        # the entry of the row just inserted, from the values inserted (the audit recomputes it from the rows):
        # written ahead from the same values (_drafts), completed with the id and the predecessor read here
        entries[passport_id] = drafts[s.eligible.person_id].entry(
            passport_id, predecessors.get(s.eligible.person_id)
        )
    insert_rows(conn, passport_doses, ("passport_id", "dose_id", "site_signature_id"), links)
    # the issuance log records each passport in the transaction that stores it (vaxcred.pipeline.log)
    log.append_entries(conn, log.Kind.PASSPORT, entries, now=job.now)
    return len(inserted), reasons


def commit(
    db: Database, job: Job, worker: str, claimed: Sequence[int], signed: Sequence[Signed]
) -> tuple[int, dict[int, Reason]]:
    """:func:`_store` the batch in one transaction; on an integrity error, person by person."""
    drafts = _drafts(job, signed)
    try:
        with db.begin() as conn:
            return _store(db, conn, job, worker, claimed, signed, drafts)
    except sa.exc.IntegrityError:
        logger.warning(
            "issuance: a batch hit an integrity error; storing its %d persons one by one", len(claimed)
        )
    by_person = {s.eligible.person_id: s for s in signed}
    issued = 0
    reasons: dict[int, Reason] = {}
    for person_id in claimed:
        one = [by_person[person_id]] if person_id in by_person else []
        try:
            with db.begin() as conn:
                n, r = _store(db, conn, job, worker, [person_id], one, drafts)
        except sa.exc.IntegrityError:
            logger.warning(
                "issuance: person row %d not stored (integrity error); left for a re-run", person_id
            )
            with db.begin() as conn:  # done for this run; the next run tries again
                _store(db, conn, job, worker, [person_id], [], drafts)
            reasons[person_id] = Reason.ISSUE_REFUSED
            continue
        issued += n
        reasons.update(r)
    return issued, reasons
