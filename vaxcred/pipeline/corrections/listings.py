"""Reading corrections: one by id, a site's open ones, and the overdue report."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from vaxcred.pipeline.corrections.model import (
    Correction,
    OverdueSite,
    _correction_from_row,
    _require_utc,
    _unknown,
)
from vaxcred.storage import Database
from vaxcred.storage.schema import CorrectionState, corrections


def get_correction(db: Database, correction_id: int) -> Correction:
    """One correction by id (``pipeline.unknown_record`` if there is none)."""
    with db.connect() as conn:
        row = conn.execute(sa.select(corrections).where(corrections.c.id == correction_id)).first()
    if row is None:
        raise _unknown("correction")
    return _correction_from_row(row)


def open_corrections(db: Database, site_id: str) -> list[Correction]:
    """The site's open corrections, the most urgent (earliest ``due_at``) first."""
    query = (
        sa.select(corrections)
        .where(corrections.c.site_id == site_id, corrections.c.state == CorrectionState.OPEN.value)
        .order_by(corrections.c.due_at, corrections.c.id)
    )
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
