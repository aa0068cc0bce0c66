"""The site-signing stage (ký số chứng nhận tiêm): each site signs its dose records that verified.

::

    doses ⋈ persons  WHERE registry_status = 'VERIFIED' AND site has a signer AND no current signature
        ─> batch of ≤ N (dose id order) ─> sitesign.sign_dose ─> one transaction:
           INSERT site_certificates (if absent, by fingerprint) + INSERT site_signatures (ON CONFLICT DO NOTHING)

* **Work queue.** A dose needs a signature while it has no *current* one (``site_signatures.superseded_at IS
  NULL``; a unique partial index allows at most one). The batch is read, signed (CPU only, no I/O) and stored
  in one transaction, so a crash loses at most that batch and a re-run signs exactly what is missing; a
  concurrent run's duplicate is dropped by the index (``signed`` counts only stored rows). On PostgreSQL the
  batch's dose and person rows are read ``FOR SHARE``: a correction changing one of them waits for the batch,
  then supersedes its fresh signature.
* **A site signs only its own records.** ``signers`` maps a site id to that site's signer; a signer whose
  certificate is not a site certificate, names another site or is not valid at ``now`` is refused before
  anything is signed (:class:`PipelineError` ``sitesign.wrong_purpose`` / ``sitesign.not_own_record`` /
  ``sitesign.cert_not_valid``), and :func:`~vaxcred.pipeline.sitesign.sign_dose` checks each record again.
* **Corrections.** :func:`supersede_signature` marks a dose's current signature superseded (the correction's
  transaction does it when it changes the dose); the next run signs the dose again.
* **Independent verification.** :func:`verify_stored_signatures` re-verifies current signatures from the stored
  bytes and the stored site certificate alone (chain to the site CA, validity at signing time, citizen hash)
  and checks that the signed content is the dose as stored now.

Nothing here logs personal data: log lines carry dose row ids, site ids and error codes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeAlias

import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy.engine import Connection, Row

from vaxcred.crypto import Signer
from vaxcred.errors import VaxcredError
from vaxcred.pipeline.errors import PipelineError
from vaxcred.pipeline.records import DoseRecord, vaccine_codes
from vaxcred.pipeline.registry import RegistryStatus
from vaxcred.pipeline.sitesign import DoseClaims, is_site_certificate, sign_dose, site_id_of, verify_dose
from vaxcred.storage import Database
from vaxcred.storage.schema import doses, persons, site_certificates, site_signatures
from vaxcred.trust.store import require_utc

__all__ = [
    "BATCH_SIZE",
    "NO_CERTIFICATE",
    "RECORD_MISMATCH",
    "SignatureCheck",
    "SigningReport",
    "check_stored_signatures",
    "run_site_signing",
    "supersede_signature",
    "verify_stored_signatures",
]

logger = logging.getLogger(__name__)

#: doses per transaction
BATCH_SIZE = 500
#: :class:`SignatureCheck` code: the signature's site certificate is not stored (or does not parse)
NO_CERTIFICATE = "sitesign.no_certificate"
#: :class:`SignatureCheck` code: the signature verifies but signs other content than the dose as stored now
RECORD_MISMATCH = "sitesign.record_mismatch"

ProgressCallback = Callable[[int], None]
_Row: TypeAlias = Row[*tuple[Any, ...]]

_VERIFIED = RegistryStatus.VERIFIED.value
_current = site_signatures.c.superseded_at.is_(None)


@dataclass(frozen=True, slots=True, kw_only=True)
class SigningReport:
    """What one run did.

    After the run every dose still without a current signature is in exactly one of: ``skipped_unverified``
    (its person is not ``VERIFIED``), ``skipped_no_key`` (verified, but its site has no signer here) or
    ``failed`` (this run could not sign it: an invalid stored record, see the log for the dose row ids).
    """

    signed: int = 0
    skipped_no_key: int = 0
    skipped_unverified: int = 0
    failed: int = 0


class SignatureCheck(NamedTuple):
    """One stored signature re-verified: ``code`` is ``None`` when ``ok``, else the error code."""

    dose_id: int
    ok: bool
    code: str | None


def _fingerprint(der: bytes) -> bytes:
    return hashlib.sha256(der).digest()


def _check_signers(signers: Mapping[str, Signer], now: dt.datetime) -> None:
    """Refuse, before anything is signed, a signer that could not sign its mapping key's records now."""
    at = now.replace(microsecond=0)
    for site_id, signer in signers.items():
        cert = signer.certificate
        if not is_site_certificate(cert):
            raise PipelineError(
                f"the signer given for site {site_id!r} does not hold a site certificate",
                code="sitesign.wrong_purpose",
            )
        own = site_id_of(cert)
        if own != site_id:
            raise PipelineError(
                f"the signer given for site {site_id!r} holds the certificate of site {own!r}: "
                "a site signs only its own records",
                code="sitesign.not_own_record",
                field="site_id",
            )
        if not cert.not_valid_before_utc <= at <= cert.not_valid_after_utc:
            raise PipelineError(
                f"the site certificate of {site_id} is not valid at {at.isoformat()}",
                code="sitesign.cert_not_valid",
            )


def _dose_record(row: _Row) -> DoseRecord:
    return DoseRecord(
        citizen_id=row.citizen_id,
        vaccine=row.vaccine,
        lot=row.lot,
        date=row.date.isoformat(),
        dose_number=row.dose_number,
        site_id=row.site_id,
    )


def _certificate_row(signer: Signer) -> dict[str, Any]:
    cert = signer.certificate
    der = cert.public_bytes(Encoding.DER)
    return {
        "fingerprint": _fingerprint(der),
        "site_id": site_id_of(cert),
        "kid": signer.kid,
        "der": der,
        "not_before": cert.not_valid_before_utc,
        "not_after": cert.not_valid_after_utc,
    }


def _sign_batch(
    db: Database,
    conn: Connection,
    rows: list[_Row],
    signers: Mapping[str, Signer],
    certificates: Mapping[str, dict[str, Any]],
    now: dt.datetime,
) -> tuple[int, int]:
    """Sign and store one batch; returns (signatures stored, doses that could not be signed)."""
    values: list[dict[str, Any]] = []
    failed = 0
    for row in rows:
        signer = signers[row.site_id]
        try:
            signed = sign_dose(_dose_record(row), signer=signer, now=now)
        except (VaxcredError, ValueError, TypeError) as e:
            failed += 1
            code = e.code if isinstance(e, VaxcredError) else type(e).__name__
            logger.warning("site signing: dose row %d not signed (%s)", row.id, code)
            continue
        values.append(
            {
                "dose_id": row.id,
                "site_id": row.site_id,
                "certificate": certificates[row.site_id]["fingerprint"],
                "kid": signed.kid,
                "cose": signed.cose,
                "signed_at": signed.signed_at,
            }
        )
    if not values:
        return 0, failed
    used = sorted({v["site_id"] for v in values})
    conn.execute(
        db.insert_ignoring_conflicts(site_certificates, on=["fingerprint"]),
        [certificates[site] for site in used],
    )
    inserted = conn.execute(
        db.insert_ignoring_conflicts(site_signatures, on=["dose_id"], where=_current).returning(
            site_signatures.c.id
        ),
        values,
    ).all()
    return len(inserted), failed


def run_site_signing(
    db: Database,
    signers: Mapping[str, Signer],
    *,
    now: dt.datetime,
    batch_size: int = BATCH_SIZE,
    on_progress: ProgressCallback | None = None,
) -> SigningReport:
    """Sign, as of ``now`` (aware), every dose of a ``VERIFIED`` person recorded by a site in ``signers``
    that has no current signature; one transaction per ``batch_size`` doses, in dose id order.

    ``on_progress(signed_so_far)`` is called after each committed batch. Idempotent: a second run signs
    nothing new. Errors propagate after the batches before them were committed.
    """
    now = require_utc(now)
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError("batch_size must be an int >= 1")
    _check_signers(signers, now)
    certificates = {site_id: _certificate_row(signer) for site_id, signer in signers.items()}
    site_ids = sorted(signers)
    signed = failed = 0
    last_id = 0
    while site_ids:
        with db.begin() as conn:
            rows = list(
                conn.execute(
                    sa.select(
                        doses.c.id,
                        doses.c.dose_number,
                        doses.c.date,
                        doses.c.site_id,
                        doses.c.vaccine,
                        doses.c.lot,
                        persons.c.citizen_id,
                    )
                    .join(persons, persons.c.id == doses.c.person_id)
                    .where(
                        doses.c.id > last_id,
                        doses.c.site_id.in_(site_ids),
                        persons.c.registry_status == _VERIFIED,
                        ~_has_current_signature(),
                    )
                    .order_by(doses.c.id)
                    .limit(batch_size)
                    .with_for_update(read=True, of=[doses, persons])
                )
            )
            if not rows:
                break
            last_id = rows[-1].id
            added, bad = _sign_batch(db, conn, rows, signers, certificates, now)
        signed += added
        failed += bad
        if on_progress is not None:
            on_progress(signed)
    no_key, unverified = _unsigned_counts(db, site_ids)
    return SigningReport(signed=signed, skipped_no_key=no_key, skipped_unverified=unverified, failed=failed)


def _has_current_signature() -> sa.Exists:
    return sa.exists().where(site_signatures.c.dose_id == doses.c.id, _current)


def _unsigned_counts(db: Database, site_ids: list[str]) -> tuple[int, int]:
    """(doses of verified persons at sites without a signer, doses of persons not verified) among the doses
    without a current signature: one aggregate query."""
    verified = persons.c.registry_status == _VERIFIED  # NULL (never checked) counts as not verified
    keyless = sa.and_(verified, doses.c.site_id.not_in(site_ids)) if site_ids else verified
    query = (
        sa.select(
            sa.func.coalesce(sa.func.sum(sa.case((keyless, 1), else_=0)), 0),
            sa.func.coalesce(sa.func.sum(sa.case((verified, 0), else_=1)), 0),
        )
        .select_from(doses.join(persons, persons.c.id == doses.c.person_id))
        .where(~_has_current_signature())
    )
    with db.connect() as conn:
        no_key, unverified = conn.execute(query).one()
    return int(no_key), int(unverified)


def supersede_signature(conn: Connection, dose_id: int, *, now: dt.datetime) -> bool:
    """Mark the current signature of ``dose_id`` superseded at ``now`` (in the caller's transaction, the one
    that changes the dose); returns whether there was one. The next signing run signs the dose again."""
    now = require_utc(now)
    result = conn.execute(
        site_signatures.update()
        .where(site_signatures.c.dose_id == dose_id, _current)
        .values(superseded_at=now)
    )
    return bool(result.rowcount)


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
    (:func:`~vaxcred.pipeline.sitesign.verify_dose` with ``site_ca``, the citizen ID stored now, and ``now`` as
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
            site_signatures.c.site_id,
            site_signatures.c.kid,
            site_signatures.c.cose,
            site_signatures.c.certificate,
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
            .outerjoin(site_certificates, site_certificates.c.fingerprint == site_signatures.c.certificate)
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
            row.cose, site_certificate=cert, site_ca=site_ca, citizen_id=row.citizen_id, now=now
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
