"""Revocation batches in the EU gateway's terms (DCC.md §7), and the publisher's side of them.

Countries publish :class:`RevocationBatch` es (one DSC kid, or ``UNKNOWN_KID``, one hash type,
1–1000 entries, an ``expires`` after which the batch is dropped) as the gateway's batch JSON
``{"country", "expires", "kid", "hashType", "entries": [{"hash": <Base64>}]}``.

Errors: a batch that is not well-formed JSON in that shape raises
:class:`~vaxcred.errors.TrustStoreError` with code ``revocation.malformed`` (the whole batch is refused);
building a :class:`RevocationBatch` by hand with bad values is a caller mistake (``ValueError`` /
``TypeError``).  The CMS signature around a gateway batch is the transport's business, as for the trust
list (:mod:`vaxcred.trust.gateway`); vaxcred's own transport (:mod:`vaxcred.sync`) signs an index of them.

Pure: bytes in, bytes out; ``now`` is a parameter.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import groupby
from typing import Any, Final

from vaxcred.crypto import KID_LENGTH
from vaxcred.errors import TrustStoreError
from vaxcred.revocation.hashes import REVOCATION_HASH_LENGTH, HashType, revocation_hashes
from vaxcred.trust.store import is_country, require_utc

__all__ = [
    "MAX_BATCH_BYTES",
    "MAX_BATCH_ENTRIES",
    "UNKNOWN_KID",
    "RevocationBatch",
    "RevocationEntry",
    "batches_for",
    "revocation_entries",
]

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


def malformed(message: str) -> TrustStoreError:
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
        return cls.from_document(_parse(data))

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> RevocationBatch:
        """:meth:`from_json` for a document already read by :func:`json_decoder` (a JSON object)."""
        if not isinstance(document, dict):
            raise malformed("not a JSON object")
        missing = _FIELDS - document.keys()
        extra = document.keys() - _FIELDS
        if missing or extra:
            detail = [
                f"missing {sorted(missing)}" if missing else "",
                f"unknown {sorted(extra)}" if extra else "",
            ]
            raise malformed("fields " + ", ".join(d for d in detail if d))
        country = document["country"]
        if not is_country(country):
            raise malformed(f"country {country!r} is not an upper-case ISO 3166-1 alpha-2 code")
        expires = _parse_time(document["expires"])
        kid = _parse_kid(document["kid"])
        hash_type = document["hashType"]
        if not isinstance(hash_type, str) or hash_type not in HashType.__members__:
            raise malformed(f"hashType {hash_type!r} is not one of {', '.join(HashType)}")
        entries = _parse_entries(document["entries"])
        try:
            return cls(
                country=country, expires=expires, kid=kid, hash_type=HashType(hash_type), entries=entries
            )
        except (ValueError, TypeError) as e:  # unreachable after the checks above; kept fail-closed
            raise malformed(str(e)) from e


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


def json_decoder() -> json.JSONDecoder:
    """The strict JSON decoder of batch documents: duplicate keys and NaN/Infinity raise ``ValueError``."""
    return json.JSONDecoder(object_pairs_hook=_no_duplicates, parse_constant=_no_constants)


def _parse(data: bytes) -> dict[str, Any]:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError("a revocation batch must be bytes")
    raw = bytes(data)
    if len(raw) > MAX_BATCH_BYTES:
        raise malformed(f"{len(raw)} bytes exceed {MAX_BATCH_BYTES}")
    try:
        document = json_decoder().decode(raw.decode("utf-8"))
    except (ValueError, RecursionError) as e:  # JSONDecodeError, UnicodeDecodeError, _DuplicateKey
        raise malformed(f"not valid JSON: {e}") from e
    if not isinstance(document, dict):
        raise malformed("not a JSON object")
    return document


def _parse_time(value: object) -> datetime:
    if not isinstance(value, str) or not _TIMESTAMP.fullmatch(value):
        raise malformed(f"expires {value!r} is not an ISO 8601 time with a zone")
    try:
        return datetime.fromisoformat(value).astimezone(UTC)
    except ValueError as e:
        raise malformed(f"expires {value!r} is not a real time") from e


def _b64(value: str, what: str) -> bytes:
    if not _B64.fullmatch(value):
        raise malformed(f"{what} is not strict Base64")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as e:
        raise malformed(f"{what} is not strict Base64") from e


def _parse_kid(value: object) -> bytes | None:
    if value == UNKNOWN_KID:
        return None
    if not isinstance(value, str):
        raise malformed("kid is not a string")
    kid = _b64(value, "kid")
    if len(kid) != KID_LENGTH:
        raise malformed(f"kid is {len(kid)} bytes, not {KID_LENGTH}")
    return kid


def _parse_entries(value: object) -> tuple[bytes, ...]:
    if not isinstance(value, list):
        raise malformed("entries is not an array")
    if not 1 <= len(value) <= MAX_BATCH_ENTRIES:
        raise malformed(f"{len(value)} entries: a batch holds 1 to {MAX_BATCH_ENTRIES}")
    entries = []
    for i, entry in enumerate(value):
        if not isinstance(entry, dict) or entry.keys() != {"hash"} or not isinstance(entry["hash"], str):
            raise malformed(f'entry {i} is not {{"hash": <Base64>}}')
        text = entry["hash"]
        if not _B64_HASH.fullmatch(text):
            raise malformed(f"entry {i}: hash is not Base64 of {REVOCATION_HASH_LENGTH} bytes")
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
