"""Encrypted PKCS#8 with a strong KDF: PBES2 / PBKDF2-HMAC-SHA256 / AES-256-CBC (RFC 5958, RFC 8018).

cryptography's ``BestAvailableEncryption`` writes the same PBES2 structure but with only 2048 PBKDF2
iterations, and ``PrivateFormat.PKCS8.encryption_builder()`` cannot raise them (cryptography 50: only
OpenSSH and PKCS12 take ``kdf_rounds``). So vaxcred builds the ``EncryptedPrivateKeyInfo`` itself::

    EncryptedPrivateKeyInfo ::= SEQUENCE {
        encryptionAlgorithm  SEQUENCE { id-PBES2, PBES2-params ::= SEQUENCE {
            keyDerivationFunc  SEQUENCE { id-PBKDF2, SEQUENCE {
                salt OCTET STRING (16 random bytes), iterationCount INTEGER,
                prf SEQUENCE { id-hmacWithSHA256, NULL } } },
            encryptionScheme   SEQUENCE { aes256-CBC, iv OCTET STRING (16 random bytes) } } },
        encryptedData        OCTET STRING }    -- AES-256-CBC(PKCS#7 padded PrivateKeyInfo DER)

Only encryption lives here; decryption stays with ``serialization.load_pem_private_key`` (OpenSSL),
which also proves that the files are standard. The clear-text PKCS#8 DER exists only in memory.
"""

from __future__ import annotations

__all__ = ["DEFAULT_ITERATIONS", "MAX_ITERATIONS", "encrypt_pkcs8"]

import base64
import os

from cryptography.hazmat.primitives import hashes, padding, serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

#: PBKDF2-HMAC-SHA256 iterations for keys at rest (OWASP Password Storage Cheat Sheet, 2023: ≥ 600,000)
DEFAULT_ITERATIONS = 600_000
#: OpenSSL reads iterationCount into a C ``int``; larger values would write a file nothing can read
MAX_ITERATIONS = 2**31 - 1

_SALT_BYTES = 16
_KEY_BYTES = 32  # AES-256
_IV_BYTES = 16  # the AES block

_PBES2 = "1.2.840.113549.1.5.13"
_PBKDF2 = "1.2.840.113549.1.5.12"
_HMAC_WITH_SHA256 = "1.2.840.113549.2.9"
_AES256_CBC = "2.16.840.1.101.3.4.1.42"

_PEM_BEGIN = b"-----BEGIN ENCRYPTED PRIVATE KEY-----\n"
_PEM_END = b"-----END ENCRYPTED PRIVATE KEY-----\n"


def encrypt_pkcs8(
    private_key: PrivateKeyTypes, passphrase: bytes, *, iterations: int = DEFAULT_ITERATIONS
) -> bytes:
    """``private_key`` as PEM ``ENCRYPTED PRIVATE KEY``: PBES2, PBKDF2-HMAC-SHA256, AES-256-CBC.

    Salt and IV are fresh random bytes on every call. ``passphrase`` must be non-empty bytes;
    ``iterations`` is 1..MAX_ITERATIONS (tests may use small counts, key files should keep the default).
    """
    if not isinstance(passphrase, bytes):
        raise TypeError("passphrase must be bytes")
    if not passphrase:
        raise ValueError("an empty passphrase is not allowed")
    if isinstance(iterations, bool) or not isinstance(iterations, int):
        raise TypeError("iterations must be an int")
    if not 1 <= iterations <= MAX_ITERATIONS:
        raise ValueError(f"iterations must be between 1 and {MAX_ITERATIONS}, not {iterations}")

    salt = os.urandom(_SALT_BYTES)
    iv = os.urandom(_IV_BYTES)
    key = PBKDF2HMAC(algorithm=hashes.SHA256(), length=_KEY_BYTES, salt=salt, iterations=iterations).derive(
        passphrase
    )
    padder = padding.PKCS7(algorithms.AES.block_size).padder()
    padded = padder.update(
        private_key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    padded += padder.finalize()
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    ciphertext = encryptor.update(padded) + encryptor.finalize()

    pbkdf2_params = _sequence(
        _octet_string(salt),
        _integer(iterations),
        # keyLength omitted: implied by the cipher
        _sequence(_oid(_HMAC_WITH_SHA256), _NULL),
    )
    pbes2_params = _sequence(
        _sequence(_oid(_PBKDF2), pbkdf2_params),
        _sequence(_oid(_AES256_CBC), _octet_string(iv)),
    )
    der = _sequence(_sequence(_oid(_PBES2), pbes2_params), _octet_string(ciphertext))
    return _pem(der)


# --- the few DER encoders needed (X.690 §8, §10: definite, minimal lengths) ------------------------------

_NULL = b"\x05\x00"


def _tlv(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:  # short form
        return bytes((tag, n)) + content
    length = n.to_bytes((n.bit_length() + 7) // 8, "big")  # long form: 0x80 | count, big-endian, minimal
    return bytes((tag, 0x80 | len(length))) + length + content


def _sequence(*items: bytes) -> bytes:
    return _tlv(0x30, b"".join(items))


def _octet_string(value: bytes) -> bytes:
    return _tlv(0x04, value)


def _integer(value: int) -> bytes:
    if value < 0:
        raise ValueError("only non-negative INTEGERs are encoded")
    # two's complement, minimal: one extra byte when the top bit would otherwise be set
    return _tlv(0x02, value.to_bytes(value.bit_length() // 8 + 1, "big"))


def _oid(dotted: str) -> bytes:
    arcs = [int(arc) for arc in dotted.split(".")]
    if len(arcs) < 2 or arcs[0] > 2 or (arcs[0] < 2 and arcs[1] >= 40) or min(arcs) < 0:
        raise ValueError(f"not an object identifier: {dotted!r}")
    body = b"".join(_base128(arc) for arc in [40 * arcs[0] + arcs[1], *arcs[2:]])
    return _tlv(0x06, body)


def _base128(value: int) -> bytes:
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


def _pem(der: bytes) -> bytes:
    b64 = base64.b64encode(der)
    lines = b"".join(b64[i : i + 64] + b"\n" for i in range(0, len(b64), 64))
    return _PEM_BEGIN + lines + _PEM_END
