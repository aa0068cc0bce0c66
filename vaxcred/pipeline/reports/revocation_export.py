"""Revocation export: the stored revocations as EU gateway batches (DCC.md §7), and the HC1 side of a lookup.

::

    revocations (passport_id, hash_type, hash, kid, revoked_at, expires)     written by corrections.revoke_passport
        │  expires > now  [and revoked_at >= since]
        ▼
    RevocationEntry(kid, hash_type, hash, expires)  ──batches_for──▶  RevocationBatch … (one kid + hash type,
        ≤ 1000 entries, expires = the latest passport exp in it)  ──to_json──▶  gateway batch JSON

* :func:`export_revocations` reads the table in (kid, hash type) order, streaming; entries whose passport has
  expired (``expires <= now``) are left out — the passport is invalid anyway. ``since`` exports only the
  revocations made at or after it (an incremental upload; a hash exported twice is harmless: lists are sets).
* :func:`revocation_list` is the verifier-side :class:`~vaxcred.revocation.RevocationList` of those batches;
  :func:`check_hc1` decodes an HC1 (signature, algorithm, kid, ``ci``, ``co``, ``iss``) and looks it up.
* :func:`decode_passport` is the one place the pipeline reads its own stored HC1 back: the corrections flow
  uses it to compute the hashes of the passport it revokes.

Nothing here logs a UVCI or a hash (both identify a person's certificate).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from vaxcred.codec import base45, compress, cose, cwt, prefix
from vaxcred.errors import VaxcredError
from vaxcred.pipeline.errors import PipelineError
from vaxcred.revocation import (
    MAX_BATCH_ENTRIES,
    HashType,
    RevocationBatch,
    RevocationEntry,
    RevocationList,
    batches_for,
)
from vaxcred.storage import Database
from vaxcred.storage.schema import revocations

__all__ = [
    "BAD_PASSPORT",
    "PassportHashInput",
    "check_hc1",
    "decode_passport",
    "export_revocation_json",
    "export_revocations",
    "revocation_list",
]

#: an HC1 that cannot be decoded into what a revocation needs (a stored passport: a damaged database)
BAD_PASSPORT = "pipeline.bad_passport"

#: rows fetched per round trip while exporting
_EXPORT_CHUNK = 10_000


@dataclass(frozen=True, slots=True, kw_only=True)
class PassportHashInput:
    """What the revocation hashes of one passport are computed from, read from its HC1.

    ``uvci`` is the certificate entry's ``ci`` exactly as in the payload, ``country`` its ``co`` and ``iss``
    the CWT issuer (``COUNTRYCODEUCI`` is tested with both when they differ); ``signature`` is the COSE
    signature as carried and ``alg`` its algorithm; ``kid`` the (unauthenticated) kid header.
    """

    uvci: str
    country: str
    iss: str | None
    kid: bytes | None
    signature: bytes
    alg: int
    exp: dt.datetime

    def __repr__(self) -> str:  # the UVCI identifies a person's certificate
        kid = self.kid.hex() if self.kid is not None else None
        return f"PassportHashInput(kid={kid}, alg={self.alg}, exp={self.exp.isoformat()})"


def decode_passport(hc1: str) -> PassportHashInput:
    """Decode an HC1 far enough to revoke it: ``HC1:`` → Base45 → zlib → COSE_Sign1 → CWT claims → entry.

    No signature or trust check is made (the input is a passport the ministry issued, or one a verifier
    already checked). Raises :class:`PipelineError` ``pipeline.bad_passport`` when the text does not decode
    or lacks an algorithm or a ``ci``; the cause is chained.
    """
    if not isinstance(hc1, str):
        raise TypeError(f"hc1 must be a str, not {type(hc1).__name__}")
    try:
        message = cose.decode_sign1(compress.decompress(base45.b45decode(prefix.strip_prefix(hc1))))
        claims = cwt.decode_claims(message.payload)
    except VaxcredError as e:
        raise PipelineError(f"the HC1 does not decode: {e.code}", code=BAD_PASSPORT) from e
    if message.alg is None:
        raise PipelineError("the HC1 carries no COSE algorithm", code=BAD_PASSPORT)
    entry = _certificate_entry(claims.dcc)
    uvci, country = entry.get("ci"), entry.get("co")
    if not isinstance(uvci, str) or not uvci:
        raise PipelineError("the HC1's certificate entry has no ci", code=BAD_PASSPORT)
    if not isinstance(country, str) or len(country) != 2:
        raise PipelineError("the HC1's certificate entry has no two-letter co", code=BAD_PASSPORT)
    return PassportHashInput(
        uvci=uvci,
        country=country.upper(),
        iss=claims.iss,
        kid=message.kid,
        signature=message.signature,
        alg=message.alg,
        exp=dt.datetime.fromtimestamp(claims.exp, tz=dt.UTC),
    )


def _certificate_entry(dcc: Any) -> dict[str, Any]:
    for kind in ("v", "t", "r"):
        entries = dcc.get(kind)
        if isinstance(entries, list) and len(entries) == 1 and isinstance(entries[0], dict):
            return entries[0]
    raise PipelineError("the HC1 holds no single v, t or r entry", code=BAD_PASSPORT)


def _require_utc(value: dt.datetime | None, name: str) -> None:
    if value is None:
        return
    if not isinstance(value, dt.datetime):
        raise TypeError(f"{name} must be a datetime")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")


def _entries(db: Database, *, now: dt.datetime, since: dt.datetime | None) -> Iterator[RevocationEntry]:
    query = sa.select(
        revocations.c.kid, revocations.c.hash_type, revocations.c.hash, revocations.c.expires
    ).where(revocations.c.expires > now)
    if since is not None:
        query = query.where(revocations.c.revoked_at >= since)
    query = query.order_by(revocations.c.kid, revocations.c.hash_type, revocations.c.id)
    with db.connect() as conn:
        result = conn.execution_options(yield_per=_EXPORT_CHUNK).execute(query)
        for kid, hash_type, digest, expires in result:
            yield RevocationEntry(
                kid=bytes(kid), hash_type=HashType(hash_type), hash=bytes(digest), expires=expires
            )


def export_revocations(
    db: Database,
    *,
    country: str = "VN",
    now: dt.datetime,
    since: dt.datetime | None = None,
    max_per_batch: int = MAX_BATCH_ENTRIES,
) -> list[RevocationBatch]:
    """The stored revocations still worth publishing at ``now``, as gateway batches (see the module docstring).

    One batch per (DSC kid, hash type) and at most ``max_per_batch`` (≤ 1000) hashes; a batch's ``expires``
    is the latest ``exp`` of the passports it lists. Deterministic for a given table content and ``now``.
    """
    _require_utc(now, "now")
    _require_utc(since, "since")
    return list(batches_for(_entries(db, now=now, since=since), country=country, max_per_batch=max_per_batch))


def export_revocation_json(
    db: Database,
    *,
    country: str = "VN",
    now: dt.datetime,
    since: dt.datetime | None = None,
) -> list[bytes]:
    """:func:`export_revocations`, each batch as the gateway's batch JSON (:meth:`RevocationBatch.to_json`)."""
    return [batch.to_json() for batch in export_revocations(db, country=country, now=now, since=since)]


def revocation_list(db: Database, *, country: str = "VN", now: dt.datetime) -> RevocationList:
    """The :class:`RevocationList` a verifier would build from today's export."""
    return RevocationList.from_batches(export_revocations(db, country=country, now=now), now=now)


def check_hc1(revoked: RevocationList, hc1: str) -> HashType | None:
    """The first hash type under which ``hc1`` is listed in ``revoked``, or ``None`` if it is not revoked.

    The HC1 is decoded with :func:`decode_passport` (``pipeline.bad_passport`` if it does not decode).
    """
    passport = decode_passport(hc1)
    return revoked.check(
        kid=passport.kid,
        uvci=passport.uvci,
        country=passport.country,
        signature=passport.signature,
        alg=passport.alg,
        iss=passport.iss,
    )
