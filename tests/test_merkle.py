"""vaxcred.merkle: RFC 9162 Merkle tree hashing, inclusion and consistency proofs."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vaxcred.merkle import (
    EMPTY_ROOT,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root,
    root_and_proofs,
    verify_consistency,
    verify_inclusion,
    verify_inclusion_path,
)

# The Certificate Transparency reference data (RFC 6962 test vectors, reused for RFC 9162, whose hashing is
# identical): eight entries, the tree heads MTH(D[n]) for n = 0..8, audit paths and consistency proofs.
CT_ENTRIES = [
    bytes.fromhex(h)
    for h in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
CT_ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
CT_INCLUSION = [
    (0, 1, []),
    (
        0,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        1,
        5,
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]
CT_CONSISTENCY = [
    (1, 1, []),
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]
CT_LEAVES = [leaf_hash(e) for e in CT_ENTRIES]


def _reference_mth(leaves: list[bytes]) -> bytes:
    """RFC 9162 §2.1.1 transcribed literally (recursive, split at the largest power of two below n)."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return hashlib.sha256(b"\x01" + _reference_mth(leaves[:k]) + _reference_mth(leaves[k:])).digest()


def _leaves(n: int) -> list[bytes]:
    return [leaf_hash(f"leaf-{i}".encode()) for i in range(n)]


def test_leaf_and_node_hashes_are_domain_separated() -> None:
    """A leaf is HASH(0x00||d), a node HASH(0x01||l||r): the same bytes never hash alike as both."""
    assert leaf_hash(b"") == hashlib.sha256(b"\x00").digest()
    left, right = leaf_hash(b"a"), leaf_hash(b"b")
    assert node_hash(left, right) == hashlib.sha256(b"\x01" + left + right).digest()
    assert leaf_hash(left + right) != node_hash(left, right)


@pytest.mark.parametrize("n", range(9))
def test_roots_match_the_ct_tree_heads(n: int) -> None:
    """MTH(D[n]) of the reference entries equals the published tree head for every n (0 = empty tree)."""
    assert root(CT_LEAVES[:n]).hex() == CT_ROOTS[n]
    assert EMPTY_ROOT.hex() == CT_ROOTS[0]


@pytest.mark.parametrize(("index", "size", "expected"), CT_INCLUSION)
def test_inclusion_proofs_match_the_ct_vectors(index: int, size: int, expected: list[str]) -> None:
    """PATH(m, D[n]) equals the published audit path and verifies against the published root."""
    proof = inclusion_proof(CT_LEAVES[:size], index)
    assert [p.hex() for p in proof] == expected
    assert verify_inclusion(CT_LEAVES[index], index, size, proof, bytes.fromhex(CT_ROOTS[size]))


@pytest.mark.parametrize(("first", "size", "expected"), CT_CONSISTENCY)
def test_consistency_proofs_match_the_ct_vectors(first: int, size: int, expected: list[str]) -> None:
    """PROOF(m, D[n]) equals the published proof and verifies between the published roots."""
    proof = consistency_proof(CT_LEAVES[:size], first)
    assert [p.hex() for p in proof] == expected
    assert verify_consistency(
        first, bytes.fromhex(CT_ROOTS[first]), size, bytes.fromhex(CT_ROOTS[size]), proof
    )


def test_every_shape_up_to_40_leaves_agrees_with_the_literal_recursion() -> None:
    """The level-by-level root equals the RFC's recursion, and every proof of every tree verifies."""
    leaves = _leaves(40)
    for n in range(1, 41):
        tree = leaves[:n]
        head = root(tree)
        assert head == _reference_mth(tree)
        for i in range(n):
            assert verify_inclusion(tree[i], i, n, inclusion_proof(tree, i), head)
        for m in range(1, n + 1):
            assert verify_consistency(m, root(tree[:m]), n, head, consistency_proof(tree, m))


def test_inclusion_refuses_every_lie() -> None:
    """Wrong index, wrong leaf, wrong root, index past the size, truncated or padded path: all False."""
    tree = CT_LEAVES
    head = root(tree)
    proof = inclusion_proof(tree, 5)
    assert verify_inclusion(tree[5], 5, 8, proof, head)
    assert not verify_inclusion(tree[5], 4, 8, proof, head)
    assert not verify_inclusion(tree[4], 5, 8, proof, head)
    assert not verify_inclusion(tree[5], 5, 8, proof, EMPTY_ROOT)
    assert not verify_inclusion(tree[5], 8, 8, proof, head)
    assert not verify_inclusion(tree[5], 5, 8, proof[:-1], head)
    assert not verify_inclusion(tree[5], 5, 8, (*proof, head), head)
    for i in range(len(proof)):
        flipped = list(proof)
        flipped[i] = bytes([flipped[i][0] ^ 1]) + flipped[i][1:]
        assert not verify_inclusion(tree[5], 5, 8, flipped, head)


@pytest.mark.parametrize(
    "bad",
    [
        {"leaf": b"short"},
        {"index": -1},
        {"index": True},
        {"size": 1 << 64},
        {"size": 8.0},
        {"proof": b"\x00" * 32},
        {"proof": ["not bytes"]},
        {"proof": [b"\x00" * 31]},
        {"proof": [b"\x00" * 32] * 129},
        {"root": None},
    ],
)
def test_malformed_inclusion_input_is_false_never_an_exception(bad: dict[str, object]) -> None:
    """Untrusted proof material of the wrong shape or type answers False."""
    args: dict[str, object] = {
        "leaf": CT_LEAVES[5],
        "index": 5,
        "size": 8,
        "proof": inclusion_proof(CT_LEAVES, 5),
        "root": root(CT_LEAVES),
    }
    args.update(bad)
    assert verify_inclusion(args["leaf"], args["index"], args["size"], args["proof"], args["root"]) is False  # type: ignore[arg-type]


def test_consistency_refuses_every_lie() -> None:
    """A shrinking log, mismatched roots, equal sizes with a proof, a non-empty empty prefix: all False."""
    head8, head6 = root(CT_LEAVES), root(CT_LEAVES[:6])
    proof = consistency_proof(CT_LEAVES, 6)
    assert verify_consistency(6, head6, 8, head8, proof)
    assert not verify_consistency(6, head8, 8, head8, proof)
    assert not verify_consistency(5, head6, 8, head8, proof)
    assert not verify_consistency(6, head6, 8, head6, proof)
    assert not verify_consistency(6, head6, 8, head8, proof[:-1])
    assert not verify_consistency(8, head8, 6, head6, ())
    assert verify_consistency(8, head8, 8, head8, ())
    assert not verify_consistency(8, head8, 8, head8, (head8,))
    assert verify_consistency(0, EMPTY_ROOT, 8, head8, ())
    assert not verify_consistency(0, head6, 8, head8, ())
    assert not verify_consistency(6, head6, 8, head8, ())


def test_proof_generation_rejects_impossible_requests() -> None:
    """Asking for a leaf or a prefix outside the tree, or passing entries instead of hashes, is a ValueError."""
    with pytest.raises(ValueError):
        inclusion_proof(CT_LEAVES, 8)
    with pytest.raises(ValueError):
        consistency_proof(CT_LEAVES, 0)
    with pytest.raises(ValueError):
        consistency_proof(CT_LEAVES, 9)
    with pytest.raises(ValueError):
        root([b"an entry, not a leaf hash"])


@given(st.integers(min_value=1, max_value=300), st.data())
def test_random_trees_prove_random_members_and_prefixes(n: int, data: st.DataObject) -> None:
    """For random sizes, a random member's path and a random prefix's proof verify; another leaf's does not."""
    tree = _leaves(n)
    head = root(tree)
    i = data.draw(st.integers(0, n - 1))
    proof = inclusion_proof(tree, i)
    assert verify_inclusion(tree[i], i, n, proof, head)
    assert not verify_inclusion(leaf_hash(b"intruder"), i, n, proof, head)
    m = data.draw(st.integers(1, n))
    assert verify_consistency(m, root(tree[:m]), n, head, consistency_proof(tree, m))


@given(st.lists(st.binary(max_size=8), max_size=200))
def test_root_and_proofs_equal_the_one_leaf_builders(entries: list[bytes]) -> None:
    """The O(n log n) builder gives root() and inclusion_proof() of every leaf, and each proof verifies."""
    tree = [leaf_hash(e) for e in entries]
    head, proofs = root_and_proofs(tree)
    assert head == root(tree)
    assert len(proofs) == len(tree)
    for i, proof in enumerate(proofs):
        assert proof == inclusion_proof(tree, i)
        assert verify_inclusion(tree[i], i, len(tree), proof, head)


def test_root_and_proofs_of_the_ct_vectors() -> None:
    """Every audit path of the CT reference tree, built at once, is the published one."""
    for size in range(1, len(CT_LEAVES) + 1):
        head, proofs = root_and_proofs(CT_LEAVES[:size])
        assert head.hex() == CT_ROOTS[size]
        assert proofs == tuple(inclusion_proof(CT_LEAVES[:size], i) for i in range(size))


def test_root_and_proofs_refuses_entries_that_are_not_leaf_hashes() -> None:
    """Raw entries (not 32-byte leaf hashes) are a caller mistake; the empty batch has the empty root."""
    with pytest.raises(ValueError):
        root_and_proofs([b"an entry"])
    assert root_and_proofs([]) == (EMPTY_ROOT, ())


@given(
    st.integers(min_value=1, max_value=150),
    st.data(),
    st.integers(-2, 2),
    st.integers(-1, 1),
    st.binary(max_size=40),
)
def test_inclusion_over_a_concatenated_path_answers_as_over_its_hashes(
    n: int, data: st.DataObject, index_shift: int, size_shift: int, edit: bytes
) -> None:
    """verify_inclusion_path(…, b"".join(path), …) is verify_inclusion(…, path, …) for genuine paths and for
    edited ones (bytes inserted, cut, another index or tree size); a path of partial hashes is False."""
    tree = _leaves(n)
    head = root(tree)
    i = data.draw(st.integers(0, n - 1))
    joined = b"".join(inclusion_proof(tree, i))
    assert verify_inclusion_path(tree[i], i, n, joined, head)
    at = data.draw(st.integers(0, len(joined)))
    cut = data.draw(st.integers(0, 40))
    edited = joined[:at] + edit + joined[at + cut :]
    index, size = i + index_shift, n + size_shift
    expected = len(edited) % 32 == 0 and verify_inclusion(
        tree[i], index, size, [edited[k : k + 32] for k in range(0, len(edited), 32)], head
    )
    assert verify_inclusion_path(tree[i], index, size, edited, head) == expected
