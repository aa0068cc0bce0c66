"""Batch site signing (ký số theo lô): one site signature over the Merkle root of a batch of its dose records,
each record keeping its inclusion proof, so that it stays verifiable on its own.

::

    member payload  canonical CBOR map, text keys (the v1 payload without "signed"; its head carries the time):
                    {"v": 2, "site", "cid": SHA-256(salt ‖ citizen id), "salt", "mp", "ma", "vp", "lot", "dt", "dn"}
    leaf            RFC 9162 HASH(0x00 ‖ member payload)                               (vaxcred.merkle)
    batch head      COSE_Sign1 (tag 18), protected {1: alg, 3: "application/vnd.vaxcred.dose-batch+cbor", 4: kid},
                    payload {"v": 2, "site", "root": MTH(leaves), "size": n, "signed": seconds}
    batch record    [head, leaf index, audit path, member payload]    (one member, standalone: batch_codec)

The head's content type is neither a passport's (a CWT, integer keys) nor a v1 record's, so a head never
passes as either, and a member payload is never signed on its own. :func:`sign_batch` signs up to
:data:`~vaxcred.pipeline.site_signing.batch_codec.MAX_BATCH_MEMBERS` doses of one site with one signature (the
audit paths of all members are built at once, :func:`vaxcred.merkle.root_and_proofs`).

Verification (:func:`verify_batch_record`, reached through
:func:`~vaxcred.pipeline.site_signing.record.verify_dose`, which reads the format from the first byte):

(1) envelope:   the batch record's strict, bounded, canonical decode; the head's COSE envelope as for v1, with
                the batch content type
(2) purpose, (3) kid, (4) signature: as for v1, on the head
(5) payload:    the head's payload (exactly its fields, canonical), then the member's (exactly its fields,
                canonical); inclusion: index < size and the audit path leads from HASH(0x00 ‖ payload) to the
                signed root (RFC 9162 §2.1.3.2) — else ``sitesign.not_in_batch`` (SignatureError)
(6) site:       the member's site is the head's, and the head's is the certificate's
(7) time, (8) chain, (9) citizen: as for v1, with the head's signing time

Steps (1)–(5) of the head depend only on the head bytes and the certificate, so their outcome is kept in a
bounded per-process cache keyed by exactly those (:data:`HEAD_CACHE_SIZE` entries): a verifier of many members
of one batch checks its signature once and then hashes ~log2(n) nodes per member (issuance's
:func:`batch_member_is`: fewer, its paths stopping at nodes the batch's earlier members proved,
:class:`~vaxcred.merkle.KnownTree`, :data:`KNOWN_TREES` trees a process). Everything else runs for every member. What a proof shows of other members: only their leaf hashes, hashes of payloads that carry a
random 16-byte salt each (SECURITY.md, "Batch site signatures").

Pure: no files, no clock (``now`` is a parameter); salts come from :mod:`secrets`.
"""

from __future__ import annotations

import functools
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final

from cryptography import x509

from vaxcred.codec import cose
from vaxcred.crypto import Signer
from vaxcred.errors import KeyUsageError, SignatureError, VaxcredError
from vaxcred.merkle import HASH_LENGTH, KnownTree, leaf_hash, root_and_proofs, verify_inclusion
from vaxcred.pipeline.errors import PipelineError
from vaxcred.pipeline.records.model import DoseRecord
from vaxcred.pipeline.site_signing.batch_codec import (
    BATCH_CONTENT_TYPE,
    MAX_BATCH_MEMBERS,
    _decode_batch_record,
    _decode_head_payload,
    _encode_head_payload,
    _HeadClaims,
    encode_batch_record,
)
from vaxcred.pipeline.site_signing.certs import _CertRef, _facts
from vaxcred.pipeline.site_signing.claims import (
    SALT_LENGTH,
    DoseClaims,
    citizen_hash,
)
from vaxcred.pipeline.site_signing.decoding import (
    _decode_envelope,
    _decode_leaf,
)
from vaxcred.pipeline.site_signing.encoding import (
    _encode_leaf,
    _protected_header,
)
from vaxcred.pipeline.site_signing.leaf_match import _leaf_is
from vaxcred.pipeline.site_signing.leaves import DoseRowFields, member_payloads
from vaxcred.pipeline.site_signing.steps import (
    _check_claims,
    _check_envelope_signer,
    _check_signer,
    _dose_fields,
    _signing_day,
)
from vaxcred.trust.store import require_utc

__all__ = [
    "HEAD_CACHE_SIZE",
    "KNOWN_TREES",
    "BatchMember",
    "SignedBatch",
    "batch_member_is",
    "sign_batch",
    "verify_batch_member",
    "verify_batch_record",
]

#: batch heads whose verification outcome a process keeps (keyed by the head bytes and the certificate)
HEAD_CACHE_SIZE: Final = 16384


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchMember:
    """One signed dose of a batch: its leaf index, audit path and payload (the leaf's entry)."""

    index: int
    proof: tuple[bytes, ...] = field(repr=False)
    payload: bytes = field(repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class SignedBatch:
    """The outcome of :func:`sign_batch`: the signed head and, for each dose in the order given, its member or
    the :class:`PipelineError` refusing it (``head`` is ``None`` when no dose could be signed)."""

    head: bytes | None = field(repr=False)
    kid: bytes
    site_id: str
    signed_at: datetime
    size: int
    outcomes: tuple[BatchMember | PipelineError, ...]

    def record(self, member: BatchMember) -> bytes:
        """The standalone batch record of ``member`` (verifiable with the site certificate alone)."""
        if self.head is None:
            raise ValueError("an empty batch has no records")
        return encode_batch_record(self.head, member.index, member.proof, member.payload)


def sign_batch(doses: Sequence[DoseRecord], *, signer: Signer, now: datetime) -> SignedBatch:
    """Sign ``doses`` (all recorded by the signer's site) as one batch at ``now`` (aware).

    The signer is refused as a whole like :func:`~vaxcred.pipeline.site_signing.record.sign_dose` refuses it
    (``sitesign.wrong_purpose``, ``sitesign.cert_not_valid``); a dose that cannot be signed
    (``sitesign.not_own_record``, ``sitesign.unknown_vaccine``, ``sitesign.bad_record``) is refused alone, in
    ``outcomes``, and left out of the tree. ``ValueError`` for more than ``MAX_BATCH_MEMBERS`` doses.
    """
    site_id, signed_at = _start(len(doses), signer, now)
    payloads: list[bytes | PipelineError] = []
    # every dose's salt from one read of the system's CSPRNG (what secrets.token_bytes reads, once a dose)
    salts = secrets.token_bytes(SALT_LENGTH * len(doses))
    for i, dose in enumerate(doses):
        try:
            fields = _dose_fields(dose, site_id, signed_at)
        except PipelineError as e:
            payloads.append(e)
            continue
        salt = salts[i * SALT_LENGTH : (i + 1) * SALT_LENGTH]
        payloads.append(_encode_leaf(cid=citizen_hash(dose.citizen_id, salt), salt=salt, **fields))  # type: ignore[arg-type]
    return _sign_payloads(payloads, signer, site_id, signed_at)


@dataclass(frozen=True, slots=True, kw_only=True)
class SignedRows:
    """The outcome of :func:`sign_dose_rows`: every row signed, row ``i`` at leaf index ``i`` with its
    ``payloads[i]`` and audit path ``proofs[i]`` (what :func:`sign_batch`'s ``outcomes`` hold, as columns)."""

    head: bytes = field(repr=False)
    kid: bytes
    site_id: str
    signed_at: datetime
    payloads: tuple[bytes, ...] = field(repr=False)
    proofs: tuple[tuple[bytes, ...], ...] = field(repr=False)


def sign_dose_rows(rows: Sequence[DoseRowFields], *, signer: Signer, now: datetime) -> SignedRows | None:
    """:func:`sign_batch` of the rows' :class:`DoseRecord` objects, each payload written straight from its row
    (:func:`~vaxcred.pipeline.site_signing.leaves.member_payloads`: the same bytes, no record built), or
    ``None`` when a row is not in the usual form (then ``sign_batch`` of the records refuses it as always;
    so every row of a batch this returns is signed). The signer is refused as ``sign_batch`` refuses it."""
    site_id, signed_at = _start(len(rows), signer, now)
    salts = secrets.token_bytes(SALT_LENGTH * len(rows))
    payloads = member_payloads(rows, site_id, _signing_day(signed_at), salts)
    if not payloads:
        return None
    head, proofs = _sign_members(payloads, signer, site_id, signed_at)
    return SignedRows(
        head=head,
        kid=signer.kid,
        site_id=site_id,
        signed_at=signed_at,
        payloads=tuple(payloads),
        proofs=proofs,
    )


def _start(count: int, signer: Signer, now: datetime) -> tuple[str, datetime]:
    """(the signer's site, the signing time) once ``count`` doses may be signed by ``signer`` at ``now``."""
    now = require_utc(now)
    if count > MAX_BATCH_MEMBERS:
        raise ValueError(f"a batch holds at most {MAX_BATCH_MEMBERS} doses")
    signed_at = now.replace(microsecond=0)
    return _check_signer(signer, signed_at), signed_at


def _sign_members(
    members: Sequence[bytes], signer: Signer, site_id: str, signed_at: datetime
) -> tuple[bytes, tuple[tuple[bytes, ...], ...]]:
    """The signed head over the member payloads ``members`` (at least one) and each one's audit path."""
    top, proofs = root_and_proofs([leaf_hash(p) for p in members])
    head_payload = _encode_head_payload(site_id, top, len(members), int(signed_at.timestamp()))
    protected = _protected_header(int(signer.algorithm), signer.kid, BATCH_CONTENT_TYPE)
    head = cose.encode_sign1(
        protected, head_payload, signer.sign(cose.sig_structure_for(protected, head_payload))
    )
    return head, proofs


def _sign_payloads(
    payloads: Sequence[bytes | PipelineError], signer: Signer, site_id: str, signed_at: datetime
) -> SignedBatch:
    """The batch of the member ``payloads`` (a refusal stays in its place among the outcomes), signed."""
    members = [p for p in payloads if isinstance(p, bytes)]
    kid = signer.kid
    if not members:
        refused = tuple(p for p in payloads if isinstance(p, PipelineError))
        return SignedBatch(head=None, kid=kid, site_id=site_id, signed_at=signed_at, size=0, outcomes=refused)
    head, proofs = _sign_members(members, signer, site_id, signed_at)
    outcomes: list[BatchMember | PipelineError] = []
    index = 0
    for p in payloads:
        if isinstance(p, PipelineError):
            outcomes.append(p)
            continue
        outcomes.append(BatchMember(index=index, proof=proofs[index], payload=p))
        index += 1
    return SignedBatch(
        head=head, kid=kid, site_id=site_id, signed_at=signed_at, size=len(members), outcomes=tuple(outcomes)
    )


# --- verification ------------------------------------------------------------------------------------------


def _verify_head(head: bytes, certificate: x509.Certificate) -> _HeadClaims:
    """Steps (1)–(5) of the head alone: what depends only on its bytes and the certificate."""
    # (1) envelope
    msg, alg, kid = _decode_envelope(head, BATCH_CONTENT_TYPE)
    # (2)–(4) purpose, kid, signature
    _check_envelope_signer(msg, alg, kid, certificate)
    # (5) the head's payload
    return _decode_head_payload(msg.payload, kid)


@functools.lru_cache(maxsize=HEAD_CACHE_SIZE)
def _head_outcome(head: bytes, certificate: _CertRef) -> _HeadClaims | VaxcredError:
    """Keyed by the certificate's DER (:class:`~vaxcred.pipeline.site_signing.certs._CertRef`), whose hash a
    bytes object keeps: hashing the pyca certificate itself on every member cost more than the rest of the key."""
    try:
        return _verify_head(head, certificate.certificate)
    except VaxcredError as e:
        return e


def verify_batch_member(
    head: bytes,
    index: int,
    proof: Sequence[bytes],
    payload: bytes,
    *,
    site_certificate: x509.Certificate,
    site_ca: x509.Certificate | None = None,
    citizen_id: str | None = None,
    now: datetime | None = None,
    skew: timedelta = timedelta(0),
) -> DoseClaims:
    """:func:`verify_batch_record` on the record's parts (as stored: no assembling, no re-decoding)."""
    if now is not None:
        now = require_utc(now)
    if not isinstance(head, bytes) or not isinstance(payload, bytes):
        raise TypeError("head and payload are bytes")
    # (1)–(5) of the head, once per head and certificate in this process
    outcome = _head_outcome(head, _facts(site_certificate).ref)
    if isinstance(outcome, VaxcredError):
        raise outcome.with_traceback(None)
    # (5) the member's payload, and its place under the signed root
    claims = _decode_leaf(payload, outcome.kid, outcome.signed_at)
    if not verify_inclusion(leaf_hash(payload), index, outcome.size, proof, outcome.root):
        raise SignatureError(
            "the record is not in the signed batch (its audit path does not lead to the signed root)",
            code="sitesign.not_in_batch",
        )
    # (6) site: the member's is the head's (the head's is the certificate's: _check_claims)
    if claims.site_id != outcome.site_id:
        raise KeyUsageError(
            f"record of site {claims.site_id} in a batch of site {outcome.site_id}",
            code="sitesign.not_own_record",
        )
    # (6)–(9) site, time, chain, citizen
    _check_claims(claims, site_certificate, site_ca=site_ca, citizen_id=citizen_id, now=now, skew=skew)
    return claims


def batch_member_is(
    head: bytes,
    index: int,
    proof: bytes,
    payload: bytes,
    *,
    site_certificate: x509.Certificate,
    citizen_id: str,
    now: datetime,
    site_id: str,
    mp: str,
    ma: str,
    vp: str,
    lot: str,
    date: str,
    dose_number: int,
) -> datetime | None:
    """The signing time when the stored batch member (``proof``: its concatenated audit path) is a valid record
    of exactly these values for ``citizen_id`` — :func:`verify_batch_member` with ``site_certificate``,
    ``citizen_id`` and ``now`` (no site CA, no skew) would accept it and return claims with these values —
    else ``None``: not shown here, which is no verdict (verify it to learn whether and why it fails).

    What issuance asks of each of a passport's records, in one pass: the head's steps (1)–(5) from the same
    per-process cache as :func:`verify_batch_member` (keyed by the head's bytes and the certificate's DER: a
    forged head is another key, verified on its own), the head's site and signing time against the certificate
    and ``now`` (steps (6), (7)), then the member's payload compared, as bytes, with the canonical encoding of
    the expected values (:func:`~vaxcred.pipeline.site_signing.leaf_match._leaf_is`: step (5)'s decoding and checks,
    and step (9), without decoding), and its audit path to the signed root — every member, every time (the path
    hashed up to the first node an earlier member's accepted path proved under that root,
    :class:`~vaxcred.merkle.KnownTree`: the same answer as hashing it to the root)."""
    # an exact datetime in UTC is what require_utc would return (astimezone to its own zone): only other values
    # go through it (issuance asks with the same UTC `now` for every record)
    if type(now) is not datetime or now.tzinfo is not UTC:
        try:
            now = require_utc(now)
        except (TypeError, ValueError):
            return None
    if (
        type(head) is not bytes
        or type(proof) is not bytes
        or type(index) is not int
        or len(proof) % HASH_LENGTH
    ):
        return None
    facts = _facts(site_certificate)
    outcome = _head_outcome(head, facts.ref)
    if isinstance(outcome, VaxcredError):
        return None
    signed_at = outcome.signed_at
    # (6) site: the record's is the head's, the head's the certificate's; (7) time: the certificate valid at the
    # signing time, which is not after now
    if (
        facts.site_id is None
        or not site_id == outcome.site_id == facts.site_id
        or not facts.not_before <= signed_at <= facts.not_after
        or signed_at > now
    ):
        return None
    # (5) the payload, and (9) the citizen
    if not _leaf_is(
        payload, citizen_id=citizen_id, site=site_id, mp=mp, ma=ma, vp=vp, lot=lot, dt=date, dn=dose_number
    ):
        return None
    # (5) its place under the signed root (the nodes earlier members' paths proved under it are not hashed again)
    if not _known_tree(outcome.size, outcome.root).verify_path(leaf_hash(payload), index, proof):
        return None
    return signed_at


#: the signed trees whose proved nodes a process keeps for :func:`batch_member_is` (keyed by size and root, taken
#: from verified heads only); issuance meets about 25 batches at a time (those of one stretch of persons)
KNOWN_TREES: Final = 256
_known_tree: Final = functools.lru_cache(maxsize=KNOWN_TREES)(KnownTree)


def verify_batch_record(
    data: bytes,
    *,
    site_certificate: x509.Certificate,
    site_ca: x509.Certificate | None = None,
    citizen_id: str | None = None,
    now: datetime | None = None,
    skew: timedelta = timedelta(0),
) -> DoseClaims:
    """Verify a standalone batch record (steps in the module documentation) and return its claims."""
    head, index, proof, payload = _decode_batch_record(data)
    return verify_batch_member(
        head,
        index,
        proof,
        payload,
        site_certificate=site_certificate,
        site_ca=site_ca,
        citizen_id=citizen_id,
        now=now,
        skew=skew,
    )
