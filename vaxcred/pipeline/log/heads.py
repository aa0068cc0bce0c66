"""Signed tree heads: the log signer's COSE_Sign1 over (tree size, root hash, time).

A head is ``COSE_Sign1`` (tag 18) with protected header ``{1: alg, 3: "application/vnd.vaxcred.sth+cbor",
4: kid}`` and payload canonical CBOR ``{1: tree_size, 2: root_hash, 3: signed_at (epoch seconds)}``. Only a
certificate with ``LOG_SIGNING_EKU`` may sign one (one key, one purpose). Heads are meant to leave the ministry
(published, sent to auditors), so that a log rewritten afterwards cannot match what others hold.
"""

from __future__ import annotations

__all__ = ["CONTENT_TYPE", "TreeHead", "sign_tree_head", "verify_tree_head"]

import calendar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy.engine import Connection

from vaxcred import crypto
from vaxcred.codec import cbor, cose
from vaxcred.errors import CborError, CoseError, SignatureError, VaxcredError
from vaxcred.merkle import HASH_LENGTH, root
from vaxcred.oids import LOG_SIGNING_EKU
from vaxcred.pipeline.errors import PipelineError
from vaxcred.pipeline.log.store import leaf_hashes, log_size
from vaxcred.storage.schema import log_tree_heads

CONTENT_TYPE: Final = "application/vnd.vaxcred.sth+cbor"
_MAX_HEAD_BYTES: Final = 4096


@dataclass(frozen=True, slots=True, kw_only=True)
class TreeHead:
    """A verified (or freshly signed) tree head."""

    tree_size: int
    root_hash: bytes
    signed_at: datetime
    cose: bytes


def _is_log_signer(cert: x509.Certificate) -> bool:
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except (x509.ExtensionNotFound, ValueError):
        return False
    return list(eku) == [LOG_SIGNING_EKU]


def sign_tree_head(conn: Connection, signer: crypto.Signer, *, now: datetime) -> TreeHead:
    """Sign the log as it stands in ``conn`` and store the head (an existing head of that size is returned)."""
    if not _is_log_signer(signer.certificate):
        raise SignatureError(
            "only the log signer (EKU LOG_SIGNING_EKU alone) signs tree heads", code="log.wrong_key"
        )
    size = log_size(conn, lock=True)
    existing = conn.execute(sa.select(log_tree_heads).where(log_tree_heads.c.tree_size == size)).one_or_none()
    if existing is not None:
        return TreeHead(
            tree_size=size,
            root_hash=bytes(existing.root_hash),
            signed_at=existing.signed_at,
            cose=bytes(existing.cose),
        )
    leaves = leaf_hashes(conn, size)
    _check_extends_previous(conn, leaves)
    head_root = root(leaves)
    signed_at = now.astimezone(UTC).replace(microsecond=0)
    payload = cbor.dumps({1: size, 2: head_root, 3: calendar.timegm(signed_at.utctimetuple())})
    protected = cbor.dumps(
        {
            int(cose.HeaderLabel.ALG): int(signer.algorithm),
            int(cose.HeaderLabel.CONTENT_TYPE): CONTENT_TYPE,
            int(cose.HeaderLabel.KID): signer.kid,
        }
    )
    message = cose.encode_sign1(protected, payload, signer.sign(cose.sig_structure_for(protected, payload)))
    conn.execute(
        sa.insert(log_tree_heads).values(
            tree_size=size, root_hash=head_root, signed_at=signed_at, cose=message
        )
    )
    return TreeHead(tree_size=size, root_hash=head_root, signed_at=signed_at, cose=message)


def _check_extends_previous(conn: Connection, leaves: list[bytes]) -> None:
    """Refuse to sign a log that no longer extends the newest stored head (entries rewritten, reordered or
    removed under it): a new head must never bless tampering; ``vaxcred log audit`` says what changed."""
    previous = conn.execute(
        sa.select(log_tree_heads.c.tree_size, log_tree_heads.c.root_hash)
        .where(log_tree_heads.c.tree_size <= len(leaves))
        .order_by(log_tree_heads.c.tree_size.desc())
        .limit(1)
    ).one_or_none()
    if previous is not None and root(leaves[: previous.tree_size]) != bytes(previous.root_hash):
        raise PipelineError(
            f"the log no longer extends the tree head signed at size {previous.tree_size}: "
            "not signed (run `vaxcred log audit`)",
            code="log.head_root_mismatch",
        )


def verify_tree_head(data: bytes, certificate: x509.Certificate) -> TreeHead:
    """Check a head's signature with the log signer's certificate and decode it; typed errors (``log.*``)."""
    if not isinstance(data, bytes) or len(data) > _MAX_HEAD_BYTES:
        raise CoseError("a tree head is a COSE_Sign1 of at most 4 KiB", code="log.malformed_head")
    if not _is_log_signer(certificate):
        raise SignatureError("the certificate is not the log signer's", code="log.wrong_key")
    try:
        message = cose.decode_sign1(data)
        payload = cbor.loads(message.payload)
    except (CoseError, CborError) as e:
        raise CoseError(f"malformed tree head: {e.message}", code="log.malformed_head") from e
    kid = crypto.kid_for(certificate.public_bytes(Encoding.DER))
    if message.protected.get(int(cose.HeaderLabel.CONTENT_TYPE)) != CONTENT_TYPE or message.kid != kid:
        raise SignatureError("not a tree head of this log signer (content type or kid)", code="log.bad_head")
    alg = message.protected.get(int(cose.HeaderLabel.ALG))
    if type(alg) is not int:
        raise SignatureError("tree head without a protected algorithm", code="log.bad_head")
    try:
        crypto.verify_signature(certificate.public_key(), alg, cose.sig_structure(message), message.signature)
    except VaxcredError as e:
        raise SignatureError(
            f"tree head signature does not verify: {e.message}", code="log.bad_signature"
        ) from e
    if (
        not isinstance(payload, dict)
        or set(payload) != {1, 2, 3}
        or type(payload[1]) is not int
        or payload[1] < 0
        or not isinstance(payload[2], bytes)
        or len(payload[2]) != HASH_LENGTH
        or type(payload[3]) is not int
        or not 0 <= payload[3] < 253402300800
    ):
        raise CoseError("tree head payload is not {1: size, 2: root, 3: time}", code="log.malformed_head")
    return TreeHead(
        tree_size=payload[1],
        root_hash=payload[2],
        signed_at=datetime.fromtimestamp(payload[3], UTC),
        cose=data,
    )
