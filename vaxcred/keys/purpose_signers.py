"""Single-purpose signers under the CSCA beside the DSCs: the document signer and the issuance-log signer.

One key, one purpose (SECURITY.md §5). Each certificate sits under the CSCA, so a relying party can chain it to
the ministry, but carries one EKU only and no DCC EKU — even a verifier that ignored trust lists and read EKUs
loosely would not take it for a DSC — and is never published on a trust list:

* the **document signer** (EKU ``id-kp-documentSigning``, RFC 9336) signs the printable certificate PDFs (PAdES);
  key usage digitalSignature + contentCommitment, what PDF validators expect of a signer;
* the **log signer** (EKU ``LOG_SIGNING_EKU``, vaxcred's arc) signs the issuance log's tree heads.

Nothing here reads the clock or touches files.
"""

from __future__ import annotations

__all__ = ["DOCUMENT_SIGNER_VALIDITY", "LOG_SIGNER_VALIDITY", "make_document_signer", "make_log_signer"]

from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID, ObjectIdentifier

from vaxcred.errors import KeyStoreError
from vaxcred.keys.builders import LEAF_RSA_BITS, KeyPair, KeyType
from vaxcred.keys.x509sign import AnyKey, public_key_of, sign_certificate
from vaxcred.oids import DOCUMENT_SIGNING_EKU, LOG_SIGNING_EKU
from vaxcred.trust.store import require_utc

DOCUMENT_SIGNER_VALIDITY = timedelta(days=2 * 365)
LOG_SIGNER_VALIDITY = timedelta(days=2 * 365)


def make_document_signer(
    csca: KeyPair,
    *,
    now: datetime,
    key: KeyType = "ec",
    validity: timedelta = DOCUMENT_SIGNER_VALIDITY,
    private_key: AnyKey | None = None,
) -> KeyPair:
    """A document-signing certificate under ``csca``, valid from ``now`` (never past the CSCA's notAfter)."""
    return _single_purpose(
        csca,
        now=now,
        key=key,
        validity=validity,
        eku=DOCUMENT_SIGNING_EKU,
        role="Document signer",
        commitment=True,
        private_key=private_key,
    )


def make_log_signer(
    csca: KeyPair,
    *,
    now: datetime,
    key: KeyType = "ec",
    validity: timedelta = LOG_SIGNER_VALIDITY,
    private_key: AnyKey | None = None,
) -> KeyPair:
    """The issuance log's tree-head signing certificate under ``csca`` (EKU ``LOG_SIGNING_EKU`` only)."""
    return _single_purpose(
        csca,
        now=now,
        key=key,
        validity=validity,
        eku=LOG_SIGNING_EKU,
        role="Issuance log signer",
        commitment=False,
        private_key=private_key,
    )


def _single_purpose(
    csca: KeyPair,
    *,
    now: datetime,
    key: KeyType,
    validity: timedelta,
    eku: ObjectIdentifier,
    role: str,
    commitment: bool,
    private_key: AnyKey | None,
) -> KeyPair:
    start = require_utc(now, "now").replace(microsecond=0)
    csca_end = csca.certificate.not_valid_after_utc
    if csca_end <= start:
        raise KeyStoreError(
            f"the CSCA expires before the {role.lower()} would start", code="keys.csca_expired"
        )
    # never past the CSCA (compared without adding first: start + validity may overflow datetime)
    end = csca_end if csca_end - start <= validity else start + validity
    if private_key is not None:  # made elsewhere, e.g. inside a PKCS#11 token
        pass
    elif key == "ec":
        private_key = ec.generate_private_key(ec.SECP256R1())
    elif key == "rsa":
        private_key = rsa.generate_private_key(public_exponent=65537, key_size=LEAF_RSA_BITS)
    else:
        raise ValueError(f"key must be 'ec' or 'rsa', not {key!r}")
    issuer = csca.certificate.subject
    country = _attribute(issuer, NameOID.COUNTRY_NAME) or "VN"
    organization = _attribute(issuer, NameOID.ORGANIZATION_NAME) or "Ministry of Health"
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, country),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
            x509.NameAttribute(NameOID.COMMON_NAME, f"{role} {country}"),
        ]
    )
    ski = csca.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key_of(private_key))
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=commitment,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([eku]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key_of(private_key)), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
    )
    certificate = sign_certificate(builder, csca.private_key)  # the CSCA's key may be on a token
    return KeyPair(private_key=private_key, certificate=certificate)


def _attribute(name: x509.Name, oid: x509.ObjectIdentifier) -> str | None:
    values = name.get_attributes_for_oid(oid)
    if not values:
        return None
    value = values[0].value
    return value if isinstance(value, str) else value.decode("utf-8", "replace")
