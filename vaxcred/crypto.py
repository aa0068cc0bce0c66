"""The only signature code in vaxcred: COSE ES256 / PS256 over OpenSSL, through pyca/cryptography.

Rules (DCC.md §1 "Signatures"; SECURITY.md §2 pitfalls 1, 5, 6, 19, 20):

- Two algorithms, an allowlist: ES256 (−7, ECDSA P-256 / SHA-256) and PS256 (−37, RSASSA-PSS,
  SHA-256, MGF1-SHA-256, salt 32).  The algorithm is **bound to the key type** (:func:`algorithm_for_key`):
  a header ``alg`` only has to agree with it, it never chooses it.
- ES256 signatures travel as raw ``r‖s`` (exactly 64 bytes); DER exists only inside this module.
- PS256 signatures are exactly as long as the modulus; RSA moduli 2048–4096 bits.  The PSS salt length is
  fixed at 32: never ``PSS.AUTO`` or ``PSS.MAX_LENGTH`` (loose PSS verification interop-breaks and widens
  the accepted set).
- Nothing from ``cryptography`` escapes :func:`verify_signature`: every failure is a
  :class:`~vaxcred.errors.SignatureError` with a stable code:

  ========================== ==========================================================
  ``signature.unsupported_alg``  ``alg`` not ES256 / PS256
  ``signature.unsupported_key``  key not EC P-256 nor RSA 2048–4096
  ``signature.alg_mismatch``     ``alg`` disagrees with the key type
  ``signature.bad_length``       ES256 not 64 bytes; PS256 not the modulus length
  ``signature.bad_encoding``     a DER ECDSA signature that does not decode (:func:`der_to_raw`)
  ``signature.invalid``          the signature does not verify
  ========================== ==========================================================

- ECDSA nonces come from OpenSSL (pitfall 20); no pure-Python ECDSA anywhere (pitfall 19).
- A key held outside the process (a PKCS#11 token, :mod:`vaxcred.keys.token`) is an :class:`ExternalKey`:
  it signs with a :class:`SignatureScheme` named here, never exports; :class:`ExternalSigner` makes it a
  :class:`Signer`.  The scheme is chosen from the key type, never by the caller of ``sign``.

The padding / hash objects are immutable and built once at import time (verification is the hot path).
"""

from __future__ import annotations

__all__ = [
    "Algorithm",
    "ExternalKey",
    "ExternalSigner",
    "LocalSigner",
    "SignatureScheme",
    "Signer",
    "SigningKey",
    "algorithm_for_key",
    "der_to_raw",
    "kid_for",
    "raw_to_der",
    "verify_signature",
]

import hashlib
from enum import Enum, IntEnum
from typing import Protocol, runtime_checkable

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from vaxcred.errors import KeyStoreError, SignatureError


class Algorithm(IntEnum):
    """COSE algorithm identifiers vaxcred accepts (IANA "COSE Algorithms"); the canonical definition."""

    ES256 = -7
    PS256 = -37


#: the private key types a :class:`LocalSigner` can hold
SigningKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

KID_LENGTH = 8
ES256_SIGNATURE_LENGTH = 64
RSA_MIN_BITS = 2048
RSA_MAX_BITS = 4096
PSS_SALT_LENGTH = 32

_ES256 = int(Algorithm.ES256)  # plain ints: enum attribute access costs ~60 ns on the hot path
_PS256 = int(Algorithm.PS256)
_ALLOWED_ALGS = frozenset({_ES256, _PS256})
_SHA256 = hashes.SHA256()
_ECDSA_SHA256 = ec.ECDSA(_SHA256)
_PSS_SHA256_SALT32 = padding.PSS(mgf=padding.MGF1(_SHA256), salt_length=PSS_SALT_LENGTH)


def algorithm_for_key(public_key: PublicKeyTypes) -> Algorithm:
    """The one algorithm a public key may be used with: EC P-256 → ES256, RSA 2048–4096 → PS256."""
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        if isinstance(public_key.curve, ec.SECP256R1):
            return Algorithm.ES256
    elif isinstance(public_key, rsa.RSAPublicKey) and RSA_MIN_BITS <= public_key.key_size <= RSA_MAX_BITS:
        return Algorithm.PS256
    raise _unsupported_key(public_key)


def _unsupported_key(public_key: PublicKeyTypes) -> SignatureError:
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        detail = f"EC curve {public_key.curve.name}: only P-256 (ES256)"
    elif isinstance(public_key, rsa.RSAPublicKey):
        detail = f"RSA modulus of {public_key.key_size} bits: {RSA_MIN_BITS}-{RSA_MAX_BITS} (PS256)"
    else:
        detail = f"key type {type(public_key).__name__}: EC P-256 or RSA only"
    return SignatureError(f"unsupported {detail}", code="signature.unsupported_key")


def _alg_mismatch(alg: int, key_alg: Algorithm) -> SignatureError:
    return SignatureError(
        f"header alg {Algorithm(alg).name} does not match the key's {key_alg.name}",
        code="signature.alg_mismatch",
    )


def verify_signature(public_key: PublicKeyTypes, alg: int, data: bytes, signature: bytes) -> None:
    """Verify a COSE signature over ``data`` (the Sig_structure); return ``None`` or raise SignatureError.

    ``alg`` is the header value (protected, else unprotected); it must be on the allowlist and equal
    the key's own algorithm (:func:`algorithm_for_key`, inlined here: this is the hot path).
    ES256 ``signature`` is raw 64-byte ``r‖s``; PS256 is modulus-length, PSS salt 32.
    """
    if isinstance(alg, bool) or not isinstance(alg, int) or alg not in _ALLOWED_ALGS:
        raise SignatureError(
            f"unsupported algorithm {alg!r}: ES256 or PS256", code="signature.unsupported_alg"
        )
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        if not isinstance(public_key.curve, ec.SECP256R1):
            raise _unsupported_key(public_key)
        if alg != _ES256:
            raise _alg_mismatch(alg, Algorithm.ES256)
        if len(signature) != ES256_SIGNATURE_LENGTH:
            raise SignatureError(
                f"ES256 signature must be {ES256_SIGNATURE_LENGTH} bytes r||s, got {len(signature)}",
                code="signature.bad_length",
            )
        try:
            der = encode_dss_signature(
                int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
            )
            public_key.verify(der, data, _ECDSA_SHA256)
        except InvalidSignature as e:
            raise SignatureError("signature does not verify", code="signature.invalid") from e
        except Exception as e:  # never let a library error escape (SECURITY.md pitfall 23)
            raise SignatureError(f"signature check failed: {e}", code="signature.invalid") from e
        return
    if not isinstance(public_key, rsa.RSAPublicKey):
        raise _unsupported_key(public_key)
    bits = public_key.key_size
    if not RSA_MIN_BITS <= bits <= RSA_MAX_BITS:
        raise _unsupported_key(public_key)
    if alg != _PS256:
        raise _alg_mismatch(alg, Algorithm.PS256)
    modulus_length = (bits + 7) // 8
    if len(signature) != modulus_length:
        raise SignatureError(
            f"PS256 signature must be {modulus_length} bytes (the modulus), got {len(signature)}",
            code="signature.bad_length",
        )
    try:
        public_key.verify(signature, data, _PSS_SHA256_SALT32, _SHA256)
    except InvalidSignature as e:
        raise SignatureError("signature does not verify", code="signature.invalid") from e
    except Exception as e:  # never let a library error escape (SECURITY.md pitfall 23)
        raise SignatureError(f"signature check failed: {e}", code="signature.invalid") from e


def raw_to_der(sig: bytes) -> bytes:
    """Raw ``r‖s`` (two equal-length big-endian halves) → DER ``Ecdsa-Sig-Value``."""
    if not sig or len(sig) % 2:
        raise SignatureError(
            f"raw ECDSA signature must have two equal non-empty halves, got {len(sig)} bytes",
            code="signature.bad_length",
        )
    half = len(sig) // 2
    return encode_dss_signature(int.from_bytes(sig[:half], "big"), int.from_bytes(sig[half:], "big"))


def der_to_raw(der: bytes, size: int = 32) -> bytes:
    """DER ``Ecdsa-Sig-Value`` → raw ``r‖s`` with each half ``size`` bytes (32 for P-256)."""
    try:
        r, s = decode_dss_signature(der)
    except Exception as e:
        raise SignatureError(f"not a DER ECDSA signature: {e}", code="signature.bad_encoding") from e
    limit = 1 << (8 * size)
    if not (0 <= r < limit and 0 <= s < limit):
        raise SignatureError(f"ECDSA r or s does not fit in {size} bytes", code="signature.bad_encoding")
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")


def kid_for(cert_der: bytes) -> bytes:
    """The DCC key id: the first 8 bytes of SHA-256 over the DSC's DER encoding."""
    return hashlib.sha256(cert_der).digest()[:KID_LENGTH]


@runtime_checkable
class Signer(Protocol):
    """Anything that can sign a COSE Sig_structure for one DSC (a local key today, an HSM later)."""

    @property
    def algorithm(self) -> Algorithm:
        """The COSE algorithm, fixed by the key type."""
        ...

    @property
    def certificate(self) -> x509.Certificate:
        """The DSC whose public key verifies this signer's signatures."""
        ...

    @property
    def kid(self) -> bytes:
        """``kid_for(certificate DER)``."""
        ...

    def sign(self, data: bytes) -> bytes:
        """Sign ``data``; the signature in COSE form (raw 64-byte ``r‖s`` for ES256)."""
        ...


def _spki(public_key: PublicKeyTypes) -> bytes:
    return public_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


class _CertifiedSigner:
    """What every :class:`Signer` here shares: the algorithm, the certificate and its kid, fixed at creation."""

    __slots__ = ("_algorithm", "_certificate", "_kid")

    _algorithm: Algorithm
    _certificate: x509.Certificate
    _kid: bytes

    def _bind(self, public_key: PublicKeyTypes, certificate: x509.Certificate) -> Algorithm:
        """Check that ``certificate`` certifies ``public_key``; fix the algorithm (from the key type) and kid."""
        try:
            algorithm = algorithm_for_key(public_key)
        except SignatureError as e:
            raise KeyStoreError(e.message, code="keys.unsupported_key") from e
        try:
            cert_spki = _spki(certificate.public_key())
        except Exception as e:
            raise KeyStoreError(f"certificate public key unreadable: {e}", code="keys.bad_certificate") from e
        if cert_spki != _spki(public_key):
            raise KeyStoreError(
                "the certificate's public key is not the private key's", code="keys.key_mismatch"
            )
        self._certificate = certificate
        self._algorithm = algorithm
        self._kid = kid_for(certificate.public_bytes(Encoding.DER))
        return algorithm

    @property
    def algorithm(self) -> Algorithm:
        """The COSE algorithm, fixed by the key type."""
        return self._algorithm

    @property
    def certificate(self) -> x509.Certificate:
        """The DSC whose public key verifies this signer's signatures."""
        return self._certificate

    @property
    def kid(self) -> bytes:
        """``kid_for(certificate DER)``."""
        return self._kid


class LocalSigner(_CertifiedSigner):
    """A :class:`Signer` over an in-memory private key and its certificate.

    The algorithm follows the key type; the certificate's public key must be the private key's.
    ``repr`` shows the algorithm, kid and subject only, never key material.
    """

    __slots__ = ("_ec_key", "_key")

    def __init__(self, private_key: SigningKey, certificate: x509.Certificate) -> None:
        if not isinstance(private_key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
            raise KeyStoreError(
                f"unsupported private key type {type(private_key).__name__}", code="keys.unsupported_key"
            )
        self._bind(private_key.public_key(), certificate)
        self._key = private_key
        # the type test, once: ABC isinstance checks cost more than a signature's Python overhead
        self._ec_key = private_key if isinstance(private_key, ec.EllipticCurvePrivateKey) else None

    def sign(self, data: bytes) -> bytes:
        """Sign ``data``; raw 64-byte ``r‖s`` for ES256, modulus-length PSS (salt 32) for PS256."""
        ec_key = self._ec_key
        if ec_key is not None:
            return der_to_raw(ec_key.sign(data, _ECDSA_SHA256), 32)
        key = self._key
        assert isinstance(key, rsa.RSAPrivateKey)
        return key.sign(data, _PSS_SHA256_SALT32, _SHA256)

    def __repr__(self) -> str:
        subject = self._certificate.subject.rfc4514_string()
        return f"LocalSigner(algorithm={self._algorithm.name}, kid={self._kid.hex()}, subject={subject!r})"


class SignatureScheme(Enum):
    """The three signatures vaxcred asks of a key: COSE ES256 / PS256, and X.509 signatures (certificates, CRLs)."""

    #: ECDSA P-256 over SHA-256; the result is raw ``r‖s`` (PKCS#11's form, and COSE's)
    ECDSA_SHA256 = "ecdsa-sha256"
    #: RSASSA-PSS, SHA-256, MGF1-SHA-256, salt 32 (COSE PS256)
    RSA_PSS_SHA256 = "rsa-pss-sha256"
    #: RSASSA-PKCS1-v1_5 with SHA-256 (``sha256WithRSAEncryption``: RSA certificates and CRLs)
    RSA_PKCS1V15_SHA256 = "rsa-pkcs1v15-sha256"


@runtime_checkable
class ExternalKey(Protocol):
    """A private key that never leaves its device (a PKCS#11 token): it signs, and shows its public key."""

    def public_key(self) -> ec.EllipticCurvePublicKey | rsa.RSAPublicKey:
        """The public half."""
        ...

    def sign_with(self, data: bytes, scheme: SignatureScheme) -> bytes:
        """Sign ``data`` (the message, not a digest) with ``scheme``; ECDSA as raw ``r‖s``."""
        ...


class ExternalSigner(_CertifiedSigner):
    """A :class:`Signer` over an :class:`ExternalKey` and its certificate (the DSC).

    The same checks as :class:`LocalSigner`: the algorithm follows the key type, the certificate's public key
    must be the key's. The key serialises its own device calls (a PKCS#11 session runs one operation at a
    time, :class:`vaxcred.keys.token.TokenKey`); a batch worker process holds its own signer and session.
    """

    __slots__ = ("_key", "_scheme")

    def __init__(self, key: ExternalKey, certificate: x509.Certificate) -> None:
        if not isinstance(key, ExternalKey):
            raise KeyStoreError(f"not an external key: {type(key).__name__}", code="keys.unsupported_key")
        algorithm = self._bind(key.public_key(), certificate)
        self._key = key
        self._scheme = (
            SignatureScheme.ECDSA_SHA256 if algorithm is Algorithm.ES256 else SignatureScheme.RSA_PSS_SHA256
        )

    def sign(self, data: bytes) -> bytes:
        """Sign ``data`` on the device; raw 64-byte ``r‖s`` for ES256, modulus-length PSS for PS256."""
        signature = self._key.sign_with(data, self._scheme)
        if self._algorithm is Algorithm.ES256 and len(signature) != ES256_SIGNATURE_LENGTH:
            raise KeyStoreError(
                f"the device returned a {len(signature)}-byte ECDSA signature, not 64", code="keys.device"
            )
        return signature

    def __repr__(self) -> str:
        subject = self._certificate.subject.rfc4514_string()
        return f"ExternalSigner(algorithm={self._algorithm.name}, kid={self._kid.hex()}, subject={subject!r})"
