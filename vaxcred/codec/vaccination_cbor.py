"""The vaccination DCC in vaxcred's own layout written as deterministic CBOR in one pass: the same bytes as
:func:`~vaxcred.codec.cbor.dumps_json` (and cbor2's canonical mode), or ``None`` — then the general encoder runs.

The layout is the one :meth:`vaxcred.model.DCC.to_json` gives a vaccination: ``{"ver", "nam", "dob", "v": [entry]}``
with ``nam`` text values under any of ``fn``/``gn``/``fnt``/``gnt`` and an entry of exactly the ten fields, text
but ``dn``/``sd`` (integers 0–23, one byte). Its maps' canonical orders (RFC 8949 §4.2.1: length, then bytes)
are fixed, so their keys and heads are written once here; only the values are encoded per DCC. Anything else
(another layout, another type, a longer integer, text UTF-8 cannot encode) is ``None``. tests/codec hold it to
``dumps`` byte for byte.
"""

from __future__ import annotations

from typing import Any, Final

from vaxcred.codec.cbor_encode import encode_head, encode_text

__all__ = ["vaccination_cbor"]

_HEADS: Final = tuple(bytes((i,)) for i in range(256))
#: the top map (4 entries) and its first key, ``v`` (the shortest), with the one-entry array and its 10-entry map
_START: Final = encode_head(5, 4) + encode_text("v") + encode_head(4, 1) + encode_head(5, 10)
_DOB: Final = encode_text("dob")
_NAM: Final = encode_text("nam")
_VER: Final = encode_text("ver")
#: ``nam``'s possible keys in canonical order (two-byte keys first)
_NAME_ORDER: Final = tuple((key, encode_text(key)) for key in ("fn", "gn", "fnt", "gnt"))
_NAME_KEYS: Final = frozenset(key for key, _ in _NAME_ORDER)


def _text(value: object) -> bytes:
    """``value`` (exactly a ``str``) as a CBOR text string; ``TypeError`` for anything else."""
    if type(value) is not str:
        raise TypeError
    raw = value.encode("utf-8")
    size = len(raw)
    return (_HEADS[0x60 | size] if size < 24 else encode_head(3, size)) + raw


#: the encoded text of the values that repeat from DCC to DCC (``ver``, ``tg``, ``vp``, ``mp``, ``ma``, ``co``,
#: ``is``, ``dt``: a few thousand in a run), at most :data:`_REPEATS_MAX`; the cache only ever holds ``str``
#: keys (a key equal to a ``str`` but of another type would be looked up only after ``type(value) is str``)
_REPEATS: dict[str, bytes] = {}
_REPEATS_MAX: Final = 8192


def _repeated(value: object) -> bytes:
    """:func:`_text` of ``value``, remembered."""
    if type(value) is not str:
        raise TypeError
    encoded = _REPEATS.get(value)
    if encoded is None:
        encoded = _text(value)
        if len(_REPEATS) < _REPEATS_MAX:
            _REPEATS[value] = encoded
    return encoded


def vaccination_cbor(dcc: Any) -> bytes | None:
    """``dumps_json(dcc)`` when ``dcc`` is a vaccination DCC in vaxcred's layout (module docstring), else
    ``None``. Never raises."""
    try:
        return _encode(dcc)
    except (TypeError, KeyError, UnicodeEncodeError):
        return None


def _encode(dcc: Any) -> bytes | None:
    if type(dcc) is not dict or len(dcc) != 4:
        return None
    entries = dcc["v"]
    nam = dcc["nam"]
    if (
        type(entries) is not list
        or len(entries) != 1
        or type(nam) is not dict
        or not nam.keys() <= _NAME_KEYS
    ):
        return None
    entry = entries[0]
    if type(entry) is not dict or len(entry) != 10:
        return None
    dn, sd = entry["dn"], entry["sd"]
    if type(dn) is not int or type(sd) is not int or not 0 <= dn < 24 or not 0 <= sd < 24:
        return None
    heads, repeated = _HEADS, _repeated
    parts = [
        _START_CI,
        _text(entry["ci"]),
        _CO,
        repeated(entry["co"]),
        _DN,
        heads[dn],
        _DT,
        repeated(entry["dt"]),
        _IS,
        repeated(entry["is"]),
        _MA,
        repeated(entry["ma"]),
        _MP,
        repeated(entry["mp"]),
        _SD,
        heads[sd],
        _TG,
        repeated(entry["tg"]),
        _VP,
        repeated(entry["vp"]),
        _DOB,
        _text(dcc["dob"]),
        _NAM,
        heads[0xA0 | len(nam)],
    ]
    for key, encoded in _NAME_ORDER:
        if key in nam:
            parts.append(encoded)
            parts.append(_text(nam[key]))
    parts.append(_VER)
    parts.append(repeated(dcc["ver"]))
    return b"".join(parts)


_START_CI: Final = _START + encode_text("ci")
_CO, _DN, _DT, _IS, _MA, _MP, _SD, _TG, _VP = (
    encode_text(k) for k in ("co", "dn", "dt", "is", "ma", "mp", "sd", "tg", "vp")
)
