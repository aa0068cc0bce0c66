"""Central issuance, the stored data a batch reads: the claimed persons with their newest registry check, doses
and current site signatures (:func:`load_candidates`), and the site certificates those signatures name
(:class:`SiteCertificates`, each checked against the site CA once per worker).

A site certificate and the site CA are valid together over one window, and inside it the issued-by check does not
depend on the time, so :class:`SiteCertificates` runs it once per certificate at the window's start; each record
then only needs its signing time inside the window (:mod:`vaxcred.pipeline.issuance.select`, rule (5)).
A stored certificate whose fingerprint is not the SHA-256 of its DER, or that does not parse, is unknown.
A site certificate the site CA's CRL revokes (``vaxcred keys revoke-site``; the CRL must be signed by the site CA)
has its window end just before the revocation time: records it signed from then on fail rule (5).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy.engine import Connection

from vaxcred.errors import ChainError
from vaxcred.pipeline.site_signing.record import site_id_of
from vaxcred.storage.bulk import among
from vaxcred.storage.schema import (
    doses,
    persons,
    registry_checks,
    site_certificates,
    site_signature_batches,
    site_signatures,
)
from vaxcred.trust.chain import check_issued_by

__all__ = [
    "Candidate",
    "DoseRow",
    "SignatureRow",
    "SiteCertificate",
    "SiteCertificates",
    "dose_row",
    "load_candidates",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class SignatureRow:
    """A current ``site_signatures`` row."""

    id: int
    site_id: str
    certificate: bytes | None  # fingerprint of the site certificate, when recorded
    kid: bytes
    cose: bytes = field(repr=False)  # v1: the COSE_Sign1; a batch member: its payload
    # a batch member's signed head, leaf index and audit path (None for a v1 row)
    head: bytes | None = field(default=None, repr=False)
    leaf_index: int | None = None
    proof: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class DoseRow:
    """A stored dose and its current site signature (``None``: not signed)."""

    id: int
    dose_number: int
    date: dt.date
    site_id: str
    vaccine: str
    lot: str
    signature: SignatureRow | None

    @property
    def order_key(self) -> tuple[dt.date, int, str]:
        """The latest-dose order (module docstring): date, then dose number, then site ID."""
        return (self.date, self.dose_number, self.site_id)


@dataclass(frozen=True, slots=True, kw_only=True)
class Candidate:
    """A person claimed for issuance, with everything the rules look at. ``repr`` shows no personal data."""

    person_id: int
    citizen_id: str = field(repr=False)
    full_name: str = field(repr=False)
    dob: str = field(repr=False)
    check_id: int | None
    check_status: str | None
    doses: tuple[DoseRow, ...]


def dose_row(
    dose_id: int,
    dose_number: int,
    day: dt.date,
    site_id: str,
    vaccine: str,
    lot: str,
    sig_id: int | None,
    sig_site_id: str,
    certificate: bytes | None,
    kid: bytes,
    cose: bytes,
    leaf_index: int | None,
    proof: bytes | None,
    head: bytes | None,
) -> DoseRow:
    """A :class:`DoseRow` from a dose's columns followed by its current signature's (``sig_id`` None: unsigned),
    in the order :func:`load_candidates` reads them."""
    signature = (
        None
        if sig_id is None
        else SignatureRow(
            id=sig_id,
            site_id=sig_site_id,
            certificate=certificate,
            kid=kid,
            cose=cose,
            head=head,
            leaf_index=leaf_index,
            proof=proof,
        )
    )
    return DoseRow(
        id=dose_id,
        dose_number=dose_number,
        date=day,
        site_id=site_id,
        vaccine=vaccine,
        lot=lot,
        signature=signature,
    )


def load_candidates(conn: Connection, person_ids: Sequence[int]) -> list[Candidate]:
    """Read the persons ``person_ids`` with their newest registry check, doses and current signatures."""
    if not person_ids:
        return []
    ids = sorted(person_ids)
    people = conn.execute(
        sa.select(persons.c.id, persons.c.citizen_id, persons.c.full_name, persons.c.dob)
        .where(among(conn, persons.c.id, ids))
        .order_by(persons.c.id)
    ).all()
    newest = (
        sa.select(sa.func.max(registry_checks.c.id))
        .where(among(conn, registry_checks.c.person_id, ids))
        .group_by(registry_checks.c.person_id)
        .scalar_subquery()
    )
    checks = {
        row.person_id: (row.id, row.status)
        for row in conn.execute(
            sa.select(registry_checks.c.person_id, registry_checks.c.id, registry_checks.c.status).where(
                registry_checks.c.id.in_(newest)
            )
        )
    }
    signed = site_signatures.alias("s")
    dose_rows: dict[int, list[DoseRow]] = {}
    query = (
        sa.select(
            doses.c.id,
            doses.c.person_id,
            doses.c.dose_number,
            doses.c.date,
            doses.c.site_id,
            doses.c.vaccine,
            doses.c.lot,
            signed.c.id.label("sig_id"),
            # a batch member's site, certificate and kid are its batch's (storage migration 0012)
            sa.func.coalesce(site_signature_batches.c.site_id, signed.c.site_id).label("sig_site_id"),
            sa.func.coalesce(site_signature_batches.c.certificate, signed.c.certificate).label("certificate"),
            sa.func.coalesce(site_signature_batches.c.kid, signed.c.kid).label("kid"),
            signed.c.cose,
            signed.c.leaf_index,
            signed.c.proof,
            site_signature_batches.c.head,
        )
        .select_from(
            doses.outerjoin(
                signed, sa.and_(signed.c.dose_id == doses.c.id, signed.c.superseded_at.is_(None))
            ).outerjoin(site_signature_batches, site_signature_batches.c.id == signed.c.batch_id)
        )
        .where(
            among(conn, doses.c.person_id, ids), doses.c.withdrawn_at.is_(None)
        )  # withdrawn records: ignored
        .order_by(doses.c.person_id, doses.c.id)
    )
    # rows unpacked as tuples, fetched at once: reading 15 columns by name off ~2.5 rows a person cost more
    # than the database's join
    for dose_id, person_id, *values in conn.execute(query).all():
        dose_rows.setdefault(person_id, []).append(dose_row(dose_id, *values))
    unchecked = (None, None)
    return [
        Candidate(
            person_id=person_id,
            citizen_id=citizen_id,
            full_name=full_name,
            dob=dob,
            check_id=checks.get(person_id, unchecked)[0],
            check_status=checks.get(person_id, unchecked)[1],
            doses=tuple(dose_rows.get(person_id, ())),
        )
        for person_id, citizen_id, full_name, dob in people
    ]


@dataclass(frozen=True, slots=True)
class SiteCertificate:
    """A stored site certificate: its site, and when it may have signed (``None``: not from the site CA)."""

    certificate: x509.Certificate
    site_id: str | None
    #: when the certificate and the site CA are valid together and the issued-by check passed; else the reason
    window: tuple[datetime, datetime] | None


class SiteCertificates:
    """The stored site certificates a worker has met, each with its chain check to ``site_ca`` done once."""

    def __init__(self, site_ca: x509.Certificate, crl: x509.CertificateRevocationList | None = None) -> None:
        self._site_ca = site_ca
        self._revoked = _revocations(crl, site_ca)
        self._by_fingerprint: dict[bytes, SiteCertificate] = {}
        self._by_kid: dict[bytes, list[bytes]] = {}
        self._kids_loaded: set[bytes] = set()

    def missing(self, candidates: Iterable[Candidate]) -> tuple[set[bytes], set[bytes]]:
        """The fingerprints, and the kids of signatures naming no certificate, that the candidates' signatures
        name and this cache has not read yet."""
        fingerprints: set[bytes] = set()
        kids: set[bytes] = set()
        for candidate in candidates:
            for dose in candidate.doses:
                sig = dose.signature
                if sig is None:
                    continue
                if sig.certificate is not None:
                    if sig.certificate not in self._by_fingerprint:
                        fingerprints.add(sig.certificate)
                elif sig.kid not in self._kids_loaded:
                    kids.add(sig.kid)
        return fingerprints, kids

    def load(self, conn: Connection, candidates: Iterable[Candidate]) -> None:
        """Read the certificates the candidates' signatures name that are not known yet."""
        self.read(conn, *self.missing(candidates))

    def read(self, conn: Connection, fingerprints: set[bytes], kids: set[bytes]) -> None:
        """Read these certificates (by fingerprint, and by kid for signatures naming none): :meth:`missing`'s."""
        if not fingerprints and not kids:
            return
        query = sa.select(site_certificates.c.fingerprint, site_certificates.c.kid, site_certificates.c.der)
        conditions = []
        if fingerprints:
            conditions.append(site_certificates.c.fingerprint.in_(sorted(fingerprints)))
        if kids:
            conditions.append(site_certificates.c.kid.in_(sorted(kids)))
        for row in conn.execute(query.where(sa.or_(*conditions))):
            self._add(row.fingerprint, row.kid, row.der)
        self._kids_loaded |= kids

    def _add(self, fingerprint: bytes, kid: bytes, der: bytes) -> None:
        if fingerprint in self._by_fingerprint:
            return
        try:
            cert = x509.load_der_x509_certificate(der)
        except ValueError:
            return  # an unreadable stored certificate is an unknown one
        if hashlib.sha256(cert.public_bytes(Encoding.DER)).digest() != fingerprint:
            return  # a row whose key is not its certificate's fingerprint is not trusted
        try:
            site_id: str | None = site_id_of(cert)
        except ValueError:
            site_id = None
        self._by_fingerprint[fingerprint] = SiteCertificate(cert, site_id, self._window(cert))
        self._by_kid.setdefault(kid, []).append(fingerprint)

    def _window(self, cert: x509.Certificate) -> tuple[datetime, datetime] | None:
        ca = self._site_ca
        start = max(cert.not_valid_before_utc, ca.not_valid_before_utc)
        end = min(cert.not_valid_after_utc, ca.not_valid_after_utc)
        if start > end:
            return None
        try:
            check_issued_by(cert, ca, start)
        except ChainError:
            return None
        revoked_at = self._revoked.get(cert.serial_number)
        if revoked_at is not None:  # signed at or after the revocation: refused
            end = min(end, revoked_at - dt.timedelta(microseconds=1))
            if start > end:
                return None
        return (start, end)

    def candidates_for(self, sig: SignatureRow) -> list[SiteCertificate]:
        """The certificates that may have signed ``sig``: the one it names, else the site's with its kid."""
        if sig.certificate is not None:
            known = self._by_fingerprint.get(sig.certificate)
            return [] if known is None else [known]
        found = (self._by_fingerprint[fp] for fp in self._by_kid.get(sig.kid, ()))
        return [c for c in found if c.site_id == sig.site_id]


def _revocations(
    crl: x509.CertificateRevocationList | None, site_ca: x509.Certificate
) -> dict[int, datetime]:
    """Serial → revocation time of the site CA's CRL; ChainError ``chain.bad_crl`` unless the site CA signed it."""
    if crl is None:
        return {}
    public_key = site_ca.public_key()
    try:
        valid = crl.issuer == site_ca.subject and crl.is_signature_valid(public_key)  # type: ignore[arg-type]
    except Exception:  # an unusable key or signature is an untrusted CRL
        valid = False
    if not valid:
        raise ChainError("the site CRL is not signed by the site CA", code="chain.bad_crl")
    return {entry.serial_number: entry.revocation_date_utc for entry in crl}
