"""The verifier's revocation list: (kid or ``UNKNOWN_KID``, hash type) → compact hash set, and its age.

A passport is revoked when any of its hashes is in the set of its own kid or of ``UNKNOWN_KID``
(DCC.md §7).  The sets are :class:`~vaxcred.revocation.table.HashSet16` (~20 bytes an entry, constant-time
lookups), so ten million entries fit in ~200 MB.  Batches are added one at a time to a
:class:`RevocationListBuilder` (expired ones are dropped); a file that turns out bad half-way is undone
with :meth:`~RevocationListBuilder.checkpoint` / :meth:`~RevocationListBuilder.rollback`.

A list knows when its data was current (``issued_at``, e.g. the signed index it came with) and how old it
may grow (``max_age``); :meth:`RevocationList.is_fresh` tells the verifier to answer NEEDS_CHECK once it
is older (SECURITY.md pitfall 14).  Pure: ``now`` is a parameter.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Final

from vaxcred.crypto import KID_LENGTH
from vaxcred.errors import TrustStoreError
from vaxcred.revocation.batch import RevocationBatch
from vaxcred.revocation.hashes import (
    HashType,
    country_uci_hash,
    is_two_letters,
    signature_hash,
    uci_hash,
)
from vaxcred.revocation.table import HashSet16
from vaxcred.trust.store import require_utc

__all__ = ["DEFAULT_MAX_ENTRIES", "RevocationList", "RevocationListBuilder"]

#: entries a builder accepts by default (~360 MB while building): beyond, ``revocation.too_many``
DEFAULT_MAX_ENTRIES: Final = 20_000_000

_Key = tuple[bytes | None, HashType]
_EMPTY: Final = HashSet16()


def _check_key(kid: object, hash_type: object) -> None:
    if kid is not None and (not isinstance(kid, bytes) or len(kid) != KID_LENGTH):
        raise TypeError(f"kids must be {KID_LENGTH} bytes or None (UNKNOWN_KID)")
    if not isinstance(hash_type, HashType):
        raise TypeError("hash types must be HashType")


def _check_age(issued_at: datetime | None, max_age: timedelta | None) -> datetime | None:
    if max_age is not None and (not isinstance(max_age, timedelta) or max_age <= timedelta(0)):
        raise ValueError("max_age must be a positive timedelta")
    return None if issued_at is None else require_utc(issued_at, "issued_at")


class RevocationList:
    """(kid or ``UNKNOWN_KID``, hash type) → set of 16-byte hashes, built from unexpired batches.

    Immutable.  ``UNKNOWN_KID`` is the key ``None``: its entries apply to passports of every DSC.
    ``issued_at`` / ``max_age`` say how current the data is (both ``None``: age unknown, never stale).
    ``complete`` is ``False`` when part of the data could not be loaded (a batch file missing, changed on disk
    or malformed): a passport not found in the rest is then not known to be unrevoked.
    """

    __slots__ = ("_index", "complete", "issued_at", "max_age")

    def __init__(
        self,
        index: Mapping[_Key, Iterable[bytes]] | None = None,
        *,
        issued_at: datetime | None = None,
        max_age: timedelta | None = None,
        complete: bool = True,
    ) -> None:
        sets: dict[_Key, HashSet16] = {}
        for (kid, hash_type), hashes in (index or {}).items():
            _check_key(kid, hash_type)
            values = hashes if isinstance(hashes, HashSet16) else HashSet16.from_iterable(hashes)
            if len(values):
                sets[(kid, hash_type)] = values
        self._index: Mapping[_Key, HashSet16] = MappingProxyType(sets)
        self.issued_at = _check_age(issued_at, max_age)
        self.max_age = max_age
        self.complete = bool(complete)

    @classmethod
    def from_batches(
        cls,
        batches: Iterable[RevocationBatch],
        *,
        now: datetime,
        issued_at: datetime | None = None,
        max_age: timedelta | None = None,
    ) -> RevocationList:
        """A list from ``batches``, dropping those whose ``expires`` is not after ``now`` (aware)."""
        builder = RevocationListBuilder(now=now)
        for batch in batches:
            builder.add(batch)
        return builder.build(issued_at=issued_at, max_age=max_age)

    def hashes(self, kid: bytes | None, hash_type: HashType) -> frozenset[bytes]:
        """The hashes listed under exactly ``kid`` (``None`` = ``UNKNOWN_KID``) and ``hash_type`` (a copy:
        for inspection and tests, not for lookups)."""
        return frozenset(self._index.get((kid, hash_type), _EMPTY))

    def __len__(self) -> int:
        return sum(len(v) for v in self._index.values())

    def nbytes(self) -> int:
        """Bytes held by the hash sets' buffers (what grows with the entries)."""
        return sum(v.nbytes() for v in self._index.values())

    def __repr__(self) -> str:
        issued = self.issued_at.isoformat() if self.issued_at else None
        return f"RevocationList(keys={len(self._index)}, hashes={len(self)}, issued_at={issued})"

    @property
    def stale_after(self) -> datetime | None:
        """When this list stops being fresh (``issued_at + max_age``); ``None`` if either is unknown."""
        if self.issued_at is None or self.max_age is None:
            return None
        return self.issued_at + self.max_age

    def is_fresh(self, now: datetime) -> bool:
        """Whether the data is at most ``max_age`` old at ``now`` (always, when its age is unknown)."""
        now = require_utc(now)
        stale_after = self.stale_after
        return stale_after is None or now <= stale_after

    def check(
        self,
        *,
        kid: bytes | None,
        uvci: str | None,
        country: str | None,
        signature: bytes,
        alg: int,
        iss: str | None = None,
    ) -> HashType | None:
        """The first hash type under which the passport is listed, or ``None`` if it is not revoked.

        The sets of the passport's own ``kid`` and of ``UNKNOWN_KID`` are searched.  ``country`` is the
        entry's ``co``; give the CWT ``iss`` too and, when it differs, ``COUNTRYCODEUCI`` is tested with both
        (DCC.md §7); an ``iss`` or ``country`` that is not a two-letter code is ignored.  Without a ``uvci``
        (a payload without ``ci``) only ``SIGNATURE`` is tested.
        """
        kids = (None,) if kid is None else (kid, None)
        candidates: dict[HashType, list[bytes]] = {
            HashType.UCI: [],
            HashType.COUNTRYCODEUCI: [],
            HashType.SIGNATURE: [signature_hash(signature, alg)],
        }
        if uvci is not None:
            candidates[HashType.UCI].append(uci_hash(uvci))
            countries = {c.upper() for c in (country, iss) if is_two_letters(c)}
            candidates[HashType.COUNTRYCODEUCI].extend(country_uci_hash(c, uvci) for c in sorted(countries))
        for hash_type, values in candidates.items():
            for k in kids:
                listed = self._index.get((k, hash_type))
                if listed is not None and any(v in listed for v in values):
                    return hash_type
        return None

    def is_revoked(
        self,
        *,
        kid: bytes | None,
        uvci: str | None,
        country: str | None,
        signature: bytes,
        alg: int,
        iss: str | None = None,
    ) -> bool:
        """Whether :meth:`check` finds the passport."""
        return (
            self.check(kid=kid, uvci=uvci, country=country, signature=signature, alg=alg, iss=iss) is not None
        )


class RevocationListBuilder:
    """Collects batches (16 bytes an entry, in one ``bytearray`` per key) into a :class:`RevocationList`.

    Batches whose ``expires`` is not after ``now`` are dropped.  More than ``max_entries`` entries raise
    TrustStoreError ``revocation.too_many`` (nothing untrusted may exhaust memory).  A builder is used once.
    """

    __slots__ = ("_built", "_count", "_max_entries", "_now", "_records")

    def __init__(self, *, now: datetime, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        self._now = require_utc(now)
        if isinstance(max_entries, bool) or not isinstance(max_entries, int) or max_entries < 0:
            raise ValueError("max_entries must be a non-negative int")
        self._max_entries = max_entries
        self._records: dict[_Key, bytearray] = {}
        self._count = 0
        self._built = False

    def __len__(self) -> int:
        """Entries added so far (duplicates included)."""
        return self._count

    def add(self, batch: RevocationBatch) -> bool:
        """Add ``batch``; ``False`` when it has expired (and was dropped)."""
        if not isinstance(batch, RevocationBatch):
            raise TypeError("add() takes a RevocationBatch")
        if self._built:
            raise ValueError("this builder has already built its list")
        if batch.expires <= self._now:
            return False
        if self._count + len(batch.entries) > self._max_entries:
            raise TrustStoreError(
                f"more than {self._max_entries} revocation entries", code="revocation.too_many"
            )
        key = (batch.kid, batch.hash_type)
        records = self._records.get(key)
        if records is None:
            records = self._records[key] = bytearray()
        records += b"".join(batch.entries)
        self._count += len(batch.entries)
        return True

    def checkpoint(self) -> tuple[int, dict[_Key, int]]:
        """A mark to :meth:`rollback` to (e.g. before reading a file that may be bad half-way)."""
        return self._count, {key: len(records) for key, records in self._records.items()}

    def rollback(self, mark: tuple[int, dict[_Key, int]]) -> None:
        """Forget every batch added since :meth:`checkpoint` returned ``mark``."""
        count, sizes = mark
        for key in list(self._records):
            if key not in sizes:
                del self._records[key]
            else:
                del self._records[key][sizes[key] :]
        self._count = count

    def build(
        self, *, issued_at: datetime | None = None, max_age: timedelta | None = None, complete: bool = True
    ) -> RevocationList:
        """The list (the builder's buffers are taken over and sorted in place: no copy); ``complete`` as in
        :class:`RevocationList`."""
        if self._built:
            raise ValueError("this builder has already built its list")
        self._built = True
        sets: dict[_Key, HashSet16] = {}
        for key in list(self._records):
            sets[key] = HashSet16.from_records(self._records.pop(key))
        return RevocationList(sets, issued_at=issued_at, max_age=max_age, complete=complete)
