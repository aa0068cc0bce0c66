"""Corrections (phản ánh): a citizen asks for a record to be fixed; the site that recorded it answers in 48 hours.

States (``corrections.state``; nothing else, and never back)::

              file_correction                resolve_correction (applies the change)
    (citizen) ───────────────▶  OPEN  ──────────────────────────────────────────────▶  RESOLVED
                                 │    due_at = filed_at + 48 h
                                 │            reject_correction (a note says why)
                                 └──────────────────────────────────────────────────▶  REJECTED

**What can be corrected.** :class:`CorrectionField`: the person's ``full_name``, ``dob``, ``gender``; a dose's
``vaccine``, ``lot``, ``date``, ``dose_number``; and ``missing_dose``, a dose the site gave but never recorded
(seed 004), whose proposed value is the new dose: ``{"vaccine", "lot", "date", "dose_number", "site_id"}``.
A proposed value is checked with the import parser (:func:`vaxcred.pipeline.records.parse_row`) on the stored
record with that one field replaced — a date of birth must still agree with the CCCD, a dose date must not be
before the birth, a vaccine must be known — and stored in its canonical form (NFC name, ``M``/``F``, the
canonical vaccine). A value equal to the stored one, an empty value, or a change that would give a dose the
natural key of another dose is refused. Errors are :class:`~vaxcred.pipeline.errors.PipelineError`:

====================================  ================================================================
``pipeline.bad_correction``           unknown field, or a proposed value that import would refuse
                                      (``field`` names it); messages hold no personal value
``pipeline.unknown_record``           no such citizen, dose (for that citizen), site or correction
``pipeline.correction_closed``        the correction is resolved or rejected already
``pipeline.correction_conflict``      the change collides with another stored dose (natural key), or the
                                      missing dose has been recorded meanwhile: reject the correction
``pipeline.bad_passport``             the stored HC1 of the passport to revoke does not decode
====================================  ================================================================

**Routing.** Each correction names a dose (by id or by natural key); it goes to the site that recorded that
dose (``corrections.site_id``), also for person fields: the citizen reads the error on that site's record.
A missing dose goes to the site named in it (that site must exist) and is attached to the person's newest
recorded dose (``corrections.dose_id`` is NOT NULL), or to the dose given. Filing is idempotent: the same
open correction (dose, field, canonical value) filed again returns the existing id and keeps its clock.

**Resolution** (:func:`resolve_correction`), in one transaction:

1. the correction moves ``OPEN → RESOLVED`` under its row lock (``FOR UPDATE``; SQLite's ``BEGIN IMMEDIATE``
   serialises writers): of two concurrent resolutions one wins, the other gets ``pipeline.correction_closed``.
   The person's current site signatures are locked ``FOR UPDATE`` too: an issuance commit holding ``FOR SHARE``
   on them finishes first (and its passport is revoked in step 4), or finds its inputs changed and stores
   nothing. The proposed value is validated again on the current data;
2. the change is applied: the person row (its ``registry_status`` reset to NULL — unchecked — so that a crash
   before step 5 leaves the person in the registry stage's queue; site signing takes ``VERIFIED`` persons only,
   so nothing is signed or issued on the stale result), the dose row, or a new dose row (dose fields leave the
   registry status as it is: the registry compares person fields only);
3. the current site signature of the dose the correction names is superseded
   (:func:`vaxcred.pipeline.site_signing.supersede_signature`): the site signs the corrected record again in
   the next site-signing run, and issuance waits for that (a new missing dose has no signature yet either);
4. if the person holds an ``ACTIVE`` passport it is revoked (:func:`revoke_active_passport`): status
   ``revoked``, ``revoked_at``, and ``revocations`` rows by ``UCI`` and ``SIGNATURE`` hash (from the stored
   HC1: ``ci``, ``co``, COSE signature and algorithm), under the passport's kid, kept until its ``exp``,
   reason ``"correction <id>"``;

   — commit —

5. the registry check runs again for that person (:func:`vaxcred.pipeline.registry_check.run_registry_check`
   with ``person_ids=[…]``); a registry failure propagates but loses nothing (see 2);
6. ``reissue(person_id)``, when given and a passport was revoked, may re-sign and re-issue at once; without it
   the next site-signing and issuance runs do it.

**The successor link.** There is no "pending" marker: a person is waiting for a successor exactly when they
hold no ``ACTIVE`` passport and a ``REVOKED`` one that no passport ``supersedes``
(:func:`pending_reissues`). The next passport issued to them stores ``supersedes`` = that passport
(:func:`predecessors_of`, for the issuance commit to call in the transaction that stores the new passports —
the unique index on ACTIVE passports means only one can take the link; :func:`link_successors` sets the link
afterwards for passports stored without it, idempotently). The revocation rows name the correction
(``reason``), so correction → revoked passport → successor is traceable.

Time is always a parameter (``now``, aware). Proposed values are personal data: :class:`Correction` masks them.
"""

from __future__ import annotations

import datetime as dt
import json
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from vaxcred.pipeline.errors import PipelineError
from vaxcred.pipeline.records import ImportRow, parse_row
from vaxcred.pipeline.registry import PopulationRegistry, RegistryStatus
from vaxcred.pipeline.registry_check import run_registry_check
from vaxcred.pipeline.revocation_export import BAD_PASSPORT, decode_passport
from vaxcred.pipeline.site_signing import supersede_signature
from vaxcred.revocation import HashType, revocation_hashes
from vaxcred.storage import Database
from vaxcred.storage.schema import (
    CorrectionState,
    PassportStatus,
    corrections,
    doses,
    passports,
    persons,
    revocations,
    site_signatures,
    sites,
)

__all__ = [
    "BAD_CORRECTION",
    "BAD_PASSPORT",
    "CORRECTION_CLOSED",
    "CORRECTION_CONFLICT",
    "DOSE_FIELDS",
    "MISSING_DOSE_FIELDS",
    "PERSON_FIELDS",
    "RESPONSE_TIME",
    "REVOCATION_HASH_TYPES",
    "UNKNOWN_RECORD",
    "Correction",
    "CorrectionField",
    "DoseKey",
    "OverdueSite",
    "Resolution",
    "file_correction",
    "get_correction",
    "link_successors",
    "open_corrections",
    "overdue_report",
    "pending_reissues",
    "predecessor_of",
    "predecessors_of",
    "reject_correction",
    "resolve_correction",
    "revoke_active_passport",
]

BAD_CORRECTION = "pipeline.bad_correction"
UNKNOWN_RECORD = "pipeline.unknown_record"
CORRECTION_CLOSED = "pipeline.correction_closed"
CORRECTION_CONFLICT = "pipeline.correction_conflict"

#: a site answers a correction within 48 hours of receipt (seed 002)
RESPONSE_TIME = dt.timedelta(hours=48)
#: the hash types a corrected passport is revoked by (DCC.md §7); SECURITY.md §5: "revoke the predecessor's UVCI"
REVOCATION_HASH_TYPES: tuple[HashType, ...] = (HashType.UCI, HashType.SIGNATURE)
#: ``corrections.resolution`` / ``proposed_value`` hold at most this many characters
_MAX_TEXT = 200


class CorrectionField(StrEnum):
    """What a correction changes."""

    FULL_NAME = "full_name"
    DOB = "dob"
    GENDER = "gender"
    VACCINE = "vaccine"
    LOT = "lot"
    DATE = "date"
    DOSE_NUMBER = "dose_number"
    MISSING_DOSE = "missing_dose"


PERSON_FIELDS = frozenset({CorrectionField.FULL_NAME, CorrectionField.DOB, CorrectionField.GENDER})
DOSE_FIELDS = frozenset(
    {CorrectionField.VACCINE, CorrectionField.LOT, CorrectionField.DATE, CorrectionField.DOSE_NUMBER}
)
#: the keys of a missing dose's proposed value
MISSING_DOSE_FIELDS = ("vaccine", "lot", "date", "dose_number", "site_id")


class DoseKey(NamedTuple):
    """A dose's natural key without the citizen ID (given separately): dose number, date, site."""

    dose_number: int
    date: dt.date | str
    site_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Correction:
    """One stored correction; ``proposed_value`` is canonical text (JSON for a missing dose) — personal data."""

    id: int
    dose_id: int
    site_id: str
    field: CorrectionField
    proposed_value: str
    state: CorrectionState
    filed_at: dt.datetime
    due_at: dt.datetime
    resolved_at: dt.datetime | None
    resolution: str | None

    def __repr__(self) -> str:  # the proposed value may be a name or a date of birth
        return (
            f"Correction(id={self.id}, dose_id={self.dose_id}, site_id={self.site_id!r}, "
            f"field={self.field.value!r}, proposed_value=…, state={self.state.value!r}, "
            f"due_at={self.due_at.isoformat()})"
        )

    def is_overdue(self, now: dt.datetime) -> bool:
        """Still open after its deadline."""
        return self.state is CorrectionState.OPEN and now > self.due_at


@dataclass(frozen=True, slots=True, kw_only=True)
class Resolution:
    """What :func:`resolve_correction` did."""

    correction_id: int
    person_id: int
    dose_id: int  #: the dose changed, or the dose created for a missing dose
    superseded_signature: bool  #: a current site signature of the dose was superseded (must be re-signed)
    revoked_passport_id: int | None  #: the person's active passport, now revoked
    registry_status: RegistryStatus | None  #: the person's status after the new registry check


class OverdueSite(NamedTuple):
    """One row of :func:`overdue_report`."""

    site_id: str
    open_overdue: int
    oldest_due_at: dt.datetime


# --- helpers ----------------------------------------------------------------------------------------------


def _require_utc(value: object, name: str = "now") -> dt.datetime:
    if not isinstance(value, dt.datetime):
        raise TypeError(f"{name} must be a datetime")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")
    return value.astimezone(dt.UTC)


def _bad(field: str | None, why: str) -> PipelineError:
    return PipelineError(f"{field or 'correction'}: {why}", code=BAD_CORRECTION, field=field)


def _unknown(what: str, field: str | None = None) -> PipelineError:
    return PipelineError(f"no such {what}", code=UNKNOWN_RECORD, field=field)


def _parse_field(field: object) -> CorrectionField:
    if isinstance(field, CorrectionField):
        return field
    if isinstance(field, str):
        try:
            return CorrectionField(field)
        except ValueError:
            pass
    allowed = ", ".join(f.value for f in CorrectionField)
    raise _bad(None, f"a correction changes one of {allowed}")


def _note(note: object, *, required: bool) -> str | None:
    if note is None:
        if required:
            raise TypeError("note must be a str")
        return None
    if not isinstance(note, str):
        raise TypeError("note must be a str")
    text = unicodedata.normalize("NFC", note).strip()
    if required and not text:
        raise ValueError("a rejection needs a note saying why")
    if len(text) > _MAX_TEXT:
        raise ValueError(f"a note holds at most {_MAX_TEXT} characters")
    return text or None


def _correction_from_row(row: Row[Any]) -> Correction:
    return Correction(
        id=int(row.id),
        dose_id=int(row.dose_id),
        site_id=row.site_id,
        field=CorrectionField(row.field),
        proposed_value=row.proposed_value,
        state=CorrectionState(row.state),
        filed_at=row.filed_at,
        due_at=row.due_at,
        resolved_at=row.resolved_at,
        resolution=row.resolution,
    )


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
    query = sa.select(doses).where(doses.c.person_id == person_id).order_by(doses.c.date, doses.c.id)
    return list(conn.execute(query))


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
            "this dose (number, date, site) is recorded already", code=CORRECTION_CONFLICT, field="dose"
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


# --- filing -----------------------------------------------------------------------------------------------


def file_correction(
    db: Database,
    *,
    citizen_id: str,
    field: CorrectionField | str,
    proposed_value: str | int | Mapping[str, object],
    now: dt.datetime,
    dose_id: int | None = None,
    dose_key: DoseKey | tuple[int, dt.date | str, str] | None = None,
) -> int:
    """File a correction for the citizen's dose ``dose_id`` or ``dose_key``; returns the correction's id.

    ``field`` is a :class:`CorrectionField`; ``proposed_value`` the new text (``dose_number`` also as an int),
    or for ``missing_dose`` a mapping of :data:`MISSING_DOSE_FIELDS` (no dose needs naming then). The
    correction is ``OPEN``, due ``now + 48 h``, routed to the site that recorded the dose (the missing
    dose's site). The same open correction filed again returns its id. See the module docstring for errors.
    """
    now = _require_utc(now)
    kind = _parse_field(field)
    key = DoseKey(*dose_key) if dose_key is not None else None
    with db.begin() as conn:
        person = _person_by_citizen(conn, citizen_id)
        dose = _find_dose(conn, person, dose_id, key)
        if kind is CorrectionField.MISSING_DOSE:
            value, new_dose = _validate_missing_dose(conn, person, proposed_value, today=now.date())
            site_id = str(new_dose["site_id"])
            if dose is None:
                recorded = _person_doses(conn, person.id)
                if not recorded:
                    raise _unknown("recorded dose to attach the missing dose to", "dose")
                dose = recorded[-1]
        else:
            if dose is None:
                raise TypeError("name the dose: dose_id or dose_key")
            value = _validate_change(conn, person, dose, kind, proposed_value, today=now.date())
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


# --- reading ----------------------------------------------------------------------------------------------


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


# --- closing ----------------------------------------------------------------------------------------------


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
        raise ValueError("now is before the correction was filed")
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
    conn.execute(
        revocations.insert(),
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
    )
    return int(row.id)


def _lock_current_signatures(conn: Connection, person_id: int) -> None:
    """``FOR UPDATE`` on the person's current site signatures (PostgreSQL; SQLite serialises writers)."""
    conn.execute(
        sa.select(site_signatures.c.id)
        .where(
            site_signatures.c.superseded_at.is_(None),
            site_signatures.c.dose_id.in_(sa.select(doses.c.id).where(doses.c.person_id == person_id)),
        )
        .order_by(site_signatures.c.id)
        .with_for_update()
    ).all()


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
    revoked and ``reissue`` is given. See the module docstring for the steps and what a crash leaves."""
    now = _require_utc(now)
    text = _note(note, required=False)
    with db.begin() as conn:
        # (1) OPEN -> RESOLVED, under the row lock
        correction = _close(conn, correction_id, state=CorrectionState.RESOLVED, now=now, note=text)
        filed_dose = _dose_by_id(conn, correction.dose_id)
        person = _person_by_id(conn, filed_dose.person_id)
        kind = correction.field
        # an issuance commit in flight holds FOR SHARE on these: it finishes first (and its passport is revoked
        # below) or, once this commits, finds its inputs changed and stores nothing
        _lock_current_signatures(conn, person.id)
        # (2) apply the change, validated again on today's data
        if kind is CorrectionField.MISSING_DOSE:
            _, new_dose = _validate_missing_dose(
                conn, person, _missing_dose_proposal(correction), today=now.date()
            )
            dose_id = int(conn.execute(doses.insert().values(new_dose).returning(doses.c.id)).scalar_one())
            superseded = False
        else:
            value = _validate_change(
                conn, person, filed_dose, kind, correction.proposed_value, today=now.date()
            )
            if kind in PERSON_FIELDS:
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
                conn.execute(doses.update().where(doses.c.id == filed_dose.id).values({kind.value: new}))
            dose_id = int(filed_dose.id)
            # (3) the site signs the corrected record again
            superseded = bool(supersede_signature(conn, dose_id, now=now))
        # (4) the passport built on the old record is revoked; its successor will supersede it
        revoked = revoke_active_passport(conn, person.id, now=now, reason=f"correction {correction_id}")
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
    )


# --- successors -------------------------------------------------------------------------------------------


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
            passports.c.person_id.in_(sorted({int(p) for p in person_ids})),
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
