"""Filing a correction: validated, routed to the site that recorded the dose, due in 48 hours."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

import sqlalchemy as sa

from vaxcred.pipeline.corrections.model import (
    BAD_CORRECTION,
    RESPONSE_TIME,
    WITHDRAW,
    CorrectionField,
    DoseKey,
    _parse_field,
    _require_utc,
    _unknown,
)
from vaxcred.pipeline.corrections.validation import (
    _find_dose,
    _person_by_citizen,
    _person_doses,
    _validate_change,
    _validate_missing_dose,
    _validate_withdrawal,
)
from vaxcred.pipeline.records.calendar import vietnam_date
from vaxcred.storage import Database
from vaxcred.storage.schema import CorrectionState, corrections


def file_correction(
    db: Database,
    *,
    citizen_id: str,
    field: CorrectionField | str,
    proposed_value: str | int | Mapping[str, object] | None = None,
    now: dt.datetime,
    dose_id: int | None = None,
    dose_key: DoseKey | tuple[int, dt.date | str, str] | None = None,
) -> int:
    """File a correction for the citizen's dose ``dose_id`` or ``dose_key``; returns the correction's id.

    ``field`` is a :class:`CorrectionField`; ``proposed_value`` the new text (``dose_number`` also as an int),
    or for ``missing_dose`` a mapping of :data:`MISSING_DOSE_FIELDS` (no dose needs naming then); a
    ``duplicate`` correction (withdraw the named record) takes none. The correction is ``OPEN``, due
    ``now + 48 h``, routed to the site that recorded the dose (the missing dose's site). The same open
    correction filed again returns its id. See the package docstring for errors.
    """
    now = _require_utc(now)
    kind = _parse_field(field)
    key = DoseKey(*dose_key) if dose_key is not None else None
    with db.begin() as conn:
        person = _person_by_citizen(conn, citizen_id)
        dose = _find_dose(conn, person, dose_id, key)
        if kind is CorrectionField.DUPLICATE:
            if proposed_value is not None:
                raise ValueError("a duplicate correction takes no proposed value (it withdraws the dose)")
            if dose is None:
                raise TypeError("name the dose: dose_id or dose_key")
            _validate_withdrawal(conn, dose, code=BAD_CORRECTION)
            value, site_id = WITHDRAW, dose.site_id
        elif kind is CorrectionField.MISSING_DOSE:
            value, new_dose = _validate_missing_dose(conn, person, proposed_value, today=vietnam_date(now))
            site_id = str(new_dose["site_id"])
            if dose is None:
                recorded = _person_doses(conn, person.id)
                if not recorded:
                    raise _unknown("recorded dose to attach the missing dose to", "dose")
                dose = recorded[-1]
        else:
            if dose is None:
                raise TypeError("name the dose: dose_id or dose_key")
            if proposed_value is None:
                raise TypeError(f"the proposed {kind.value} must be given")
            value = _validate_change(conn, person, dose, kind, proposed_value, today=vietnam_date(now))
            site_id = dose.site_id
        existing = conn.execute(
            sa.select(corrections.c.id).where(
                corrections.c.dose_id == dose.id,
                corrections.c.field == kind.value,
                corrections.c.proposed_value == value,
                corrections.c.state == CorrectionState.OPEN.value,
            )
        ).first()
        if existing is not None:
            return int(existing.id)
        inserted = conn.execute(
            corrections.insert()
            .values(
                dose_id=dose.id,
                site_id=site_id,
                field=kind.value,
                proposed_value=value,
                state=CorrectionState.OPEN.value,
                filed_at=now,
                due_at=now + RESPONSE_TIME,
            )
            .returning(corrections.c.id)
        ).scalar_one()
        return int(inserted)
