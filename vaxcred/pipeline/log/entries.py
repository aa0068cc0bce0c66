"""What the issuance log records about each signed object: the entry, built from the object's stored row.

An entry is canonical CBOR ``[2, kind, object_id, object_hash, trace]`` (2: :data:`ENTRY_VERSION`):

==============  ===============================  ==========================================================
kind            object hash (SHA-256 of)         trace (what the signature relied on; ids, times, kids only)
==============  ===============================  ==========================================================
``dose_record`` the site's COSE_Sign1 bytes (a v1  dose id, site id, site-certificate fingerprint, kid, signing
                record, signed on its own)        time
``dose_batch``  SHA-256(head) ‖ for each member    site id, site-certificate fingerprint, kid, signing time, size,
                SHA-256 of its row's [site id,     the members as [signature id, dose id, leaf index] in
                certificate, kid, signing time,    signature id order
                leaf index, path, payload], in
                signature id order (batch site
                signing: one entry per batch
                covers its members)
``passport``    the HC1 text (UTF-8)             person id, DSC kid, iat, exp, issuance time, registry
                                                 check id, the (dose id, site signature id) pairs it was
                                                 built from, the passport it supersedes
``revocation``  the revocation row (hash type,   passport id, time
                hash, kid, times), canonical CBOR
``withdrawal``  [dose id, correction id,         the correction that withdrew the dose, the withdrawal time
                withdrawal time], canonical      (object id: the dose id — a dose is withdrawn once, never
                CBOR                             restored)
==============  ===============================  ==========================================================

A withdrawal's correction is the resolved ``duplicate`` correction naming the dose (the lowest id if a database
ever held two); ``None`` when there is none — a withdrawal made by hand before withdrawals were logged, adopted
into the log by migration 0006, which the audit reports for ever (``log.withdrawal_uncorrected``).

No names, citizen IDs or dates of birth: the log holds hashes and ids (SECURITY.md §4, "Retention"). The same
builder makes the entry when an object is logged and when the audit recomputes it from the database, so any
change to a logged row — its bytes, its times, its evidence links — changes the entry.
"""

from __future__ import annotations

__all__ = [
    "ENTRY_VERSION",
    "BatchMemberRow",
    "Kind",
    "build_entries",
    "decode_entry",
    "dose_batch_entry",
    "dose_batch_member_digest",
    "passport_entry",
    "site_record",
    "withdrawal_entry",
]

import enum
import hashlib
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from vaxcred.codec import cbor
from vaxcred.errors import CborError
from vaxcred.merkle import HASH_LENGTH
from vaxcred.storage.schema import (
    CorrectionState,
    corrections,
    doses,
    passport_doses,
    passports,
    revocations,
    site_signature_batches,
    site_signatures,
)

#: 2: the passport trace names the person the passport belongs to (version 1 did not)
ENTRY_VERSION: Final = 2
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND: Final = timedelta(microseconds=1)


class Kind(enum.StrEnum):
    """The kinds of signed object the log records."""

    DOSE_RECORD = "dose_record"
    DOSE_BATCH = "dose_batch"
    PASSPORT = "passport"
    REVOCATION = "revocation"
    WITHDRAWAL = "withdrawal"


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
    if kind is Kind.DOSE_BATCH:
        return _dose_batch_entries(conn, ids)
    if kind is Kind.WITHDRAWAL:
        return _withdrawal_entries(conn, ids)
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


_HASH_HEAD: Final = cbor.encode_head(2, HASH_LENGTH)
_RECORD_START: Final = b"\x85\x02"  # [2, ...


def site_record(cose: bytes, head: bytes | None, leaf_index: int | None, proof: bytes | None) -> bytes:
    """A stored site signature as one verifiable record: a v1 row's COSE_Sign1 (``head`` None), or a batch
    member's standalone record ``[2, head, index, [path...], payload]`` in canonical CBOR (written by hand: it is
    assembled for every logged, audited or exported member; byte for byte ``cbor.dumps`` of that list, and what
    :func:`vaxcred.pipeline.site_signing.batch_codec.encode_batch_record` writes)."""
    if head is None:
        return bytes(cose)
    path = bytes(proof or b"")
    if (
        leaf_index is None or leaf_index < 0 or len(path) % HASH_LENGTH
    ):  # not a member: as it is, unverifiable
        nodes = [path[i : i + HASH_LENGTH] for i in range(0, len(path), HASH_LENGTH)]
        return cbor.dumps([2, bytes(head), leaf_index, nodes, bytes(cose)])
    parts = [_RECORD_START, cbor.encode_head(2, len(head)), bytes(head), cbor.encode_head(0, leaf_index)]
    parts.append(cbor.encode_head(4, len(path) // HASH_LENGTH))
    for i in range(0, len(path), HASH_LENGTH):
        parts.append(_HASH_HEAD)
        parts.append(path[i : i + HASH_LENGTH])
    parts.append(cbor.encode_head(2, len(cose)))
    parts.append(bytes(cose))
    return b"".join(parts)


def _dose_record_entries(conn: Connection, ids: list[int]) -> dict[int, bytes]:
    out = {}
    query = (
        sa.select(site_signatures, site_signature_batches.c.head)
        .select_from(
            site_signatures.outerjoin(
                site_signature_batches, site_signature_batches.c.id == site_signatures.c.batch_id
            )
        )
        .where(site_signatures.c.id.in_(ids))
    )
    for row in conn.execute(query):
        trace: dict[str, object] = {
            "dose_id": row.dose_id,
            "site_id": row.site_id,
            "certificate": row.certificate,
            "kid": row.kid,
            "signed_at": _micros(row.signed_at),
        }
        if row.batch_id is not None:
            trace["batch"] = row.batch_id
            trace["index"] = row.leaf_index
        record = site_record(row.cose, row.head, row.leaf_index, row.proof)
        out[row.id] = _entry(Kind.DOSE_RECORD, row.id, _sha256(record), trace)
    return out


#: one member row of a dose batch as its log entry hashes it: (signature id, dose id, site id, certificate
#: fingerprint, kid, signing time, leaf index, audit path, payload)
BatchMemberRow = tuple[int, int, str, bytes, bytes, datetime, int, bytes, bytes]


def dose_batch_member_digest(
    site_id: str,
    certificate: bytes,
    kid: bytes,
    signed_at: datetime,
    leaf_index: int,
    proof: bytes,
    payload: bytes,
) -> bytes:
    """What a dose batch's entry hashes of one member row: every column a reader relies on (the anomaly report
    reads its time and site). Site signing computes it in its signing process, beside the signature."""
    return _sha256(cbor.dumps([site_id, certificate, kid, _micros(signed_at), leaf_index, proof, payload]))


def dose_batch_entry(
    *,
    batch_id: int,
    site_id: str,
    certificate: bytes,
    kid: bytes,
    signed_at: datetime,
    size: int,
    head: bytes,
    members: Iterable[BatchMemberRow],
    member_digests: Iterable[bytes] | None = None,
) -> bytes:
    """The entry of one dose batch from its stored values, ``members`` in signature id order.
    :func:`build_entries` reads them from the database; site signing builds the entry from the values it has
    just inserted, in the same transaction (the audit recomputes it from the rows), passing each member's
    :func:`dose_batch_member_digest` of those values, computed beforehand, in ``member_digests``."""
    rows = list(members)
    listed = [[sig_id, dose_id, leaf_index] for sig_id, dose_id, *_, leaf_index, _, _ in rows]
    if member_digests is None:
        member_digests = [dose_batch_member_digest(*row[2:]) for row in rows]
    digests = [_sha256(bytes(head)), *member_digests]
    if len(digests) != len(rows) + 1:
        raise ValueError("one digest per member")
    trace: dict[str, object] = {
        "site_id": site_id,
        "certificate": certificate,
        "kid": kid,
        "signed_at": _micros(signed_at),
        "size": size,
        "members": listed,
    }
    return _entry(Kind.DOSE_BATCH, batch_id, _sha256(b"".join(digests)), trace)


def _dose_batch_entries(conn: Connection, ids: list[int]) -> dict[int, bytes]:
    heads = {
        row.id: row
        for row in conn.execute(sa.select(site_signature_batches).where(site_signature_batches.c.id.in_(ids)))
    }
    members: dict[int, list[Any]] = {batch_id: [] for batch_id in heads}
    for row in conn.execute(
        sa.select(
            site_signatures.c.batch_id,
            site_signatures.c.id,
            site_signatures.c.dose_id,
            site_signatures.c.site_id,
            site_signatures.c.certificate,
            site_signatures.c.kid,
            site_signatures.c.signed_at,
            site_signatures.c.leaf_index,
            site_signatures.c.proof,
            site_signatures.c.cose,
        )
        .where(site_signatures.c.batch_id.in_(ids))
        .order_by(site_signatures.c.batch_id, site_signatures.c.id)
    ):
        members[row[0]].append(tuple(row[1:]))
    return {
        batch_id: dose_batch_entry(
            batch_id=batch_id,
            site_id=head.site_id,
            certificate=head.certificate,
            kid=head.kid,
            signed_at=head.signed_at,
            size=head.size,
            head=head.head,
            members=members[batch_id],
        )
        for batch_id, head in heads.items()
    }


def _revocation_entries(conn: Connection, ids: list[int]) -> dict[int, bytes]:
    out = {}
    for row in conn.execute(sa.select(revocations).where(revocations.c.id.in_(ids))):
        content = cbor.dumps(
            [row.passport_id, row.hash_type, row.hash, row.kid, _micros(row.revoked_at), _micros(row.expires)]
        )
        trace: dict[str, object] = {"passport_id": row.passport_id, "revoked_at": _micros(row.revoked_at)}
        out[row.id] = _entry(Kind.REVOCATION, row.id, _sha256(content), trace)
    return out


#: the ``corrections.field`` of a correction that withdraws its dose (``CorrectionField.DUPLICATE``: corrections
#: sit above the log)
_DUPLICATE: Final = "duplicate"


def withdrawal_entry(*, dose_id: int, correction_id: int | None, withdrawn_at: datetime) -> bytes:
    """The entry of a dose record's withdrawal (``doses.withdrawn_at``) by the ``duplicate`` correction
    ``correction_id``: ids and a time, nothing about the person or the dose's content."""
    at = _micros(withdrawn_at)
    trace: dict[str, object] = {"correction_id": correction_id, "withdrawn_at": at}
    return _entry(Kind.WITHDRAWAL, dose_id, _sha256(cbor.dumps([dose_id, correction_id, at])), trace)


def _withdrawal_entries(conn: Connection, ids: list[int]) -> dict[int, bytes]:
    """The withdrawn doses among ``ids`` (a dose in force has no withdrawal: absent from the result)."""
    by_dose: dict[int, int] = dict(
        conn.execute(
            sa.select(corrections.c.dose_id, sa.func.min(corrections.c.id))
            .where(
                corrections.c.dose_id.in_(ids),
                corrections.c.field == _DUPLICATE,
                corrections.c.state == CorrectionState.RESOLVED.value,
            )
            .group_by(corrections.c.dose_id)
        ).all()
    )
    query = sa.select(doses.c.id, doses.c.withdrawn_at).where(
        doses.c.id.in_(ids), doses.c.withdrawn_at.is_not(None)
    )
    return {
        dose_id: withdrawal_entry(dose_id=dose_id, correction_id=by_dose.get(dose_id), withdrawn_at=at)
        for dose_id, at in conn.execute(query)
    }


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
