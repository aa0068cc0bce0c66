"""vaxcred.revocation.table: the compact 16-byte hash set — membership, deduplication, memory per entry."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

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


#: run in a fresh interpreter: RSS growth while building a set of N uniform hashes (records staged as a
#: verifier's builder stages them), measured with VmHWM / VmRSS from /proc (big buffers are mmap-ed, so RSS
#: follows them page by page; tracemalloc would slow the build tenfold by tracking every small int)
_MEMORY_PROBE = """
import os, sys
from vaxcred.revocation import HashSet16
def status(field):
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
n = int(sys.argv[1])
chunk = os.urandom(16 * 1000)
base = status("VmRSS")
with open("/proc/self/clear_refs", "w") as fh:
    fh.write("5")
records = bytearray()
for i in range(n // 1000):
    records += os.urandom(16 * 1000)
table = HashSet16.from_records(records)
del records
print(len(table), status("VmHWM") - base, status("VmRSS") - base, table.nbytes())
"""


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc")
def test_memory_stays_under_the_budget_per_entry() -> None:
    """1,000,000 entries: under 24 bytes each at the peak of building, under 21 after (10 M within 300 MB)."""
    entries = 1_000_000
    out = subprocess.run(
        [sys.executable, "-c", _MEMORY_PROBE, str(entries)], capture_output=True, text=True, check=True
    ).stdout
    count, peak, current, nbytes = map(int, out.split())
    assert count == entries
    assert nbytes == 18 * entries
    assert current / entries < 21
    assert peak / entries < 24
