"""zlib (RFC 1950) layer, capped (DCC.md §1; SECURITY.md pitfall 9).

Issuers compress at level 9 (header ``78 DA``).  Verifiers require the zlib wrapper (raw deflate and
uncompressed COSE fail), the end of the stream, no bytes after it, and at most ``max_size`` bytes of
output: ``zlib.decompress`` would ignore trailing bytes and inflate a bomb without limit, so this uses
``decompressobj`` with ``max_length`` and checks ``eof``, ``unused_data`` and ``unconsumed_tail``.
"""

from __future__ import annotations

import zlib

from vaxcred.errors import ZlibError

__all__ = ["MAX_INFLATED", "compress", "decompress"]

#: Default cap on inflated output (64 KiB); a QR code holds at most ~3 KB of compressed data.
MAX_INFLATED = 64 * 1024


def compress(data: bytes) -> bytes:
    """Compress ``data`` with zlib at level 9 (the output starts ``78 DA``)."""
    return zlib.compress(data, 9)


def decompress(data: bytes | bytearray | memoryview, max_size: int = MAX_INFLATED) -> bytes:
    """Inflate one complete zlib stream of at most ``max_size`` bytes and nothing after it.

    Raises :class:`ZlibError` with code ``zlib.invalid`` (no zlib header, corrupt stream),
    ``zlib.too_large`` (output over ``max_size``), ``zlib.truncated`` (stream does not end) or
    ``zlib.trailing_data`` (bytes after the end of the stream).
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"decompress() expects bytes, not {type(data).__name__}")
    if max_size < 0:
        raise ValueError("max_size must not be negative")
    inflater = zlib.decompressobj(wbits=zlib.MAX_WBITS)
    try:
        out = inflater.decompress(data, max_size + 1)
    except zlib.error as e:
        raise ZlibError(f"invalid zlib stream: {e}", code="zlib.invalid") from e
    if len(out) > max_size or inflater.unconsumed_tail:
        raise ZlibError(f"inflated data exceeds {max_size} bytes", code="zlib.too_large")
    if not inflater.eof:
        raise ZlibError("zlib stream is truncated (no end of stream)", code="zlib.truncated")
    if inflater.unused_data:
        raise ZlibError(
            f"{len(inflater.unused_data)} bytes follow the end of the zlib stream", code="zlib.trailing_data"
        )
    return out
