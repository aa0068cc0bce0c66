"""Codes, constants and the data types of corrections; the small helpers every step shares."""

from __future__ import annotations

import datetime as dt
import unicodedata
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, NamedTuple

from sqlalchemy.engine import Row

from vaxcred.pipeline.errors import PipelineError
from vaxcred.pipeline.registry.lookup import RegistryStatus
from vaxcred.revocation import HashType
from vaxcred.storage.schema import CorrectionState

BAD_CORRECTION = "pipeline.bad_correction"
UNKNOWN_RECORD = "pipeline.unknown_record"
CORRECTION_CLOSED = "pipeline.correction_closed"
CORRECTION_CONFLICT = "pipeline.correction_conflict"
DOSE_WITHDRAWN = "pipeline.dose_withdrawn"

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
    #: withdraw the named record: a duplicate entry, or one recorded by mistake (kept, never deleted)
    DUPLICATE = "duplicate"


PERSON_FIELDS = frozenset({CorrectionField.FULL_NAME, CorrectionField.DOB, CorrectionField.GENDER})
DOSE_FIELDS = frozenset(
    {CorrectionField.VACCINE, CorrectionField.LOT, CorrectionField.DATE, CorrectionField.DOSE_NUMBER}
)
#: the stored proposed value of a ``duplicate`` correction (it takes none: the change is the withdrawal)
WITHDRAW = "withdraw"
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
    #: the dose it names has been withdrawn (by another correction, or by this one once resolved)
    dose_withdrawn: bool = False

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
    withdrawn: bool = False  #: a ``duplicate`` correction: ``dose_id`` is withdrawn now


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
        raise PipelineError("a rejection needs a note saying why", code=BAD_CORRECTION, field="note")
    if len(text) > _MAX_TEXT:
        raise PipelineError(
            f"a note holds at most {_MAX_TEXT} characters, this one {len(text)}",
            code=BAD_CORRECTION,
            field="note",
        )
    if not text.isprintable():
        raise PipelineError("a note must be one line of printable text", code=BAD_CORRECTION, field="note")
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
        dose_withdrawn=getattr(row, "withdrawn_at", None) is not None,
    )
