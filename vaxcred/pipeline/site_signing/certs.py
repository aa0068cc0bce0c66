"""Site certificates for dose-record signing: what :mod:`vaxcred.pipeline.site_signing.record` checks about the signer.

A site certificate (keys.make_site_certificate) has extended key usage ``SITE_RECORD_EKU`` and no DCC EKU, is not
a CA, and names its site id in its single subject CN (:func:`site_id_of`).  What signing and verification read
from a certificate is worked out once per certificate and cached (:func:`_facts`); every check still runs on
every record.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from vaxcred.crypto import kid_for
from vaxcred.oids import DCC_EKU_OIDS, SITE_RECORD_EKU
from vaxcred.pipeline.records.model import SITE_ID_PATTERN

__all__ = ["is_site_certificate", "site_id_of"]

#: the site id a site certificate names in its subject CN (keys.make_site_certificate uses the same pattern)
_SITE_ID_RE: Final = re.compile(SITE_ID_PATTERN, re.ASCII)


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


class _CertRef:
    """A certificate as a cache key that hashes and compares by its DER (bytes keep their hash; a pyca
    certificate re-hashes its parsed form, ~2 µs, on every ``hash``)."""

    __slots__ = ("certificate", "der")

    def __init__(self, certificate: x509.Certificate, der: bytes) -> None:
        self.certificate = certificate
        self.der = der

    def __hash__(self) -> int:
        return hash(self.der)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _CertRef) and self.der == other.der


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
    ref: _CertRef  # the certificate as a cache key (by DER)


#: certificates whose facts :func:`_facts` finds by object identity (each entry holds its certificate, so an id
#: is never reused while it is here)
_IDENTITY_CACHE_SIZE: Final = 256
_by_identity: dict[int, tuple[x509.Certificate, _CertFacts]] = {}


def _facts(cert: x509.Certificate) -> _CertFacts:
    """:func:`_facts_by_value`, first looked up by object identity: a verifier hands the same certificate object
    for every record, and hashing a pyca certificate for the value cache costs more than the checks it feeds."""
    entry = _by_identity.get(id(cert))
    if entry is not None and entry[0] is cert:
        return entry[1]
    facts = _facts_by_value(cert)
    if len(_by_identity) >= _IDENTITY_CACHE_SIZE:
        _by_identity.clear()
    _by_identity[id(cert)] = (cert, facts)
    return facts


@functools.lru_cache(maxsize=256)
def _facts_by_value(cert: x509.Certificate) -> _CertFacts:
    """The purpose verdict, site id, kid, validity and public key of ``cert``: a certificate is immutable (pyca
    objects hash and compare by their DER), so these never change; every check still runs on every record."""
    try:
        public_key: CertificatePublicKeyTypes | None = cert.public_key()
        key_error: Exception | None = None
    except Exception as e:  # reported as signature.unsupported_key where the key is used
        public_key, key_error = None, e
    der = cert.public_bytes(Encoding.DER)
    return _CertFacts(
        problem=_purpose_problem_uncached(cert),
        site_id=_site_id_or_none(cert),
        kid=kid_for(der),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        public_key=public_key,
        key_error=key_error,
        ref=_CertRef(cert, der),
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
