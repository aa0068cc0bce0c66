"""The wire format of batch site signing (:mod:`vaxcred.pipeline.site_signing.batch`): the batch head's payload
and the standalone encoding of one batch member.

::

    head payload     canonical CBOR map, text keys:
                     {"v": 2, "site": site id, "root": 32-byte RFC 9162 root, "size": leaves, "signed": seconds}
    batch record     canonical CBOR array of five:  [2, head: bstr (the COSE_Sign1), index: uint,
                                                     proof: [bstr .size 32, ...], payload: bstr (the leaf)]

A v1 record starts with tag 18 (0xd2), a batch record with ``0x85 0x02`` (an array of five, version 2; an
untagged COSE_Sign1 is an array of four): the format is read from the first bytes, and each decoder then
accepts only its own shape. Decoding is bounded (total size, each part's
size, proof length, nesting depth 2) and canonical; malformed input raises :class:`~vaxcred.errors.CoseError`
(``sitesign.too_large``, ``sitesign.bad_tag``, ``sitesign.bad_batch_record``, ``sitesign.not_canonical``,
``sitesign.bad_payload``), never anything untyped. Pure: no keys, no clock, no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from vaxcred.codec import cbor
from vaxcred.errors import CborError, CoseError
from vaxcred.merkle import HASH_LENGTH
from vaxcred.pipeline.log.entries import site_record
from vaxcred.pipeline.site_signing.certs import _SITE_ID_RE
from vaxcred.pipeline.site_signing.claims import BATCH_VERSION
from vaxcred.pipeline.site_signing.decoding import (
    _MAX_RECORD_BYTES,
    MAX_SIGNED,
    _bytes,
    _decode_map,
    _integer,
    _text,
)

__all__ = ["BATCH_CONTENT_TYPE", "MAX_BATCH_MEMBERS", "encode_batch_record"]

#: the COSE content type (header 3) of a batch head: never a passport (CWT) nor a v1 dose record
BATCH_CONTENT_TYPE: Final = "application/vnd.vaxcred.dose-batch+cbor"
#: the largest batch a head may announce (a proof is then at most 16 hashes)
MAX_BATCH_MEMBERS: Final = 1 << 16
_MAX_PROOF: Final = (MAX_BATCH_MEMBERS - 1).bit_length()
_HEAD_FIELDS: Final = frozenset({"v", "site", "root", "size", "signed"})
#: first bytes of a batch record: a definite array of five, then the version 2
BATCH_RECORD_START: Final = b"\x85\x02"
#: a member's payload is ~130 bytes; a head as large as a v1 record
_MAX_PAYLOAD_BYTES: Final = 1024
_MAX_BATCH_RECORD_BYTES: Final = _MAX_RECORD_BYTES + _MAX_PAYLOAD_BYTES + _MAX_PROOF * 34 + 16


@dataclass(frozen=True, slots=True, kw_only=True)
class _HeadClaims:
    """A batch head's payload, decoded (verified only when its envelope's signature was)."""

    site_id: str
    root: bytes
    size: int
    signed_at: datetime
    kid: bytes


def _encode_head_payload(site_id: str, root: bytes, size: int, signed: int) -> bytes:
    return cbor.dumps({"v": BATCH_VERSION, "site": site_id, "root": root, "size": size, "signed": signed})


def _decode_head_payload(raw: bytes, kid: bytes) -> _HeadClaims:
    payload = _decode_map(raw, _HEAD_FIELDS, BATCH_VERSION, what="batch head payload")
    return _HeadClaims(
        site_id=_text(payload, "site", _SITE_ID_RE),
        root=_bytes(payload, "root", HASH_LENGTH),
        size=_integer(payload, "size", 1, MAX_BATCH_MEMBERS),
        signed_at=datetime.fromtimestamp(_integer(payload, "signed", 0, MAX_SIGNED), UTC),
        kid=kid,
    )


def encode_batch_record(head: bytes, index: int, proof: Sequence[bytes], payload: bytes) -> bytes:
    """The standalone batch record: the signed head, the member's leaf index and audit path, its payload
    (canonical CBOR, assembled by hand by :func:`vaxcred.pipeline.log.entries.site_record`, the one writer of
    the stored form, which the log hashes)."""
    if type(index) is not int or index < 0 or any(len(node) != HASH_LENGTH for node in proof):
        raise ValueError("a member has an index >= 0 and an audit path of 32-byte hashes")
    return site_record(payload, head, index, b"".join(proof))


def _bad_batch_record(message: str) -> CoseError:
    return CoseError(f"batch record: {message}", code="sitesign.bad_batch_record")


def _decode_batch_record(data: bytes) -> tuple[bytes, int, tuple[bytes, ...], bytes]:
    """Step (1) of a batch record: (head bytes, leaf index, proof, payload), bounded and canonical."""
    if len(data) > _MAX_BATCH_RECORD_BYTES:
        raise CoseError(
            f"record of {len(data)} bytes exceeds {_MAX_BATCH_RECORD_BYTES}", code="sitesign.too_large"
        )
    if not data.startswith(BATCH_RECORD_START):
        raise CoseError("a batch record is a CBOR array of five starting with 2", code="sitesign.bad_tag")
    try:
        value = cbor.loads(data, max_depth=2)
    except CborError as e:
        raise _bad_batch_record(f"not valid CBOR ({e.code})") from e
    if not isinstance(value, list) or len(value) != 5 or value[0] != BATCH_VERSION:
        raise _bad_batch_record("not an array of five starting with 2")
    _, head, index, proof, payload = value
    if not isinstance(head, bytes) or not isinstance(payload, bytes) or len(payload) > _MAX_PAYLOAD_BYTES:
        raise _bad_batch_record("head and payload are byte strings")
    if type(index) is not int or not 0 <= index < MAX_BATCH_MEMBERS:
        raise _bad_batch_record(f"the leaf index is not an integer below {MAX_BATCH_MEMBERS}")
    if (
        not isinstance(proof, list)
        or len(proof) > _MAX_PROOF
        or not all(isinstance(node, bytes) and len(node) == HASH_LENGTH for node in proof)
    ):
        raise _bad_batch_record(f"the proof is not a list of at most {_MAX_PROOF} 32-byte hashes")
    nodes = tuple(proof)
    if encode_batch_record(head, index, nodes, payload) != data:
        raise CoseError("batch record is not canonical CBOR", code="sitesign.not_canonical")
    return head, index, nodes, payload
