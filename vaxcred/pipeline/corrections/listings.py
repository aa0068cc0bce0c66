"""Reading corrections: one by id, the open ones (a site's or the nation's), the overdue report, and the dose
records of a person (with the ids a correction names)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from vaxcred.pipeline.corrections.model import (
    Correction,
    OverdueSite,
    _correction_from_row,
    _require_utc,
    _unknown,
)
from vaxcred.pipeline.records.history import HistoryProblem, history_problems
from vaxcred.storage import Database
from vaxcred.storage.schema import CorrectionState, corrections, doses, persons, site_signatures


def _with_dose_state() -> sa.Select[Any]:
    """Corrections with their dose's ``withdrawn_at`` (:attr:`Correction.dose_withdrawn`)."""
    return sa.select(corrections, doses.c.withdrawn_at).join(doses, doses.c.id == corrections.c.dose_id)


def get_correction(db: Database, correction_id: int) -> Correction:
    """One correction by id (``pipeline.unknown_record`` if there is none)."""
    with db.connect() as conn:
        row = conn.execute(_with_dose_state().where(corrections.c.id == correction_id)).first()
    if row is None:
        raise _unknown("correction")
    return _correction_from_row(row)


def open_corrections(
    db: Database, site_id: str | None = None, *, limit: int | None = None
) -> list[Correction]:
    """The open corrections of site ``site_id`` (``None``: of every site, nationally), the most urgent (earliest
    ``due_at``) first; at most ``limit`` of them."""
    query = (
        _with_dose_state()
        .where(corrections.c.state == CorrectionState.OPEN.value)
        .order_by(corrections.c.due_at, corrections.c.id)
    )
    if site_id is not None:
        query = query.where(corrections.c.site_id == site_id)
    if limit is not None:
        query = query.limit(limit)
    with db.connect() as conn:
        return [_correction_from_row(row) for row in conn.execute(query)]


def overdue_report(db: Database, *, now: dt.datetime) -> list[OverdueSite]:
    """Sites with open corrections past their deadline at ``now``: the most overdue first, then the one
    waiting longest (earliest ``due_at``), then by site id."""
    now = _require_utc(now)
    count = sa.func.count().label("open_overdue")
    oldest = sa.func.min(corrections.c.due_at).label("oldest_due_at")
    query = (
        sa.select(corrections.c.site_id, count, oldest)
        .where(corrections.c.state == CorrectionState.OPEN.value, corrections.c.due_at < now)
        .group_by(corrections.c.site_id)
        .order_by(count.desc(), oldest, corrections.c.site_id)
    )
    with db.connect() as conn:
        return [
            OverdueSite(site_id=site, open_overdue=int(n), oldest_due_at=_require_utc(due, "due_at"))
            for site, n, due in conn.execute(query)
        ]


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordedDose:
    """A stored dose record as an operator needs it to file a correction: its ``id`` (``--dose-id``), natural
    key, vaccine and lot, whether a site signature is current, the open corrections naming it, and when a
    ``duplicate`` correction withdrew it (``None``: in force)."""

    id: int
    dose_number: int
    date: dt.date
    site_id: str
    vaccine: str
    lot: str
    signed: bool
    open_corrections: int
    withdrawn_at: dt.datetime | None = None


def recorded_doses(
    db: Database, citizen_id: str
) -> tuple[tuple[RecordedDose, ...], tuple[HistoryProblem, ...]]:
    """The person's dose records (by date, dose number, id; withdrawn ones too, with ``withdrawn_at``) and what
    makes the records in force contradictory (``()`` when nothing); ``pipeline.unknown_record`` for no such
    citizen."""
    if not isinstance(citizen_id, str):
        raise TypeError("citizen_id must be a str")
    signed = sa.exists().where(
        site_signatures.c.dose_id == doses.c.id, site_signatures.c.superseded_at.is_(None)
    )
    pending = (
        sa.select(sa.func.count())
        .where(corrections.c.dose_id == doses.c.id, corrections.c.state == CorrectionState.OPEN.value)
        .scalar_subquery()
    )
    with db.connect() as conn:
        person_id = conn.execute(
            sa.select(persons.c.id).where(persons.c.citizen_id == citizen_id.strip())
        ).scalar()
        if person_id is None:
            raise _unknown("citizen")
        rows = conn.execute(
            sa.select(
                doses.c.id,
                doses.c.dose_number,
                doses.c.date,
                doses.c.site_id,
                doses.c.vaccine,
                doses.c.lot,
                doses.c.withdrawn_at,
                signed.label("signed"),
                pending.label("pending"),
            )
            .where(doses.c.person_id == person_id)
            .order_by(doses.c.date, doses.c.dose_number, doses.c.id)
        ).all()
    found = tuple(
        RecordedDose(
            id=int(r.id),
            dose_number=int(r.dose_number),
            date=r.date,
            site_id=r.site_id,
            vaccine=r.vaccine,
            lot=r.lot,
            signed=bool(r.signed),
            open_corrections=int(r.pending),
            withdrawn_at=r.withdrawn_at,
        )
        for r in rows
    )
    return found, history_problems((d.dose_number, d.date) for d in found if d.withdrawn_at is None)
