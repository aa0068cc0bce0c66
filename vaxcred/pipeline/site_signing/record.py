"""Site signing (ký số chứng nhận tiêm): a vaccination site signs each dose record it recorded.

The signed object is a COSE_Sign1 (tag 18) that can never pass as a passport::

    protected   {1: alg, 3: "application/vnd.vaxcred.dose-record+cbor", 4: kid}     unprotected {}
    payload     canonical CBOR map with TEXT keys (a CWT has integer keys 1/4/6/-260, so an HC1
                verifier fails it at the ``cose`` step):
                {"v": 1, "site": site id, "cid": SHA-256(salt ‖ UTF-8 citizen id), "salt": 16 random bytes,
                 "mp", "ma", "vp": EU value-set codes, "lot", "dt": "YYYY-MM-DD", "dn": dose number,
                 "signed": signing time, integer seconds since the epoch}

The citizen ID itself is not in the record, only a salted hash: the random per-record salt stops
records of one person from being linked by their hash and defeats precomputed tables, but with the salt
beside it a single record's hash can still be tested against candidate IDs (a CCCD has only six random
digits per prefix), so signed records are pipeline data, not public data (SECURITY.md §4).

The signer must hold a *site certificate* (keys.make_site_certificate): extended key usage
``SITE_RECORD_EKU`` and no DCC EKU, not a CA; its subject CN is the site id (:func:`site_id_of`).
A site can sign only the records it recorded: the dose's ``site_id`` must be its own.

Verification (:func:`verify_dose`), each step tagged below with its number:

(1) envelope:   tag 18, strict COSE/CBOR, exactly alg, content type and kid in the protected header,
                the unprotected header empty, our content type
(2) purpose:    the given certificate is a site certificate
(3) kid:        the protected kid is the certificate's kid (the records link to their certificate)
(4) signature:  with the certificate's key; the algorithm comes from the key type (a header ``alg`` that
                disagrees fails)
(5) payload:    strict decode: exactly the fields above with their types, canonical encoding
(6) site:       the payload's site is the certificate's site
(7) time:       the certificate was valid at the signing time (``signed``), not necessarily now;
                ``signed`` not after ``now`` when ``now`` is given
(8) chain:      the certificate issued by ``site_ca`` and both valid at the signing time (when given)
(9) citizen:    the salted hash of ``citizen_id`` matches (when given)

Errors: the signing side refuses with :class:`~vaxcred.pipeline.errors.PipelineError`
(``sitesign.wrong_purpose``, ``sitesign.not_own_record``, ``sitesign.cert_not_valid``,
``sitesign.unknown_vaccine``, ``sitesign.bad_record``).  Verification raises
:class:`~vaxcred.errors.DecodeError` subclasses for malformed input (``cbor.*``, ``cose.*``, ``sitesign.too_large``,
``sitesign.bad_tag``, ``sitesign.bad_header``, ``sitesign.bad_content_type``, ``sitesign.bad_payload``,
``sitesign.not_canonical``) and :class:`~vaxcred.errors.VerificationError` subclasses for a record that
fails a check (``sitesign.wrong_purpose`` and ``sitesign.not_own_record`` as KeyUsageError,
``sitesign.kid_mismatch`` as KidError, ``signature.*``, ``sitesign.cert_not_valid`` and
``sitesign.signed_in_future`` as TimeError, ``chain.*``, ``sitesign.citizen_mismatch``).

Pure: no files, no clock (``now`` is a parameter); the salt comes from :mod:`secrets`.
"""

from __future__ import annotations

__all__ = [
    "CONTENT_TYPE",
    "RECORD_VERSION",
    "SALT_LENGTH",
    "DoseClaims",
    "SignedDose",
    "citizen_hash",
    "is_site_certificate",
    "sign_dose",
    "site_id_of",
    "verify_dose",
]

import hmac
import secrets
from dataclasses import dataclass, field
from datetime import date as calendar_date
from datetime import datetime, timedelta

from cryptography import x509

from vaxcred.codec import cose
from vaxcred.crypto import Signer, algorithm_for_key, verify_signature
from vaxcred.errors import KeyUsageError, KidError, SignatureError, TimeError, VerificationError
from vaxcred.pipeline.errors import PipelineError
from vaxcred.pipeline.records.calendar import vietnam_date
from vaxcred.pipeline.records.model import DoseRecord, vaccine_codes
from vaxcred.pipeline.site_signing.certs import (
    _facts,
    _purpose_problem,
    _valid_at,
    is_site_certificate,
    site_id_of,
)
from vaxcred.pipeline.site_signing.codec import (
    CONTENT_TYPE,
    RECORD_VERSION,
    SALT_LENGTH,
    DoseClaims,
    _decode_envelope,
    _decode_payload,
    _encode_payload,
    _protected_header,
    citizen_hash,
)
from vaxcred.trust.chain import check_issued_by
from vaxcred.trust.store import require_utc
from vaxcred.valuesets import VaccineCodes

# The certificate checks and the wire format live in sitesign_certs and sitesign_codec; the private names
# imported above as ``name`` stay importable from here.


@dataclass(frozen=True, slots=True, kw_only=True)
class SignedDose:
    """A site-signed dose record: the COSE_Sign1 bytes, the site certificate's kid and the signing time."""

    cose: bytes = field(repr=False)
    kid: bytes
    signed_at: datetime
    site_id: str


# --- signing -----------------------------------------------------------------------------------------------


def _codes(vaccine: str) -> VaccineCodes:
    try:
        return vaccine_codes(vaccine)
    except ValueError as e:
        raise PipelineError(f"unknown vaccine {vaccine[:40]!r}", code="sitesign.unknown_vaccine") from e


def _bad_record(field_name: str, why: str) -> PipelineError:
    return PipelineError(
        f"dose record field {field_name}: {why}", code="sitesign.bad_record", field=field_name
    )


def _dose_date(dose: DoseRecord, signed_at: datetime) -> str:
    try:
        day = calendar_date.fromisoformat(dose.date)
    except (TypeError, ValueError) as e:
        raise _bad_record("date", "not a YYYY-MM-DD calendar date") from e
    if day > vietnam_date(signed_at):  # the dose's day is Viet Nam's calendar day
        raise _bad_record("date", "after the signing time")
    return day.isoformat()


def sign_dose(dose: DoseRecord, *, signer: Signer, now: datetime) -> SignedDose:
    """Sign ``dose`` as the site named by ``signer``'s site certificate, at ``now`` (aware).

    Refuses (PipelineError): a signer that is not a site certificate (``sitesign.wrong_purpose``), a
    dose recorded by another site (``sitesign.not_own_record``), a certificate not valid at ``now``
    (``sitesign.cert_not_valid``), an unknown vaccine (``sitesign.unknown_vaccine``), bad fields
    (``sitesign.bad_record``).
    """
    now = require_utc(now)
    signed_at = now.replace(microsecond=0)
    signed = int(signed_at.timestamp())
    cert = signer.certificate
    problem = _purpose_problem(cert)
    if problem is not None:
        raise PipelineError(problem, code="sitesign.wrong_purpose")
    site_id = site_id_of(cert)
    if dose.site_id != site_id:
        raise PipelineError(
            f"site {site_id} may sign only its own records, not one recorded by {dose.site_id!r}",
            code="sitesign.not_own_record",
            field="site_id",
        )
    if not _valid_at(cert, signed_at):
        raise PipelineError(
            f"the site certificate of {site_id} is not valid at {signed_at.isoformat()}",
            code="sitesign.cert_not_valid",
        )
    facts = _facts(cert)
    public_key = facts.public_key if facts.public_key is not None else cert.public_key()
    if signer.algorithm != algorithm_for_key(public_key):
        raise PipelineError("the signer's algorithm does not match its key", code="sitesign.wrong_purpose")
    day = _dose_date(dose, signed_at)
    codes = _codes(dose.vaccine)
    salt = secrets.token_bytes(SALT_LENGTH)
    payload = _encode_payload(
        {
            "v": RECORD_VERSION,
            "site": site_id,
            "cid": citizen_hash(dose.citizen_id, salt),
            "salt": salt,
            "mp": codes.mp,
            "ma": codes.ma,
            "vp": codes.vp,
            "lot": dose.lot,
            "dt": day,
            "dn": dose.dose_number,
            "signed": signed,
        }
    )
    kid = signer.kid
    protected = _protected_header(int(signer.algorithm), kid)
    signature = signer.sign(cose.sig_structure_for(protected, payload))
    return SignedDose(
        cose=cose.encode_sign1(protected, payload, signature), kid=kid, signed_at=signed_at, site_id=site_id
    )


# --- verification ------------------------------------------------------------------------------------------


def verify_dose(
    data: bytes,
    *,
    site_certificate: x509.Certificate,
    site_ca: x509.Certificate | None = None,
    citizen_id: str | None = None,
    now: datetime | None = None,
    skew: timedelta = timedelta(0),
) -> DoseClaims:
    """Verify a site-signed dose record (steps in the module documentation) and return its claims.

    ``site_certificate`` is the certificate the record claims (looked up by kid by the caller);
    ``site_ca`` the site root it must chain to; ``citizen_id`` the ID the record must be for; ``now``
    (aware) bounds the signing time from above, with ``skew``.  Raises DecodeError / VerificationError
    subclasses with the codes of the module documentation.
    """
    if now is not None:
        now = require_utc(now)

    # (1) envelope
    msg, alg, kid = _decode_envelope(data)

    # (2) purpose
    problem = _purpose_problem(site_certificate)
    if problem is not None:
        raise KeyUsageError(problem, code="sitesign.wrong_purpose")

    facts = _facts(site_certificate)

    # (3) kid: the record names the certificate that signed it
    if not hmac.compare_digest(kid, facts.kid):
        raise KidError("the record's kid is not the site certificate's", code="sitesign.kid_mismatch")

    # (4) signature: algorithm bound to the key type; the header alg must agree
    if facts.public_key is None:
        e = facts.key_error
        raise SignatureError(f"unreadable site certificate key: {e}", code="signature.unsupported_key") from e
    verify_signature(facts.public_key, alg, cose.sig_structure(msg), msg.signature)

    # (5) payload
    claims = _decode_payload(msg.payload, kid)

    # (6) site: a site signs only its own records
    cert_site = site_id_of(site_certificate)
    if claims.site_id != cert_site:
        raise KeyUsageError(
            f"record of site {claims.site_id} signed with the certificate of site {cert_site}",
            code="sitesign.not_own_record",
        )

    # (7) time: the certificate at the signing time, not now
    if not _valid_at(site_certificate, claims.signed_at):
        raise TimeError(
            f"the site certificate was not valid at the signing time {claims.signed_at.isoformat()}",
            code="sitesign.cert_not_valid",
        )
    if now is not None and claims.signed_at > now + skew:
        raise TimeError("the record is signed in the future", code="sitesign.signed_in_future")

    # (8) chain: to the site root, at the signing time
    if site_ca is not None:
        check_issued_by(site_certificate, site_ca, claims.signed_at)

    # (9) citizen
    if citizen_id is not None and not claims.matches_citizen(citizen_id):
        raise VerificationError("the record is not for this citizen", code="sitesign.citizen_mismatch")
    return claims
