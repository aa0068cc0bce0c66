"""Site signing (ký số chứng nhận tiêm): a vaccination site signs the dose records it recorded.

Two formats, told apart by their first bytes (:func:`verify_dose` accepts both): the **batch record**
(``[2, head, index, audit path, payload]``: one signature over the Merkle root of a batch, what the signing stage
writes; :mod:`vaxcred.pipeline.site_signing.batch`) and the **v1 record** below (one COSE_Sign1 per record:
:func:`sign_dose`; records stored before batch signing remain valid). Both share steps (2)–(4) and (6)–(9)
(:mod:`vaxcred.pipeline.site_signing.steps`).

The v1 signed object is a COSE_Sign1 (tag 18) that can never pass as a passport::

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
    "verify_stored_dose",
]

import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from cryptography import x509

from vaxcred.codec import cose
from vaxcred.crypto import Signer
from vaxcred.errors import CoseError, SignatureError
from vaxcred.merkle import HASH_LENGTH
from vaxcred.pipeline.records.model import DoseRecord
from vaxcred.pipeline.site_signing.batch import verify_batch_member, verify_batch_record
from vaxcred.pipeline.site_signing.batch_codec import BATCH_RECORD_START
from vaxcred.pipeline.site_signing.certs import is_site_certificate, site_id_of
from vaxcred.pipeline.site_signing.claims import (
    CONTENT_TYPE,
    RECORD_VERSION,
    SALT_LENGTH,
    DoseClaims,
    citizen_hash,
)
from vaxcred.pipeline.site_signing.decoding import (
    _TAG_18,
    _decode_envelope,
    _decode_payload,
)
from vaxcred.pipeline.site_signing.encoding import (
    _encode_payload,
    _protected_header,
)
from vaxcred.pipeline.site_signing.steps import (
    _check_claims,
    _check_envelope_signer,
    _check_signer,
    _dose_fields,
)
from vaxcred.trust.store import require_utc


@dataclass(frozen=True, slots=True, kw_only=True)
class SignedDose:
    """A site-signed dose record: the COSE_Sign1 bytes, the site certificate's kid and the signing time."""

    cose: bytes = field(repr=False)
    kid: bytes
    signed_at: datetime
    site_id: str


# --- signing -----------------------------------------------------------------------------------------------


def sign_dose(dose: DoseRecord, *, signer: Signer, now: datetime) -> SignedDose:
    """Sign ``dose`` as the site named by ``signer``'s site certificate, at ``now`` (aware).

    Refuses (PipelineError): a signer that is not a site certificate (``sitesign.wrong_purpose``), a
    dose recorded by another site (``sitesign.not_own_record``), a certificate not valid at ``now``
    (``sitesign.cert_not_valid``), an unknown vaccine (``sitesign.unknown_vaccine``), bad fields
    (``sitesign.bad_record``).
    """
    now = require_utc(now)
    signed_at = now.replace(microsecond=0)
    site_id = _check_signer(signer, signed_at)
    fields = _dose_fields(dose, site_id, signed_at)
    salt = secrets.token_bytes(SALT_LENGTH)
    fields.update(
        {
            "v": RECORD_VERSION,
            "cid": citizen_hash(dose.citizen_id, salt),
            "salt": salt,
            "signed": int(signed_at.timestamp()),
        }
    )
    payload = _encode_payload(fields)
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
    """Verify a site-signed dose record, v1 or batch member (steps in the module documentation), and return
    its claims. The format is read from the first byte (tag 18: v1; ``[2, ...``: a batch record,
    :func:`~vaxcred.pipeline.site_signing.batch.verify_batch_record`); each decoder accepts only its own shape.

    ``site_certificate`` is the certificate the record claims (looked up by kid by the caller);
    ``site_ca`` the site root it must chain to; ``citizen_id`` the ID the record must be for; ``now``
    (aware) bounds the signing time from above, with ``skew``.  Raises DecodeError / VerificationError
    subclasses with the codes of the module documentation.
    """
    if not isinstance(data, bytes):
        raise TypeError(f"a site-signed record is bytes, not {type(data).__name__}")
    if data.startswith(BATCH_RECORD_START):
        return verify_batch_record(
            data,
            site_certificate=site_certificate,
            site_ca=site_ca,
            citizen_id=citizen_id,
            now=now,
            skew=skew,
        )
    if not data.startswith(_TAG_18):
        raise CoseError(
            "a site-signed record is a COSE_Sign1 with tag 18 or a batch record", code="sitesign.bad_tag"
        )
    if now is not None:
        now = require_utc(now)

    # (1) envelope
    msg, alg, kid = _decode_envelope(data)

    # (2) purpose, (3) kid, (4) signature
    _check_envelope_signer(msg, alg, kid, site_certificate)

    # (5) payload
    claims = _decode_payload(msg.payload, kid)

    # (6) site, (7) time, (8) chain, (9) citizen
    _check_claims(claims, site_certificate, site_ca=site_ca, citizen_id=citizen_id, now=now, skew=skew)
    return claims


def verify_stored_dose(
    cose: bytes,
    head: bytes | None,
    leaf_index: int | None,
    proof: bytes | None,
    *,
    site_certificate: x509.Certificate,
    site_ca: x509.Certificate | None = None,
    citizen_id: str | None = None,
    now: datetime | None = None,
    skew: timedelta = timedelta(0),
) -> DoseClaims:
    """:func:`verify_dose` on a record as stored in ``site_signatures``: a v1 row (``head`` None) is its
    COSE_Sign1; a batch member is its payload with its head's bytes, leaf index and concatenated audit path,
    verified without assembling the standalone record (same steps, same errors)."""
    if head is None:
        return verify_dose(
            cose,
            site_certificate=site_certificate,
            site_ca=site_ca,
            citizen_id=citizen_id,
            now=now,
            skew=skew,
        )
    path = proof or b""
    if leaf_index is None or len(path) % HASH_LENGTH:
        raise SignatureError("the stored audit path is malformed", code="sitesign.not_in_batch")
    return verify_batch_member(
        head,
        leaf_index,
        [path[i : i + HASH_LENGTH] for i in range(0, len(path), HASH_LENGTH)],
        cose,
        site_certificate=site_certificate,
        site_ca=site_ca,
        citizen_id=citizen_id,
        now=now,
        skew=skew,
    )
