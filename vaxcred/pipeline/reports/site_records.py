"""The standalone site-signed records of one person's doses, or of one dose, read from the database: what
``vaxcred records export`` writes and the certificate's per-dose QR codes carry.

Each record is the dose's *current* site signature (``superseded_at IS NULL``) as one standalone value
(:func:`~vaxcred.pipeline.log.entries.site_record`: a batch member's ``[2, head, index, audit path, payload]`` or a
v1 COSE_Sign1), verifiable with the site certificate alone
(:func:`vaxcred.pipeline.site_signing.record.verify_dose`). Withdrawn doses are left out (asked for by id: refused,
``pipeline.dose_withdrawn``); doses in force without a current signature (not signed yet, or superseded by a
correction and not signed again) are counted, not exported.

A record carries the salted hash of the citizen ID, not the ID: pipeline data, not public data (SECURITY.md §4);
the export holds no name, ID or date of birth.
"""

from __future__ import annotations

__all__ = ["DOSE_WITHDRAWN", "NO_SITE_RECORD", "ExportedRecords", "StandaloneRecord", "standalone_records"]

from dataclasses import dataclass, field
from datetime import date
from typing import Final

import sqlalchemy as sa

from vaxcred.pipeline.errors import PipelineError
from vaxcred.pipeline.log.entries import site_record
from vaxcred.pipeline.reports.certificate_data import UNKNOWN_CITIZEN
from vaxcred.storage import Database
from vaxcred.storage.schema import doses, persons, site_signature_batches, site_signatures

#: :class:`PipelineError` code: the dose asked for was withdrawn (the code corrections use for it)
DOSE_WITHDRAWN: Final = "pipeline.dose_withdrawn"
#: :class:`PipelineError` code (``vaxcred records export``): no dose asked for has a current site signature
NO_SITE_RECORD: Final = "pipeline.no_site_record"


@dataclass(frozen=True, slots=True, kw_only=True)
class StandaloneRecord:
    """One dose's current site-signed record (``record``: binary, standalone) and what names it in a listing."""

    dose_id: int
    dose_number: int
    date: date
    site_id: str
    record: bytes = field(repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class ExportedRecords:
    """The records found (dose number, date, id order) and how many doses in force had no current signature."""

    records: tuple[StandaloneRecord, ...]
    unsigned: int


def standalone_records(
    db: Database, *, citizen_id: str | None = None, dose_id: int | None = None
) -> ExportedRecords:
    """The records of the person with ``citizen_id`` or of the dose ``dose_id`` (exactly one of the two);
    :class:`PipelineError` ``pipeline.unknown_record`` when there is no such person or dose,
    ``pipeline.dose_withdrawn`` for a withdrawn dose asked for by id."""
    if (citizen_id is None) == (dose_id is None):
        raise TypeError("give exactly one of citizen_id and dose_id")
    if citizen_id is not None and not isinstance(citizen_id, str):
        raise TypeError("citizen_id must be a str")
    if dose_id is not None and (isinstance(dose_id, bool) or not isinstance(dose_id, int)):
        raise TypeError("dose_id must be an int")
    with db.connect() as conn:
        if citizen_id is not None:
            person_id = conn.execute(
                sa.select(persons.c.id).where(persons.c.citizen_id == citizen_id.strip())
            ).scalar_one_or_none()
            if person_id is None:
                raise PipelineError("no such citizen", code=UNKNOWN_CITIZEN)
            which = doses.c.person_id == person_id
        else:
            withdrawn = conn.execute(
                sa.select(doses.c.withdrawn_at).where(doses.c.id == dose_id)
            ).one_or_none()
            if withdrawn is None:
                raise PipelineError(f"no dose {dose_id}", code=UNKNOWN_CITIZEN)
            if withdrawn.withdrawn_at is not None:
                raise PipelineError(
                    f"dose {dose_id} was withdrawn: it has no record in force", code=DOSE_WITHDRAWN
                )
            which = doses.c.id == dose_id
        rows = conn.execute(
            sa.select(
                doses.c.id,
                doses.c.dose_number,
                doses.c.date,
                doses.c.site_id,
                site_signatures.c.cose,
                site_signatures.c.leaf_index,
                site_signatures.c.proof,
                site_signature_batches.c.head,
            )
            .select_from(
                doses.outerjoin(
                    site_signatures,
                    sa.and_(
                        site_signatures.c.dose_id == doses.c.id, site_signatures.c.superseded_at.is_(None)
                    ),
                ).outerjoin(site_signature_batches, site_signature_batches.c.id == site_signatures.c.batch_id)
            )
            .where(which, doses.c.withdrawn_at.is_(None))
            .order_by(doses.c.dose_number, doses.c.date, doses.c.id)
        ).all()
    records = tuple(
        StandaloneRecord(
            dose_id=int(r.id),
            dose_number=int(r.dose_number),
            date=r.date,
            site_id=r.site_id,
            record=site_record(r.cose, r.head, r.leaf_index, r.proof),
        )
        for r in rows
        if r.cose is not None
    )
    return ExportedRecords(records=records, unsigned=len(rows) - len(records))
