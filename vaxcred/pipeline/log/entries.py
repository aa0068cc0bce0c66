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
    "decode_entry",
    "dose_batch_entry",
    "dose_batch_member_digest",
    "dose_batch_member_digests",
    "dose_record_entry",
    "revocation_entry",
    "site_record",
    "withdrawal_entry",
]

import enum
import hashlib
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Final

from vaxcred.codec import cbor
from vaxcred.errors import CborError
from vaxcred.merkle import HASH_LENGTH

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


def dose_record_entry(
    *,
    signature_id: int,
    dose_id: int,
    site_id: str,
    certificate: bytes,
    kid: bytes,
    signed_at: datetime,
    batch_id: int | None,
    leaf_index: int | None,
    record: bytes,
) -> bytes:
    """The entry of one stored site signature (``record``: its :func:`site_record`); a batch member names its
    batch and leaf index in the trace."""
    trace: dict[str, object] = {
        "dose_id": dose_id,
        "site_id": site_id,
        "certificate": certificate,
        "kid": kid,
        "signed_at": _micros(signed_at),
    }
    if batch_id is not None:
        trace["batch"] = batch_id
        trace["index"] = leaf_index
    return _entry(Kind.DOSE_RECORD, signature_id, _sha256(record), trace)


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
    reads its time and site). Site signing computes it in its signing process, beside the signature
    (:func:`dose_batch_member_digests`: a head's members at once)."""
    return dose_batch_member_digests(site_id, certificate, kid, signed_at, [(leaf_index, proof, payload)])[0]


def dose_batch_member_digests(
    site_id: str,
    certificate: bytes,
    kid: bytes,
    signed_at: datetime,
    members: Iterable[tuple[int, bytes, bytes]],
) -> list[bytes]:
    """:func:`dose_batch_member_digest` of each (leaf index, path, payload) of one batch head's members.

    The hashed content is written by hand, byte-identical to ``cbor.dumps`` of the row's list (canonical CBOR):
    the array head and the four columns every member of a head shares once, then each member's index, path and
    payload (about 5 µs less per member than cbor2). Any value outside those forms (a time before 1970, a
    non-UTF-8 text) goes the general way."""
    micros = _micros(signed_at)

    def general(index: object, proof: object, payload: object) -> bytes:
        return _sha256(cbor.dumps([site_id, certificate, kid, micros, index, proof, payload]))

    if (
        type(site_id) is not str
        or type(certificate) is not bytes
        or type(kid) is not bytes
        or type(micros) is not int
        or not 0 <= micros < 1 << 64
    ):
        return [general(*member) for member in members]
    try:
        site = cbor.encode_text(site_id)
    except UnicodeEncodeError:
        return [general(*member) for member in members]
    head = cbor.encode_head
    prefix = b"".join(
        (_MEMBER_ARRAY, site, head(2, len(certificate)), certificate, head(2, len(kid)), kid, head(0, micros))
    )
    sha256 = hashlib.sha256
    out: list[bytes] = []
    for index, proof, payload in members:
        if (
            type(index) is not int
            or not 0 <= index < 1 << 64
            or type(proof) is not bytes
            or type(payload) is not bytes
        ):
            out.append(general(index, proof, payload))
            continue
        out.append(
            sha256(
                b"".join(
                    (
                        prefix,
                        head(0, index),
                        head(2, len(proof)),
                        proof,
                        head(2, len(payload)),
                        payload,
                    )
                )
            ).digest()
        )
    return out


#: the CBOR head of a member row's seven-item array
_MEMBER_ARRAY: Final = cbor.encode_head(4, 7)


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
    :func:`~vaxcred.pipeline.log.stored.build_entries` reads them from the database; site signing builds the entry from the values it has
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


def revocation_entry(
    *,
    revocation_id: int,
    passport_id: int,
    hash_type: str,
    hash_value: bytes,
    kid: bytes,
    revoked_at: datetime,
    expires: datetime,
) -> bytes:
    """The entry of one revocation row from its stored values."""
    content = cbor.dumps([passport_id, hash_type, hash_value, kid, _micros(revoked_at), _micros(expires)])
    trace: dict[str, object] = {"passport_id": passport_id, "revoked_at": _micros(revoked_at)}
    return _entry(Kind.REVOCATION, revocation_id, _sha256(content), trace)


def withdrawal_entry(*, dose_id: int, correction_id: int | None, withdrawn_at: datetime) -> bytes:
    """The entry of a dose record's withdrawal (``doses.withdrawn_at``) by the ``duplicate`` correction
    ``correction_id``: ids and a time, nothing about the person or the dose's content."""
    at = _micros(withdrawn_at)
    trace: dict[str, object] = {"correction_id": correction_id, "withdrawn_at": at}
    return _entry(Kind.WITHDRAWAL, dose_id, _sha256(cbor.dumps([dose_id, correction_id, at])), trace)


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
