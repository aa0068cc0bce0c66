"""X.509 signatures (certificates, CRLs, CSRs) by a key in memory or on a token (:class:`~vaxcred.crypto.ExternalKey`).

cryptography's builders sign only with its own private-key objects (``CertificateBuilder.sign`` is Rust and
refuses anything else), so a token-held key signs this way::

    builder.sign(throwaway key of the same type)   -> a complete DER object (TBS + algorithm + signature)
    tbs = object.tbs_*_bytes                        -> the exact bytes the token must sign
    signature = key.sign_with(tbs, scheme)          -> on the token (ECDSA raw r‖s -> DER Ecdsa-Sig-Value)
    SEQUENCE { tbs, signatureAlgorithm, BIT STRING signature }      -> re-assembled here, then parsed back

A CSR's TBS names the key that signs it, so for a CSR the token key's SubjectPublicKeyInfo is spliced into the TBS
before the token signs it. The throwaway key otherwise only decides the ``signatureAlgorithm`` (ecdsa-with-SHA256 for every P-256 key,
sha256WithRSAEncryption for every RSA key) that both the TBS and the outer structure carry; the TBS names
the real subject key and issuer. The result is checked with the issuer's public key before it is returned,
so a device that signs wrongly cannot produce a certificate. No private key leaves the token.
"""

from __future__ import annotations

import functools

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from vaxcred.crypto import ExternalKey, SignatureScheme, SigningKey, raw_to_der
from vaxcred.errors import KeyStoreError

#: a private key in memory, or one held on a device
AnyKey = SigningKey | ExternalKey


def public_key_of(key: AnyKey) -> ec.EllipticCurvePublicKey | rsa.RSAPublicKey:
    """The public half of a key in memory or on a token."""
    public_key = key.public_key()
    if not isinstance(public_key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):  # pragma: no cover - typed
        raise KeyStoreError("key must be EC or RSA", code="keys.unsupported_key")
    return public_key


def sign_certificate(builder: x509.CertificateBuilder, issuer_key: AnyKey) -> x509.Certificate:
    """``builder`` signed by ``issuer_key`` (SHA-256; ECDSA, or PKCS#1 v1.5 for RSA as cryptography does)."""
    if not isinstance(issuer_key, ExternalKey):
        return builder.sign(issuer_key, hashes.SHA256())
    draft = builder.sign(_throwaway(issuer_key), hashes.SHA256())
    cert = x509.load_der_x509_certificate(_resign(_der(draft), draft.tbs_certificate_bytes, issuer_key))
    _verify(issuer_key, cert.signature, cert.tbs_certificate_bytes)
    return cert


def sign_crl(
    builder: x509.CertificateRevocationListBuilder, issuer_key: AnyKey
) -> x509.CertificateRevocationList:
    """A certificate revocation list signed by ``issuer_key`` (the site CA)."""
    if not isinstance(issuer_key, ExternalKey):
        return builder.sign(issuer_key, hashes.SHA256())
    draft = builder.sign(_throwaway(issuer_key), hashes.SHA256())
    crl = x509.load_der_x509_crl(_resign(_der(draft), draft.tbs_certlist_bytes, issuer_key))
    _verify(issuer_key, crl.signature, crl.tbs_certlist_bytes)
    return crl


def sign_csr(builder: x509.CertificateSigningRequestBuilder, key: AnyKey) -> x509.CertificateSigningRequest:
    """A certification request signed by the key it names: the proof that the token holds that key."""
    if not isinstance(key, ExternalKey):
        return builder.sign(key, hashes.SHA256())
    draft = builder.sign(_throwaway(key), hashes.SHA256())
    # unlike a certificate's, a request's TBS names the signing key itself: put the token key's SPKI in
    tbs = draft.tbs_certrequest_bytes
    body, end = _read_tlv(tbs, 0, 0x30)
    _, version_end = _read_tlv(tbs, body, 0x02)
    _, subject_end = _read_tlv(tbs, version_end, 0x30)
    _, spki_end = _read_tlv(tbs, subject_end, 0x30)
    spki = public_key_of(key).public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    real_tbs = _tlv(0x30, tbs[body:subject_end] + spki + tbs[spki_end:end])
    csr = x509.load_der_x509_csr(_resign(_der(draft), tbs, key, real_tbs=real_tbs))
    if not csr.is_signature_valid:
        raise KeyStoreError("the token's certification request does not verify", code="keys.device")
    return csr


def _der(obj: x509.Certificate | x509.CertificateRevocationList | x509.CertificateSigningRequest) -> bytes:
    return obj.public_bytes(serialization.Encoding.DER)


def _throwaway(key: ExternalKey) -> SigningKey:
    public_key = public_key_of(key)
    return (
        _throwaway_rsa()
        if isinstance(public_key, rsa.RSAPublicKey)
        else ec.generate_private_key(ec.SECP256R1())
    )


@functools.cache
def _throwaway_rsa() -> rsa.RSAPrivateKey:
    # only its type matters (sha256WithRSAEncryption, NULL parameters); made once per process
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _scheme(key: ExternalKey) -> SignatureScheme:
    if isinstance(public_key_of(key), rsa.RSAPublicKey):
        return SignatureScheme.RSA_PKCS1V15_SHA256
    return SignatureScheme.ECDSA_SHA256


def _resign(draft_der: bytes, tbs: bytes, key: ExternalKey, *, real_tbs: bytes | None = None) -> bytes:
    """``draft_der`` with its signature replaced by ``key``'s signature over ``tbs`` (or ``real_tbs``, put in)."""
    body, _ = _read_tlv(draft_der, 0, 0x30)
    if not draft_der[body:].startswith(tbs):  # pragma: no cover - cryptography's own output
        raise KeyStoreError("unexpected X.509 layout", code="keys.device")
    alg_start = body + len(tbs)
    _, alg_end = _read_tlv(draft_der, alg_start, 0x30)
    tbs = tbs if real_tbs is None else real_tbs
    signature = key.sign_with(tbs, _scheme(key))
    if _scheme(key) is SignatureScheme.ECDSA_SHA256:
        signature = raw_to_der(signature)
    bit_string = _tlv(0x03, b"\x00" + signature)
    return _tlv(0x30, tbs + draft_der[alg_start:alg_end] + bit_string)


def _read_tlv(der: bytes, at: int, tag: int) -> tuple[int, int]:
    """(start of the value, end of the element) of the DER element at ``at``, which must have ``tag``."""
    if der[at] != tag:  # pragma: no cover - cryptography's own output
        raise KeyStoreError("unexpected X.509 layout", code="keys.device")
    first = der[at + 1]
    if first < 0x80:
        return at + 2, at + 2 + first
    count = first & 0x7F
    length = int.from_bytes(der[at + 2 : at + 2 + count], "big")
    return at + 2 + count, at + 2 + count + length


def _tlv(tag: int, value: bytes) -> bytes:
    n = len(value)
    if n < 0x80:
        return bytes((tag, n)) + value
    size = (n.bit_length() + 7) // 8
    return bytes((tag, 0x80 | size)) + n.to_bytes(size, "big") + value


def _verify(key: ExternalKey, signature: bytes, tbs: bytes) -> None:
    public_key = public_key_of(key)
    try:
        if isinstance(public_key, rsa.RSAPublicKey):
            public_key.verify(signature, tbs, padding.PKCS1v15(), hashes.SHA256())
        else:
            public_key.verify(signature, tbs, ec.ECDSA(hashes.SHA256()))
    except Exception as e:
        raise KeyStoreError("the token's X.509 signature does not verify", code="keys.device") from e
