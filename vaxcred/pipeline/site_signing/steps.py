"""The checks both site-record formats share (:mod:`~vaxcred.pipeline.site_signing.record`, one signature per
record, and :mod:`~vaxcred.pipeline.site_signing.batch`, one signature per batch of records).

Signing side: the signer may sign as its site now (:func:`_check_signer`), and the fields of a dose as signed
(:func:`_dose_fields`). Verification side: steps (2)–(4) on a COSE envelope (:func:`_check_envelope_signer`) and
steps (6)–(9) on the claims (:func:`_check_claims`), numbered as in the record module's docstring.
Pure: no files, no clock (``now`` is a parameter).
"""

from __future__ import annotations

import functools
import hmac
from datetime import date as calendar_date
from datetime import datetime, timedelta

from cryptography import x509

from vaxcred.codec import cose
from vaxcred.crypto import Signer, algorithm_for_key, verify_signature
from vaxcred.errors import KeyUsageError, KidError, SignatureError, TimeError, VerificationError
from vaxcred.pipeline.errors import PipelineError
from vaxcred.pipeline.records.calendar import vietnam_date
from vaxcred.pipeline.records.model import DoseRecord, vaccine_codes
from vaxcred.pipeline.site_signing.certs import _facts, _purpose_problem, _valid_at, site_id_of
from vaxcred.pipeline.site_signing.claims import DoseClaims
from vaxcred.trust.chain import check_issued_by
from vaxcred.valuesets import VaccineCodes

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


@functools.lru_cache(maxsize=64)
def _signing_day(signed_at: datetime) -> calendar_date:
    """Viet Nam's calendar day at ``signed_at`` (a batch's doses share their signing time: kept, not
    recomputed per dose; equal instants have equal days, whatever their time zone)."""
    return vietnam_date(signed_at)


def _dose_date(dose: DoseRecord, signed_at: datetime) -> str:
    try:
        day = calendar_date.fromisoformat(dose.date)
    except (TypeError, ValueError) as e:
        raise _bad_record("date", "not a YYYY-MM-DD calendar date") from e
    if day > _signing_day(signed_at):  # the dose's day is Viet Nam's calendar day
        raise _bad_record("date", "after the signing time")
    return day.isoformat()


def _check_signer(signer: Signer, signed_at: datetime) -> str:
    """The signer's site id, once it may sign as that site at ``signed_at`` (PipelineError otherwise)."""
    cert = signer.certificate
    problem = _purpose_problem(cert)
    if problem is not None:
        raise PipelineError(problem, code="sitesign.wrong_purpose")
    site_id = site_id_of(cert)
    if not _valid_at(cert, signed_at):
        raise PipelineError(
            f"the site certificate of {site_id} is not valid at {signed_at.isoformat()}",
            code="sitesign.cert_not_valid",
        )
    facts = _facts(cert)
    public_key = facts.public_key if facts.public_key is not None else cert.public_key()
    if signer.algorithm != algorithm_for_key(public_key):
        raise PipelineError("the signer's algorithm does not match its key", code="sitesign.wrong_purpose")
    return site_id


def _dose_fields(dose: DoseRecord, site_id: str, signed_at: datetime) -> dict[str, object]:
    """The signed fields of ``dose`` except version, salt and citizen hash (PipelineError for a record that
    cannot be signed by ``site_id``)."""
    if dose.site_id != site_id:
        raise PipelineError(
            f"site {site_id} may sign only its own records, not one recorded by {dose.site_id!r}",
            code="sitesign.not_own_record",
            field="site_id",
        )
    day = _dose_date(dose, signed_at)
    codes = _codes(dose.vaccine)
    return {
        "site": site_id,
        "mp": codes.mp,
        "ma": codes.ma,
        "vp": codes.vp,
        "lot": dose.lot,
        "dt": day,
        "dn": dose.dose_number,
    }


# --- verification ------------------------------------------------------------------------------------------


def _check_envelope_signer(
    msg: cose.Sign1Message, alg: int, kid: bytes, certificate: x509.Certificate
) -> None:
    """Steps (2) purpose, (3) kid, (4) signature of a decoded envelope with ``certificate``."""
    # (2) purpose
    problem = _purpose_problem(certificate)
    if problem is not None:
        raise KeyUsageError(problem, code="sitesign.wrong_purpose")
    facts = _facts(certificate)
    # (3) kid: the record names the certificate that signed it
    if not hmac.compare_digest(kid, facts.kid):
        raise KidError("the record's kid is not the site certificate's", code="sitesign.kid_mismatch")
    # (4) signature: algorithm bound to the key type; the header alg must agree
    if facts.public_key is None:
        e = facts.key_error
        raise SignatureError(f"unreadable site certificate key: {e}", code="signature.unsupported_key") from e
    verify_signature(facts.public_key, alg, cose.sig_structure(msg), msg.signature)


def _check_claims(
    claims: DoseClaims,
    certificate: x509.Certificate,
    *,
    site_ca: x509.Certificate | None,
    citizen_id: str | None,
    now: datetime | None,
    skew: timedelta,
) -> None:
    """Steps (6) site, (7) time, (8) chain, (9) citizen of verified claims."""
    facts = _facts(certificate)
    # (6) site: a site signs only its own records
    cert_site = facts.site_id
    if cert_site is None:
        cert_site = site_id_of(certificate)  # raises: the certificate names no site
    if claims.site_id != cert_site:
        raise KeyUsageError(
            f"record of site {claims.site_id} signed with the certificate of site {cert_site}",
            code="sitesign.not_own_record",
        )
    # (7) time: the certificate at the signing time, not now
    if not facts.not_before <= claims.signed_at <= facts.not_after:
        raise TimeError(
            f"the site certificate was not valid at the signing time {claims.signed_at.isoformat()}",
            code="sitesign.cert_not_valid",
        )
    if now is not None and claims.signed_at > now + skew:
        raise TimeError("the record is signed in the future", code="sitesign.signed_in_future")
    # (8) chain: to the site root, at the signing time
    if site_ca is not None:
        check_issued_by(certificate, site_ca, claims.signed_at)
    # (9) citizen
    if citizen_id is not None and not claims.matches_citizen(citizen_id):
        raise VerificationError("the record is not for this citizen", code="sitesign.citizen_mismatch")
