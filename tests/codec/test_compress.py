"""Tests for vaxcred.codec.compress (DCC.md §1; SECURITY.md pitfall 9)."""

from __future__ import annotations

import contextlib
import time
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vaxcred.codec.compress import MAX_INFLATED, compress, decompress
from vaxcred.errors import ZlibError

PAYLOAD = b"\xd2\x84" + bytes(range(256)) * 3


def _code(data: bytes, **kwargs: int) -> str:
    with pytest.raises(ZlibError) as info:
        decompress(data, **kwargs)
    return info.value.code


def test_compress_uses_level_9_header() -> None:
    """Issued data starts with the zlib header for level 9, ``78 DA``."""
    assert compress(PAYLOAD)[:2] == b"\x78\xda"


def test_round_trip() -> None:
    """``decompress(compress(x)) == x``."""
    assert decompress(compress(PAYLOAD)) == PAYLOAD


@pytest.mark.parametrize("level", [0, 1, 6, 9])
def test_any_compression_level_is_accepted(level: int) -> None:
    """Verifiers accept every level (``78 01``, ``78 5E``, ``78 9C``, ``78 DA``)."""
    assert decompress(zlib.compress(PAYLOAD, level)) == PAYLOAD


def test_uncompressed_cose_is_rejected() -> None:
    """A bare COSE_Sign1 (no zlib wrapper, dgc-testdata Z2) fails with ``zlib.invalid``."""
    assert _code(PAYLOAD) == "zlib.invalid"


def test_raw_deflate_is_rejected() -> None:
    """A raw deflate stream without the zlib header fails."""
    deflater = zlib.compressobj(9, zlib.DEFLATED, -15)
    raw = deflater.compress(PAYLOAD) + deflater.flush()
    assert _code(raw) == "zlib.invalid"


def test_gzip_is_rejected() -> None:
    """A gzip stream is not a zlib stream."""
    deflater = zlib.compressobj(9, zlib.DEFLATED, 31)
    assert _code(deflater.compress(PAYLOAD) + deflater.flush()) == "zlib.invalid"


def test_bad_checksum_is_rejected() -> None:
    """A corrupted Adler-32 trailer fails with ``zlib.invalid``."""
    data = bytearray(compress(PAYLOAD))
    data[-1] ^= 0xFF
    assert _code(bytes(data)) == "zlib.invalid"


def test_truncated_stream_is_rejected() -> None:
    """A stream cut short (no end of stream) fails with ``zlib.truncated``."""
    assert _code(compress(PAYLOAD)[:-5]) == "zlib.truncated"


def test_empty_input_is_truncated() -> None:
    """No bytes at all is a truncated stream."""
    assert _code(b"") == "zlib.truncated"


def test_trailing_garbage_is_rejected() -> None:
    """Bytes after the end of the stream fail (``zlib.decompress`` would ignore them)."""
    data = compress(PAYLOAD) + b"garbage"
    assert zlib.decompress(data) == PAYLOAD
    assert _code(data) == "zlib.trailing_data"


def test_a_second_concatenated_stream_is_rejected() -> None:
    """Two zlib streams back to back are trailing data."""
    assert _code(compress(PAYLOAD) + compress(PAYLOAD)) == "zlib.trailing_data"


def test_zlib_bomb_is_stopped_quickly() -> None:
    """10 MB of zeros (a ~10 KB stream) fails with ``zlib.too_large`` without inflating it all."""
    bomb = zlib.compress(bytes(10 * 1024 * 1024), 9)
    start = time.perf_counter()
    assert _code(bomb) == "zlib.too_large"
    assert time.perf_counter() - start < 0.5


def test_output_of_exactly_max_size_is_accepted() -> None:
    """The cap is inclusive."""
    assert len(decompress(compress(bytes(MAX_INFLATED)))) == MAX_INFLATED


def test_output_one_byte_over_max_size_is_rejected() -> None:
    """One byte over the cap fails."""
    assert _code(compress(bytes(MAX_INFLATED + 1))) == "zlib.too_large"


def test_custom_max_size_is_honoured() -> None:
    """``max_size`` replaces the default cap."""
    assert _code(compress(bytes(11)), max_size=10) == "zlib.too_large"
    assert decompress(compress(bytes(10)), max_size=10) == bytes(10)


def test_negative_max_size_is_a_value_error() -> None:
    """A negative cap is a caller mistake."""
    with pytest.raises(ValueError):
        decompress(compress(b"x"), max_size=-1)


@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_random_bytes_raise_only_zlib_error(data: bytes) -> None:
    """Arbitrary bytes either inflate or fail with ZlibError; zlib.error never escapes."""
    with contextlib.suppress(ZlibError):
        decompress(data)


@settings(max_examples=200)
@given(st.binary(min_size=1, max_size=200), st.data())
def test_corrupted_streams_raise_only_zlib_error(payload: bytes, data: st.DataObject) -> None:
    """A valid stream with one byte changed either inflates or fails with ZlibError."""
    stream = bytearray(compress(payload))
    index = data.draw(st.integers(0, len(stream) - 1))
    stream[index] = data.draw(st.integers(0, 255))
    with contextlib.suppress(ZlibError):
        decompress(bytes(stream))
