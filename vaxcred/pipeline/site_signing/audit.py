"""Independent verification of stored site signatures (:func:`verify_stored_signatures`).

Each current signature is re-verified from its stored bytes (a batch member: its standalone record, the batch
head's bytes included) and its stored site certificate alone (chain to the
site CA, validity at signing time, citizen hash), and the signed content is compared with the dose as stored now.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple, TypeAlias

import sqlalchemy as sa
from cryptography import x509
from sqlalchemy.engine import Row

from vaxcred.errors import VaxcredError
from vaxcred.pipeline.log.entries import site_record
from vaxcred.pipeline.records.model import vaccine_codes
from vaxcred.pipeline.site_signing.record import DoseClaims, verify_dose
from vaxcred.pipeline.site_signing.sign_rows import _fingerprint
from vaxcred.pipeline.site_signing.work_queue import _current
from vaxcred.storage import Database
from vaxcred.storage.schema import doses, persons, site_certificates, site_signature_batches, site_signatures
from vaxcred.trust.store import require_utc

__all__ = [
    "NO_CERTIFICATE",
    "RECORD_MISMATCH",
    "SignatureCheck",
    "check_stored_signatures",
    "verify_stored_signatures",
]

#: :class:`SignatureCheck` code: the signature's site certificate is not stored (or does not parse)
NO_CERTIFICATE = "sitesign.no_certificate"
#: :class:`SignatureCheck` code: the signature verifies but signs other content than the dose as stored now
RECORD_MISMATCH = "sitesign.record_mismatch"

_Row: TypeAlias = Row[*tuple[Any, ...]]

#: a stored signature's site, kid and certificate: a batch member's are its batch's (storage migration 0012), a
#: v1 row's its own
_site_id, _kid, _certificate = (
    sa.func.coalesce(site_signature_batches.c[c], site_signatures.c[c])
    for c in ("site_id", "kid", "certificate")
)


class SignatureCheck(NamedTuple):
    """One stored signature re-verified: ``code`` is ``None`` when ``ok``, else the error code."""

    dose_id: int
    ok: bool
    code: str | None


def _claims_match(row: _Row, claims: DoseClaims) -> bool:
    try:
        codes = vaccine_codes(row.vaccine)
    except ValueError:
        return False
    return (
        claims.site_id == row.dose_site_id == row.site_id
        and claims.dose_number == row.dose_number
        and claims.date == row.date.isoformat()
        and claims.lot == row.lot
        and (claims.mp, claims.ma, claims.vp) == (codes.mp, codes.ma, codes.vp)
    )


def check_stored_signatures(
    db: Database,
    *,
    site_ca: x509.Certificate,
    dose_ids: Iterable[int] | None = None,
    now: dt.datetime | None = None,
    batch_size: int = 1000,
) -> Iterator[SignatureCheck]:
    """Re-verify current signatures one by one (streaming, ``batch_size`` rows per read), in signature order.

    Each is verified from its stored bytes and its stored site certificate only
    (:func:`~vaxcred.pipeline.site_signing.record.verify_dose` with ``site_ca``, the citizen ID stored now, and ``now`` as
    the upper bound of the signing time when given), then its content is compared with the dose as stored now.
    Codes: :data:`NO_CERTIFICATE`, the ``sitesign.*`` / ``cose.*`` / ``signature.*`` / ``chain.*`` codes of
    ``verify_dose``, :data:`RECORD_MISMATCH`.
    """
    if not isinstance(site_ca, x509.Certificate):
        raise TypeError("site_ca must be an x509.Certificate")
    if now is not None:
        now = require_utc(now)
    query = (
        sa.select(
            site_signatures.c.id.label("signature_id"),
            site_signatures.c.dose_id,
            _site_id.label("site_id"),
            _kid.label("kid"),
            site_signatures.c.cose,
            site_signatures.c.leaf_index,
            site_signatures.c.proof,
            site_signature_batches.c.head,
            _certificate.label("certificate"),
            site_certificates.c.der,
            doses.c.site_id.label("dose_site_id"),
            doses.c.dose_number,
            doses.c.date,
            doses.c.vaccine,
            doses.c.lot,
            persons.c.citizen_id,
        )
        .select_from(
            site_signatures.join(doses, doses.c.id == site_signatures.c.dose_id)
            .join(persons, persons.c.id == doses.c.person_id)
            .outerjoin(site_signature_batches, site_signature_batches.c.id == site_signatures.c.batch_id)
            .outerjoin(site_certificates, site_certificates.c.fingerprint == _certificate)
        )
        .where(_current)
        .order_by(site_signatures.c.id)
    )
    chunks: Iterator[list[int] | None]
    if dose_ids is None:
        chunks = iter([None])
    else:
        wanted = sorted({int(i) for i in dose_ids})
        chunks = iter([wanted[i : i + batch_size] for i in range(0, len(wanted), batch_size)])
    parsed: dict[bytes, x509.Certificate | None] = {}
    for chunk in chunks:
        last_id = 0
        while True:
            page = query.where(site_signatures.c.id > last_id).limit(batch_size)
            if chunk is not None:
                page = page.where(site_signatures.c.dose_id.in_(chunk))
            with db.connect() as conn:
                rows = conn.execute(page).all()
            if not rows:
                break
            last_id = rows[-1].signature_id
            for row in rows:
                yield _check_one(row, site_ca, now, parsed)


def _load_certificate(row: _Row, parsed: dict[bytes, x509.Certificate | None]) -> x509.Certificate | None:
    if row.der is None:
        return None
    if row.certificate not in parsed:
        try:
            cert: x509.Certificate | None = x509.load_der_x509_certificate(row.der)
        except ValueError:
            cert = None
        if cert is not None and _fingerprint(row.der) != row.certificate:
            cert = None
        parsed[row.certificate] = cert
    return parsed[row.certificate]


def _check_one(
    row: _Row,
    site_ca: x509.Certificate,
    now: dt.datetime | None,
    parsed: dict[bytes, x509.Certificate | None],
) -> SignatureCheck:
    cert = _load_certificate(row, parsed)
    if cert is None:
        return SignatureCheck(row.dose_id, False, NO_CERTIFICATE)
    try:
        claims = verify_dose(
            site_record(row.cose, row.head, row.leaf_index, row.proof),
            site_certificate=cert,
            site_ca=site_ca,
            citizen_id=row.citizen_id,
            now=now,
        )
    except VaxcredError as e:
        return SignatureCheck(row.dose_id, False, e.code)
    if claims.kid != row.kid or not _claims_match(row, claims):
        return SignatureCheck(row.dose_id, False, RECORD_MISMATCH)
    return SignatureCheck(row.dose_id, True, None)


def verify_stored_signatures(
    db: Database,
    *,
    site_ca: x509.Certificate,
    dose_ids: Iterable[int] | None = None,
    now: dt.datetime | None = None,
) -> list[SignatureCheck]:
    """:func:`check_stored_signatures` as a list of ``(dose_id, ok, code)`` (for issuance and audits of a
    known set; stream with :func:`check_stored_signatures` over a whole database)."""
    return list(check_stored_signatures(db, site_ca=site_ca, dose_ids=dose_ids, now=now))
