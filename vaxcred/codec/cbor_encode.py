"""Deterministic CBOR encoding (RFC 8949 §4.2.1) through cbor2, with a faster path for JSON-like data and
hand-written heads for the fixed layouts above it (COSE_Sign1, CWT claims); :class:`Tagged`, the tag type
both directions share. Re-exported by :mod:`vaxcred.codec.cbor`, the layer's public face.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import cbor2


@dataclass(frozen=True, slots=True)
class Tagged:
    """A tagged data item (major type 6) the decoder does not interpret (and the encoder writes as its tag)."""

    tag: int
    value: object


def dumps(obj: object) -> bytes:
    """Encode ``obj`` deterministically (RFC 8949 §4.2.1: shortest forms, map keys sorted bytewise).

    :class:`Tagged` values are encoded as the tags they stand for.
    """
    return bytes(cbor2.dumps(obj, canonical=True, default=_encode_tagged))


def dumps_json(obj: object) -> bytes:
    """:func:`dumps` for JSON-like data (the DCC): the same bytes, about a third of the time.

    cbor2's deterministic mode sorts every map by encoding each key; for maps whose keys are all text the
    order is simply (UTF-8 length, UTF-8 bytes), so the items are written here, in Python, each map in that
    order (the order of each key set and its encoded keys are computed once and remembered): the DCC is a
    handful of small maps and short strings, for which calling into cbor2 and copying the data into sorted maps
    cost more than writing the heads. Only ``dict`` with ``str`` keys, ``list``, ``str``, ``int`` (in CBOR's
    64-bit range), ``bool`` and ``None`` are written here, as the deterministic mode writes them; anything else
    (floats, which the deterministic mode shortens, big integers, non-text keys, text UTF-8 cannot encode,
    deeper nesting, other types) sends the whole value to :func:`dumps` unchanged.
    """
    parts: list[bytes] = []
    try:
        _write_json(obj, parts, _JSON_MAX_DEPTH)
    except (_NotJson, UnicodeEncodeError):
        return dumps(obj)
    return b"".join(parts)


class _NotJson(Exception):
    """The value is not plain JSON-like data: encode it with :func:`dumps`."""


_JSON_MAX_DEPTH: Final = 32
#: key tuple (in the map's order) -> the map's head and its (key, encoded key) pairs in canonical order
_KEY_ORDERS: dict[tuple[str, ...], tuple[bytes, tuple[tuple[str, bytes], ...]]] = {}
_KEY_ORDERS_MAX: Final = 512


def _text_key_order(key: str) -> tuple[int, bytes]:
    raw = key.encode("utf-8")
    return len(raw), raw


def _map_layout(keys: tuple[object, ...]) -> tuple[bytes, tuple[tuple[str, bytes], ...]]:
    """The head and canonically ordered (key, encoded key) pairs of a map with these keys (all text)."""
    layout = _KEY_ORDERS.get(keys)  # type: ignore[arg-type]
    if layout is None:
        texts = [key for key in keys if type(key) is str]
        if len(texts) != len(keys):
            raise _NotJson
        order = sorted(texts, key=_text_key_order)
        layout = (encode_head(5, len(order)), tuple((key, encode_text(key)) for key in order))
        if len(_KEY_ORDERS) < _KEY_ORDERS_MAX:
            _KEY_ORDERS[tuple(texts)] = layout
    return layout


def _write_json(obj: object, parts: list[bytes], depth: int) -> None:
    """Append the items of ``obj`` to ``parts``; :class:`_NotJson` (or ``UnicodeEncodeError``) for anything
    :func:`dumps_json` leaves to :func:`dumps`."""
    kind = type(obj)
    if kind is str:
        raw = obj.encode("utf-8")  # type: ignore[attr-defined]
        size = len(raw)
        parts.append(_SMALL_HEADS[0x60 | size] if size < 24 else encode_head(3, size))
        parts.append(raw)
    elif kind is dict:
        if depth <= 0:
            raise _NotJson
        mapping: dict[object, object] = obj  # type: ignore[assignment]
        head, order = _map_layout(tuple(mapping))
        parts.append(head)
        for key, item in order:
            parts.append(item)
            value = mapping[key]
            if type(value) is str:  # most values: written here, without a call
                raw = value.encode("utf-8")
                size = len(raw)
                parts.append(_SMALL_HEADS[0x60 | size] if size < 24 else encode_head(3, size))
                parts.append(raw)
            else:
                _write_json(value, parts, depth - 1)
    elif kind is int:
        number: int = obj  # type: ignore[assignment]
        if 0 <= number < _INT_LIMIT:
            parts.append(encode_head(0, number))
        elif -_INT_LIMIT <= number < 0:
            parts.append(encode_head(1, -1 - number))
        else:
            raise _NotJson  # a bignum: cbor2 tags it
    elif kind is list:
        if depth <= 0:
            raise _NotJson
        items: list[object] = obj  # type: ignore[assignment]
        parts.append(encode_head(4, len(items)))
        for value in items:
            _write_json(value, parts, depth - 1)
    elif obj is None:
        parts.append(b"\xf6")
    elif obj is True:
        parts.append(b"\xf5")
    elif obj is False:
        parts.append(b"\xf4")
    else:
        raise _NotJson


_INT_LIMIT: Final = 1 << 64


def encode_head(major: int, argument: int) -> bytes:
    """The shortest head of a data item (RFC 8949 §3, §4.2.1): major type ``major``, argument ``argument``.

    Used to write fixed CBOR layouts by hand (COSE_Sign1, CWT claims) byte-identical to :func:`dumps`.
    """
    if not 0 <= major <= 7:
        raise ValueError("major type must be 0-7")
    if not 0 <= argument < 1 << 64:
        raise ValueError("argument must be in [0, 2**64)")
    mt = major << 5
    if argument < 24:
        return _SMALL_HEADS[mt | argument]
    if argument < 0x100:
        return bytes((mt | 24, argument))
    if argument < 0x10000:
        return bytes((mt | 25,)) + argument.to_bytes(2, "big")
    if argument < 0x100000000:
        return bytes((mt | 26,)) + argument.to_bytes(4, "big")
    return bytes((mt | 27,)) + argument.to_bytes(8, "big")


_SMALL_HEADS: Final = tuple(bytes((i,)) for i in range(256))


def encode_text(text: str) -> bytes:
    """``text`` as a CBOR text string (major type 3), as :func:`dumps` writes it."""
    raw = text.encode("utf-8")
    return encode_head(3, len(raw)) + raw


def _encode_tagged(encoder: cbor2.CBOREncoder, value: object) -> None:
    if isinstance(value, Tagged):
        encoder.encode(cbor2.CBORTag(value.tag, value.value))
        return
    raise cbor2.CBOREncodeTypeError(f"cannot encode {type(value).__name__} as CBOR")
