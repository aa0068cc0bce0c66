"""Revocation of issued passports in the EU gateway's terms (DCC.md §7): hashes, batches, lookup.

A revoked passport is listed by 16-byte prefixes of SHA-256 hashes, never by its content:

==================  ===========================================================================
``UCI``             UTF-8 of the ``ci`` exactly as in the payload
``COUNTRYCODEUCI``  UTF-8 of the upper-case two-letter issuing country followed by the ``ci``
``SIGNATURE``       the COSE signature; ES256: ``r`` only (first 32 bytes — ``s`` is malleable,
                    ``(r, n − s)`` verifies too), PS256: the whole signature
==================  ===========================================================================

Countries publish :class:`RevocationBatch` es (one DSC kid, or ``UNKNOWN_KID``, one hash type,
1–1000 entries, an ``expires`` after which the batch is dropped) as the gateway's batch JSON
``{"country", "expires", "kid", "hashType", "entries": [{"hash": <Base64>}]}``.
A verifier builds one :class:`RevocationList` from the batches it holds: (kid or ``UNKNOWN_KID``,
hash type) → set of hashes; a passport is revoked when any of its hashes is in the set of its own kid
or of ``UNKNOWN_KID``.

Errors: a batch that is not well-formed JSON in that shape raises
:class:`~vaxcred.errors.TrustStoreError` with code ``revocation.malformed`` (the whole batch is refused);
building a :class:`RevocationBatch` by hand with bad values is a caller mistake (``ValueError`` /
``TypeError``).  The CMS signature around a gateway batch is the transport's business, as for the trust
list (:mod:`vaxcred.trust.gateway`).

Pure: bytes in, bytes out; ``now`` is a parameter.
"""

from __future__ import annotations

__all__ = [
    "MAX_BATCH_BYTES",
    "MAX_BATCH_ENTRIES",
    "REVOCATION_HASH_LENGTH",
    "UNKNOWN_KID",
    "HashType",
    "RevocationBatch",
    "RevocationEntry",
    "RevocationList",
    "batches_for",
    "revocation_entries",
    "revocation_hashes",
]

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from itertools import groupby
from types import MappingProxyType
from typing import Any, Final, TypeGuard

from vaxcred.crypto import ES256_SIGNATURE_LENGTH, KID_LENGTH, Algorithm
from vaxcred.errors import TrustStoreError
from vaxcred.trust.store import is_country, require_utc

#: a revocation hash: the first 16 bytes of a SHA-256
REVOCATION_HASH_LENGTH: Final = 16
#: entries in one gateway batch (at least 1)
MAX_BATCH_ENTRIES: Final = 1000
#: a batch document (1000 entries of ~36 bytes and the envelope fit many times over)
MAX_BATCH_BYTES: Final = 256 * 1024
#: the gateway's ``kid`` for entries that apply whatever the DSC
UNKNOWN_KID: Final = "UNKNOWN_KID"

_FIELDS: Final = frozenset({"country", "expires", "kid", "hashType", "entries"})
_B64_HASH = re.compile(r"[A-Za-z0-9+/]{22}==")
_B64 = re.compile(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")
_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?(?:Z|[+-]\d{2}:\d{2})")
_ES256 = int(Algorithm.ES256)
_PS256 = int(Algorithm.PS256)


class HashType(StrEnum):
    """The gateway's ``hashType`` values, in the order a verifier tests them."""

    UCI = "UCI"
    COUNTRYCODEUCI = "COUNTRYCODEUCI"
    SIGNATURE = "SIGNATURE"


def _digest16(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()[:REVOCATION_HASH_LENGTH]


def _uci_hash(uvci: str) -> bytes:
    if not isinstance(uvci, str):
        raise TypeError(f"uvci must be a str, not {type(uvci).__name__}")
    if not uvci:
        raise ValueError("uvci must not be empty")
    return _digest16(uvci.encode("utf-8"))


def _is_two_letters(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and len(value) == 2 and value.isascii() and value.isalpha()


def _country_uci_hash(country: str, uvci: str) -> bytes:
    if not _is_two_letters(country):
        raise ValueError(f"country must be a two-letter ISO 3166-1 code, not {country!r}")
    return _digest16((country.upper() + uvci).encode("utf-8"))


def _signature_hash(signature: bytes, alg: int) -> bytes:
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
    uci = _uci_hash(uvci)
    return {
        HashType.UCI: uci,
        HashType.COUNTRYCODEUCI: _country_uci_hash(country, uvci),
        HashType.SIGNATURE: _signature_hash(signature, alg),
    }


# --- batches --------------------------------------------------------------------------------------------


def _malformed(message: str) -> TrustStoreError:
    return TrustStoreError(f"revocation batch: {message}", code="revocation.malformed")


def _format_time(when: datetime) -> str:
    text = when.astimezone(UTC).isoformat()
    return text.removesuffix("+00:00") + "Z"


@dataclass(frozen=True, slots=True, kw_only=True)
class RevocationBatch:
    """One gateway batch: a country's revocations under one kid (``None`` = ``UNKNOWN_KID``) and hash type.

    ``expires`` is aware (stored in UTC); ``entries`` are 1–1000 hashes of 16 bytes (duplicates are
    tolerated: the list is a set).  Invalid values raise ``ValueError`` / ``TypeError``.
    """

    country: str
    expires: datetime
    kid: bytes | None
    hash_type: HashType
    entries: tuple[bytes, ...]

    def __post_init__(self) -> None:
        if not is_country(self.country):
            raise ValueError(f"country must be an upper-case ISO 3166-1 alpha-2 code, not {self.country!r}")
        object.__setattr__(self, "expires", require_utc(self.expires, "expires"))
        if self.kid is not None:
            if not isinstance(self.kid, bytes):
                raise TypeError(f"kid must be bytes or None (UNKNOWN_KID), not {type(self.kid).__name__}")
            if len(self.kid) != KID_LENGTH:
                raise ValueError(f"kid must be {KID_LENGTH} bytes, not {len(self.kid)}")
        if not isinstance(self.hash_type, HashType):
            raise TypeError(f"hash_type must be a HashType, not {type(self.hash_type).__name__}")
        if not isinstance(self.entries, tuple):
            raise TypeError("entries must be a tuple of bytes")
        if not 1 <= len(self.entries) <= MAX_BATCH_ENTRIES:
            raise ValueError(f"a batch holds 1 to {MAX_BATCH_ENTRIES} entries, not {len(self.entries)}")
        for i, entry in enumerate(self.entries):
            if not isinstance(entry, bytes) or len(entry) != REVOCATION_HASH_LENGTH:
                raise ValueError(f"entry {i} is not a {REVOCATION_HASH_LENGTH}-byte hash")

    def to_json(self) -> bytes:
        """The gateway batch JSON (compact, UTF-8, fields in a fixed order)."""
        document = {
            "country": self.country,
            "expires": _format_time(self.expires),
            "kid": UNKNOWN_KID if self.kid is None else base64.b64encode(self.kid).decode("ascii"),
            "hashType": self.hash_type.value,
            "entries": [{"hash": base64.b64encode(h).decode("ascii")} for h in self.entries],
        }
        return json.dumps(document, separators=(",", ":")).encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes) -> RevocationBatch:
        """Read a gateway batch strictly; anything else raises TrustStoreError(``revocation.malformed``).

        Exactly the five fields; ``country`` upper-case alpha-2; ``expires`` an ISO 8601 time with a zone;
        ``kid`` ``UNKNOWN_KID`` or strict Base64 of an 8-byte kid; ``hashType`` one of :class:`HashType`;
        ``entries`` 1–1000 objects ``{"hash": <strict Base64 of 16 bytes>}``.  No duplicate JSON keys.
        """
        document = _parse(data)
        missing = _FIELDS - document.keys()
        extra = document.keys() - _FIELDS
        if missing or extra:
            detail = [
                f"missing {sorted(missing)}" if missing else "",
                f"unknown {sorted(extra)}" if extra else "",
            ]
            raise _malformed("fields " + ", ".join(d for d in detail if d))
        country = document["country"]
        if not is_country(country):
            raise _malformed(f"country {country!r} is not an upper-case ISO 3166-1 alpha-2 code")
        expires = _parse_time(document["expires"])
        kid = _parse_kid(document["kid"])
        hash_type = document["hashType"]
        if not isinstance(hash_type, str) or hash_type not in HashType.__members__:
            raise _malformed(f"hashType {hash_type!r} is not one of {', '.join(HashType)}")
        entries = _parse_entries(document["entries"])
        try:
            return cls(
                country=country, expires=expires, kid=kid, hash_type=HashType(hash_type), entries=entries
            )
        except (ValueError, TypeError) as e:  # unreachable after the checks above; kept fail-closed
            raise _malformed(str(e)) from e


class _DuplicateKey(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKey(f"duplicate key {key!r}")
        result[key] = value
    return result


def _no_constants(name: str) -> None:
    raise ValueError(f"non-JSON constant {name}")


def _parse(data: bytes) -> dict[str, Any]:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError("a revocation batch must be bytes")
    raw = bytes(data)
    if len(raw) > MAX_BATCH_BYTES:
        raise _malformed(f"{len(raw)} bytes exceed {MAX_BATCH_BYTES}")
    try:
        document = json.loads(
            raw.decode("utf-8"), object_pairs_hook=_no_duplicates, parse_constant=_no_constants
        )
    except (ValueError, RecursionError) as e:  # JSONDecodeError, UnicodeDecodeError, _DuplicateKey
        raise _malformed(f"not valid JSON: {e}") from e
    if not isinstance(document, dict):
        raise _malformed("not a JSON object")
    return document


def _parse_time(value: object) -> datetime:
    if not isinstance(value, str) or not _TIMESTAMP.fullmatch(value):
        raise _malformed(f"expires {value!r} is not an ISO 8601 time with a zone")
    try:
        return datetime.fromisoformat(value).astimezone(UTC)
    except ValueError as e:
        raise _malformed(f"expires {value!r} is not a real time") from e


def _b64(value: str, what: str) -> bytes:
    if not _B64.fullmatch(value):
        raise _malformed(f"{what} is not strict Base64")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as e:
        raise _malformed(f"{what} is not strict Base64") from e


def _parse_kid(value: object) -> bytes | None:
    if value == UNKNOWN_KID:
        return None
    if not isinstance(value, str):
        raise _malformed("kid is not a string")
    kid = _b64(value, "kid")
    if len(kid) != KID_LENGTH:
        raise _malformed(f"kid is {len(kid)} bytes, not {KID_LENGTH}")
    return kid


def _parse_entries(value: object) -> tuple[bytes, ...]:
    if not isinstance(value, list):
        raise _malformed("entries is not an array")
    if not 1 <= len(value) <= MAX_BATCH_ENTRIES:
        raise _malformed(f"{len(value)} entries: a batch holds 1 to {MAX_BATCH_ENTRIES}")
    entries = []
    for i, entry in enumerate(value):
        if not isinstance(entry, dict) or entry.keys() != {"hash"} or not isinstance(entry["hash"], str):
            raise _malformed(f'entry {i} is not {{"hash": <Base64>}}')
        text = entry["hash"]
        if not _B64_HASH.fullmatch(text):
            raise _malformed(f"entry {i}: hash is not Base64 of {REVOCATION_HASH_LENGTH} bytes")
        entries.append(_b64(text, f"entry {i} hash"))
    return tuple(entries)


# --- export helpers ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class RevocationEntry:
    """One hash to publish: under the passport's DSC kid (``None`` = ``UNKNOWN_KID``), until ``expires``."""

    kid: bytes | None
    hash_type: HashType
    hash: bytes
    expires: datetime

    def __post_init__(self) -> None:
        if self.kid is not None and (not isinstance(self.kid, bytes) or len(self.kid) != KID_LENGTH):
            raise ValueError(f"kid must be {KID_LENGTH} bytes or None (UNKNOWN_KID)")
        if not isinstance(self.hash_type, HashType):
            raise TypeError("hash_type must be a HashType")
        if not isinstance(self.hash, bytes) or len(self.hash) != REVOCATION_HASH_LENGTH:
            raise ValueError(f"hash must be {REVOCATION_HASH_LENGTH} bytes")
        object.__setattr__(self, "expires", require_utc(self.expires, "expires"))


def revocation_entries(
    *,
    kid: bytes | None,
    uvci: str,
    country: str,
    signature: bytes,
    alg: int,
    expires: datetime,
    hash_types: Iterable[HashType] = tuple(HashType),
) -> tuple[RevocationEntry, ...]:
    """The entries that revoke one passport (by default by every hash type), kept until ``expires``.

    ``expires`` is normally the passport's ``exp``: after it the passport is invalid anyway.
    """
    hashes = revocation_hashes(uvci=uvci, country=country, signature=signature, alg=alg)
    return tuple(
        RevocationEntry(kid=kid, hash_type=t, hash=hashes[t], expires=expires)
        for t in dict.fromkeys(hash_types)
    )


def _kid_sort_key(kid: bytes | None) -> bytes:
    return b"" if kid is None else b"\x01" + kid


def batches_for(
    entries: Iterable[RevocationEntry], *, country: str, max_per_batch: int = MAX_BATCH_ENTRIES
) -> tuple[RevocationBatch, ...]:
    """Group entries into gateway batches: one (kid, hash type) per batch, at most ``max_per_batch`` each.

    Duplicates are dropped (the latest ``expires`` of a hash wins).  Within a group the hashes are ordered
    by expiry, so each batch holds hashes that expire together; a batch expires with its last entry.
    The output is deterministic for a given set of entries.
    """
    if not 1 <= max_per_batch <= MAX_BATCH_ENTRIES:
        raise ValueError(f"max_per_batch must be between 1 and {MAX_BATCH_ENTRIES}")
    if not is_country(country):
        raise ValueError(f"country must be an upper-case ISO 3166-1 alpha-2 code, not {country!r}")
    latest: dict[tuple[bytes | None, HashType, bytes], datetime] = {}
    for entry in entries:
        key = (entry.kid, entry.hash_type, entry.hash)
        previous = latest.get(key)
        if previous is None or entry.expires > previous:
            latest[key] = entry.expires
    order = sorted(latest.items(), key=lambda kv: (_kid_sort_key(kv[0][0]), kv[0][1].value, kv[1], kv[0][2]))
    batches: list[RevocationBatch] = []
    for (kid, hash_type), group in groupby(order, key=lambda kv: (kv[0][0], kv[0][1])):
        items = list(group)
        for start in range(0, len(items), max_per_batch):
            chunk = items[start : start + max_per_batch]
            batches.append(
                RevocationBatch(
                    country=country,
                    expires=max(expires for _, expires in chunk),
                    kid=kid,
                    hash_type=hash_type,
                    entries=tuple(h for (_, _, h), _ in chunk),
                )
            )
    return tuple(batches)


# --- lookup ---------------------------------------------------------------------------------------------------


_EMPTY: Final[frozenset[bytes]] = frozenset()


class RevocationList:
    """(kid or ``UNKNOWN_KID``, hash type) → set of 16-byte hashes, built from unexpired batches.

    Immutable.  ``UNKNOWN_KID`` is the key ``None``: its entries apply to passports of every DSC.
    """

    __slots__ = ("_index",)

    def __init__(self, index: Mapping[tuple[bytes | None, HashType], Iterable[bytes]] | None = None) -> None:
        frozen: dict[tuple[bytes | None, HashType], frozenset[bytes]] = {}
        for (kid, hash_type), hashes in (index or {}).items():
            if kid is not None and not isinstance(kid, bytes):
                raise TypeError("index kids must be bytes or None (UNKNOWN_KID)")
            if not isinstance(hash_type, HashType):
                raise TypeError("index hash types must be HashType")
            values = frozenset(hashes)
            if any(not isinstance(h, bytes) or len(h) != REVOCATION_HASH_LENGTH for h in values):
                raise ValueError(f"every hash must be {REVOCATION_HASH_LENGTH} bytes")
            if values:
                frozen[(kid, hash_type)] = values
        self._index: Mapping[tuple[bytes | None, HashType], frozenset[bytes]] = MappingProxyType(frozen)

    @classmethod
    def from_batches(cls, batches: Iterable[RevocationBatch], *, now: datetime) -> RevocationList:
        """A list from ``batches``, dropping those whose ``expires`` is not after ``now`` (aware)."""
        now = require_utc(now)
        merged: dict[tuple[bytes | None, HashType], set[bytes]] = {}
        for batch in batches:
            if batch.expires <= now:
                continue
            merged.setdefault((batch.kid, batch.hash_type), set()).update(batch.entries)
        return cls(merged)

    def hashes(self, kid: bytes | None, hash_type: HashType) -> frozenset[bytes]:
        """The hashes listed under exactly ``kid`` (``None`` = ``UNKNOWN_KID``) and ``hash_type``."""
        return self._index.get((kid, hash_type), _EMPTY)

    def __len__(self) -> int:
        return sum(len(v) for v in self._index.values())

    def __repr__(self) -> str:
        return f"RevocationList(keys={len(self._index)}, hashes={len(self)})"

    def check(
        self,
        *,
        kid: bytes | None,
        uvci: str,
        country: str,
        signature: bytes,
        alg: int,
        iss: str | None = None,
    ) -> HashType | None:
        """The first hash type under which the passport is listed, or ``None`` if it is not revoked.

        The sets of the passport's own ``kid`` and of ``UNKNOWN_KID`` are searched.  ``country`` is the
        entry's ``co``; give the CWT ``iss`` too and, when it differs, ``COUNTRYCODEUCI`` is tested with both
        (DCC.md §7); an ``iss`` that is not a two-letter code is ignored.
        """
        kids = (None,) if kid is None else (kid, None)
        candidates: dict[HashType, list[bytes]] = {
            HashType.UCI: [_uci_hash(uvci)],
            HashType.COUNTRYCODEUCI: [_country_uci_hash(country, uvci)],
            HashType.SIGNATURE: [_signature_hash(signature, alg)],
        }
        if _is_two_letters(iss) and iss.upper() != country.upper():
            candidates[HashType.COUNTRYCODEUCI].append(_country_uci_hash(iss, uvci))
        for hash_type, values in candidates.items():
            for k in kids:
                listed = self._index.get((k, hash_type))
                if listed and any(v in listed for v in values):
                    return hash_type
        return None

    def is_revoked(
        self,
        *,
        kid: bytes | None,
        uvci: str,
        country: str,
        signature: bytes,
        alg: int,
        iss: str | None = None,
    ) -> bool:
        """Whether :meth:`check` finds the passport."""
        return (
            self.check(kid=kid, uvci=uvci, country=country, signature=signature, alg=alg, iss=iss) is not None
        )
