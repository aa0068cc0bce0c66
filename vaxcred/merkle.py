"""Merkle trees in the manner of RFC 9162 (Certificate Transparency 2.0) §2.1, SHA-256.

One implementation for every Merkle structure of vaxcred: batches of site-signed dose records (one signature over
a root, an inclusion proof per record) and the tamper-evident issuance log (signed tree heads, inclusion and
consistency proofs)::

    leaf:   HASH(0x00 || entry)                  the domain prefixes make a leaf never pass for a node
    node:   HASH(0x01 || left || right)
    MTH({}) = HASH("")                           the empty tree
    MTH(D[n]) = node(MTH(D[0:k]), MTH(D[k:n]))   k = the largest power of two smaller than n

Trees here are built from *leaf hashes* (callers hash their entries with :func:`leaf_hash`), so a proof can be
made from stored leaf hashes without the entries. Generating one proof is O(n) in the tree size (fine for an
auditor's full rebuild; a log serving proofs keeps its interior nodes instead); :func:`root_and_proofs` builds
the root and every leaf's proof of a batch at once in O(n log n) (each interior node hashed once). Verification follows
the RFC's algorithms (§2.1.3.2, §2.1.4.2) literally, is O(log n), and answers ``False`` for anything malformed:
its inputs are untrusted.

Pure: no I/O, no clock.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Final

__all__ = [
    "EMPTY_ROOT",
    "HASH_LENGTH",
    "KnownTree",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "root",
    "root_and_proofs",
    "verify_consistency",
    "verify_inclusion",
    "verify_inclusion_path",
]

HASH_LENGTH: Final = 32
#: MTH of the empty tree: SHA-256 of the empty string
EMPTY_ROOT: Final = hashlib.sha256(b"").digest()
#: a proof longer than this cannot belong to any tree of at most 2**64 leaves
_MAX_PROOF_LENGTH: Final = 128


def leaf_hash(entry: bytes) -> bytes:
    """``HASH(0x00 || entry)``: the hash of one log entry or batch member."""
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """``HASH(0x01 || left || right)``: an interior node."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _check_leaves(leaves: Sequence[bytes]) -> None:
    for value in leaves:
        if not isinstance(value, bytes) or len(value) != HASH_LENGTH:
            raise ValueError("leaves are 32-byte leaf hashes (use leaf_hash on each entry)")


def _largest_power_of_two_below(n: int) -> int:
    """k with k < n <= 2k, for n >= 2 (RFC 9162 §2.1.1)."""
    return 1 << ((n - 1).bit_length() - 1)


def _mth(leaves: Sequence[bytes]) -> bytes:
    """MTH over leaf hashes, level by level: pairing neighbours and lifting an odd last node unchanged gives
    exactly the RFC's left-balanced tree, without recursion."""
    if not leaves:
        return EMPTY_ROOT
    level = list(leaves)
    while len(level) > 1:
        paired = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


def root(leaves: Sequence[bytes]) -> bytes:
    """The Merkle tree hash (the root) of a tree whose leaves have these leaf hashes."""
    _check_leaves(leaves)
    return _mth(leaves)


def _path(index: int, leaves: Sequence[bytes]) -> list[bytes]:
    """PATH(m, D[n]) of RFC 9162 §2.1.3.1, on leaf hashes, leaf side first."""
    proof: list[bytes] = []
    lo, hi = 0, len(leaves)
    # walk down from the root, remembering the sibling subtree at each split; the RFC lists them leaf side first
    while hi - lo > 1:
        k = _largest_power_of_two_below(hi - lo)
        if index < lo + k:
            proof.append(_mth(leaves[lo + k : hi]))
            hi = lo + k
        else:
            proof.append(_mth(leaves[lo : lo + k]))
            lo = lo + k
    proof.reverse()
    return proof


def inclusion_proof(leaves: Sequence[bytes], index: int) -> tuple[bytes, ...]:
    """The audit path of leaf ``index`` in the tree of ``leaves`` (RFC 9162 §2.1.3.1)."""
    _check_leaves(leaves)
    if not 0 <= index < len(leaves):
        raise ValueError(f"leaf index {index} is outside a tree of {len(leaves)} leaves")
    return tuple(_path(index, leaves))


def root_and_proofs(leaves: Sequence[bytes]) -> tuple[bytes, tuple[tuple[bytes, ...], ...]]:
    """The root and the audit path of every leaf (``proofs[i] == inclusion_proof(leaves, i)``), in O(n log n).

    The RFC's recursion once over the whole tree: each interior node is hashed once, and its two children's
    hashes are appended to the paths of the leaves on the other side (deepest first: paths are leaf side first).
    """
    _check_leaves(leaves)
    if not leaves:
        return EMPTY_ROOT, ()
    paths: list[list[bytes]] = [[] for _ in leaves]

    def subtree(lo: int, hi: int) -> bytes:  # depth <= 64: the recursion is bounded by the tree height
        if hi - lo == 1:
            return leaves[lo]
        mid = lo + _largest_power_of_two_below(hi - lo)
        left, right = subtree(lo, mid), subtree(mid, hi)
        for i in range(lo, mid):
            paths[i].append(right)
        for i in range(mid, hi):
            paths[i].append(left)
        return node_hash(left, right)

    top = subtree(0, len(leaves))
    return top, tuple(tuple(path) for path in paths)


def consistency_proof(leaves: Sequence[bytes], first_size: int) -> tuple[bytes, ...]:
    """PROOF(m, D[n]) (RFC 9162 §2.1.4.1): the tree of the first ``first_size`` leaves is a prefix of the whole."""
    _check_leaves(leaves)
    if not 0 < first_size <= len(leaves):
        raise ValueError(f"first size {first_size} must be in 1..{len(leaves)}")
    proof: list[bytes] = []
    # SUBPROOF(m, D[lo:hi], complete), unrolled: each step keeps one side and records the other side's hash
    m, lo, hi, complete = first_size, 0, len(leaves), True
    while True:
        n = hi - lo
        if m == n:
            if not complete:
                proof.append(_mth(leaves[lo:hi]))
            break
        k = _largest_power_of_two_below(n)
        if m <= k:
            proof.append(_mth(leaves[lo + k : hi]))
            hi = lo + k
        else:
            proof.append(_mth(leaves[lo : lo + k]))
            m, lo, complete = m - k, lo + k, False
    proof.reverse()
    return tuple(proof)


def _hashes(values: object) -> list[bytes] | None:
    """The proof as a list of 32-byte hashes, or None when it is anything else."""
    if not isinstance(values, Sequence) or isinstance(values, bytes | str) or len(values) > _MAX_PROOF_LENGTH:
        return None
    items = list(values)
    for v in items:
        if not isinstance(v, bytes) or len(v) != HASH_LENGTH:
            return None
    return items


def _is_size(value: object) -> bool:
    return type(value) is int and 0 <= value < 1 << 64


def verify_inclusion(
    leaf: bytes, index: int, tree_size: int, proof: Sequence[bytes], expected_root: bytes
) -> bool:
    """RFC 9162 §2.1.3.2: does ``proof`` show ``leaf`` (a leaf hash) at ``index`` of the tree with this root?

    The tree size is only as good as its source: take it, with the root, from a signed tree head.
    """
    path = _hashes(proof)
    if path is None or not _inclusion_arguments(leaf, index, tree_size, expected_root):
        return False
    return _path_leads_to(leaf, index, tree_size, path, expected_root)


def _inclusion_arguments(leaf: bytes, index: int, tree_size: int, expected_root: bytes) -> bool:
    """Whether an inclusion check's arguments other than its path are usable: a leaf hash, sizes in range,
    ``index < tree_size``, a root of bytes."""
    return (
        _is_size(index)
        and _is_size(tree_size)
        and index < tree_size
        and isinstance(leaf, bytes)
        and len(leaf) == HASH_LENGTH
        and isinstance(expected_root, bytes)
    )


def _path_leads_to(
    leaf: bytes, index: int, tree_size: int, path: Iterable[bytes], expected_root: bytes
) -> bool:
    """RFC 9162 §2.1.3.2's loop over checked arguments (``index < tree_size``, hashes of the right length)."""
    fn, sn, r = index, tree_size - 1, leaf
    sha256 = hashlib.sha256  # node_hash inlined: this loop runs for every member of every batch verified
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = sha256(b"\x01" + p + r).digest()
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = sha256(b"\x01" + r + p).digest()
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == expected_root


def verify_inclusion_path(leaf: bytes, index: int, tree_size: int, path: bytes, expected_root: bytes) -> bool:
    """:func:`verify_inclusion` with the audit path as its hashes concatenated (how a store keeps it): the same
    answer for the same path (a length that is not a multiple of :data:`HASH_LENGTH`: ``False``), without
    splitting it into a list first."""
    if (
        type(path) is not bytes
        or len(path) % HASH_LENGTH
        or len(path) > _MAX_PROOF_LENGTH * HASH_LENGTH
        or not _inclusion_arguments(leaf, index, tree_size, expected_root)
    ):
        return False
    hashes = (path[start : start + HASH_LENGTH] for start in range(0, len(path), HASH_LENGTH))
    return _path_leads_to(leaf, index, tree_size, hashes, expected_root)


class KnownTree:
    """:func:`verify_inclusion_path` against one tree (``tree_size``, ``expected_root``), remembering the nodes an
    accepted path proved: a later path stops at the first such node it meets, often its own leaf.

    A node is known by its place in the tree (its level and index: with RFC 9162's shape a place is one subtree
    of the leaves; a place is the loop's state there), with its hash and the rest of the path an accepted path
    went on with from there: the path's own nodes, leaf included, and its siblings (the hashes it was given). A
    path that reaches a known place with the same hash and the same rest of the path would go on exactly as the
    accepted one did, to the root: accepted without hashing further. Anything else at a known place (another
    hash, another rest) is hashed to the end as without the cache, so every answer is
    :func:`verify_inclusion_path`'s for the same arguments, whatever was asked before — no reliance on
    SHA-256's collision resistance for it. Only accepted paths add nodes, at most ``max_bytes`` of them (hashes
    and rests; about 55 KB for every member of a 128-leaf batch): then nothing more is added. Not thread-safe
    beyond what the interpreter's dict operations guarantee (a race can only skip or repeat an addition).
    """

    __slots__ = ("_free", "_known", "_root", "_size")

    def __init__(self, tree_size: int, expected_root: bytes, *, max_bytes: int = 1 << 17) -> None:
        self._size = tree_size
        self._root = expected_root
        self._known: dict[int, bytes] = {}
        self._free = max_bytes

    def verify_path(self, leaf: bytes, index: int, path: bytes) -> bool:
        """``verify_inclusion_path(leaf, index, tree_size, path, expected_root)`` of this tree."""
        size = self._size
        if (
            type(path) is not bytes
            or len(path) % HASH_LENGTH
            or len(path) > _MAX_PROOF_LENGTH * HASH_LENGTH
            or not _inclusion_arguments(leaf, index, size, self._root)
        ):
            return False
        known = self._known
        sha256 = hashlib.sha256
        fn, sn, r, level = index, size - 1, leaf, 0
        seen: list[tuple[int, bytes, int]] = []  # (place, hash(es), where the rest of the path starts)
        for start in range(0, len(path), HASH_LENGTH):
            if sn == 0:
                return False
            place = fn << 7 | level  # level <= 64 < 2**7
            if known:
                node = known.get(place)
                if node is not None:
                    if node == r + path[start:]:  # the accepted path from here: so are the nodes before
                        self._remember(seen, path)
                        return True
                    known = {}  # not the accepted path: hashed to the end, nothing looked up or added
            rest = start + HASH_LENGTH
            p = path[start:rest]
            seen.append((place, r, start))
            if fn & 1 or fn == sn:
                while not fn & 1:  # the last node of its level, no right sibling: it moves up as it is
                    fn >>= 1
                    sn >>= 1
                    level += 1
                seen.append(((fn - 1) << 7 | level, p + r, rest))
                r = sha256(b"\x01" + p + r).digest()
            else:
                seen.append(((fn + 1) << 7 | level, p + r, rest))
                r = sha256(b"\x01" + r + p).digest()
            fn >>= 1
            sn >>= 1
            level += 1
        if sn != 0 or r != self._root:
            return False
        if known is self._known:
            self._remember(seen, path)
        return True

    def _remember(self, seen: Sequence[tuple[int, bytes, int]], path: bytes) -> None:
        """Add the places an accepted path went through, each with its hash and the rest of the path from it (a
        sibling's rest: the node beside it, then the path above them)."""
        known = self._known
        for place, nodes, rest in seen:
            entry = nodes + path[rest:]
            if len(entry) > self._free:
                return
            if known.setdefault(place, entry) is entry:
                self._free -= len(entry)


def verify_consistency(
    first_size: int, first_root: bytes, second_size: int, second_root: bytes, proof: Sequence[bytes]
) -> bool:
    """RFC 9162 §2.1.4.2: is the tree (``first_size``, ``first_root``) a prefix of (``second_size``, ``second_root``)?"""
    path = _hashes(proof)
    if (
        path is None
        or not _is_size(first_size)
        or not _is_size(second_size)
        or not isinstance(first_root, bytes)
        or not isinstance(second_root, bytes)
    ):
        return False
    if first_size > second_size:
        return False
    if first_size == second_size:
        return not path and first_root == second_root
    if first_size == 0:
        return not path and first_root == EMPTY_ROOT
    if not path:
        return False
    if (
        first_size & (first_size - 1) == 0
    ):  # a power of two: the first root is the proof's implicit first node
        path.insert(0, first_root)
    fn, sn = first_size - 1, second_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == first_root and sr == second_root
