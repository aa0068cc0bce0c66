"""Encrypted private-key files and certificate files of the key chain (SECURITY.md §5, pitfall 21).

Private keys on disk are always encrypted PKCS#8 (``BEGIN ENCRYPTED PRIVATE KEY``), created with mode 0600;
there is no code path that writes or reads an unencrypted key.

Passphrases (issue 7): every passphrase that reaches a key file passes :func:`normalize_passphrase` first —
UTF-8 text is NFC-normalised, so "mật khẩu" typed as decomposed (NFD) characters on one keyboard opens the key
that the composed (NFC) form encrypted on another. A new CSCA's passphrase must also pass
:func:`check_passphrase_strength` (the rule is in its docstring).
"""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Mapping
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from vaxcred.crypto import SigningKey
from vaxcred.errors import KeyStoreError
from vaxcred.pkcs8 import DEFAULT_ITERATIONS, encrypt_pkcs8
from vaxcred.x509util import load_certificate_bytes

_ENCRYPTED_PEM_HEADER = b"-----BEGIN ENCRYPTED PRIVATE KEY-----"


def save_private_key(
    path: str | os.PathLike[str],
    key: SigningKey,
    passphrase: bytes,
    *,
    iterations: int = DEFAULT_ITERATIONS,
) -> None:
    """Write ``key`` as encrypted PKCS#8 PEM to a *new* file with mode 0600 (refuses to overwrite).

    PBES2 with PBKDF2-HMAC-SHA256 (``iterations``, default 600,000) and AES-256-CBC. Before anything is
    written the PEM is decrypted again (one more PBKDF2 run) and must give back ``key``'s public key,
    so a file is never left that cannot be read (KeyStoreError ``keys.unreadable``).
    """
    passphrase = normalize_passphrase(passphrase)
    pem = encrypt_pkcs8(key, passphrase, iterations=iterations)
    if not pem.startswith(_ENCRYPTED_PEM_HEADER):  # never write a key in the clear
        raise KeyStoreError("refusing to write an unencrypted private key", code="keys.unencrypted")
    _check_reads_back(pem, key, passphrase)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError as e:
        raise KeyStoreError(f"key file exists, not overwriting: {os.fspath(path)}", code="keys.exists") from e
    except OSError as e:
        raise KeyStoreError(f"cannot create key file: {e.strerror}", code="keys.io") from e
    with os.fdopen(fd, "wb") as f:
        os.fchmod(f.fileno(), 0o600)  # whatever the umask
        f.write(pem)


def load_private_key(path: str | os.PathLike[str], passphrase: bytes) -> SigningKey:
    """Read an encrypted PKCS#8 PEM key (EC P-256 or RSA); unencrypted keys are refused.

    KeyStoreError codes: ``keys.io``, ``keys.bad_key`` (not a key), ``keys.unencrypted``,
    ``keys.bad_passphrase``, ``keys.unsupported_key``.
    """
    passphrase = normalize_passphrase(passphrase)
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise KeyStoreError(f"cannot read key file: {e.strerror}", code="keys.io") from e
    if _ENCRYPTED_PEM_HEADER not in data:
        if b"PRIVATE KEY-----" in data:
            raise KeyStoreError("refusing an unencrypted private key file", code="keys.unencrypted")
        raise KeyStoreError("not an encrypted PKCS#8 PEM private key", code="keys.bad_key")
    try:
        key = serialization.load_pem_private_key(data, password=passphrase)
    except (ValueError, TypeError) as e:
        raise KeyStoreError(
            "cannot decrypt the private key (wrong passphrase or damaged file)", code="keys.bad_passphrase"
        ) from e
    except Exception as e:  # e.g. UnsupportedAlgorithm for an exotic PBE scheme
        raise KeyStoreError("unreadable private key", code="keys.bad_key") from e
    if isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        return key
    raise KeyStoreError(f"unsupported private key type {type(key).__name__}", code="keys.unsupported_key")


def passphrase_from_env(var: str = "VAXCRED_PASSPHRASE", environ: Mapping[str, str] | None = None) -> bytes:
    """The key passphrase from an environment variable (UTF-8); KeyStoreError ``keys.no_passphrase``."""
    value = (os.environ if environ is None else environ).get(var, "")
    if not value:
        raise KeyStoreError(f"environment variable {var} is not set or empty", code="keys.no_passphrase")
    return normalize_passphrase(value.encode("utf-8"))


#: the CSCA passphrase rule (:func:`check_passphrase_strength`)
MIN_PASSPHRASE_CHARS = 12
MIN_PASSPHRASE_CLASSES = 3
LONG_PASSPHRASE_CHARS = 16


def normalize_passphrase(passphrase: bytes) -> bytes:
    """``passphrase`` with its UTF-8 text in Unicode NFC; bytes that are not UTF-8 are kept as they are.

    TypeError for a non-bytes value, ValueError for an empty one (keys are always stored encrypted).
    """
    _check_passphrase(passphrase)
    try:
        text = passphrase.decode("utf-8")
    except UnicodeDecodeError:
        return passphrase
    return unicodedata.normalize("NFC", text).encode("utf-8")


def check_passphrase_strength(passphrase: bytes) -> None:
    """Refuse a weak passphrase for the CSCA key (KeyStoreError ``keys.weak_passphrase``).

    The rule, on the NFC text: at least 12 characters; and either 16 or more characters (a passphrase of
    words), or characters from at least 3 of the classes lower case, upper case, digit, other; and never
    fewer than 5 distinct characters (``aaaaaaaaaaaa1A`` is refused). A length-and-classes rule rather than
    an entropy estimate: it is predictable for custodians and needs no word list.
    """
    try:
        text = normalize_passphrase(passphrase).decode("utf-8")
    except UnicodeDecodeError:
        text = passphrase.decode("latin-1")
    classes = sum(
        (
            any(c.islower() for c in text),
            any(c.isupper() for c in text),
            any(c.isdigit() for c in text),
            any(not c.isalnum() for c in text),
        )
    )
    if len(text) < MIN_PASSPHRASE_CHARS:
        why = f"it has {len(text)} characters, at least {MIN_PASSPHRASE_CHARS} are needed"
    elif len(set(text)) < 5:
        why = "it repeats too few distinct characters"
    elif len(text) < LONG_PASSPHRASE_CHARS and classes < MIN_PASSPHRASE_CLASSES:
        why = (
            f"under {LONG_PASSPHRASE_CHARS} characters it needs {MIN_PASSPHRASE_CLASSES} of: lower case, "
            "upper case, digits, other characters"
        )
    else:
        return
    raise KeyStoreError(f"the CSCA passphrase is too weak: {why}", code="keys.weak_passphrase")


def save_certificate(path: str | os.PathLike[str], certificate: x509.Certificate) -> None:
    """Write a certificate as PEM."""
    try:
        Path(path).write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    except OSError as e:
        raise KeyStoreError(f"cannot write certificate: {e.strerror}", code="keys.io") from e


def load_certificate(path: str | os.PathLike[str]) -> x509.Certificate:
    """Read a certificate file (PEM, DER or base64 DER); KeyStoreError ``keys.bad_certificate``."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise KeyStoreError(f"cannot read certificate: {e.strerror}", code="keys.io") from e
    return x509.load_der_x509_certificate(load_certificate_bytes(data))


def _check_reads_back(pem: bytes, key: SigningKey, passphrase: bytes) -> None:
    try:
        loaded = serialization.load_pem_private_key(pem, password=passphrase)
    except Exception as e:
        raise KeyStoreError(
            "the encrypted private key does not read back; nothing written", code="keys.unreadable"
        ) from e
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if loaded.public_key().public_bytes(*spki) != key.public_key().public_bytes(*spki):
        raise KeyStoreError(
            "the encrypted private key reads back as a different key; nothing written", code="keys.unreadable"
        )


def _check_passphrase(passphrase: bytes) -> None:
    if not isinstance(passphrase, bytes):
        raise TypeError("passphrase must be bytes")
    if not passphrase:
        raise ValueError("an empty passphrase is not allowed: keys are always stored encrypted")
