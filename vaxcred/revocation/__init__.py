"""Revocation of issued passports in the EU gateway's terms (DCC.md §7): hashes, batches, lookup.

A revoked passport is listed by 16-byte prefixes of SHA-256 hashes, never by its content
(:mod:`~vaxcred.revocation.hashes`: ``UCI``, ``COUNTRYCODEUCI``, ``SIGNATURE`` — for ES256 ``r`` only).

- :mod:`~vaxcred.revocation.hashes`: :class:`HashType`, :func:`revocation_hashes`;
- :mod:`~vaxcred.revocation.batch`: the gateway batch JSON (:class:`RevocationBatch`) and the publisher's
  grouping of entries into batches (:func:`revocation_entries`, :func:`batches_for`);
- :mod:`~vaxcred.revocation.stream`: :func:`read_batches`, one batch file or the pipeline's JSON array,
  streamed;
- :mod:`~vaxcred.revocation.table`: :class:`HashSet16`, a compact constant-time set of 16-byte hashes;
- :mod:`~vaxcred.revocation.lookup`: :class:`RevocationList` (kid / ``UNKNOWN_KID`` × hash type → set, with
  its age) and :class:`RevocationListBuilder`.

Malformed batches raise :class:`~vaxcred.errors.TrustStoreError` ``revocation.malformed``; a builder past
its entry cap ``revocation.too_many``.  Pure: no files, sockets or clock.
"""

from __future__ import annotations

from vaxcred.revocation.batch import (
    MAX_BATCH_BYTES,
    MAX_BATCH_ENTRIES,
    UNKNOWN_KID,
    RevocationBatch,
    RevocationEntry,
    batches_for,
    revocation_entries,
)
from vaxcred.revocation.hashes import REVOCATION_HASH_LENGTH, HashType, revocation_hashes
from vaxcred.revocation.lookup import DEFAULT_MAX_ENTRIES, RevocationList, RevocationListBuilder
from vaxcred.revocation.stream import read_batches
from vaxcred.revocation.table import HashSet16

__all__ = [
    "DEFAULT_MAX_ENTRIES",
    "MAX_BATCH_BYTES",
    "MAX_BATCH_ENTRIES",
    "REVOCATION_HASH_LENGTH",
    "UNKNOWN_KID",
    "HashSet16",
    "HashType",
    "RevocationBatch",
    "RevocationEntry",
    "RevocationList",
    "RevocationListBuilder",
    "batches_for",
    "read_batches",
    "revocation_entries",
    "revocation_hashes",
]
