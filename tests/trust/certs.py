"""Certificates for the trust tests, built with pyca/cryptography so that every odd case can be made."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding, pkcs7
from cryptography.x509.oid import NameOID, ObjectIdentifier

from vaxcred.crypto import LocalSigner, SigningKey
from vaxcred.oids import EKU_VACCINATION, TRUST_LIST_EKU
from vaxcred.trust import Environment, TrustedDsc, TrustMode, TrustStore
from vaxcred.x509util import eku_extension, parse_dsc

NOW = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)
DAY = timedelta(days=1)
_AUTO = object()


@dataclass(frozen=True, slots=True, kw_only=True)
class Issued:
    key: SigningKey
    cert: x509.Certificate

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(Encoding.DER)

    def signer(self) -> LocalSigner:
        return LocalSigner(self.key, self.cert)


def _name(country: str | None, cn: str) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COUNTRY_NAME, country)] if country else []
    return x509.Name([*attrs, x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def new_key(kind: str = "ec", bits: int = 2048) -> SigningKey:
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=bits)
    return ec.generate_private_key(ec.SECP256R1())


def make_ca(
    country: str = "VN",
    *,
    cn: str | None = None,
    not_before: datetime = NOW - 365 * DAY,
    not_after: datetime = NOW + 3 * 365 * DAY,
    ca: bool | None = True,
    key_cert_sign: bool = True,
    key: SigningKey | None = None,
) -> Issued:
    """A self-signed CSCA; ``ca=None`` leaves basicConstraints out."""
    key = key or new_key()
    name = _name(country, cn or f"CSCA {country}")
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, key_cert_sign, True, False, False), critical=True
        )
    )
    if ca is not None:
        builder = builder.add_extension(
            x509.BasicConstraints(ca=ca, path_length=0 if ca else None), critical=True
        )
    return Issued(key=key, cert=builder.sign(key, hashes.SHA256()))


def make_leaf(
    issuer: Issued,
    *,
    country: str | None = "VN",
    cn: str = "DSC",
    not_before: datetime = NOW - 30 * DAY,
    not_after: datetime = NOW + 700 * DAY,
    eku: Sequence[ObjectIdentifier] | None = (EKU_VACCINATION,),
    digital_signature: bool | None = True,
    aki: object = _AUTO,
    key: SigningKey | None = None,
    sign_with: SigningKey | None = None,
) -> Issued:
    """A leaf under ``issuer`` (a DSC by default); ``aki`` bytes overrides, ``None`` leaves it out."""
    key = key or new_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(country, cn))
        .issuer_name(issuer.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )
    if eku is not None:
        builder = builder.add_extension(eku_extension(eku), critical=False)
    if digital_signature is not None:
        builder = builder.add_extension(
            x509.KeyUsage(digital_signature, False, False, False, False, False, False, False, False),
            critical=True,
        )
    if aki is _AUTO:
        ski = issuer.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
    elif isinstance(aki, bytes):
        builder = builder.add_extension(x509.AuthorityKeyIdentifier(aki, None, None), critical=False)
    return Issued(key=key, cert=builder.sign(sign_with or issuer.key, hashes.SHA256()))


def make_trust_list_cert(issuer: Issued, **kwargs: object) -> Issued:
    return make_leaf(issuer, cn="Trust list signer", eku=(TRUST_LIST_EKU,), **kwargs)  # type: ignore[arg-type]


def trusted(leaf: Issued, country: str = "VN", source: str = "test") -> TrustedDsc:
    return TrustedDsc(info=parse_dsc(leaf.der), country=country, source=source)


def store_of(
    dscs: Sequence[TrustedDsc] = (),
    cscas: Sequence[tuple[str, Issued]] = (),
    *,
    environment: Environment = Environment.TST,
    mode: TrustMode = TrustMode.GATEWAY,
) -> TrustStore:
    return TrustStore.build(
        environment=environment,
        mode=mode,
        dscs=dscs,
        cscas=[(country, ca.cert) for country, ca in cscas],
    )


# --- EU gateway entries with real CMS signatures ------------------------------------------------------


def cms_signature(
    content: bytes, signer: Issued, *, detached: bool = True, attributes: bool = True, pss: bool = False
) -> str:
    """Base64 CMS SignedData over ``content`` by ``signer``, built by cryptography's PKCS7SignatureBuilder."""
    # Binary: no S/MIME text canonicalisation (it would turn LF bytes of the DER into CRLF)
    options = [pkcs7.PKCS7Options.Binary]
    if detached:
        options.append(pkcs7.PKCS7Options.DetachedSignature)
    if not attributes:
        options.append(pkcs7.PKCS7Options.NoAttributes)
    padding_: padding.PSS | None = (
        padding.PSS(padding.MGF1(hashes.SHA256()), padding.PSS.DIGEST_LENGTH) if pss else None
    )
    builder = pkcs7.PKCS7SignatureBuilder().set_data(content)
    builder = builder.add_signer(signer.cert, signer.key, hashes.SHA256(), rsa_padding=padding_)
    return base64.b64encode(builder.sign(Encoding.DER, options)).decode("ascii")


def gateway_entry(
    cert: Issued,
    cert_type: str = "DSC",
    country: str = "VN",
    *,
    signed_by: Issued | None = None,
    **override: Any,
) -> dict[str, Any]:
    """A gateway entry as the gateway serves it; ``signed_by`` adds a real CMS signature over the DER."""
    digest = hashlib.sha256(cert.der).digest()
    value: dict[str, Any] = {
        "kid": base64.b64encode(digest[:8]).decode(),
        "timestamp": "2021-06-01T10:15:30+02:00",
        "country": country,
        "certificateType": cert_type,
        "thumbprint": digest.hex(),
        "signature": cms_signature(cert.der, signed_by) if signed_by is not None else "",
        "rawData": base64.b64encode(cert.der).decode(),
    }
    value.update(override)
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class GatewayWorld:
    """A gateway trust anchor, a VN upload certificate, the VN CSCA and a DSC, all properly signed."""

    anchor: Issued
    upload: Issued
    csca: Issued
    dsc: Issued

    def entries(self) -> list[dict[str, Any]]:
        return [
            gateway_entry(self.upload, "UPLOAD", signed_by=self.anchor),
            gateway_entry(self.csca, "CSCA", signed_by=self.anchor),
            gateway_entry(self.dsc, "DSC", signed_by=self.upload),
        ]


def make_gateway_world(*, not_before: datetime = NOW - 365 * DAY) -> GatewayWorld:
    anchor = make_ca("EU", cn="DCCG Trust Anchor", not_before=not_before)
    upload = make_leaf(anchor, cn="VN upload", eku=None, not_before=not_before)
    csca = make_ca("VN", not_before=not_before)
    return GatewayWorld(anchor=anchor, upload=upload, csca=csca, dsc=make_leaf(csca, not_before=not_before))
