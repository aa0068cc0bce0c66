"""The three revocation hashes of a passport (DCC.md §7): 16-byte prefixes of SHA-256.

==================  ===========================================================================
``UCI``             UTF-8 of the ``ci`` exactly as in the payload
``COUNTRYCODEUCI``  UTF-8 of the upper-case two-letter issuing country followed by the ``ci``
``SIGNATURE``       the COSE signature; ES256: ``r`` only (first 32 bytes — ``s`` is malleable,
                    ``(r, n − s)`` verifies too), PS256: the whole signature
==================  ===========================================================================

Pure; bad arguments raise ``ValueError`` / ``TypeError``.
"""

from __future__ import annotations

import hashlib
from enum import StrEnum
from typing import Final, TypeGuard

from vaxcred.crypto import ES256_SIGNATURE_LENGTH, Algorithm

__all__ = ["REVOCATION_HASH_LENGTH", "HashType", "revocation_hashes"]

#: a revocation hash: the first 16 bytes of a SHA-256
REVOCATION_HASH_LENGTH: Final = 16
_ES256 = int(Algorithm.ES256)
_PS256 = int(Algorithm.PS256)


class HashType(StrEnum):
    """The gateway's ``hashType`` values, in the order a verifier tests them."""

    UCI = "UCI"
    COUNTRYCODEUCI = "COUNTRYCODEUCI"
    SIGNATURE = "SIGNATURE"


def _digest16(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()[:REVOCATION_HASH_LENGTH]


def uci_hash(uvci: str) -> bytes:
    if not isinstance(uvci, str):
        raise TypeError(f"uvci must be a str, not {type(uvci).__name__}")
    if not uvci:
        raise ValueError("uvci must not be empty")
    return _digest16(uvci.encode("utf-8"))


def is_two_letters(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and len(value) == 2 and value.isascii() and value.isalpha()


def country_uci_hash(country: str, uvci: str) -> bytes:
    if not is_two_letters(country):
        raise ValueError(f"country must be a two-letter ISO 3166-1 code, not {country!r}")
    return _digest16((country.upper() + uvci).encode("utf-8"))


def signature_hash(signature: bytes, alg: int) -> bytes:
    if not isinstance(signature, bytes):
        raise TypeError(f"signature must be bytes, not {type(signature).__name__}")
    if isinstance(alg, bool) or alg not in (_ES256, _PS256):
        raise ValueError(f"alg must be ES256 ({_ES256}) or PS256 ({_PS256}), not {alg!r}")
    if alg == _ES256:
        if len(signature) != ES256_SIGNATURE_LENGTH:
            raise ValueError(f"an ES256 signature is 64 bytes r||s, not {len(signature)}")
        return _digest16(signature[: ES256_SIGNATURE_LENGTH // 2])
    if not signature:
        raise ValueError("the PS256 signature must not be empty")
    return _digest16(signature)


def revocation_hashes(*, uvci: str, country: str, signature: bytes, alg: int) -> dict[HashType, bytes]:
    """The three 16-byte revocation hashes of one passport (see the module documentation).

    ``uvci`` exactly as in the payload's ``ci``; ``country`` the issuing country (upper-cased here);
    ``signature`` the COSE signature as carried (raw ``r‖s`` for ES256) and ``alg`` its COSE algorithm.
    Bad arguments raise ``ValueError`` / ``TypeError``.
    """
    uci = uci_hash(uvci)
    return {
        HashType.UCI: uci,
        HashType.COUNTRYCODEUCI: country_uci_hash(country, uvci),
        HashType.SIGNATURE: signature_hash(signature, alg),
    }
