"""UVCI (``ci``): Luhn mod 38 checksum and generation of random option-2 identifiers (DCC.md §3).

vaxcred issues ``URN:UVCI:01:VN:<issuer>/<random A–Z0–9>#<check>``.  The random part comes from :mod:`secrets`
only and is never derived from a citizen ID, a record number or a counter (a UVCI is personal data, and the
revocation hashes are computed from it: it must not be guessable — SECURITY.md pitfall 20).
"""

from __future__ import annotations

import functools
import re
import secrets
from collections.abc import Sequence
from typing import Final, Protocol

from vaxcred.errors import ModelError

__all__ = [
    "UVCI_ALPHABET",
    "UVCI_RANDOM_LENGTH",
    "generate_uvci",
    "uvci_checksum",
    "uvci_is_valid_checksum",
]

#: Code points 0…37 of the Luhn mod N alphabet (N = 38).
UVCI_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/:"
_N = len(UVCI_ALPHABET)
_CODE = {ch: i for i, ch in enumerate(UVCI_ALPHABET)}
_RANDOM_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

#: Default length of the random part: 16 symbols of 36 ≈ 82.7 bits, so UVCIs cannot be enumerated.  With the
#: ``URN:UVCI:01:VN:BYT/`` prefix and ``#c`` the identifier is 37 characters (under the recommended 60).
UVCI_RANDOM_LENGTH = 16
_MAX_UVCI_LENGTH = 59
_COUNTRY_RE = re.compile(r"[A-Z]{2}\Z")
_COMPONENT_RE = re.compile(r"[A-Z0-9]+\Z")


class RandomChoice(Protocol):
    """What :func:`generate_uvci` needs from its randomness source (the :mod:`secrets` module fits)."""

    def choice(self, seq: Sequence[str], /) -> str: ...


#: a character's Luhn mod 38 addend (``p // N + p % N`` of ``p = code * weight``) at weight 1 (its code) and 2
_ADDEND_1 = _CODE
_ADDEND_2 = {ch: (2 * code) // _N + (2 * code) % _N for ch, code in _CODE.items()}


def _luhn_sum(text: str, *, first_weight: int) -> int:
    """The Luhn mod 38 sum of ``text``, weights 2, 1, 2, … (or 1, 2, 1, …) from its last character."""
    # the characters at weight 2 and at weight 1, read from the end: two table sums instead of a loop
    last_weights = (_ADDEND_2, _ADDEND_1) if first_weight == 2 else (_ADDEND_1, _ADDEND_2)
    backwards = text[::-1]
    try:
        return sum(map(last_weights[0].__getitem__, backwards[0::2])) + sum(
            map(last_weights[1].__getitem__, backwards[1::2])
        )
    except KeyError:
        bad = next(ch for ch in text if ch not in _CODE)
        raise ModelError(f"UVCI character {bad!r} is outside A–Z 0–9 / :", code="model.bad_uvci") from None


def uvci_checksum(uvci: str) -> str:
    """The Luhn mod 38 check character of ``uvci`` (the whole string, ``URN:UVCI:`` included, no ``#``).

    Case-insensitive.  ``uvci_checksum("URN:UVCI:01:VN:BYT/A7K2M9Q4X1") == "5"``.
    """
    if not isinstance(uvci, str):
        raise TypeError("uvci must be str")
    if not uvci:
        raise ModelError("empty UVCI", code="model.bad_uvci")
    total = _luhn_sum(uvci.upper(), first_weight=2)
    return UVCI_ALPHABET[(_N - total % _N) % _N]


def uvci_is_valid_checksum(uvci: object) -> bool:
    """True if ``uvci`` ends in ``#<c>`` and ``c`` is its Luhn mod 38 check character.

    The checksum is never a validity criterion of a certificate (DCC.md §3): verifiers treat ``ci`` as opaque.
    """
    if not isinstance(uvci, str):
        return False
    payload, sep, check = uvci.upper().rpartition("#")
    if not sep or not payload or len(check) != 1:
        return False
    try:
        return _luhn_sum(payload + check, first_weight=1) % _N == 0
    except ModelError:
        return False


def generate_uvci(
    country: str = "VN",
    issuer: str = "BYT",
    *,
    length: int = UVCI_RANDOM_LENGTH,
    rng: RandomChoice = secrets,
) -> str:
    """A new random option-2 UVCI with checksum, e.g. ``URN:UVCI:01:VN:BYT/7QK2M9A4X1ZP3T8R#F``.

    ``country`` is ISO 3166-1 alpha-2, ``issuer`` a non-empty ``A–Z0–9`` component (default ``BYT``, Bộ Y tế).
    ``length`` (8–38) random symbols come from ``rng.choice`` — :mod:`secrets` unless a test passes a seeded
    source.  The result stays under 60 characters.
    """
    if not _COUNTRY_RE.match(country):
        raise ValueError("country must be two upper-case letters (ISO 3166-1 alpha-2)")
    if not _COMPONENT_RE.match(issuer):
        raise ValueError("issuer must be a non-empty A–Z0–9 component")
    if not 8 <= length <= 38:
        raise ValueError("length must be within 8–38")
    body_prefix = f"URN:UVCI:01:{country}:{issuer}/"
    if len(body_prefix) + length + 2 > _MAX_UVCI_LENGTH:
        raise ValueError(
            f"UVCI would be {len(body_prefix) + length + 2} characters; keep it under 60 (shorter issuer or length)"
        )
    if rng is secrets:
        # one uniform draw below 36**length, written in base 36: same distribution, ~5x faster than
        # `length` calls of secrets.choice (issuance draws one UVCI per passport)
        opaque = _base36(secrets.randbelow(len(_RANDOM_ALPHABET) ** length), length)
    else:
        opaque = "".join(rng.choice(_RANDOM_ALPHABET) for _ in range(length))
    # the check character of body_prefix + opaque: the prefix's Luhn sum at the weights the opaque part's
    # length gives it, remembered, plus the opaque part's (the same total as uvci_checksum of the whole body)
    total = _prefix_sum(body_prefix, len(opaque) % 2) + _luhn_sum(opaque, first_weight=2)
    return f"{body_prefix}{opaque}#{UVCI_ALPHABET[(_N - total % _N) % _N]}"


#: base-36 symbol pairs, least significant first, for every value below 36**2
_PAIRS: Final = tuple(a + b for b in _RANDOM_ALPHABET for a in _RANDOM_ALPHABET)
_PAIR_BASE: Final = len(_RANDOM_ALPHABET) ** 2


def _base36(number: int, length: int) -> str:
    """``number`` (below 36**length) as ``length`` base-36 symbols of :data:`_RANDOM_ALPHABET`, least
    significant first (two at a time: half the divisions of one symbol at a time, the same string)."""
    pairs = []
    for _ in range(length // 2):
        number, pair = divmod(number, _PAIR_BASE)
        pairs.append(_PAIRS[pair])
    if length % 2:
        pairs.append(_RANDOM_ALPHABET[number % len(_RANDOM_ALPHABET)])
    return "".join(pairs)


@functools.lru_cache(maxsize=64)
def _prefix_sum(prefix: str, shift: int) -> int:
    """The Luhn mod 38 sum of ``prefix`` in a body that goes on for ``shift`` (mod 2) more characters: its last
    character at weight 2 when the rest is even in length, else at weight 1 (issuance's prefix repeats)."""
    return _luhn_sum(prefix, first_weight=1 if shift else 2)
