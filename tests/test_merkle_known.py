"""vaxcred.merkle.KnownTree: inclusion checks against one tree that stop at nodes an accepted path proved; every
answer is verify_inclusion_path's, whatever was asked before (issue 9 §2, session 6)."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vaxcred import merkle
from vaxcred.merkle import KnownTree, leaf_hash, root_and_proofs, verify_inclusion_path


def _tree(n: int, tag: bytes = b"") -> tuple[list[bytes], bytes, list[bytes]]:
    """``n`` leaf hashes, their root and each one's audit path (concatenated)."""
    leaves = [leaf_hash(tag + i.to_bytes(4, "big")) for i in range(n)]
    head, proofs = root_and_proofs(leaves)
    return leaves, head, [b"".join(p) for p in proofs]


@pytest.fixture
def count_hashes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The number of SHA-256 computations merkle makes while the test runs."""
    calls = [0]
    real = hashlib.sha256

    def counting(data: bytes = b"") -> object:
        calls[0] += 1
        return real(data)

    monkeypatch.setattr(merkle.hashlib, "sha256", counting)
    return calls


_edit = st.tuples(st.integers(0, 4096), st.integers(0, 40), st.binary(max_size=33))


@settings(max_examples=200, deadline=None)
@given(
    n=st.integers(1, 70),
    queries=st.lists(
        st.tuples(
            st.integers(0, 69),  # the leaf asked about
            st.sampled_from(
                ["genuine", "genuine", "genuine", "edited", "other leaf", "other index", "other path"]
            ),
            _edit,
            st.integers(0, 69),
        ),
        min_size=1,
        max_size=40,
    ),
    max_bytes=st.sampled_from([1 << 17, 1 << 17, 200, 0]),
)
def test_every_answer_is_verify_inclusion_paths(
    n: int, queries: list[tuple[int, str, tuple[int, int, bytes], int]], max_bytes: int
) -> None:
    """A sequence of genuine and lying questions (edited paths — bytes cut, inserted or flipped anywhere,
    above known nodes too —, another leaf, index or path) to one KnownTree: each answer is
    verify_inclusion_path's, whatever nodes the earlier answers left known, under any memory budget."""
    leaves, head, paths = _tree(n)
    known = KnownTree(n, head, max_bytes=max_bytes)
    for which, lie, (at, cut, insert), other in queries:
        i, j = which % n, other % n
        leaf, index, path = leaves[i], i, paths[i]
        if lie == "edited":
            at = min(at, len(path))
            path = path[:at] + insert + path[at + cut :]
        elif lie == "other leaf":
            leaf = leaves[j]
        elif lie == "other index":
            index = j
        elif lie == "other path":
            path = paths[j]
        assert known.verify_path(leaf, index, path) == verify_inclusion_path(leaf, index, n, path, head)


def test_a_lie_above_a_known_node_is_refused() -> None:
    """With every member verified (every node known), a path whose hashes are edited above the first known node,
    cut short, made longer, or shown with another index or another tree's root is refused — as verify_inclusion_path refuses."""
    leaves, head, paths = _tree(13)
    known = KnownTree(13, head)
    assert all(known.verify_path(leaves[i], i, paths[i]) for i in range(13))
    for i in range(13):
        path = paths[i]
        for k in range(len(path) // 32):
            edited = path[: 32 * k] + bytes([path[32 * k] ^ 1]) + path[32 * k + 1 :]
            assert not known.verify_path(leaves[i], i, edited)
        assert not known.verify_path(leaves[i], i, path[:-32])
        assert not known.verify_path(leaves[i], i, path + head)
        assert not known.verify_path(leaves[i], (i + 1) % 13, path)
        assert not KnownTree(13, _tree(13, b"another")[1]).verify_path(leaves[i], i, path)
        assert known.verify_path(leaves[i], i, path)


def test_each_node_is_hashed_once_over_a_whole_batch(count_hashes: list[int]) -> None:
    """Members of a 128-leaf batch checked in any order hash each of its 127 interior nodes once in all (a
    path stops at the first node a member before it proved), where each path alone hashes 7."""
    leaves, head, paths = _tree(128)
    known = KnownTree(128, head)
    order = [(37 * k + 11) % 128 for k in range(128)]
    count_hashes[0] = 0
    assert all(known.verify_path(leaves[i], i, paths[i]) for i in order)
    assert count_hashes[0] == 127


def test_the_memory_budget_stops_additions_not_answers(count_hashes: list[int]) -> None:
    """With no budget nothing is remembered (every path hashed in full) and every answer stays right."""
    leaves, head, paths = _tree(16)
    known = KnownTree(16, head, max_bytes=0)
    count_hashes[0] = 0
    assert all(known.verify_path(leaves[i], i, paths[i]) for i in range(16))
    assert count_hashes[0] == 16 * 4
    assert not known.verify_path(leaves[0], 1, paths[0])


@pytest.mark.parametrize(
    "bad",
    [
        {"leaf": b"short"},
        {"index": -1},
        {"index": True},
        {"index": 8},
        {"path": [b"\x00" * 32]},
        {"path": b"\x00" * 31},
        {"path": b"\x00" * 32 * 129},
    ],
)
def test_malformed_input_is_false_never_an_exception(bad: dict[str, object]) -> None:
    """Untrusted proof material of the wrong shape or type answers False."""
    leaves, head, paths = _tree(8)
    args: dict[str, object] = {"leaf": leaves[5], "index": 5, "path": paths[5]}
    args.update(bad)
    assert KnownTree(8, head).verify_path(args["leaf"], args["index"], args["path"]) is False  # type: ignore[arg-type]
