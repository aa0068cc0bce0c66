"""Document signer certificates (DSCs) read tolerantly: what a verifier needs, from real-world DER.

Real DSCs break strict parsers (DCC.md §9): an empty extendedKeyUsage sequence
(``common/2DCode/raw/CO15.json``: pyca's ``cert.extensions`` raises), encoded DER defaults, critical EKU,
ICAO extensions, SHA-1 signatures.  :func:`parse_dsc` loads the certificate with pyca/cryptography and
reads the extensions through ``cert.extensions``; when that raises, a minimal DER walker
(:func:`vaxcred.der.walk_extensions`) reads the few extensions vaxcred uses straight from the TBSCertificate.

Fail closed on the extensions that *widen* permissions when missing: an extendedKeyUsage (absent = every
payload type allowed) or a privateKeyUsagePeriod (absent = the key may sign throughout the certificate's
validity) that is present but unreadable, or duplicated, raises :class:`~vaxcred.errors.KeyStoreError`
rather than being treated as absent.  Other unreadable extensions read as ``None``.

Pure: no files, no clock.
"""

from __future__ import annotations

__all__ = [
    "PRIVATE_KEY_USAGE_PERIOD",
    "DscInfo",
    "eku_allows",
    "encode_pkup",
    "load_certificate_bytes",
    "load_untrusted_certificate",
    "parse_dsc",
]

import base64
import binascii
import re
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeVar

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509.oid import ExtensionOID, NameOID, ObjectIdentifier

from vaxcred.crypto import kid_for
from vaxcred.der import (
    SEQUENCE,
    DerError,
    parse_aki,
    parse_basic_constraints_ca,
    parse_eku,
    parse_key_usage_digital_signature,
    parse_ski,
    walk_extensions,
)
from vaxcred.der import parse_pkup as _parse_pkup
from vaxcred.errors import KeyStoreError
from vaxcred.oids import DCC_EKU_BY_TYPE

#: privateKeyUsagePeriod (RFC 5280 §4.2.1.4 of RFC 3280; hcert spec App. A.4 uses it for DSC key use)
PRIVATE_KEY_USAGE_PERIOD = ObjectIdentifier("2.5.29.16")

_OID_EKU = ExtensionOID.EXTENDED_KEY_USAGE.dotted_string
_OID_KEY_USAGE = ExtensionOID.KEY_USAGE.dotted_string
_OID_BASIC_CONSTRAINTS = ExtensionOID.BASIC_CONSTRAINTS.dotted_string
_OID_SKI = ExtensionOID.SUBJECT_KEY_IDENTIFIER.dotted_string
_OID_AKI = ExtensionOID.AUTHORITY_KEY_IDENTIFIER.dotted_string
_OID_PKUP = PRIVATE_KEY_USAGE_PERIOD.dotted_string

_T = TypeVar("_T")

_PEM_RE = re.compile(rb"-----BEGIN CERTIFICATE-----")


@dataclass(frozen=True, slots=True, kw_only=True)
class DscInfo:
    """What vaxcred reads from a document signer certificate (all times aware UTC)."""

    der: bytes = field(repr=False)
    kid: bytes
    public_key: CertificatePublicKeyTypes = field(repr=False)
    not_before: datetime
    not_after: datetime
    #: dotted OIDs; ``None`` = no EKU extension, empty = extension present but empty (both permit all)
    eku: frozenset[str] | None
    #: subject ``C``
    country: str | None
    subject: str
    issuer: str
    #: keyUsage digitalSignature bit; ``None`` = no keyUsage extension
    key_usage_digital_signature: bool | None
    #: privateKeyUsagePeriod (notBefore, notAfter), either side optional; ``None`` = no extension
    pkup: tuple[datetime | None, datetime | None] | None
    #: basicConstraints cA; ``None`` = no basicConstraints extension
    is_ca: bool | None
    ski: bytes | None
    aki: bytes | None
    certificate: x509.Certificate | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("not_before", "not_after"):
            value: datetime = getattr(self, name)
            if value.tzinfo is None:
                raise ValueError(f"DscInfo.{name} must be an aware UTC datetime")

    @property
    def signing_window(self) -> tuple[datetime, datetime]:
        """When the DSC's private key may sign: validity narrowed by privateKeyUsagePeriod."""
        start, end = self.not_before, self.not_after
        if self.pkup is not None:
            pkup_start, pkup_end = self.pkup
            if pkup_start is not None:
                start = max(start, pkup_start)
            if pkup_end is not None:
                end = min(end, pkup_end)
        return start, end


def load_certificate_bytes(data: bytes | str) -> bytes:
    """A certificate in PEM, DER or base64 DER → its DER bytes (exactly as encoded).

    Raises KeyStoreError(``keys.bad_certificate``) if ``data`` is none of these.
    """
    raw = data.encode("ascii", "replace") if isinstance(data, str) else bytes(data)
    stripped = raw.strip()
    try:
        if _PEM_RE.search(stripped):
            cert = _strictly(x509.load_pem_x509_certificate, stripped)
            return cert.public_bytes(Encoding.DER)
        if stripped[:1] == b"\x30":
            load_untrusted_certificate(raw)
            return raw
        der = base64.b64decode(b"".join(stripped.split()), validate=True)
        load_untrusted_certificate(der)
    except (ValueError, TypeError, binascii.Error, x509.InvalidVersion) as e:
        raise KeyStoreError(
            f"not a certificate (PEM, DER or base64 DER): {e}", code="keys.bad_certificate"
        ) from e
    return der


def load_untrusted_certificate(der: bytes) -> x509.Certificate:
    """:func:`x509.load_der_x509_certificate` for a certificate from untrusted input, with what cryptography only
    warns about refused as ``ValueError``: today a serial number that is not positive (RFC 5280 disallows it; a
    later cryptography release refuses it). Whatever the process's warning filters: under ``-W error`` the
    warning itself was raised, an exception outside the library's error tree (found by a bit-flip test of a
    signed trust list's carried certificate). The filter is the calling thread's for the moment of the parse
    (:class:`warnings.catch_warnings`)."""
    return _strictly(x509.load_der_x509_certificate, der)


def _strictly(load: Callable[[bytes], x509.Certificate], data: bytes) -> x509.Certificate:
    """``load(data)`` with cryptography's deprecation warnings raised as ``ValueError`` (see above)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", CryptographyDeprecationWarning)
        try:
            return load(data)
        except CryptographyDeprecationWarning as e:
            raise ValueError(f"not an RFC 5280 certificate: {e}") from e


def parse_dsc(der: bytes) -> DscInfo:
    """Read a DSC tolerantly (see the module docstring); KeyStoreError(``keys.bad_certificate``)."""
    der = bytes(der)
    try:
        cert = x509.load_der_x509_certificate(der)
        public_key = cert.public_key()
        not_before = cert.not_valid_before_utc
        not_after = cert.not_valid_after_utc
    except Exception as e:
        raise KeyStoreError(f"unreadable certificate: {e}", code="keys.bad_certificate") from e
    try:
        exts = _extensions_from_pyca(cert)
    except Exception:  # pyca rejects some real DSCs (CO15: empty EKU); read the DER ourselves
        exts = _extensions_from_der(der)
    return DscInfo(
        der=der,
        kid=kid_for(der),
        public_key=public_key,
        not_before=not_before,
        not_after=not_after,
        eku=exts.eku,
        country=_country(cert),
        subject=_rfc4514(cert, issuer=False),
        issuer=_rfc4514(cert, issuer=True),
        key_usage_digital_signature=exts.digital_signature,
        pkup=exts.pkup,
        is_ca=exts.is_ca,
        ski=exts.ski,
        aki=exts.aki,
        certificate=cert,
    )


def eku_allows(info: DscInfo, payload_type: str) -> bool:
    """DCC.md §5: no EKU, or an empty one, permits every type; else the type's OID (either family)."""
    try:
        wanted = DCC_EKU_BY_TYPE[payload_type]
    except KeyError:
        raise ValueError(f"payload type must be one of 'v', 't', 'r', not {payload_type!r}") from None
    if not info.eku:
        return True
    return not wanted.isdisjoint(info.eku)


# --- helpers -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class _Extensions:
    eku: frozenset[str] | None = None
    digital_signature: bool | None = None
    is_ca: bool | None = None
    ski: bytes | None = None
    aki: bytes | None = None
    pkup: tuple[datetime | None, datetime | None] | None = None


def _country(cert: x509.Certificate) -> str | None:
    try:
        attrs = cert.subject.get_attributes_for_oid(NameOID.COUNTRY_NAME)
    except Exception:
        return None
    for attr in attrs:
        value = attr.value
        return value if isinstance(value, str) else value.decode("ascii", "replace")
    return None


def _rfc4514(cert: x509.Certificate, *, issuer: bool) -> str:
    try:
        return (cert.issuer if issuer else cert.subject).rfc4514_string()
    except Exception:
        return ""


def _extensions_from_pyca(cert: x509.Certificate) -> _Extensions:
    eku: frozenset[str] | None = None
    digital_signature: bool | None = None
    is_ca: bool | None = None
    ski: bytes | None = None
    aki: bytes | None = None
    pkup: tuple[datetime | None, datetime | None] | None = None
    for ext in cert.extensions:
        value = ext.value
        if isinstance(value, x509.ExtendedKeyUsage):
            eku = frozenset(oid.dotted_string for oid in value)
        elif isinstance(value, x509.KeyUsage):
            digital_signature = value.digital_signature
        elif isinstance(value, x509.BasicConstraints):
            is_ca = value.ca
        elif isinstance(value, x509.SubjectKeyIdentifier):
            ski = value.digest
        elif isinstance(value, x509.AuthorityKeyIdentifier):
            aki = value.key_identifier
        elif ext.oid == PRIVATE_KEY_USAGE_PERIOD:
            # pyca >= 45 has a PrivateKeyUsagePeriod class, older versions an UnrecognizedExtension:
            # read the extnValue DER either way, with one parser for both paths.
            raw = value.value if isinstance(value, x509.UnrecognizedExtension) else value.public_bytes()
            pkup = _read_pkup(raw)
    return _Extensions(eku=eku, digital_signature=digital_signature, is_ca=is_ca, ski=ski, aki=aki, pkup=pkup)


def _extensions_from_der(der: bytes) -> _Extensions:
    try:
        extensions = list(walk_extensions(der))
    except DerError as e:
        # We cannot tell whether an EKU restricts this DSC: refuse rather than read it as "no EKU".
        raise KeyStoreError(f"unreadable certificate extensions: {e}", code="keys.bad_certificate") from e
    found: dict[str, bytes] = {}
    for oid, value in extensions:
        if oid in found:
            if oid in _FAIL_CLOSED:
                raise KeyStoreError(f"duplicate {_FAIL_CLOSED[oid]} extension", code="keys.bad_certificate")
            continue
        found[oid] = value
    eku: frozenset[str] | None = None
    if _OID_EKU in found:
        try:
            eku = parse_eku(found[_OID_EKU])
        except DerError as e:
            raise KeyStoreError(f"unreadable extendedKeyUsage: {e}", code="keys.bad_certificate") from e
    return _Extensions(
        eku=eku,
        digital_signature=_or_none(parse_key_usage_digital_signature, found.get(_OID_KEY_USAGE)),
        is_ca=_or_none(parse_basic_constraints_ca, found.get(_OID_BASIC_CONSTRAINTS)),
        ski=_or_none(parse_ski, found.get(_OID_SKI)),
        aki=_or_none(parse_aki, found.get(_OID_AKI)),
        pkup=_read_pkup(found[_OID_PKUP]) if _OID_PKUP in found else None,
    )


#: extensions whose absence permits more than their presence: unreadable or duplicated means refused
_FAIL_CLOSED = {_OID_EKU: "extendedKeyUsage", _OID_PKUP: "privateKeyUsagePeriod"}


def _read_pkup(value: bytes) -> tuple[datetime | None, datetime | None]:
    """A present privateKeyUsagePeriod; unreadable raises (read as absent, the key could sign any time)."""
    try:
        return _parse_pkup(value)
    except DerError as e:
        raise KeyStoreError(f"unreadable privateKeyUsagePeriod: {e}", code="keys.bad_certificate") from e


def _or_none(parse: Callable[[bytes], _T], value: bytes | None) -> _T | None:
    if value is None:
        return None
    try:
        return parse(value)
    except DerError:
        return None


def encode_pkup(not_before: datetime | None, not_after: datetime | None) -> bytes:
    """DER ``PrivateKeyUsagePeriod`` (the extnValue content) for the given aware UTC bounds."""
    parts = b""
    for tag, when in ((0x80, not_before), (0x81, not_after)):
        if when is None:
            continue
        if when.tzinfo is None:
            raise ValueError("privateKeyUsagePeriod bounds must be aware UTC datetimes")
        text = when.astimezone(UTC).strftime("%Y%m%d%H%M%SZ").encode("ascii")
        parts += bytes((tag, len(text))) + text
    if not parts:
        raise ValueError("privateKeyUsagePeriod needs at least one bound")
    return bytes((SEQUENCE, len(parts))) + parts


def eku_extension(oids: Iterable[ObjectIdentifier]) -> x509.ExtensionType:
    """An ExtendedKeyUsage extension for ``oids``; an empty one as raw DER (``30 00``).

    Real DSCs carry an empty EKU (dgc-testdata CO15, which permits every type); cryptography >= 51 refuses to
    build one (``usages must be a non-empty list``), so the empty case is written as an unrecognised extension
    with the EKU OID, byte-identical to what older releases produced.
    """
    usages = list(oids)
    if usages:
        return x509.ExtendedKeyUsage(usages)
    return x509.UnrecognizedExtension(ExtensionOID.EXTENDED_KEY_USAGE, bytes((SEQUENCE, 0)))
