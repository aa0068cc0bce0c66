"""Key generation and the certificate builders of the ministry key chain (SECURITY.md §5, DCC.md §5).

CSCA and site CA (self-signed, CA pathlen 0), DSC (EKU per payload type, private-key usage period), trust-list
signer (EKU ``TRUST_LIST_EKU`` only) and site certificates (EKU ``SITE_RECORD_EKU`` only, under the site CA).
Every builder takes an explicit ``now``; nothing here reads the clock or touches files. A builder makes its
subject key in memory, or takes ``private_key=`` made elsewhere (a key generated inside a PKCS#11 token,
:mod:`vaxcred.keys.token`); an issuer whose key is on a token signs through :mod:`vaxcred.keys.x509sign`.
"""

from __future__ import annotations

import calendar
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID, ObjectIdentifier

from vaxcred.crypto import ExternalKey, ExternalSigner, LocalSigner, Signer, SigningKey, kid_for
from vaxcred.errors import KeyStoreError
from vaxcred.keys.x509sign import AnyKey, public_key_of, sign_certificate
from vaxcred.oids import (
    EKU_RECOVERY,
    EKU_TEST,
    EKU_VACCINATION,
    SITE_RECORD_EKU,
    TRUST_LIST_EKU,
)
from vaxcred.x509util import PRIVATE_KEY_USAGE_PERIOD, encode_pkup

KeyType = Literal["ec", "rsa"]

# 365-day years: never longer than the calendar period they stand for.
CSCA_VALIDITY = timedelta(days=4 * 365)
DSC_VALIDITY = timedelta(days=2 * 365)
TRUST_LIST_VALIDITY = timedelta(days=2 * 365)
SITE_CA_VALIDITY = timedelta(days=4 * 365)
SITE_VALIDITY = timedelta(days=365)
#: DSC private-key usage period (privateKeyUsagePeriod), in calendar months from notBefore
DSC_KEY_USAGE_MONTHS = 6

CA_RSA_BITS = 3072
LEAF_RSA_BITS = 2048
DEFAULT_ORGANIZATION = "Ministry of Health"

_EKU_BY_TYPE: dict[str, ObjectIdentifier] = {"t": EKU_TEST, "v": EKU_VACCINATION, "r": EKU_RECOVERY}
_SITE_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


class Purpose(Enum):
    """What a key in the chain is for."""

    CSCA = "csca"
    DSC = "dsc"
    TRUST_LIST = "trust_list"
    SITE_CA = "site_ca"
    SITE = "site"


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyPair:
    """A private key (in memory, or a handle to a key on a token) and its certificate; ``repr`` hides keys."""

    private_key: AnyKey = field(repr=False)
    certificate: x509.Certificate

    @property
    def kid(self) -> bytes:
        """``kid_for`` the certificate: SHA-256(DER)[:8]."""
        return kid_for(self.certificate.public_bytes(serialization.Encoding.DER))

    @property
    def on_token(self) -> bool:
        """Whether the private key is held by a device (never in this process's memory)."""
        return isinstance(self.private_key, ExternalKey)

    def signer(self) -> Signer:
        """A :class:`~vaxcred.crypto.LocalSigner` (key in memory) or :class:`~vaxcred.crypto.ExternalSigner`."""
        if isinstance(self.private_key, ExternalKey):
            return ExternalSigner(self.private_key, self.certificate)
        return LocalSigner(self.private_key, self.certificate)

    def __repr__(self) -> str:
        subject = self.certificate.subject.rfc4514_string()
        return f"KeyPair(subject={subject!r}, kid={self.kid.hex()})"


def make_csca(
    *,
    now: datetime,
    country: str = "VN",
    common_name: str | None = None,
    organization: str = DEFAULT_ORGANIZATION,
    key: KeyType = "ec",
    validity: timedelta = CSCA_VALIDITY,
    private_key: AnyKey | None = None,
) -> KeyPair:
    """A self-signed country signing CA: CA pathlen 0, keyCertSign + cRLSign, SKI, ``C=country``."""
    not_before = _utc_seconds(now)
    private_key = private_key if private_key is not None else _generate(key, CA_RSA_BITS)
    name = _name(country=country, organization=organization, common_name=common_name or f"CSCA {country}")
    ski = x509.SubjectKeyIdentifier.from_public_key(public_key_of(private_key))
    builder = (
        _base_builder(name, name, private_key, not_before, not_before + validity)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(ski, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
    )
    return KeyPair(private_key=private_key, certificate=_sign(builder, private_key))


def make_dsc(
    csca: KeyPair,
    *,
    now: datetime,
    types: Sequence[str] = ("v",),
    validity: timedelta = DSC_VALIDITY,
    key: KeyType = "ec",
    private_key_usage_months: int = DSC_KEY_USAGE_MONTHS,
    common_name: str | None = None,
    private_key: AnyKey | None = None,
) -> KeyPair:
    """A document signer certificate under ``csca``: EKU for ``types`` (first-family OIDs), key use period.

    notAfter never passes the CSCA's; privateKeyUsagePeriod (2.5.29.16) bounds when the key may sign.
    """
    if isinstance(types, str):
        raise TypeError('types is a sequence of payload types, e.g. ("v",), not a string')
    if not types or len(set(types)) != len(types) or not set(types) <= _EKU_BY_TYPE.keys():
        raise ValueError(f"types must be distinct members of 'v', 't', 'r', not {tuple(types)!r}")
    if private_key_usage_months < 1:
        raise ValueError("private_key_usage_months must be at least 1")
    not_before, not_after = _leaf_validity(csca, now, validity)
    pkup_end = min(_add_months(not_before, private_key_usage_months), not_after)
    country = _country_of(csca)
    private_key = private_key if private_key is not None else _generate(key, LEAF_RSA_BITS)
    name = _name(
        country=country,
        organization=_organization_of(csca),
        common_name=common_name or f"DSC {country} {not_before:%Y-%m-%d} {secrets.token_hex(3)}",
    )
    builder = _leaf_builder(csca, name, private_key, not_before, not_after, [_EKU_BY_TYPE[t] for t in types])
    builder = builder.add_extension(
        x509.UnrecognizedExtension(PRIVATE_KEY_USAGE_PERIOD, encode_pkup(not_before, pkup_end)),
        critical=False,
    )
    return KeyPair(private_key=private_key, certificate=_sign(builder, csca.private_key))


def make_trust_list_signer(
    csca: KeyPair,
    *,
    now: datetime,
    validity: timedelta = TRUST_LIST_VALIDITY,
    key: KeyType = "ec",
    private_key: AnyKey | None = None,
) -> KeyPair:
    """The national trust-list signing certificate under ``csca``: EKU ``TRUST_LIST_EKU`` only."""
    not_before, not_after = _leaf_validity(csca, now, validity)
    private_key = private_key if private_key is not None else _generate(key, LEAF_RSA_BITS)
    country = _country_of(csca)
    name = _name(
        country=country, organization=_organization_of(csca), common_name=f"Trust list signer {country}"
    )
    builder = _leaf_builder(csca, name, private_key, not_before, not_after, [TRUST_LIST_EKU])
    return KeyPair(private_key=private_key, certificate=_sign(builder, csca.private_key))


def make_site_ca(
    *,
    now: datetime,
    country: str = "VN",
    organization: str = DEFAULT_ORGANIZATION,
    key: KeyType = "ec",
    validity: timedelta = SITE_CA_VALIDITY,
    private_key: AnyKey | None = None,
) -> KeyPair:
    """The vaccination-site root: a separate self-signed CA, never under (or published with) the CSCA."""
    return make_csca(
        now=now,
        country=country,
        common_name=f"Vaccination site CA {country}",
        organization=organization,
        key=key,
        validity=validity,
        private_key=private_key,
    )


def make_site_certificate(
    site_ca: KeyPair,
    *,
    site_id: str,
    site_name: str,
    now: datetime,
    validity: timedelta = SITE_VALIDITY,
    key: KeyType = "ec",
    private_key: AnyKey | None = None,
) -> KeyPair:
    """A vaccination site's certificate: EKU ``SITE_RECORD_EKU`` only, so it can never sign a passport."""
    _check_site_id(site_id)
    if not site_name.strip():
        raise ValueError("site_name must not be empty")
    not_before, not_after = _leaf_validity(site_ca, now, validity)
    private_key = private_key if private_key is not None else _generate(key, LEAF_RSA_BITS)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, _country_of(site_ca)),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, site_name),
            x509.NameAttribute(NameOID.COMMON_NAME, site_id),
        ]
    )
    builder = _leaf_builder(site_ca, name, private_key, not_before, not_after, [SITE_RECORD_EKU])
    return KeyPair(private_key=private_key, certificate=_sign(builder, site_ca.private_key))


def _generate(key: KeyType, rsa_bits: int) -> SigningKey:
    if key == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    if key == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=rsa_bits)
    raise ValueError(f"key must be 'ec' or 'rsa', not {key!r}")


def _name(*, country: str, organization: str, common_name: str) -> x509.Name:
    if len(country) != 2 or not country.isascii() or not country.isupper():
        raise ValueError(f"country must be an ISO 3166-1 alpha-2 code, not {country!r}")
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, country),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _base_builder(
    subject: x509.Name, issuer: x509.Name, key: AnyKey, not_before: datetime, not_after: datetime
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key_of(key))
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )


def _leaf_builder(
    issuer: KeyPair,
    subject: x509.Name,
    key: AnyKey,
    not_before: datetime,
    not_after: datetime,
    ekus: list[ObjectIdentifier],
) -> x509.CertificateBuilder:
    return (
        _base_builder(subject, issuer.certificate.subject, key, not_before, not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage(ekus), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key_of(key)), critical=False)
        .add_extension(_aki_for(issuer.certificate), critical=False)
    )


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _aki_for(issuer: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    try:
        ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(_issuer_public_key(issuer))
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def _issuer_public_key(issuer: x509.Certificate) -> ec.EllipticCurvePublicKey | rsa.RSAPublicKey:
    public_key = issuer.public_key()
    if not isinstance(public_key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        raise KeyStoreError("issuer key must be EC or RSA", code="keys.unsupported_key")
    return public_key


def _sign(builder: x509.CertificateBuilder, issuer_key: AnyKey) -> x509.Certificate:
    return sign_certificate(builder, issuer_key)


def _leaf_validity(issuer: KeyPair, now: datetime, validity: timedelta) -> tuple[datetime, datetime]:
    not_before = _utc_seconds(now)
    ca_not_before = issuer.certificate.not_valid_before_utc
    ca_not_after = issuer.certificate.not_valid_after_utc
    if not ca_not_before <= not_before < ca_not_after:
        raise ValueError(f"the issuing CA is not valid at {not_before.isoformat()}")
    if validity <= timedelta(0):
        raise ValueError("validity must be positive")
    return not_before, min(not_before + validity, ca_not_after)


def _country_of(pair: KeyPair) -> str:
    attrs = pair.certificate.subject.get_attributes_for_oid(NameOID.COUNTRY_NAME)
    if not attrs or not isinstance(attrs[0].value, str):
        raise ValueError("the issuing CA has no subject country (C)")
    return attrs[0].value


def _organization_of(pair: KeyPair) -> str:
    attrs = pair.certificate.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    if attrs and isinstance(attrs[0].value, str):
        return attrs[0].value
    return DEFAULT_ORGANIZATION


def _check_site_id(site_id: str) -> None:
    if not _SITE_ID_RE.fullmatch(site_id):
        raise ValueError(f"site_id must match {_SITE_ID_RE.pattern}, not {site_id!r}")


def _utc_seconds(when: datetime) -> datetime:
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError("time must be an aware UTC datetime, not naive")
    return when.astimezone(UTC).replace(microsecond=0)


def _add_months(when: datetime, months: int) -> datetime:
    """``when`` plus calendar months, the day clamped to the target month's length."""
    year, month0 = divmod(when.year * 12 + (when.month - 1) + months, 12)
    month = month0 + 1
    return when.replace(year=year, month=month, day=min(when.day, calendar.monthrange(year, month)[1]))
