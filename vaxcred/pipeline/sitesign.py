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

import functools
import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from datetime import date as calendar_date
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from vaxcred.codec import cbor, cose
from vaxcred.crypto import Signer, algorithm_for_key, kid_for, verify_signature
from vaxcred.errors import (
    CborError,
    CoseError,
    KeyUsageError,
    KidError,
    SignatureError,
    TimeError,
    VerificationError,
)
from vaxcred.oids import DCC_EKU_OIDS, SITE_RECORD_EKU
from vaxcred.pipeline.errors import PipelineError
from vaxcred.pipeline.records import MAX_DOSE_NUMBER, SITE_ID_PATTERN, DoseRecord, vaccine_codes
from vaxcred.trust.chain import check_issued_by
from vaxcred.trust.store import require_utc
from vaxcred.valuesets import VaccineCodes

#: the COSE content type (header 3) of a site-signed dose record
CONTENT_TYPE: Final = "application/vnd.vaxcred.dose-record+cbor"
RECORD_VERSION: Final = 1
SALT_LENGTH: Final = 16
CITIZEN_HASH_LENGTH: Final = 32

#: the site id a site certificate names in its subject CN (keys.make_site_certificate uses the same pattern)
_SITE_ID_RE: Final = re.compile(SITE_ID_PATTERN, re.ASCII)
_DATE_RE: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_CODE_RE: Final = re.compile(r"[^\x00-\x1f\x7f]{1,80}")
_FIELDS: Final = frozenset({"v", "site", "cid", "salt", "mp", "ma", "vp", "lot", "dt", "dn", "signed"})
_PROTECTED_LABELS: Final = frozenset(
    {cose.HeaderLabel.ALG, cose.HeaderLabel.CONTENT_TYPE, cose.HeaderLabel.KID}
)
_TAG_18: Final = b"\xd2"
#: a COSE record is small (~250 bytes; RSA-4096 signatures ~600); anything far larger is refused unread
_MAX_RECORD_BYTES: Final = 8 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class SignedDose:
    """A site-signed dose record: the COSE_Sign1 bytes, the site certificate's kid and the signing time."""

    cose: bytes = field(repr=False)
    kid: bytes
    signed_at: datetime
    site_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class DoseClaims:
    """The verified content of a site-signed dose record.  ``repr`` hides the citizen hash and salt."""

    site_id: str
    citizen_hash: bytes = field(repr=False)
    salt: bytes = field(repr=False)
    mp: str
    ma: str
    vp: str
    lot: str
    date: str
    dose_number: int
    signed_at: datetime
    kid: bytes

    def matches_citizen(self, citizen_id: str) -> bool:
        """Whether the record was signed for ``citizen_id`` (constant-time comparison)."""
        return hmac.compare_digest(citizen_hash(citizen_id, self.salt), self.citizen_hash)


def citizen_hash(citizen_id: str, salt: bytes) -> bytes:
    """SHA-256(salt ‖ UTF-8(citizen_id)); the salt is exactly :data:`SALT_LENGTH` bytes."""
    if not isinstance(citizen_id, str) or not isinstance(salt, bytes):
        raise TypeError("citizen_id must be str and salt bytes")
    if len(salt) != SALT_LENGTH:
        raise ValueError(f"salt must be {SALT_LENGTH} bytes")
    return hashlib.sha256(salt + citizen_id.encode("utf-8")).digest()


# --- site certificates ---------------------------------------------------------------------------------


def _eku(cert: x509.Certificate) -> frozenset[str] | None:
    try:
        value = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return None
    except Exception:  # unreadable extensions: not a certificate we accept for this purpose
        return None
    return frozenset(oid.dotted_string for oid in value)


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False
    except Exception:
        return True  # unreadable: fail closed


@dataclass(frozen=True, slots=True)
class _CertFacts:
    """What signing and verification read from a site certificate, worked out once per certificate."""

    problem: str | None  # _purpose_problem
    site_id: str | None  # _site_id_or_none
    kid: bytes  # kid_for(DER)
    not_before: datetime
    not_after: datetime
    public_key: CertificatePublicKeyTypes | None  # None: unreadable, see key_error
    key_error: Exception | None


@functools.lru_cache(maxsize=256)
def _facts(cert: x509.Certificate) -> _CertFacts:
    """The purpose verdict, site id, kid, validity and public key of ``cert``: a certificate is immutable (pyca
    objects hash and compare by their DER), so these never change; every check still runs on every record."""
    try:
        public_key: CertificatePublicKeyTypes | None = cert.public_key()
        key_error: Exception | None = None
    except Exception as e:  # reported as signature.unsupported_key where the key is used
        public_key, key_error = None, e
    return _CertFacts(
        problem=_purpose_problem_uncached(cert),
        site_id=_site_id_or_none(cert),
        kid=kid_for(cert.public_bytes(Encoding.DER)),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        public_key=public_key,
        key_error=key_error,
    )


def _purpose_problem(cert: x509.Certificate) -> str | None:
    return _facts(cert).problem


def _purpose_problem_uncached(cert: x509.Certificate) -> str | None:
    eku = _eku(cert)
    if eku is None or SITE_RECORD_EKU.dotted_string not in eku:
        return "the certificate is not a site certificate (no site-record extended key usage)"
    if eku & DCC_EKU_OIDS:
        return "the certificate may also sign passports (DCC extended key usage): not a site certificate"
    if _is_ca(cert):
        return "the certificate is a CA, not a site certificate"
    if _site_id_or_none(cert) is None:
        return "the certificate's subject CN is not a site id"
    return None


def _site_id_or_none(cert: x509.Certificate) -> str | None:
    try:
        attrs = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    except Exception:
        return None
    if len(attrs) != 1 or not isinstance(attrs[0].value, str) or not _SITE_ID_RE.fullmatch(attrs[0].value):
        return None
    return attrs[0].value


def is_site_certificate(cert: x509.Certificate) -> bool:
    """EKU includes ``SITE_RECORD_EKU`` and no DCC type, not a CA, and the subject CN is a site id."""
    return _purpose_problem(cert) is None


def site_id_of(cert: x509.Certificate) -> str:
    """The site id a site certificate is for: its single subject CN (``keys.make_site_certificate``).

    ``ValueError`` when the CN is missing, repeated or not a site id.
    """
    site_id = _facts(cert).site_id
    if site_id is None:
        raise ValueError("the certificate's subject has no single CN that is a site id")
    return site_id


def _valid_at(cert: x509.Certificate, at: datetime) -> bool:
    facts = _facts(cert)
    return facts.not_before <= at <= facts.not_after


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
    if day > signed_at.date():
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


#: the payload's keys in canonical order (RFC 8949 §4.2.1 as cbor2 applies it: UTF-8 length, then bytes)
_PAYLOAD_ORDER: Final = tuple(sorted(_FIELDS, key=lambda k: (len(k.encode()), k.encode())))
_PAYLOAD_KEYS: Final = {k: cbor.encode_head(3, len(k)) + k.encode() for k in _FIELDS}


def _encode_payload(payload: dict[str, object]) -> bytes:
    """``cbor.dumps(payload)`` for the record's flat map, written by hand (byte-identical; about 10 µs less per
    record). Any value outside the simple forms (a negative int, a non-UTF-8 string) goes to ``cbor.dumps``."""
    parts = [cbor.encode_head(5, len(payload))]
    try:
        for key in _PAYLOAD_ORDER:
            value = payload[key]
            parts.append(_PAYLOAD_KEYS[key])
            if type(value) is int and 0 <= value < 1 << 64:
                parts.append(cbor.encode_head(0, value))
            elif type(value) is str:
                data = value.encode("utf-8")
                parts.append(cbor.encode_head(3, len(data)))
                parts.append(data)
            elif type(value) is bytes:
                parts.append(cbor.encode_head(2, len(value)))
                parts.append(value)
            else:
                return cbor.dumps(payload)
    except (KeyError, UnicodeEncodeError):
        return cbor.dumps(payload)
    if len(payload) != len(_PAYLOAD_ORDER):
        return cbor.dumps(payload)
    return b"".join(parts)


@functools.lru_cache(maxsize=256)
def _protected_header(alg: int, kid: bytes) -> bytes:
    """The protected header of a signer's records (the same bytes for every record it signs)."""
    return cbor.dumps(
        {
            int(cose.HeaderLabel.ALG): alg,
            int(cose.HeaderLabel.CONTENT_TYPE): CONTENT_TYPE,
            int(cose.HeaderLabel.KID): kid,
        }
    )


# --- verification ------------------------------------------------------------------------------------------


def _bad_payload(message: str) -> CoseError:
    return CoseError(f"dose record payload: {message}", code="sitesign.bad_payload")


def _text(payload: Mapping[object, object], key: str, pattern: re.Pattern[str]) -> str:
    value = payload[key]
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise _bad_payload(f"{key!r} is not a valid text value")
    return value


def _bytes(payload: Mapping[object, object], key: str, length: int) -> bytes:
    value = payload[key]
    if not isinstance(value, bytes) or len(value) != length:
        raise _bad_payload(f"{key!r} is not a {length}-byte string")
    return value


def _integer(payload: Mapping[object, object], key: str, low: int, high: int) -> int:
    value = payload[key]
    if type(value) is not int or not low <= value <= high:
        raise _bad_payload(f"{key!r} is not an integer {low}-{high}")
    return value


def _decode_payload(raw: bytes, kid: bytes) -> DoseClaims:
    try:
        payload = cbor.loads(raw, max_depth=1)  # a flat map: nothing nests
    except CborError as e:
        raise _bad_payload(f"not valid CBOR ({e.code})") from e
    if not isinstance(payload, dict):
        raise _bad_payload("not a map")
    keys = set(payload)
    if keys != _FIELDS:
        raise _bad_payload("the fields are not exactly " + ", ".join(sorted(_FIELDS)))
    if cbor.dumps(payload) != raw:
        raise CoseError("dose record payload is not canonical CBOR", code="sitesign.not_canonical")
    if _integer(payload, "v", 0, 2**32) != RECORD_VERSION:
        raise _bad_payload(f"version {payload['v']!r} is not {RECORD_VERSION}")
    day = _text(payload, "dt", _DATE_RE)
    try:
        calendar_date.fromisoformat(day)
    except ValueError as e:
        raise _bad_payload("'dt' is not a calendar date") from e
    lot = _text(payload, "lot", _CODE_RE)
    if not lot.strip():
        raise _bad_payload("'lot' is blank")
    signed = _integer(payload, "signed", 0, 253402300799)  # up to 9999-12-31T23:59:59Z
    return DoseClaims(
        site_id=_text(payload, "site", _SITE_ID_RE),
        citizen_hash=_bytes(payload, "cid", CITIZEN_HASH_LENGTH),
        salt=_bytes(payload, "salt", SALT_LENGTH),
        mp=_text(payload, "mp", _CODE_RE),
        ma=_text(payload, "ma", _CODE_RE),
        vp=_text(payload, "vp", _CODE_RE),
        lot=lot,
        date=day,
        dose_number=_integer(payload, "dn", 1, MAX_DOSE_NUMBER),
        signed_at=datetime.fromtimestamp(signed, UTC),
        kid=kid,
    )


def _decode_envelope(data: bytes) -> tuple[cose.Sign1Message, int, bytes]:
    if not isinstance(data, bytes):
        raise TypeError(f"a site-signed record is bytes, not {type(data).__name__}")
    if len(data) > _MAX_RECORD_BYTES:
        raise CoseError(f"record of {len(data)} bytes exceeds {_MAX_RECORD_BYTES}", code="sitesign.too_large")
    if not data.startswith(_TAG_18):
        raise CoseError("a site-signed record is a COSE_Sign1 with tag 18", code="sitesign.bad_tag")
    msg = cose.decode_sign1(data)
    if msg.unprotected:
        raise CoseError("the unprotected header must be empty", code="sitesign.bad_header")
    alg, kid = msg.alg, msg.kid
    if set(msg.protected) != _PROTECTED_LABELS or alg is None or kid is None:
        raise CoseError(
            "the protected header must hold exactly alg, content type and kid", code="sitesign.bad_header"
        )
    if msg.protected[cose.HeaderLabel.CONTENT_TYPE] != CONTENT_TYPE:
        raise CoseError(f"content type is not {CONTENT_TYPE}", code="sitesign.bad_content_type")
    return msg, alg, kid


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
