"""What the issuance log records about each signed object: the entry, built from the object's stored row.

An entry is canonical CBOR ``[2, kind, object_id, object_hash, trace]`` (2: :data:`ENTRY_VERSION`):

==============  ===============================  ==========================================================
kind            object hash (SHA-256 of)         trace (what the signature relied on; ids, times, kids only)
==============  ===============================  ==========================================================
``dose_record`` the site's COSE_Sign1 bytes      dose id, site id, site-certificate fingerprint, kid, signing
                                                 time
``passport``    the HC1 text (UTF-8)             person id, DSC kid, iat, exp, issuance time, registry
                                                 check id, the (dose id, site signature id) pairs it was
                                                 built from, the passport it supersedes
``revocation``  the revocation row (hash type,   passport id, time
                hash, kid, times), canonical CBOR
==============  ===============================  ==========================================================

No names, citizen IDs or dates of birth: the log holds hashes and ids (SECURITY.md §4, "Retention"). The same
builder makes the entry when an object is logged and when the audit recomputes it from the database, so any
change to a logged row — its bytes, its times, its evidence links — changes the entry.
"""

from __future__ import annotations

__all__ = ["ENTRY_VERSION", "Kind", "build_entries", "decode_entry", "passport_entry"]

import enum
import hashlib
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Final

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from vaxcred.codec import cbor
from vaxcred.errors import CborError
from vaxcred.storage.schema import passport_doses, passports, revocations, site_signatures

#: 2: the passport trace names the person the passport belongs to (version 1 did not)
ENTRY_VERSION: Final = 2
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND: Final = timedelta(microseconds=1)


class Kind(enum.StrEnum):
    """The kinds of signed object the log records."""

    DOSE_RECORD = "dose_record"
    PASSPORT = "passport"
    REVOCATION = "revocation"


def _micros(when: datetime | None) -> int | None:
    return None if when is None else (when - _EPOCH) // _MICROSECOND


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _entry(kind: Kind, object_id: int, object_hash: bytes, trace: dict[str, object]) -> bytes:
    return cbor.dumps([ENTRY_VERSION, kind.value, object_id, object_hash, trace])


def build_entries(conn: Connection, kind: Kind, object_ids: Sequence[int]) -> dict[int, bytes]:
    """The entries of these objects as stored now (ids without a row are absent from the result)."""
    if not object_ids:
        return {}
    ids = sorted(set(object_ids))
    if kind is Kind.PASSPORT:
        return _passport_entries(conn, ids)
    if kind is Kind.DOSE_RECORD:
        return _dose_record_entries(conn, ids)
    return _revocation_entries(conn, ids)


def passport_entry(
    *,
    passport_id: int,
    person_id: int,
    hc1: str,
    kid: bytes,
    iat: datetime,
    exp: datetime,
    issued_at: datetime,
    registry_check_id: int | None,
    doses: Iterable[tuple[int, int]],
    supersedes: int | None,
) -> bytes:
    """The entry of one passport from its stored values (``doses``: its (dose id, site signature id) links, in
    any order). :func:`build_entries` reads them from the database; issuance builds the entry from the values it
    has just inserted, in the same transaction (the audit recomputes it from the rows)."""
    trace: dict[str, object] = {
        "person_id": person_id,  # whose passport it is: moving it to another person is a change
        "kid": kid,
        "iat": _micros(iat),
        "exp": _micros(exp),
        "issued_at": _micros(issued_at),
        "registry_check_id": registry_check_id,
        "doses": [[dose_id, signature_id] for dose_id, signature_id in sorted(doses)],
        "supersedes": supersedes,
    }
    return _entry(Kind.PASSPORT, passport_id, _sha256(hc1.encode("utf-8")), trace)


def _passport_entries(conn: Connection, ids: list[int]) -> dict[int, bytes]:
    links: dict[int, list[tuple[int, int]]] = {}
    for row in conn.execute(
        sa.select(passport_doses.c.passport_id, passport_doses.c.dose_id, passport_doses.c.site_signature_id)
        .where(passport_doses.c.passport_id.in_(ids))
        .order_by(passport_doses.c.passport_id, passport_doses.c.dose_id)
    ):
        links.setdefault(row.passport_id, []).append((row.dose_id, row.site_signature_id))
    return {
        row.id: passport_entry(
            passport_id=row.id,
            person_id=row.person_id,
            hc1=row.hc1,
            kid=row.kid,
            iat=row.iat,
            exp=row.exp,
            issued_at=row.issued_at,
            registry_check_id=row.registry_check_id,
            doses=links.get(row.id, ()),
            supersedes=row.supersedes,
        )
        for row in conn.execute(sa.select(passports).where(passports.c.id.in_(ids)))
    }


def _dose_record_entries(conn: Connection, ids: list[int]) -> dict[int, bytes]:
    out = {}
    for row in conn.execute(sa.select(site_signatures).where(site_signatures.c.id.in_(ids))):
        trace: dict[str, object] = {
            "dose_id": row.dose_id,
            "site_id": row.site_id,
            "certificate": row.certificate,
            "kid": row.kid,
            "signed_at": _micros(row.signed_at),
        }
        out[row.id] = _entry(Kind.DOSE_RECORD, row.id, _sha256(row.cose), trace)
    return out


def _revocation_entries(conn: Connection, ids: list[int]) -> dict[int, bytes]:
    out = {}
    for row in conn.execute(sa.select(revocations).where(revocations.c.id.in_(ids))):
        content = cbor.dumps(
            [row.passport_id, row.hash_type, row.hash, row.kid, _micros(row.revoked_at), _micros(row.expires)]
        )
        trace: dict[str, object] = {"passport_id": row.passport_id, "revoked_at": _micros(row.revoked_at)}
        out[row.id] = _entry(Kind.REVOCATION, row.id, _sha256(content), trace)
    return out


def decode_entry(entry: bytes) -> tuple[Kind, int, bytes, dict[str, object]]:
    """(kind, object id, object hash, trace) of a stored entry; ValueError when it is not one."""
    try:
        value = cbor.loads(entry)
    except CborError as e:
        raise ValueError(f"not a log entry: {e.message}") from e
    if (
        not isinstance(value, list)
        or len(value) != 5
        or value[0] != ENTRY_VERSION
        or value[1] not in {k.value for k in Kind}
        or type(value[2]) is not int
        or not isinstance(value[3], bytes)
        or not isinstance(value[4], dict)
    ):
        raise ValueError("not a log entry: [version, kind, object id, object hash, trace] expected")
    return Kind(value[1]), value[2], value[3], value[4]
