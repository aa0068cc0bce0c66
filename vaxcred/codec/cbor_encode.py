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
    """:func:`dumps` for JSON-like data (the DCC): the same bytes, about a third faster.

    cbor2's deterministic mode sorts every map by encoding each key; for maps whose keys are all text
    the order is simply (UTF-8 length, UTF-8 bytes), so the data is copied once with its maps in that
    order (the order of each key set is computed once and remembered) and written by cbor2's plain mode,
    which keeps insertion order.  The copy is made only of ``dict`` with ``str`` keys, ``list``, ``str``,
    ``int``, ``bool`` and ``None``, for which both modes write identical items; anything else (floats,
    which the deterministic mode shortens, non-text keys, other types) goes to :func:`dumps` unchanged.
    """
    try:
        ordered = _json_ordered(obj, _JSON_MAX_DEPTH)
    except _NotJson:
        return dumps(obj)
    return bytes(cbor2.dumps(ordered))


class _NotJson(Exception):
    """The value is not plain JSON-like data: encode it with :func:`dumps`."""


_JSON_MAX_DEPTH: Final = 32
_KEY_ORDERS: dict[tuple[str, ...], tuple[str, ...]] = {}
_KEY_ORDERS_MAX: Final = 512


def _text_key_order(key: str) -> tuple[int, bytes]:
    raw = key.encode("utf-8")
    return len(raw), raw


def _json_ordered(obj: object, depth: int) -> object:
    kind = type(obj)
    if kind is dict:
        if depth <= 0:
            raise _NotJson
        mapping: dict[object, object] = obj  # type: ignore[assignment]
        keys = tuple(mapping)
        order = _KEY_ORDERS.get(keys)  # type: ignore[arg-type]
        if order is None:
            for key in keys:
                if type(key) is not str:
                    raise _NotJson
            order = tuple(sorted(keys, key=_text_key_order))  # type: ignore[arg-type]
            if len(_KEY_ORDERS) < _KEY_ORDERS_MAX:
                _KEY_ORDERS[keys] = order  # type: ignore[index]
        out: dict[str, object] = {}
        for key in order:
            value = mapping[key]
            vt = type(value)
            out[key] = value if vt is str or vt is int else _json_ordered(value, depth - 1)
        return out
    if kind is list:
        if depth <= 0:
            raise _NotJson
        items: list[object] = obj  # type: ignore[assignment]
        return [v if type(v) is str or type(v) is int else _json_ordered(v, depth - 1) for v in items]
    if kind is str or kind is int or kind is bool or obj is None:
        return obj
    raise _NotJson


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
