"""Looking up the citizen and dose a correction names, and checking a proposed value as import would."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from vaxcred.pipeline.corrections.model import (
    _MAX_TEXT,
    BAD_CORRECTION,
    CORRECTION_CONFLICT,
    DOSE_WITHDRAWN,
    MISSING_DOSE_FIELDS,
    PERSON_FIELDS,
    Correction,
    CorrectionField,
    DoseKey,
    _bad,
    _unknown,
)
from vaxcred.pipeline.errors import PipelineError
from vaxcred.pipeline.records.history import contradicts
from vaxcred.pipeline.records.model import ImportRow, parse_row
from vaxcred.storage.schema import doses, persons, sites


def _person_by_citizen(conn: Connection, citizen_id: object) -> Row[Any]:
    if not isinstance(citizen_id, str):
        raise TypeError("citizen_id must be a str")
    row = conn.execute(sa.select(persons).where(persons.c.citizen_id == citizen_id.strip())).first()
    if row is None:
        raise _unknown("citizen", "citizen_id")
    return row


def _person_by_id(conn: Connection, person_id: int) -> Row[Any]:
    return conn.execute(sa.select(persons).where(persons.c.id == person_id)).one()


def _dose_by_id(conn: Connection, dose_id: int) -> Row[Any]:
    return conn.execute(sa.select(doses).where(doses.c.id == dose_id)).one()


def _person_doses(conn: Connection, person_id: int) -> list[Row[Any]]:
    """The person's dose records in force (not withdrawn), by date."""
    query = (
        sa.select(doses)
        .where(doses.c.person_id == person_id, doses.c.withdrawn_at.is_(None))
        .order_by(doses.c.date, doses.c.id)
    )
    return list(conn.execute(query))


def _refuse_withdrawn(dose: Row[Any]) -> None:
    if dose.withdrawn_at is not None:
        raise PipelineError(
            f"dose {dose.id} was withdrawn (a duplicate or a record made by mistake): no correction applies to it",
            code=DOSE_WITHDRAWN,
            field="dose",
        )


def _validate_withdrawal(conn: Connection, dose: Row[Any], *, code: str) -> None:
    """A ``duplicate`` correction may withdraw ``dose`` only while it is in force and contradicts another record
    in force of the same person (the same dose number again, or a dose number out of order with its date):
    withdrawing it then removes a contradiction. Withdrawing a record that contradicts nothing — the only record
    of its dose number in a consistent history — would resolve nothing and lose a dose: refused with ``code``
    (``pipeline.bad_correction`` when filed, ``pipeline.correction_conflict`` when the history changed before
    the resolution, e.g. the other record of a pair was withdrawn first)."""
    _refuse_withdrawn(dose)
    mine = (int(dose.dose_number), dose.date)
    others = [(int(d.dose_number), d.date) for d in _person_doses(conn, dose.person_id) if d.id != dose.id]
    if not any(contradicts(mine, other) for other in others):
        raise PipelineError(
            f"duplicate: dose {dose.id} contradicts no other record of the person (no second record of dose "
            f"{mine[0]}, none out of order with it): withdrawing it would resolve nothing",
            code=code,
            field=CorrectionField.DUPLICATE.value,
        )


def _find_dose(
    conn: Connection, person: Row[Any], dose_id: int | None, dose_key: DoseKey | None
) -> Row[Any] | None:
    """The dose named by id or natural key, which must be the person's; ``None`` when neither is given."""
    if dose_id is not None and dose_key is not None:
        raise ValueError("give dose_id or dose_key, not both")
    if dose_id is not None:
        if not isinstance(dose_id, int) or isinstance(dose_id, bool):
            raise TypeError("dose_id must be an int")
        query = sa.select(doses).where(doses.c.id == dose_id, doses.c.person_id == person.id)
    elif dose_key is not None:
        number, date, site_id = DoseKey(*dose_key)
        if isinstance(date, str):
            try:
                date = dt.date.fromisoformat(date)
            except ValueError:
                raise _bad("date", "the dose's date must be YYYY-MM-DD") from None
        if not isinstance(date, dt.date) or not isinstance(number, int) or not isinstance(site_id, str):
            raise TypeError("dose_key is (dose_number: int, date: date | str, site_id: str)")
        query = sa.select(doses).where(
            doses.c.person_id == person.id,
            doses.c.dose_number == number,
            doses.c.date == date,
            doses.c.site_id == site_id,
        )
    else:
        return None
    row = conn.execute(query).first()
    if row is None:
        raise _unknown("dose for this citizen", "dose")
    _refuse_withdrawn(row)
    return row


def _row_fields(person: Row[Any], dose: Row[Any] | Mapping[str, object]) -> dict[str, object]:
    """The import row of a stored person and a stored (or proposed) dose."""
    d = dose if isinstance(dose, Mapping) else dose._mapping
    date = d["date"]
    return {
        "citizen_id": person.citizen_id,
        "id_type": person.id_type,
        "full_name": person.full_name,
        "dob": person.dob,
        "gender": person.gender,
        "vaccine": d["vaccine"],
        "lot": d["lot"],
        "date": date.isoformat() if isinstance(date, dt.date) else date,
        "dose_number": d["dose_number"],
        "site_id": d["site_id"],
    }


def _parse(fields: Mapping[str, object], *, today: dt.date, proposed: Sequence[str], field: str) -> ImportRow:
    """:func:`parse_row` on a stored record with ``proposed`` fields replaced; a refusal names the proposed
    field at fault, or ``field`` (the correction's) when the new value makes a stored field invalid."""
    try:
        return parse_row(fields, today=today)
    except PipelineError as e:
        why = e.message.split(": ", 1)[-1]
        if e.field in proposed:
            raise PipelineError(f"{e.field}: {why}", code=BAD_CORRECTION, field=e.field) from e
        raise PipelineError(
            f"{field}: does not fit the stored record ({e.field}: {why})", code=BAD_CORRECTION, field=field
        ) from e


def _proposed_text(field: CorrectionField, value: object) -> str:
    if field is CorrectionField.DOSE_NUMBER and isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise TypeError(f"the proposed {field.value} must be a str")
    text = value.strip()
    if not text:
        raise _bad(field.value, "the proposed value is empty")
    return text


def _canonical(field: CorrectionField, row: ImportRow) -> str:
    p, d = row.person, row.dose
    values = {
        CorrectionField.FULL_NAME: p.full_name,
        CorrectionField.DOB: p.dob.text,
        CorrectionField.GENDER: p.gender.value,
        CorrectionField.VACCINE: d.vaccine,
        CorrectionField.LOT: d.lot,
        CorrectionField.DATE: d.date,
        CorrectionField.DOSE_NUMBER: str(d.dose_number),
    }
    return values[field]


def _validate_change(
    conn: Connection,
    person: Row[Any],
    dose: Row[Any],
    field: CorrectionField,
    value: object,
    *,
    today: dt.date,
) -> str:
    """The canonical proposed value of a person or dose field, checked as import would check it."""
    text = _proposed_text(field, value)
    # a person's fields must fit every dose of theirs (no dose date before a corrected birth date …)
    targets = _person_doses(conn, person.id) if field in PERSON_FIELDS else [dose]
    canonical: str | None = None
    for target in targets:
        fields = _row_fields(person, target)
        fields[field.value] = text
        canonical = _canonical(field, _parse(fields, today=today, proposed=(field.value,), field=field.value))
    assert canonical is not None  # the named dose is one of the person's
    if len(canonical) > _MAX_TEXT:
        raise _bad(field.value, f"longer than {_MAX_TEXT} characters")
    stored = _row_fields(person, dose)[field.value]
    if canonical == str(stored):
        raise _bad(field.value, "the record holds this value already")
    if field is CorrectionField.DATE:
        date = dt.date.fromisoformat(canonical)
        _refuse_taken_key(conn, person.id, dose.dose_number, date, dose.site_id, exclude=dose.id)
    elif field is CorrectionField.DOSE_NUMBER:
        _refuse_taken_key(conn, person.id, int(canonical), dose.date, dose.site_id, exclude=dose.id)
    return canonical


def _refuse_taken_key(
    conn: Connection, person_id: int, number: Any, date: Any, site_id: str, *, exclude: int | None = None
) -> None:
    query = sa.select(doses.c.id).where(
        doses.c.person_id == person_id,
        doses.c.dose_number == number,
        doses.c.date == date,
        doses.c.site_id == site_id,
    )
    if exclude is not None:
        query = query.where(doses.c.id != exclude)
    if conn.execute(query).first() is not None:
        raise PipelineError(
            "this dose (number, date, site) is recorded already (a withdrawn record keeps its key)",
            code=CORRECTION_CONFLICT,
            field="dose",
        )


def _validate_missing_dose(
    conn: Connection, person: Row[Any], value: object, *, today: dt.date
) -> tuple[str, dict[str, object]]:
    """(canonical JSON of the new dose without its site, the dose row's values) for a missing dose."""
    if not isinstance(value, Mapping):
        raise TypeError("the proposed missing dose must be a mapping with " + ", ".join(MISSING_DOSE_FIELDS))
    missing = [k for k in MISSING_DOSE_FIELDS if k not in value]
    extra = sorted(str(k) for k in value if k not in MISSING_DOSE_FIELDS)
    if missing or extra:
        raise _bad(
            CorrectionField.MISSING_DOSE.value,
            f"the new dose gives exactly {', '.join(MISSING_DOSE_FIELDS)}"
            + (f"; missing {', '.join(missing)}" if missing else "")
            + (f"; unknown {', '.join(extra)}" if extra else ""),
        )
    fields = _row_fields(person, value)
    d = _parse(
        fields, today=today, proposed=MISSING_DOSE_FIELDS, field=CorrectionField.MISSING_DOSE.value
    ).dose
    if conn.execute(sa.select(sites.c.site_id).where(sites.c.site_id == d.site_id)).first() is None:
        raise _unknown("vaccination site", "site_id")
    date = dt.date.fromisoformat(d.date)
    _refuse_taken_key(conn, person.id, d.dose_number, date, d.site_id)
    text = json.dumps(
        {"vaccine": d.vaccine, "lot": d.lot, "date": d.date, "dose_number": d.dose_number},
        ensure_ascii=False,
        separators=(",", ":"),
    )
    if len(text) > _MAX_TEXT:
        raise _bad(CorrectionField.MISSING_DOSE.value, f"the new dose takes more than {_MAX_TEXT} characters")
    row = {
        "person_id": person.id,
        "vaccine": d.vaccine,
        "lot": d.lot,
        "date": date,
        "dose_number": d.dose_number,
        "site_id": d.site_id,
    }
    return text, row


def _missing_dose_proposal(correction: Correction) -> dict[str, object]:
    """The proposed new dose of a stored missing-dose correction (its site is the correction's)."""
    proposed = json.loads(correction.proposed_value)
    if not isinstance(proposed, dict):  # pragma: no cover - written by file_correction
        raise PipelineError("the stored missing dose is not a JSON object", code=BAD_CORRECTION)
    return {**proposed, "site_id": correction.site_id}
