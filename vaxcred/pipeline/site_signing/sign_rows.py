"""Signing a batch's dose rows (CPU only, no database): ``per_signature`` rows of one site under each Merkle batch
head (:func:`~vaxcred.pipeline.site_signing.batch.sign_batch`), each signed row with its head, leaf index, audit
path, payload and the digest its batch's log entry hashes (:func:`vaxcred.pipeline.log.dose_batch_member_digest`).
Runs in the stage's process or in a signing process (:mod:`~vaxcred.pipeline.site_signing.pipelined`,
:mod:`~vaxcred.pipeline.site_signing.workers`)."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from cryptography.hazmat.primitives.serialization import Encoding

from vaxcred.crypto import Signer
from vaxcred.errors import VaxcredError
from vaxcred.pipeline import log
from vaxcred.pipeline.records.model import DoseRecord
from vaxcred.pipeline.site_signing.batch import SignedBatch, sign_batch, sign_dose_rows
from vaxcred.pipeline.site_signing.record import site_id_of
from vaxcred.pipeline.site_signing.work_queue import _DoseRow


def _fingerprint(der: bytes) -> bytes:
    return hashlib.sha256(der).digest()


class _Head(NamedTuple):
    """A signed batch head, not stored yet."""

    site_id: str
    kid: bytes
    cose: bytes
    size: int
    signed_at: dt.datetime


class _Signed(NamedTuple):
    """One signed dose: its batch head, leaf index, audit path and payload, and what its batch's log entry hashes
    of the row that will store them (:func:`vaxcred.pipeline.log.dose_batch_member_digest`)."""

    dose_id: int
    head: _Head
    leaf_index: int
    proof: bytes  # the audit path's hashes, concatenated
    payload: bytes
    digest: bytes


def _dose_record(row: _DoseRow) -> DoseRecord:
    return DoseRecord(
        citizen_id=row.citizen_id,
        vaccine=row.vaccine,
        lot=row.lot,
        date=row.date.isoformat(),
        dose_number=row.dose_number,
        site_id=row.site_id,
    )


def _certificate_row(signer: Signer) -> dict[str, Any]:
    cert = signer.certificate
    der = cert.public_bytes(Encoding.DER)
    return {
        "fingerprint": _fingerprint(der),
        "site_id": site_id_of(cert),
        "kid": signer.kid,
        "der": der,
        "not_before": cert.not_valid_before_utc,
        "not_after": cert.not_valid_after_utc,
    }


def _sign_rows(
    rows: Sequence[_DoseRow], signers: Mapping[str, Signer], now: dt.datetime, per_signature: int
) -> list[_Signed | str]:
    """Sign the rows (CPU only, no database), ``per_signature`` of one site under each batch head: a
    :class:`_Signed` per row, or the error code of a row that cannot be signed."""
    out: list[_Signed | str] = []
    start = 0
    while start < len(rows):
        site_id = rows[start].site_id
        end = start + 1
        while end < len(rows) and end - start < per_signature and rows[end].site_id == site_id:
            end += 1
        out.extend(_sign_chunk(rows[start:end], site_id, signers[site_id], now))
        start = end
    return out


def _sign_chunk(
    chunk: Sequence[_DoseRow], site_id: str, signer: Signer, now: dt.datetime
) -> list[_Signed | str]:
    """One batch head's rows (one site) signed: the usual rows' payloads written straight from them
    (:func:`~vaxcred.pipeline.site_signing.batch.sign_dose_rows`), any other batch the records' general way."""
    try:
        straight = sign_dose_rows(chunk, signer=signer, now=now)
        if straight is None:
            return _members(
                chunk, sign_batch([_dose_record(row) for row in chunk], signer=signer, now=now), signer
            )
    except (VaxcredError, ValueError, TypeError) as e:
        return [e.code if isinstance(e, VaxcredError) else type(e).__name__] * len(chunk)
    # every row signed, row i at leaf i
    head = _Head(site_id, straight.kid, straight.head, len(chunk), straight.signed_at)
    proofs = [b"".join(proof) for proof in straight.proofs]
    digests = log.dose_batch_member_digests(
        site_id,
        _fingerprint(signer.certificate.public_bytes(Encoding.DER)),
        head.kid,
        head.signed_at,
        zip(range(len(chunk)), proofs, straight.payloads, strict=True),
    )
    return [
        _Signed(row.id, head, index, proof, payload, digest)
        for row, index, proof, payload, digest in zip(
            chunk, range(len(chunk)), proofs, straight.payloads, digests, strict=True
        )
    ]


def _members(chunk: Sequence[_DoseRow], batch: SignedBatch, signer: Signer) -> list[_Signed | str]:
    """The :class:`_Signed` of each row ``batch`` signed, the error code of each it refused."""
    if batch.head is None:
        return [o.code if isinstance(o, VaxcredError) else "sitesign.bad_record" for o in batch.outcomes]
    head = _Head(batch.site_id, batch.kid, batch.head, batch.size, batch.signed_at)
    members = [
        (row.id, o.index, b"".join(o.proof), o.payload)
        for row, o in zip(chunk, batch.outcomes, strict=True)
        if not isinstance(o, VaxcredError)
    ]
    fingerprint = _fingerprint(signer.certificate.public_bytes(Encoding.DER))
    digests = iter(
        log.dose_batch_member_digests(
            batch.site_id, fingerprint, head.kid, head.signed_at, [m[1:] for m in members]
        )
    )
    signed = iter(members)
    out: list[_Signed | str] = []
    for outcome in batch.outcomes:
        if isinstance(outcome, VaxcredError):
            out.append(outcome.code)
            continue
        dose_id, index, proof, payload = next(signed)
        out.append(_Signed(dose_id, head, index, proof, payload, next(digests)))
    return out
