"""Inclusion proofs for passports: what a holder or verifier can check against a published tree head.

A proof carries the log entry itself (ids, kids, times and hashes — no personal data), its leaf index, the
audit path and the signed tree head that covers it. :func:`verify_passport_proof` needs only the HC1 text,
the proof and the log signer's certificate: the entry's object hash must be SHA-256 of the HC1 text, the
entry must be a passport entry, and the path must lead from HASH(0x00||entry) to the signed root.
"""

from __future__ import annotations

__all__ = ["PassportProof", "passport_proof", "verify_passport_proof"]

import hashlib
from dataclasses import dataclass

import sqlalchemy as sa
from cryptography import x509
from sqlalchemy.engine import Connection

from vaxcred.errors import VaxcredError
from vaxcred.merkle import inclusion_proof, leaf_hash, verify_inclusion
from vaxcred.pipeline.log.entries import Kind, decode_entry
from vaxcred.pipeline.log.heads import verify_tree_head
from vaxcred.pipeline.log.store import leaf_hashes
from vaxcred.storage.schema import issuance_log, log_tree_heads, passports


@dataclass(frozen=True, slots=True, kw_only=True)
class PassportProof:
    """A passport's log entry, its index, the audit path and the covering signed tree head."""

    entry: bytes
    leaf_index: int
    path: tuple[bytes, ...]
    tree_head: bytes

    def to_json(self) -> dict[str, object]:
        return {
            "entry": self.entry.hex(),
            "leaf_index": self.leaf_index,
            "path": [p.hex() for p in self.path],
            "tree_head": self.tree_head.hex(),
        }


def passport_proof(conn: Connection, uvci: str) -> PassportProof | None:
    """The proof for the passport with this UVCI, under the newest head that covers it (None if none yet)."""
    row = conn.execute(
        sa.select(issuance_log.c.seq, issuance_log.c.entry)
        .join(
            passports,
            sa.and_(issuance_log.c.kind == Kind.PASSPORT.value, issuance_log.c.object_id == passports.c.id),
        )
        .where(passports.c.uvci == uvci)
    ).one_or_none()
    if row is None:
        return None
    head = conn.execute(
        sa.select(log_tree_heads)
        .where(log_tree_heads.c.tree_size > row.seq)
        .order_by(log_tree_heads.c.tree_size.desc())
        .limit(1)
    ).one_or_none()
    if head is None:
        return None
    leaves = leaf_hashes(conn, head.tree_size)
    return PassportProof(
        entry=bytes(row.entry),
        leaf_index=row.seq,
        path=inclusion_proof(leaves, row.seq),
        tree_head=bytes(head.cose),
    )


def verify_passport_proof(hc1: str, proof: PassportProof, log_certificate: x509.Certificate) -> bool:
    """True when ``proof`` shows this HC1 text logged under a tree head signed by the log signer."""
    try:
        head = verify_tree_head(proof.tree_head, log_certificate)
        kind, _, object_hash, _ = decode_entry(proof.entry)
    except (VaxcredError, ValueError):
        return False
    if kind is not Kind.PASSPORT or object_hash != hashlib.sha256(hc1.encode("utf-8")).digest():
        return False
    return verify_inclusion(
        leaf_hash(proof.entry), proof.leaf_index, head.tree_size, proof.path, head.root_hash
    )
