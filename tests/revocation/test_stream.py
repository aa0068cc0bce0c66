"""vaxcred.revocation.stream: one batch file or the pipeline's JSON array, read element by element."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vaxcred.errors import TrustStoreError
from vaxcred.revocation import MAX_BATCH_BYTES, HashType, RevocationBatch, read_batches
from vaxcred.revocation import stream as stream_module

NOW = datetime(2026, 3, 1, tzinfo=UTC)
KID = bytes.fromhex("0102030405060708")


def _batch(i: int) -> RevocationBatch:
    return RevocationBatch(
        country="VN",
        expires=NOW + timedelta(days=30),
        kid=KID,
        hash_type=HashType.UCI,
        entries=(i.to_bytes(16, "big"),),
    )


def _read(data: bytes) -> list[RevocationBatch | TrustStoreError]:
    return list(read_batches(io.BytesIO(data)))


def _outcome(data: bytes) -> list[RevocationBatch | TrustStoreError] | str:
    """The items read, or the code of the error that stopped the reading."""
    try:
        return _read(data)
    except TrustStoreError as e:
        return e.code


def test_a_single_batch_object_is_one_batch() -> None:
    """A gateway batch file yields its batch."""
    assert _read(_batch(1).to_json()) == [_batch(1)]


def test_the_pipeline_export_array_reads_batch_by_batch() -> None:
    """The shape `vaxcred revocations export` writes (`[b1,\\nb2]`) yields each batch; `[]` yields none."""
    data = b"[" + b",\n".join(_batch(i).to_json() for i in range(3)) + b"]\n"
    assert _read(data) == [_batch(0), _batch(1), _batch(2)]
    assert _read(b" [ ] ") == []


def test_elements_across_chunk_boundaries_are_read_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    """With a 7-byte read size every element still decodes (elements are refilled until whole)."""
    monkeypatch.setattr(stream_module, "_CHUNK", 7)
    data = b"[" + b", ".join(_batch(i).to_json() for i in range(5)) + b"]"
    assert _read(data) == [_batch(i) for i in range(5)]


def test_a_bad_element_is_reported_and_the_next_read() -> None:
    """A JSON object that is no valid batch yields its error; the other batches still come."""
    data = b'[{"country": "VN"}, 5, ' + _batch(2).to_json() + b"]"
    first, second, third = _read(data)
    assert isinstance(first, TrustStoreError)
    assert first.code == "revocation.malformed"
    assert isinstance(second, TrustStoreError)
    assert third == _batch(2)


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("truncated array", b"[" + _batch(1).to_json()),
        ("truncated after comma", b"[" + _batch(1).to_json() + b","),
        ("truncated element", b"[" + _batch(1).to_json()[:-5]),
        ("not JSON", b"garbage"),
        ("empty", b""),
        ("a string", b'"x"'),
        ("trailing data", _batch(1).to_json() + b"{}"),
        ("missing comma", b"[" + _batch(1).to_json() + _batch(2).to_json() + b"]"),
        ("bad UTF-8", b'["\xff"]'),
        ("duplicate key", b'[{"country": "VN", "country": "VN"}]'),
        ("over the size cap", b'[{"x": "' + b"a" * (MAX_BATCH_BYTES + 10) + b'"}]'),
    ],
)
def test_a_broken_file_raises_malformed(name: str, data: bytes) -> None:
    """A file that is not JSON of the expected shape raises TrustStoreError(revocation.malformed)."""
    with pytest.raises(TrustStoreError) as info:
        _read(data)
    assert info.value.code == "revocation.malformed", name


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.binary(max_size=300), st.text(max_size=300).map(str.encode)))
def test_any_bytes_give_batches_errors_or_malformed(data: bytes) -> None:
    """Random input never raises anything but TrustStoreError(revocation.malformed)."""
    items = _outcome(data)
    assert items == "revocation.malformed" or all(
        isinstance(i, RevocationBatch | TrustStoreError) for i in items
    )


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=0), st.integers(min_value=0, max_value=7))
def test_truncated_or_bit_flipped_arrays_never_raise_untyped(position: int, bit: int) -> None:
    """The export array cut anywhere, or with one bit flipped: batches, reported errors or malformed."""
    data = b"[" + b",\n".join(_batch(i).to_json() for i in range(3)) + b"]"
    at = position % len(data)
    for variant in (data[:at], data[:at] + bytes([data[at] ^ (1 << bit)]) + data[at + 1 :]):
        outcome = _outcome(variant)
        assert isinstance(outcome, list) or outcome == "revocation.malformed"
