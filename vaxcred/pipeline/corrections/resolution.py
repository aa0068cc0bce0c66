"""Closing a correction: rejection, or resolution with revocation of the person's active passport."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from vaxcred.pipeline import log
from vaxcred.pipeline.corrections.listings import get_correction
from vaxcred.pipeline.corrections.model import (
    _MAX_TEXT,
    BAD_CORRECTION,
    CORRECTION_CLOSED,
    CORRECTION_CONFLICT,
    PERSON_FIELDS,
    REVOCATION_HASH_TYPES,
    Correction,
    CorrectionField,
    Resolution,
    _correction_from_row,
    _note,
    _require_utc,
    _unknown,
)
from vaxcred.pipeline.corrections.validation import (
    _dose_by_id,
    _missing_dose_proposal,
    _person_by_id,
    _refuse_withdrawn,
    _validate_change,
    _validate_missing_dose,
    _validate_withdrawal,
)
from vaxcred.pipeline.errors import PipelineError
from vaxcred.pipeline.records.calendar import vietnam_date
from vaxcred.pipeline.registry.check import run_registry_check
from vaxcred.pipeline.registry.lookup import PopulationRegistry, RegistryStatus
from vaxcred.pipeline.reports.revocation_export import BAD_PASSPORT, decode_passport
from vaxcred.pipeline.site_signing.stage import lock_out_signing, supersede_signature
from vaxcred.revocation import HashType, revocation_hashes
from vaxcred.storage import Database
from vaxcred.storage.schema import (
    CorrectionState,
    PassportStatus,
    corrections,
    doses,
    passport_doses,
    passports,
    persons,
    revocations,
    site_signatures,
)


def _close(
    conn: Connection, correction_id: int, *, state: CorrectionState, now: dt.datetime, note: str | None
) -> Correction:
    """Lock the correction, check it is open and not filed after ``now``, and move it to ``state``."""
    row = conn.execute(
        sa.select(corrections).where(corrections.c.id == correction_id).with_for_update()
    ).first()
    if row is None:
        raise _unknown("correction")
    correction = _correction_from_row(row)
    if correction.state is not CorrectionState.OPEN:
        raise PipelineError(
            f"correction {correction_id} is {correction.state.value} already", code=CORRECTION_CLOSED
        )
    if now < correction.filed_at:
        raise PipelineError(
            f"correction {correction_id} cannot be closed at {now:%Y-%m-%d %H:%M} UTC: it was filed later, "
            f"at {correction.filed_at:%Y-%m-%d %H:%M} UTC",
            code=BAD_CORRECTION,
            field="at",
        )
    updated = conn.execute(
        corrections.update()
        .where(corrections.c.id == correction_id, corrections.c.state == CorrectionState.OPEN.value)
        .values(state=state.value, resolved_at=now, resolution=note)
    )
    if updated.rowcount != 1:  # pragma: no cover - the row lock above makes this unreachable
        raise PipelineError(f"correction {correction_id} was closed meanwhile", code=CORRECTION_CLOSED)
    return correction


def reject_correction(db: Database, correction_id: int, *, now: dt.datetime, note: str) -> Correction:
    """``OPEN → REJECTED`` with ``note`` (why; required); no record changes. Returns the closed correction."""
    now = _require_utc(now)
    text = _note(note, required=True)
    with db.begin() as conn:
        _close(conn, correction_id, state=CorrectionState.REJECTED, now=now, note=text)
    return get_correction(db, correction_id)


def revoke_active_passport(
    conn: Connection,
    person_id: int,
    *,
    now: dt.datetime,
    reason: str,
    hash_types: Sequence[HashType] = REVOCATION_HASH_TYPES,
) -> int | None:
    """Revoke the person's ``ACTIVE`` passport, if any, inside the caller's transaction; returns its id.

    The passport becomes ``revoked`` at ``now``; one ``revocations`` row per hash type, computed from the
    stored HC1 (``ci``, ``co``, COSE signature and algorithm) under the passport's kid, expiring with it.
    """
    now = _require_utc(now)
    row = conn.execute(
        sa.select(passports.c.id, passports.c.hc1, passports.c.kid, passports.c.exp)
        .where(passports.c.person_id == person_id, passports.c.status == PassportStatus.ACTIVE.value)
        .with_for_update()
    ).first()
    if row is None:
        return None
    decoded = decode_passport(row.hc1)
    kid = bytes(row.kid)
    if decoded.kid is not None and decoded.kid != kid:
        raise PipelineError("the stored kid differs from the HC1's", code=BAD_PASSPORT)
    hashes = revocation_hashes(
        uvci=decoded.uvci, country=decoded.country, signature=decoded.signature, alg=decoded.alg
    )
    updated = conn.execute(
        passports.update()
        .where(passports.c.id == row.id, passports.c.status == PassportStatus.ACTIVE.value)
        .values(status=PassportStatus.REVOKED.value, revoked_at=now)
    )
    if updated.rowcount != 1:  # pragma: no cover - locked above
        return None
    revoked = conn.execute(
        revocations.insert().returning(revocations.c.id),
        [
            {
                "passport_id": row.id,
                "hash_type": t.value,
                "hash": hashes[t],
                "kid": kid,
                "revoked_at": now,
                "expires": row.exp,
                "reason": reason[:_MAX_TEXT],
            }
            for t in dict.fromkeys(hash_types)
        ],
    ).scalars()
    # the issuance log records each revocation in the transaction that stores it (vaxcred.pipeline.log)
    log.append(conn, log.Kind.REVOCATION, list(revoked), now=now)
    return int(row.id)


def _lock_current_signatures(conn: Connection, person_id: int) -> None:
    """``FOR UPDATE`` on the person's row, then on its current site signatures (PostgreSQL; SQLite serialises
    writers). The person's row is what an issuance commit locks (``FOR KEY SHARE``, before its re-check:
    :func:`vaxcred.pipeline.issuance.store.lock_persons`): a commit in flight finishes first and its passport is
    revoked below, or it waits for this transaction and its re-check sees the change."""
    conn.execute(sa.select(persons.c.id).where(persons.c.id == person_id).with_for_update()).all()
    conn.execute(
        sa.select(site_signatures.c.id)
        .where(
            site_signatures.c.superseded_at.is_(None),
            site_signatures.c.dose_id.in_(sa.select(doses.c.id).where(doses.c.person_id == person_id)),
        )
        .order_by(site_signatures.c.id)
        .with_for_update()
    ).all()


def _lock_doses_in_force(conn: Connection, person_id: int) -> None:
    """``FOR UPDATE`` on the person's doses in force, in id order (PostgreSQL; SQLite serialises writers): two
    ``duplicate`` resolutions for one person (the two records of a pair) run one after the other, and the second
    sees the first's withdrawal — it is refused instead of withdrawing the pair's last record."""
    conn.execute(
        sa.select(doses.c.id)
        .where(doses.c.person_id == person_id, doses.c.withdrawn_at.is_(None))
        .order_by(doses.c.id)
        .with_for_update()
    ).all()


def _new_dose_versions(conn: Connection, person_id: int) -> None:
    """PostgreSQL: give each of the person's doses in force a new row version (a no-op UPDATE), locked first in
    id order, before the person row changes. Site signing's store keeps a signature only for a dose row still
    at the version its batch read (:mod:`vaxcred.pipeline.site_signing.member_rows`), and since session 10 the
    resolution holds site signing's lock exclusive (:func:`lock_out_signing`, taken first): a store in flight
    has committed before this runs, and a later one finds the person row at a new version anyway. The dose
    versions are kept as a second line (a store that read before this commit re-reads these doses too); before
    the lock they were what made a store in flight wait, its row locks re-checking only the rows it locked.
    Doses before the person, both in id order, as the store's re-read locks them: no deadlock with it. SQLite
    serialises writers (``BEGIN IMMEDIATE``) and its store re-reads."""
    if conn.dialect.name != "postgresql":
        return
    _lock_doses_in_force(conn, person_id)
    conn.execute(
        doses.update()
        .where(doses.c.person_id == person_id, doses.c.withdrawn_at.is_(None))
        .values(id=doses.c.id)
    )


def _active_passport_relies_on(conn: Connection, person_id: int, dose_id: int) -> bool:
    """Whether the person's ACTIVE passport was issued on ``dose_id`` (links it in ``passport_doses``)."""
    query = (
        sa.select(passports.c.id)
        .join(passport_doses, passport_doses.c.passport_id == passports.c.id)
        .where(
            passports.c.person_id == person_id,
            passports.c.status == PassportStatus.ACTIVE.value,
            passport_doses.c.dose_id == dose_id,
        )
    )
    return conn.execute(query).first() is not None


def _withdraw(conn: Connection, person_id: int, dose_id: int, *, now: dt.datetime) -> bool:
    """Withdraw the dose (checked again on the locked, current records); returns whether the person's active
    passport relied on it (then it must be revoked)."""
    _lock_doses_in_force(conn, person_id)
    _validate_withdrawal(conn, _dose_by_id(conn, dose_id), code=CORRECTION_CONFLICT)
    conn.execute(
        doses.update().where(doses.c.id == dose_id, doses.c.withdrawn_at.is_(None)).values(withdrawn_at=now)
    )
    # logged in this transaction (the correction is already resolved: the entry names it)
    log.append(conn, log.Kind.WITHDRAWAL, [dose_id], now=now)
    return _active_passport_relies_on(conn, person_id, dose_id)


def resolve_correction(
    db: Database,
    correction_id: int,
    *,
    now: dt.datetime,
    registry: PopulationRegistry,
    reissue: Callable[[int], object] | None = None,
    note: str | None = None,
) -> Resolution:
    """Apply an open correction: update the record, supersede the dose's site signature, revoke the person's
    active passport, re-check the person against ``registry``; then ``reissue(person_id)`` if a passport was
    revoked and ``reissue`` is given. See the package docstring for the steps and what a crash leaves."""
    now = _require_utc(now)
    text = _note(note, required=False)
    with db.begin() as conn:
        # first of all (before any row lock or log append): a site-signing store in flight commits before this
        # changes a dose (then its signature is superseded below), a later one waits for this commit
        lock_out_signing(conn)
        # (1) OPEN -> RESOLVED, under the row lock
        correction = _close(conn, correction_id, state=CorrectionState.RESOLVED, now=now, note=text)
        filed_dose = _dose_by_id(conn, correction.dose_id)
        person = _person_by_id(conn, filed_dose.person_id)
        kind = correction.field
        # an issuance commit in flight holds FOR KEY SHARE on the person: it finishes first (and its passport is
        # revoked below) or, once this commits, finds its inputs changed and stores nothing
        _lock_current_signatures(conn, person.id)
        # (2) apply the change, validated again on today's data
        revoke = True
        if kind is CorrectionField.DUPLICATE:
            dose_id = int(filed_dose.id)
            revoke = _withdraw(conn, person.id, dose_id, now=now)
            # (3) the record's signature is superseded; site signing never signs a withdrawn record again
            superseded = bool(supersede_signature(conn, dose_id, now=now))
        elif kind is CorrectionField.MISSING_DOSE:
            _, new_dose = _validate_missing_dose(
                conn, person, _missing_dose_proposal(correction), today=vietnam_date(now)
            )
            dose_id = int(conn.execute(doses.insert().values(new_dose).returning(doses.c.id)).scalar_one())
            superseded = False
        else:
            if kind not in PERSON_FIELDS:
                _refuse_withdrawn(filed_dose)  # withdrawn since filing: reject the correction
            value = _validate_change(
                conn, person, filed_dose, kind, correction.proposed_value, today=vietnam_date(now)
            )
            if kind in PERSON_FIELDS:
                _new_dose_versions(conn, person.id)
                conn.execute(
                    persons.update()
                    .where(persons.c.id == person.id)
                    .values({kind.value: value, "registry_status": None, "registry_checked_at": None})
                )
            else:
                new: object = value
                if kind is CorrectionField.DATE:
                    new = dt.date.fromisoformat(value)
                elif kind is CorrectionField.DOSE_NUMBER:
                    new = int(value)
                changed = conn.execute(
                    doses.update()
                    .where(doses.c.id == filed_dose.id, doses.c.withdrawn_at.is_(None))
                    .values({kind.value: new})
                )
                if changed.rowcount != 1:  # withdrawn by a resolution that committed after our first read
                    _refuse_withdrawn(_dose_by_id(conn, filed_dose.id))
            dose_id = int(filed_dose.id)
            # (3) the site signs the corrected record again
            superseded = bool(supersede_signature(conn, dose_id, now=now))
        # (4) the passport built on the old record is revoked; its successor will supersede it (a withdrawal
        # revokes only a passport issued on the withdrawn record: one issued before it was recorded stays valid)
        revoked = (
            revoke_active_passport(conn, person.id, now=now, reason=f"correction {correction_id}")
            if revoke
            else None
        )
    # (5) re-check the person (after the commit: a registry call never holds a transaction open)
    run_registry_check(db, registry, now=now, person_ids=[int(person.id)])
    with db.connect() as conn:
        status = conn.execute(
            sa.select(persons.c.registry_status).where(persons.c.id == person.id)
        ).scalar_one()
    # (6) re-sign and re-issue now, if the caller wants it
    if revoked is not None and reissue is not None:
        reissue(int(person.id))
    return Resolution(
        correction_id=correction_id,
        person_id=int(person.id),
        dose_id=dose_id,
        superseded_signature=superseded,
        revoked_passport_id=revoked,
        registry_status=RegistryStatus(status) if status is not None else None,
        withdrawn=kind is CorrectionField.DUPLICATE,
    )
