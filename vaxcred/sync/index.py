"""The sync index: which rule, value-set and revocation files are current, signed by the trust-list key.

Payload (canonical CBOR) of a COSE_Sign1 with content type :data:`INDEX_CONTENT_TYPE`
(:mod:`vaxcred.sync.signed`)::

    {"environment": "PROD" | "ACC" | "TST",
     "issued_at":   int epoch seconds,            the time the listed data was current
     "sequence":    int >= 0,                     grows with every publication (no rollback)
     "files":       [{"kind": "rules" | "valuesets" | "revocation",
                      "name": "revocation/0001.json",      informative, [A-Za-z0-9._-] segments
                      "sha256": h'32 bytes', "size": int}, ...]}   sorted by (kind, name)

Every file is fetched as ``files/<sha256 hex>`` and checked against its size and hash, so the signature
on the index covers every byte a verifier uses.  A revocation batch the gateway marks deleted is simply no
longer listed.  :func:`load_signed_index` raises :class:`~vaxcred.errors.SyncError`: the codes of
:func:`~vaxcred.sync.signed.verify_document`, ``sync.malformed`` (payload), ``sync.wrong_environment``,
``sync.issued_in_future``, ``sync.rollback`` (a sequence below the last accepted one).  Pure.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from cryptography import x509

from vaxcred.codec import cbor
from vaxcred.crypto import Signer
from vaxcred.errors import DecodeError, SyncError
from vaxcred.revocation import MAX_BATCH_BYTES
from vaxcred.sync.freshness import DataKind
from vaxcred.sync.signed import sign_document, verify_document
from vaxcred.trust import Environment
from vaxcred.trust.store import require_utc

__all__ = [
    "INDEX_CONTENT_TYPE",
    "MAX_FILE_BYTES",
    "MAX_INDEX_BYTES",
    "MAX_INDEX_FILES",
    "IndexEntry",
    "SyncIndex",
    "entries_for",
    "load_signed_index",
    "sign_index",
]

INDEX_CONTENT_TYPE: Final = "application/vnd.vaxcred.sync-index+cbor"
MAX_INDEX_BYTES: Final = 16 * 1024 * 1024
#: 10 M revocation entries are 10,000 full batches; rules and value sets add a few hundred files
MAX_INDEX_FILES: Final = 200_000
#: the largest file of each kind
MAX_FILE_BYTES: Final = {
    DataKind.RULES: 4 * 1024 * 1024,
    DataKind.VALUE_SETS: 4 * 1024 * 1024,
    DataKind.REVOCATION: MAX_BATCH_BYTES,
}
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}(?:/[A-Za-z0-9][A-Za-z0-9._-]{0,99}){0,3}")
_PAYLOAD_KEYS = frozenset({"environment", "issued_at", "sequence", "files"})
_FILE_KEYS = frozenset({"kind", "name", "sha256", "size"})


def _malformed(message: str) -> SyncError:
    return SyncError(f"sync index: {message}", code="sync.malformed")


@dataclass(frozen=True, slots=True, kw_only=True)
class IndexEntry:
    """One listed file: its kind, an informative name, its SHA-256 and size."""

    kind: DataKind
    name: str
    sha256: bytes
    size: int

    def __post_init__(self) -> None:
        if not isinstance(self.kind, DataKind) or self.kind is DataKind.TRUST:
            raise ValueError("kind must be rules, valuesets or revocation")
        if not isinstance(self.name, str) or not _NAME.fullmatch(self.name):
            raise ValueError(f"name {self.name!r} must be /-separated [A-Za-z0-9._-] segments")
        if not isinstance(self.sha256, bytes) or len(self.sha256) != 32:
            raise ValueError("sha256 must be 32 bytes")
        if isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < 0:
            raise ValueError("size must be a non-negative int")
        if self.size > MAX_FILE_BYTES[self.kind]:
            raise ValueError(f"a {self.kind.value} file may hold at most {MAX_FILE_BYTES[self.kind]} bytes")

    @property
    def path(self) -> str:
        """Where the file is served and stored: ``files/<sha256 hex>``."""
        return f"files/{self.sha256.hex()}"


@dataclass(frozen=True, slots=True, kw_only=True)
class SyncIndex:
    """The content of a signed index (see the module docstring)."""

    environment: Environment
    issued_at: datetime
    sequence: int
    files: tuple[IndexEntry, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.environment, Environment):
            raise TypeError("environment must be an Environment")
        object.__setattr__(self, "issued_at", require_utc(self.issued_at, "issued_at").replace(microsecond=0))
        if isinstance(self.sequence, bool) or not isinstance(self.sequence, int) or self.sequence < 0:
            raise ValueError("sequence must be a non-negative int")
        files = tuple(sorted(self.files, key=lambda e: (e.kind.value, e.name)))
        if len({e.name for e in files}) != len(files):
            raise ValueError("file names must be unique")
        if len(files) > MAX_INDEX_FILES:
            raise ValueError(f"at most {MAX_INDEX_FILES} files")
        object.__setattr__(self, "files", files)

    def of_kind(self, kind: DataKind) -> tuple[IndexEntry, ...]:
        """The files of one kind."""
        return tuple(e for e in self.files if e.kind is kind)

    def to_cbor(self) -> bytes:
        return cbor.dumps(
            {
                "environment": self.environment.value,
                "issued_at": int(self.issued_at.timestamp()),
                "sequence": self.sequence,
                "files": [
                    {"kind": e.kind.value, "name": e.name, "sha256": e.sha256, "size": e.size}
                    for e in self.files
                ],
            }
        )

    @classmethod
    def from_cbor(cls, data: bytes) -> SyncIndex:
        """Read an index payload strictly (``sync.malformed`` otherwise)."""
        try:
            payload = cbor.loads(data)
        except DecodeError as e:
            raise _malformed(f"payload is not strict CBOR ({e.code})") from e
        if not isinstance(payload, dict) or set(payload) != _PAYLOAD_KEYS:
            raise _malformed(f"payload must be a map with exactly {sorted(_PAYLOAD_KEYS)}")
        environment, issued_at, sequence = payload["environment"], payload["issued_at"], payload["sequence"]
        if not isinstance(environment, str) or environment not in Environment.__members__:
            raise _malformed("environment must be PROD, ACC or TST")
        for name, value in (("issued_at", issued_at), ("sequence", sequence)):
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**40:
                raise _malformed(f"{name} must be a non-negative integer")
        files = payload["files"]
        if not isinstance(files, list) or len(files) > MAX_INDEX_FILES:
            raise _malformed(f"files must be an array of at most {MAX_INDEX_FILES}")
        try:
            return cls(
                environment=Environment[environment],
                issued_at=datetime.fromtimestamp(issued_at, tz=UTC),
                sequence=sequence,
                files=tuple(_entry(item) for item in files),
            )
        except (ValueError, TypeError, OverflowError, OSError) as e:
            raise _malformed(str(e)) from e


def _entry(item: object) -> IndexEntry:
    if not isinstance(item, dict) or set(item) != _FILE_KEYS:
        raise ValueError(f"each file must be a map with exactly {sorted(_FILE_KEYS)}")
    kind = item["kind"]
    if not isinstance(kind, str) or kind not in {k.value for k in DataKind} - {DataKind.TRUST.value}:
        raise ValueError(f"unknown file kind {kind!r}")
    return IndexEntry(kind=DataKind(kind), name=item["name"], sha256=item["sha256"], size=item["size"])


def sign_index(index: SyncIndex, *, signer: Signer) -> bytes:
    """The signed index (COSE_Sign1 by the trust-list key)."""
    return sign_document(index.to_cbor(), content_type=INDEX_CONTENT_TYPE, signer=signer)


def load_signed_index(
    data: bytes,
    *,
    anchor: x509.Certificate,
    environment: Environment,
    now: datetime,
    min_sequence: int | None = None,
) -> SyncIndex:
    """Verify and read a signed index (codes in the module docstring); equal ``min_sequence`` is allowed."""
    if not isinstance(environment, Environment):
        raise TypeError("environment must be an Environment")
    now = require_utc(now)
    payload = verify_document(
        data, content_type=INDEX_CONTENT_TYPE, anchor=anchor, now=now, max_bytes=MAX_INDEX_BYTES
    )
    index = SyncIndex.from_cbor(payload)
    if index.environment is not environment:
        raise SyncError(
            f"index is for {index.environment.value}, {environment.value} required",
            code="sync.wrong_environment",
        )
    if index.issued_at > now:
        raise SyncError(
            f"index issued in the future ({index.issued_at.isoformat()})", code="sync.issued_in_future"
        )
    if min_sequence is not None and index.sequence < min_sequence:
        raise SyncError(
            f"index sequence {index.sequence} is older than the last accepted {min_sequence}",
            code="sync.rollback",
        )
    return index


def entries_for(kind: DataKind, items: Iterable[tuple[str, bytes]]) -> tuple[IndexEntry, ...]:
    """Index entries for ``(name, content)`` pairs of one kind (the publisher's side)."""
    return tuple(
        IndexEntry(kind=kind, name=name, sha256=hashlib.sha256(content).digest(), size=len(content))
        for name, content in items
    )
