"""zlib (RFC 1950) layer, capped (DCC.md §1; SECURITY.md pitfall 9).

Issuers compress at level 9 (header ``78 DA``).  Verifiers require the zlib wrapper (raw deflate and
uncompressed COSE fail), the end of the stream, no bytes after it, and at most ``max_size`` bytes of
output: ``zlib.decompress`` would ignore trailing bytes and inflate a bomb without limit, so this uses
``decompressobj`` with ``max_length`` and checks ``eof``, ``unused_data`` and ``unconsumed_tail``.
"""

from __future__ import annotations

import struct
import zlib

from vaxcred.errors import ZlibError

__all__ = ["MAX_INFLATED", "compress", "decompress"]

#: Default cap on inflated output (64 KiB); a QR code holds at most ~3 KB of compressed data.
MAX_INFLATED = 64 * 1024


#: zlib header for a 32 KiB window at level 9 (CMF 0x78, FLG 0xDA: 0x78DA is a multiple of 31).
_ZLIB_HEADER = b"\x78\xda"
#: Small inputs are deflated with a 4 KiB window (wbits 12) and memLevel 6: the compressor's state is
#: ~50 KiB instead of the ~260 KiB of ``zlib.compress(data, 9)``, whose allocation and zeroing can cost
#: more than compressing a 400-byte COSE message (and, when the allocator trims its heap between calls,
#: several times more).  Deflate never refers back further than ``window - 262`` bytes, so an input of at
#: most that length cannot use a longer match; memLevel 6 buffers 4096 symbols, more than such an input
#: can produce, so blocks split where level 9's default would split them.  Every HC1 payload (a QR code
#: holds at most ~2.9 KB of compressed data) normally falls under it; larger inputs take ``zlib.compress``.
_SMALL_WBITS = 12
_SMALL_MEMLEVEL = 6
_SMALL_MAX = (1 << _SMALL_WBITS) - 262
_adler32_trailer = struct.Struct(">I").pack


def compress(data: bytes) -> bytes:
    """Compress ``data`` with zlib at level 9 (the output starts ``78 DA``).

    A valid RFC 1950 stream: the header says a 32 KiB window, the data is deflated with a window at least
    as large as the input (see ``_SMALL_WBITS``), and the Adler-32 trailer covers ``data``.
    """
    if len(data) > _SMALL_MAX:
        return zlib.compress(data, 9)
    deflater = zlib.compressobj(9, zlib.DEFLATED, -_SMALL_WBITS, _SMALL_MEMLEVEL)
    return b"".join(
        (_ZLIB_HEADER, deflater.compress(data), deflater.flush(), _adler32_trailer(zlib.adler32(data)))
    )


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
