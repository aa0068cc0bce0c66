"""Inclusion proofs for passports: what a holder or verifier can check against a published tree head.

A proof carries the log entry itself (ids, kids, times and hashes — no personal data), its leaf index, the
audit path and the signed tree head that covers it. :func:`verify_passport_proof` needs only the HC1 text,
the proof and the log signer's certificate: the entry's object hash must be SHA-256 of the HC1 text, the
entry must be a passport entry, and the path must lead from HASH(0x00||entry) to the signed root.
"""

from __future__ import annotations

__all__ = ["PassportProof", "passport_proof", "verify_passport_proof"]

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import sqlalchemy as sa
from cryptography import x509
from sqlalchemy.engine import Connection

from vaxcred.errors import DecodeError, VaxcredError
from vaxcred.merkle import inclusion_proof, leaf_hash, verify_inclusion
from vaxcred.pipeline.log.entries import Kind, decode_entry
from vaxcred.pipeline.log.heads import verify_tree_head
from vaxcred.pipeline.log.store import leaf_hashes
from vaxcred.storage.schema import issuance_log, log_tree_heads, passports

#: bounds of a proof read from JSON: the text, an entry, a tree head (COSE, heads.py caps it at 4 KiB), the path
_MAX_JSON_BYTES: Final = 64 * 1024
_MAX_ENTRY_BYTES: Final = 4096
_MAX_HEAD_BYTES: Final = 4096
_MAX_PATH: Final = 64
_HASH_BYTES: Final = 32
_FIELDS: Final = frozenset({"entry", "leaf_index", "path", "tree_head"})


def _malformed(message: str) -> DecodeError:
    return DecodeError(f"not an inclusion proof: {message}", code="log.malformed_proof")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise _malformed("a key appears twice")
    return dict(pairs)


def _refuse_constant(name: str) -> None:
    raise _malformed(f"{name} is not JSON")


def _hex(value: object, name: str, *, max_bytes: int, exact: bool = False) -> bytes:
    if not isinstance(value, str) or len(value) > 2 * max_bytes:
        raise _malformed(f"{name} must be a hex string of at most {max_bytes} bytes")
    try:
        data = bytes.fromhex(value)
    except ValueError:
        raise _malformed(f"{name} is not hex") from None
    if (exact and len(data) != max_bytes) or not data:
        raise _malformed(f"{name} must be {max_bytes if exact else 'at least 1'} bytes")
    return data


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

    @classmethod
    def from_json(cls, data: str | bytes | Mapping[str, object]) -> PassportProof:
        """The proof from :meth:`to_json`'s object (or its JSON text, at most 64 KiB): exactly its four keys,
        hex strings of bounded size, a path of at most 64 SHA-256 hashes; anything else raises
        :class:`~vaxcred.errors.DecodeError` ``log.malformed_proof`` (the proof is not checked here:
        :func:`verify_passport_proof` does that)."""
        obj: object = data
        if isinstance(data, str | bytes):
            if len(data) > _MAX_JSON_BYTES:
                raise _malformed(f"larger than {_MAX_JSON_BYTES} bytes")
            try:
                obj = json.loads(data, object_pairs_hook=_no_duplicates, parse_constant=_refuse_constant)
            except (
                ValueError,
                RecursionError,
            ) as e:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
                if isinstance(e, DecodeError):
                    raise
                raise _malformed("not JSON") from None
        if not isinstance(obj, Mapping) or set(obj) != _FIELDS:
            raise _malformed(f"expected an object with exactly the keys {', '.join(sorted(_FIELDS))}")
        index = obj["leaf_index"]
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < 2**63:
            raise _malformed("leaf_index must be an integer from 0 to 2^63 - 1")
        path = obj["path"]
        if not isinstance(path, list) or len(path) > _MAX_PATH:
            raise _malformed(f"path must be a list of at most {_MAX_PATH} hashes")
        return cls(
            entry=_hex(obj["entry"], "entry", max_bytes=_MAX_ENTRY_BYTES),
            leaf_index=index,
            path=tuple(_hex(p, "a path hash", max_bytes=_HASH_BYTES, exact=True) for p in path),
            tree_head=_hex(obj["tree_head"], "tree_head", max_bytes=_MAX_HEAD_BYTES),
        )


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
