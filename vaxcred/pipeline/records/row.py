"""A dose as a site recorded it (:class:`DoseRecord`), whom it belongs to (:class:`Person`) and one import row
(:class:`ImportRow`: both): frozen dataclasses that check their fields' types and forms when built.  Pure."""

from __future__ import annotations

import datetime as dt
import unicodedata
from dataclasses import dataclass

from vaxcred.model import DateOfBirth
from vaxcred.pipeline.errors import PipelineError
from vaxcred.pipeline.records.cccd import Gender, IdType, parse_citizen_id
from vaxcred.pipeline.records.fields import DATE_RE, MAX_DOSE_NUMBER, MAX_LOT_LENGTH, SITE_ID_PATTERN, SITE_RE
from vaxcred.pipeline.records.vaccines import canonical_vaccines, vaccine_codes
from vaxcred.privacy import mask_id, mask_name
from vaxcred.valuesets import VaccineCodes

__all__ = ["DoseRecord", "ImportRow", "Person"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Person:
    """The person as recorded by a site (not necessarily as the registry knows them).

    Built by :func:`parse_row`; the constructor checks types and forms only, so that a person whose ID later
    turns out inconsistent (after a correction) can still be represented and reported ``INVALID_ID``.
    """

    citizen_id: str
    id_type: IdType
    full_name: str
    dob: DateOfBirth
    gender: Gender

    def __post_init__(self) -> None:
        if not isinstance(self.citizen_id, str) or not self.citizen_id:
            raise ValueError("citizen_id must be a non-empty str")
        if not isinstance(self.id_type, IdType):
            raise TypeError("id_type must be an IdType")
        if not isinstance(self.full_name, str) or not self.full_name.strip():
            raise ValueError("full_name must be a non-empty str")
        if not unicodedata.is_normalized("NFC", self.full_name):
            raise ValueError("full_name must be NFC")
        if not isinstance(self.dob, DateOfBirth):
            raise TypeError("dob must be a DateOfBirth")
        if not isinstance(self.gender, Gender):
            raise TypeError("gender must be a Gender")

    def __repr__(self) -> str:  # personal data: masked (vaxcred.privacy)
        return (
            f"Person(citizen_id={mask_id(self.citizen_id)!r}, id_type={self.id_type.value!r}, "
            f"full_name={mask_name(self.full_name)!r}, dob={self.dob!r}, gender=…)"
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class DoseRecord:
    """One dose as recorded by a site; validated when built (see the module docstring for the rules)."""

    citizen_id: str
    vaccine: str
    lot: str
    date: str
    dose_number: int
    site_id: str

    def __post_init__(self) -> None:
        if not isinstance(self.citizen_id, str) or not self.citizen_id:
            raise ValueError("citizen_id must be a non-empty str")
        if not isinstance(self.vaccine, str) or self.vaccine not in canonical_vaccines():
            raise ValueError("vaccine must be a VIETNAM_VACCINES key or an active mp code")
        if (
            not isinstance(self.lot, str)
            or not 1 <= len(self.lot) <= MAX_LOT_LENGTH
            or not self.lot.isprintable()
            or self.lot != self.lot.strip()
        ):
            raise ValueError(f"lot must be 1–{MAX_LOT_LENGTH} printable characters, trimmed")
        if not isinstance(self.date, str) or not DATE_RE.match(self.date):
            raise ValueError("date must be YYYY-MM-DD")
        dt.date.fromisoformat(self.date)  # ValueError for 2021-02-30
        if (
            not isinstance(self.dose_number, int)
            or isinstance(self.dose_number, bool)
            or not 1 <= self.dose_number <= MAX_DOSE_NUMBER
        ):
            raise ValueError(f"dose_number must be an int within 1–{MAX_DOSE_NUMBER}")
        if not isinstance(self.site_id, str) or not SITE_RE.match(self.site_id):
            raise ValueError(f"site_id must match {SITE_ID_PATTERN}")

    def __repr__(self) -> str:  # the citizen ID is personal data
        return (
            f"DoseRecord(citizen_id={mask_id(self.citizen_id)!r}, vaccine={self.vaccine!r}, lot={self.lot!r}, "
            f"date={self.date!r}, dose_number={self.dose_number!r}, site_id={self.site_id!r})"
        )

    @property
    def natural_key(self) -> tuple[str, int, str, str]:
        """``(citizen_id, dose_number, date, site_id)``: what makes an import idempotent."""
        return (self.citizen_id, self.dose_number, self.date, self.site_id)

    @property
    def codes(self) -> VaccineCodes:
        """The ``mp``/``ma``/``vp`` codes to issue for this dose's vaccine."""
        return vaccine_codes(self.vaccine)


@dataclass(frozen=True, slots=True, kw_only=True)
class ImportRow:
    """One import row: the person's fields and one dose (for the same citizen ID)."""

    person: Person
    dose: DoseRecord

    def __post_init__(self) -> None:
        if not isinstance(self.person, Person) or not isinstance(self.dose, DoseRecord):
            raise TypeError("ImportRow(person: Person, dose: DoseRecord)")
        if self.person.citizen_id != self.dose.citizen_id:
            raise ValueError("the dose belongs to another citizen ID")

    def to_fields(self) -> dict[str, str]:
        """The row as text fields (:data:`ROW_FIELDS`, plus ``id_type`` when the ID's shape would mislead);
        ``parse_row(row.to_fields())`` gives the row back."""
        p, d = self.person, self.dose
        fields = {
            "citizen_id": p.citizen_id,
            "full_name": p.full_name,
            "dob": p.dob.text,
            "gender": p.gender.value,
            "vaccine": d.vaccine,
            "lot": d.lot,
            "date": d.date,
            "dose_number": str(d.dose_number),
            "site_id": d.site_id,
        }
        try:
            guessed = parse_citizen_id(p.citizen_id).id_type
        except PipelineError:
            guessed = None
        if guessed is not p.id_type:
            fields["id_type"] = p.id_type.value
        return fields
