"""What the printable certificate of one person shows, read from the database: the active passport and the
site-signed doses it rests on (``passport_doses``), with the sites' names.

Each dose also carries its site-signed record as one standalone value (:attr:`CertificateDose.site_record`:
a v1 COSE_Sign1, or a batch member's ``[2, head, index, audit path, payload]``), the signature the passport was
built from: exported beside the certificate it verifies on its own with the site certificate
(:func:`vaxcred.pipeline.site_signing.record.verify_dose`), batch head included.

:func:`certificate_data` is the library call behind ``vaxcred certificate-pdf``; its result goes straight into
:func:`~vaxcred.pipeline.reports.certificate_pdf.render_certificate_pdf` (:meth:`CertificateData.render`).
The result holds personal data (name, date of birth): it is for the file the operator asked for, never a log.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Final

import sqlalchemy as sa

from vaxcred.pipeline.errors import PipelineError
from vaxcred.pipeline.log.entries import site_record
from vaxcred.privacy import mask_name
from vaxcred.storage import Database
from vaxcred.storage.schema import (
    PassportStatus,
    doses,
    passport_doses,
    passports,
    persons,
    site_signature_batches,
    site_signatures,
    sites,
)

__all__ = ["NO_PASSPORT", "UNKNOWN_CITIZEN", "CertificateData", "certificate_data"]

#: :class:`PipelineError` codes
UNKNOWN_CITIZEN = "pipeline.unknown_record"
NO_PASSPORT = "pipeline.no_passport"


#: longest text field printed on the certificate
_MAX_FIELD: Final = 200


def check_text(name: str, value: object) -> str:
    """A text field fit to print: 1-200 printable characters, NFC, trimmed (ValueError otherwise)."""
    if not isinstance(value, str) or not value.strip() or len(value) > _MAX_FIELD or not value.isprintable():
        raise ValueError(f"{name} must be 1-{_MAX_FIELD} printable characters")
    return unicodedata.normalize("NFC", value.strip())


@dataclass(frozen=True, slots=True, kw_only=True)
class CertificateDose:
    """One row of the doses table: ``date`` ``YYYY-MM-DD``; ``vaccine`` and ``site`` as printed."""

    dose_number: int
    date: str
    vaccine: str
    lot: str
    site: str
    #: the site-signed record the passport relied on, standalone (empty when not known, e.g. a hand-built dose)
    site_record: bytes = field(default=b"", repr=False)

    def __post_init__(self) -> None:
        if (
            isinstance(self.dose_number, bool)
            or not isinstance(self.dose_number, int)
            or self.dose_number < 1
        ):
            raise ValueError("dose_number must be a positive int")
        if not isinstance(self.date, str) or not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", self.date):
            raise ValueError("date must be YYYY-MM-DD")
        for name in ("vaccine", "lot", "site"):
            check_text(name, getattr(self, name))


@dataclass(frozen=True, slots=True, kw_only=True)
class CertificateData:
    """One person's active passport as the certificate prints it (doses by dose number, then date)."""

    passport_id: int
    full_name: str = field(repr=False)
    dob: str = field(repr=False)
    uvci: str
    hc1: str = field(repr=False)
    issued_at: dt.datetime
    doses: tuple[CertificateDose, ...]

    def __repr__(self) -> str:  # personal data: masked
        return (
            f"CertificateData(passport_id={self.passport_id}, full_name={mask_name(self.full_name)!r}, "
            f"doses={len(self.doses)})"
        )

    def render(self, *, creation_date: dt.datetime | None = None, site_records: bool = False) -> bytes:
        """The certificate PDF (:func:`render_certificate_pdf`; needs the ``pdf`` extra), with each dose's
        standalone site record as a QR code when ``site_records`` is true (off by default: docs/security.md,
        "Standalone site records on paper")."""
        from vaxcred.pipeline.reports.certificate_pdf import render_certificate_pdf

        return render_certificate_pdf(
            full_name=self.full_name,
            dob=self.dob,
            doses=self.doses,
            uvci=self.uvci,
            hc1=self.hc1,
            issued_at=self.issued_at,
            creation_date=creation_date,
            site_records=site_records,
        )


def certificate_data(db: Database, citizen_id: str) -> CertificateData:
    """The certificate of the person with ``citizen_id``; :class:`PipelineError` ``pipeline.unknown_record``
    for no such person, ``pipeline.no_passport`` when they hold no active passport."""
    if not isinstance(citizen_id, str):
        raise TypeError("citizen_id must be a str")
    with db.connect() as conn:
        person = conn.execute(
            sa.select(persons.c.id, persons.c.full_name, persons.c.dob).where(
                persons.c.citizen_id == citizen_id.strip()
            )
        ).first()
        if person is None:
            raise PipelineError("no such citizen", code=UNKNOWN_CITIZEN)
        passport = conn.execute(
            sa.select(passports.c.id, passports.c.uvci, passports.c.hc1, passports.c.issued_at).where(
                passports.c.person_id == person.id, passports.c.status == PassportStatus.ACTIVE.value
            )
        ).first()
        if passport is None:
            raise PipelineError("this person holds no active passport", code=NO_PASSPORT)
        rows = conn.execute(
            sa.select(
                doses.c.dose_number,
                doses.c.date,
                doses.c.vaccine,
                doses.c.lot,
                doses.c.site_id,
                sites.c.name,
                site_signatures.c.cose,
                site_signatures.c.leaf_index,
                site_signatures.c.proof,
                site_signature_batches.c.head,
            )
            .select_from(
                passport_doses.join(doses, doses.c.id == passport_doses.c.dose_id)
                .join(sites, sites.c.site_id == doses.c.site_id)
                .join(site_signatures, site_signatures.c.id == passport_doses.c.site_signature_id)
                .outerjoin(site_signature_batches, site_signature_batches.c.id == site_signatures.c.batch_id)
            )
            .where(passport_doses.c.passport_id == passport.id, doses.c.withdrawn_at.is_(None))
            .order_by(doses.c.dose_number, doses.c.date, doses.c.id)
        ).all()
    return CertificateData(
        passport_id=int(passport.id),
        full_name=person.full_name,
        dob=person.dob,
        uvci=passport.uvci,
        hc1=passport.hc1,
        issued_at=passport.issued_at,
        doses=tuple(
            CertificateDose(
                dose_number=int(r.dose_number),
                date=r.date.isoformat(),
                vaccine=r.vaccine,
                lot=r.lot,
                site=r.name or r.site_id,
                site_record=site_record(r.cose, r.head, r.leaf_index, r.proof),
            )
            for r in rows
        ),
    )
