"""vaxcred.revocation.table: the compact 16-byte hash set — membership, deduplication, memory per entry."""

from __future__ import annotations

import hashlib
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vaxcred.revocation import HashSet16


def _hashes(count: int, salt: bytes = b"") -> list[bytes]:
    return [hashlib.sha256(salt + i.to_bytes(8, "big")).digest()[:16] for i in range(count)]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.binary(min_size=16, max_size=16), max_size=300),
    st.lists(st.binary(min_size=16, max_size=16), max_size=50),
)
def test_membership_matches_a_python_set(values: list[bytes], probes: list[bytes]) -> None:
    """Any 16-byte values (uniform or not, with repeats): contains and iterates exactly like a set."""
    table = HashSet16.from_iterable(values)
    assert len(table) == len(set(values))
    assert sorted(table) == sorted(set(values))
    for value in [*values, *probes]:
        assert (value in table) == (value in set(values))


def test_a_match_straddling_two_records_is_no_match() -> None:
    """The bytes of a probe found across a record boundary do not count."""
    a, b = bytes(range(16)), bytes(range(16, 32))
    table = HashSet16.from_iterable([a, b])
    straddle = a[8:] + b[:8]
    assert straddle not in table
    assert a in table
    assert b in table


def test_non_hashes_are_never_members() -> None:
    """Wrong lengths and types are simply not members; building with them is a caller mistake."""
    table = HashSet16.from_iterable(_hashes(10))
    assert b"" not in table
    assert _hashes(1)[0][:15] not in table
    assert "x" * 16 not in table
    with pytest.raises(ValueError):
        HashSet16.from_iterable([b"short"])
    with pytest.raises(ValueError):
        HashSet16.from_records(bytearray(17))
    with pytest.raises(TypeError):
        HashSet16.from_records(b"\x00" * 16)  # type: ignore[arg-type]


def test_empty_set() -> None:
    """An empty set holds nothing and costs almost nothing."""
    table = HashSet16.from_records(bytearray())
    assert len(table) == 0
    assert _hashes(1)[0] not in table
    assert list(table) == []


def test_every_bucket_holds_only_its_own_records_after_the_in_place_sort() -> None:
    """100,000 uniform hashes with 1,000 repeats: every one found, none of 10,000 others, repeats dropped."""
    values = _hashes(100_000)
    records = bytearray(b"".join(values) + b"".join(values[:1000]))
    table = HashSet16.from_records(records)
    assert len(table) == 100_000
    assert all(v in table for v in values)
    assert not any(v in table for v in _hashes(10_000, salt=b"other"))


def test_memory_stays_under_the_budget_per_entry() -> None:
    """200,000 entries cost under 30 bytes each at the peak of building and under 21 after (10 M within 300 MB)."""
    values = _hashes(200_000)
    tracemalloc.start()
    try:
        records = bytearray()
        for start in range(0, len(values), 1000):
            records += b"".join(values[start : start + 1000])
        table = HashSet16.from_records(records)
        del records
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(table) == 200_000
    assert current / 200_000 < 21
    assert peak / 200_000 < 30
    assert table.nbytes() / 200_000 < 19
