"""Strict CBOR (RFC 8949) decoder of our own, and a deterministic encoder (cbor2, in
:mod:`~vaxcred.codec.cbor_encode`; its names are re-exported here: import them from this module).

Every verify runs untrusted bytes through :func:`loads`, so it is strict by construction
(SECURITY.md pitfall 8) and raises nothing but :class:`~vaxcred.errors.CborError` on any ``bytes``:

============================================  ======================
input                                         code
============================================  ======================
empty input, header/argument/content missing  ``cbor.truncated``
a length larger than the remaining input      ``cbor.truncated`` (checked before slicing or allocating)
bytes after the top-level item                ``cbor.trailing_bytes``
a key seen twice in one map                   ``cbor.duplicate_key``
a map key that is not ``int`` or ``str``      ``cbor.bad_key``
more than ``max_depth`` nested arrays, maps   ``cbor.too_deep``
or tags
indefinite length (unless allowed)            ``cbor.indefinite``
text string that is not valid UTF-8           ``cbor.bad_utf8``
reserved additional info 28–30, a stray       ``cbor.not_well_formed``
break, two-byte simple value < 32, an
indefinite int/tag/simple, a bad chunk in
an indefinite string
``undefined`` and other unassigned simple     ``cbor.unsupported``
values (not used by COSE, CWT or the DCC)
============================================  ======================

Decoded types: ``int``, ``str``, ``bytes``, ``list``, ``dict`` (keys ``int``/``str`` only), :class:`Tagged`
for every tag (bignums and date tags included: the layers above decide what a tag means), ``float``
(half, single and double precision, NaN and infinities included), ``bool`` and ``None``.

``allow_indefinite=True`` exists to read comparison data in test vectors (dgc-testdata ``CBOR``
fields); it accepts indefinite-length strings, arrays and maps and validates them (string chunks must
be definite strings of the same major type; each text chunk must be valid UTF-8 on its own).  All
other rules, map keys included, stay the same in both modes.

The decoder is recursive descent over ``bytes`` with the depth bounded by ``max_depth`` (itself capped
at :data:`MAX_DEPTH_LIMIT`), so it can never hit ``RecursionError``.
"""

from __future__ import annotations

import struct
from typing import Final

from vaxcred.codec.cbor_encode import Tagged, dumps, dumps_json, encode_head, encode_text
from vaxcred.errors import CborError
from vaxcred.text import clip

__all__ = ["MAX_DEPTH_LIMIT", "Tagged", "dumps", "dumps_json", "encode_head", "encode_text", "loads"]

#: Upper bound accepted for ``max_depth`` (keeps the recursive decoder far from the interpreter's limit).
MAX_DEPTH_LIMIT: Final = 64

_BREAK: Final = 0xFF
_unpack_half = struct.Struct(">e").unpack_from
_unpack_single = struct.Struct(">f").unpack_from
_unpack_double = struct.Struct(">d").unpack_from


def loads(
    data: bytes | bytearray | memoryview, *, max_depth: int = 16, allow_indefinite: bool = False
) -> object:
    """Decode exactly one CBOR data item from ``data``, strictly (see the module documentation).

    ``max_depth`` bounds the nesting of arrays, maps and tags (16 nested arrays pass at the default,
    17 fail).  Raises :class:`CborError`; :class:`TypeError` / :class:`ValueError` for bad arguments.
    """
    if not isinstance(data, bytes):
        if not isinstance(data, bytearray | memoryview):
            raise TypeError(f"loads() expects bytes, not {type(data).__name__}")
        data = bytes(data)
    if not 0 <= max_depth <= MAX_DEPTH_LIMIT:
        raise ValueError(f"max_depth must be between 0 and {MAX_DEPTH_LIMIT}")
    try:
        value, pos = _item(data, 0, max_depth, allow_indefinite)
    except IndexError as e:  # a header byte read past the end of the input
        raise CborError("CBOR data is truncated", code="cbor.truncated") from e
    if pos != len(data):
        raise CborError(f"{len(data) - pos} bytes follow the CBOR data item", code="cbor.trailing_bytes")
    return value


def _truncated() -> CborError:
    return CborError("CBOR data is truncated", code="cbor.truncated")


def _argument(data: bytes, pos: int, ai: int) -> tuple[int, int]:
    """Read the argument for additional information ``ai`` >= 24 starting at ``pos``."""
    if ai == 24:
        return data[pos], pos + 1
    if ai == 25:
        size = 2
    elif ai == 26:
        size = 4
    elif ai == 27:
        size = 8
    elif ai == 31:
        raise CborError("indefinite length is not allowed here", code="cbor.not_well_formed")
    else:
        raise CborError(f"reserved additional information {ai}", code="cbor.not_well_formed")
    end = pos + size
    if end > len(data):
        raise _truncated()
    return int.from_bytes(data[pos:end], "big"), end


def _item(data: bytes, pos: int, depth: int, indef: bool) -> tuple[object, int]:
    """Decode the data item at ``pos``; return it and the position after it."""
    ib = data[pos]
    pos += 1
    mt = ib >> 5
    ai = ib & 0x1F
    if mt == 3:  # text string: the most common item in a DCC
        if ai < 24:
            n = ai
        elif ai == 31:
            return _indefinite_string(data, pos, 3, indef)
        else:
            n, pos = _argument(data, pos, ai)
        end = pos + n
        if end > len(data):
            raise _truncated()
        try:
            return data[pos:end].decode("utf-8"), end
        except UnicodeDecodeError as e:
            raise CborError("text string is not valid UTF-8", code="cbor.bad_utf8") from e
    if mt == 0:
        if ai < 24:
            return ai, pos
        return _argument(data, pos, ai)
    if mt == 1:
        if ai < 24:
            return -1 - ai, pos
        n, pos = _argument(data, pos, ai)
        return -1 - n, pos
    if mt == 5:
        if ai == 31:
            return _indefinite_map(data, pos, depth, indef)
        if ai < 24:
            n = ai
        else:
            n, pos = _argument(data, pos, ai)
        if depth <= 0:
            raise _too_deep()
        if 2 * n > len(data) - pos:
            raise _truncated()
        result: dict[object, object] = {}
        depth -= 1
        size = len(data)
        for _ in range(n):
            ib = data[pos]
            if 0x60 <= ib < 0x78:  # fast path: short text key, the usual DCC key
                end = pos + ib - 0x5F
                if end > size:
                    raise _truncated()
                try:
                    key: object = data[pos + 1 : end].decode("utf-8")
                except UnicodeDecodeError as e:
                    raise CborError("text string is not valid UTF-8", code="cbor.bad_utf8") from e
                pos = end
            elif ib < 0x18:  # fast path: small unsigned integer key (CWT claims, COSE headers)
                key = ib
                pos += 1
            else:
                key, pos = _item(data, pos, depth, indef)
                kt = type(key)
                if kt is not int and kt is not str:
                    raise CborError(f"map key of type {kt.__name__} is not allowed", code="cbor.bad_key")
            if key in result:
                raise CborError(f"duplicate map key {clip(key)}", code="cbor.duplicate_key")
            ib = data[pos]
            if 0x60 <= ib <= 0x78:  # fast path: text value of up to 255 bytes
                if ib == 0x78:
                    start = pos + 2
                    end = start + data[pos + 1]  # IndexError when truncated, as in _argument
                else:
                    start = pos + 1
                    end = pos + ib - 0x5F
                if end > size:
                    raise _truncated()
                try:
                    result[key] = data[start:end].decode("utf-8")
                except UnicodeDecodeError as e:
                    raise CborError("text string is not valid UTF-8", code="cbor.bad_utf8") from e
                pos = end
            elif ib < 0x18:  # fast path: small unsigned integer value
                result[key] = ib
                pos += 1
            elif ib == 0x1A:  # fast path: 32-bit unsigned integer value (CWT iat, exp)
                end = pos + 5
                if end > size:
                    raise _truncated()
                result[key] = int.from_bytes(data[pos + 1 : end], "big")
                pos = end
            else:
                result[key], pos = _item(data, pos, depth, indef)
        return result, pos
    if mt == 4:
        if ai == 31:
            return _indefinite_array(data, pos, depth, indef)
        if ai < 24:
            n = ai
        else:
            n, pos = _argument(data, pos, ai)
        if depth <= 0:
            raise _too_deep()
        if n > len(data) - pos:
            raise _truncated()
        items: list[object] = []
        append = items.append
        depth -= 1
        for _ in range(n):
            value, pos = _item(data, pos, depth, indef)
            append(value)
        return items, pos
    if mt == 2:
        if ai < 24:
            n = ai
        elif ai == 31:
            return _indefinite_string(data, pos, 2, indef)
        else:
            n, pos = _argument(data, pos, ai)
        end = pos + n
        if end > len(data):
            raise _truncated()
        return data[pos:end], end
    if mt == 6:
        if ai < 24:
            tag = ai
        else:
            tag, pos = _argument(data, pos, ai)
        if depth <= 0:
            raise _too_deep()
        value, pos = _item(data, pos, depth - 1, indef)
        return Tagged(tag, value), pos
    return _simple(data, pos, ai)


def _simple(data: bytes, pos: int, ai: int) -> tuple[object, int]:
    """Major type 7: simple values, floats, break."""
    if ai == 20:
        return False, pos
    if ai == 21:
        return True, pos
    if ai == 22:
        return None, pos
    if ai == 25:
        if pos + 2 > len(data):
            raise _truncated()
        return _unpack_half(data, pos)[0], pos + 2
    if ai == 26:
        if pos + 4 > len(data):
            raise _truncated()
        return _unpack_single(data, pos)[0], pos + 4
    if ai == 27:
        if pos + 8 > len(data):
            raise _truncated()
        return _unpack_double(data, pos)[0], pos + 8
    if ai == 24:
        value = data[pos]
        if value < 32:
            raise CborError(f"two-byte simple value {value} < 32", code="cbor.not_well_formed")
        raise CborError(f"simple value {value} is not supported", code="cbor.unsupported")
    if ai == 31:
        raise CborError("unexpected break", code="cbor.not_well_formed")
    if ai > 27:
        raise CborError(f"reserved additional information {ai}", code="cbor.not_well_formed")
    name = "undefined" if ai == 23 else f"simple value {ai}"
    raise CborError(f"{name} is not supported", code="cbor.unsupported")


def _too_deep() -> CborError:
    return CborError("CBOR data is nested too deeply", code="cbor.too_deep")


def _no_indefinite() -> CborError:
    return CborError("indefinite-length items are not allowed", code="cbor.indefinite")


def _indefinite_string(data: bytes, pos: int, mt: int, indef: bool) -> tuple[object, int]:
    if not indef:
        raise _no_indefinite()
    chunks: list[bytes] = []
    texts: list[str] = []
    while True:
        ib = data[pos]
        pos += 1
        if ib == _BREAK:
            break
        if ib >> 5 != mt or ib & 0x1F == 31:
            raise CborError("bad chunk in an indefinite-length string", code="cbor.not_well_formed")
        ai = ib & 0x1F
        if ai < 24:
            n = ai
        else:
            n, pos = _argument(data, pos, ai)
        end = pos + n
        if end > len(data):
            raise _truncated()
        if mt == 3:
            try:
                texts.append(data[pos:end].decode("utf-8"))
            except UnicodeDecodeError as e:
                raise CborError("text string chunk is not valid UTF-8", code="cbor.bad_utf8") from e
        else:
            chunks.append(data[pos:end])
        pos = end
    if mt == 3:
        return "".join(texts), pos
    return b"".join(chunks), pos


def _indefinite_array(data: bytes, pos: int, depth: int, indef: bool) -> tuple[object, int]:
    if not indef:
        raise _no_indefinite()
    if depth <= 0:
        raise _too_deep()
    items: list[object] = []
    while data[pos] != _BREAK:
        value, pos = _item(data, pos, depth - 1, indef)
        items.append(value)
    return items, pos + 1


def _indefinite_map(data: bytes, pos: int, depth: int, indef: bool) -> tuple[object, int]:
    if not indef:
        raise _no_indefinite()
    if depth <= 0:
        raise _too_deep()
    result: dict[object, object] = {}
    while data[pos] != _BREAK:
        key, pos = _item(data, pos, depth - 1, indef)
        kt = type(key)
        if kt is not int and kt is not str:
            raise CborError(f"map key of type {kt.__name__} is not allowed", code="cbor.bad_key")
        if key in result:
            raise CborError(f"duplicate map key {clip(key)}", code="cbor.duplicate_key")
        result[key], pos = _item(data, pos, depth - 1, indef)
    return result, pos + 1
