"""PostgreSQL one-dimensional arrays written in the server's binary format at once, for the batch stages' array
parameters (issuance's batch call, :mod:`~vaxcred.pipeline.issuance.roundtrip`; site signing's member INSERT,
:mod:`~vaxcred.pipeline.site_signing.member_rows`): ``bigint[]``, ``integer[]``, ``text[]``, ``bytea[]`` and
``timestamptz[]``. PostgreSQL only: it imports psycopg (the ``postgres`` extra), so callers import it on that
backend only and a SQLite install runs every stage without it.

psycopg writes a list parameter element by element in Python (it finds a dumper for the list's elements, picks
the narrowest integer type that holds them, then dumps each value: ~15 µs a passport at 1,000 a batch in
issuance, 1.6–2.7 µs a member in site signing); here each array is built by one loop of C-level packs and
handed to psycopg as bytes with the array's type (:func:`register`: a dumper per wrapper type, on the
connection: a connection copies psycopg's adapters when it is opened, so registering them globally would miss
connections already open). Measured: issuance 15 → 2.3 µs a passport, site signing 0.4–0.8 µs a member
(docs/pipeline.md, sessions 8 and 9). The server reads them with ``array_recv``
exactly as it reads psycopg's: the same values, and a malformed array is refused by the server, not guessed at.

The format (``array_send``): number of dimensions, a has-NULLs flag, the element type; per dimension its length
and lower bound (1); then each element as a 4-byte length (-1: NULL) and its bytes — ``int8`` 8 bytes big
endian, ``int4`` 4 bytes, ``text`` UTF-8, ``bytea`` as is, ``timestamptz`` microseconds since 2000-01-01 UTC as an ``int8``.
An empty array has no dimension.
"""

from __future__ import annotations

import datetime as dt
import functools
import struct
from collections.abc import Sequence
from typing import Any, Final

from psycopg.adapt import Dumper
from psycopg.pq import Format

__all__ = [
    "BigintArray",
    "ByteaArray",
    "IntegerArray",
    "TextArray",
    "TimestamptzArray",
    "bigint_array",
    "bytea_array",
    "integer_array",
    "register",
    "text_array",
    "timestamptz_array",
]

_INT8, _INT8_ARRAY = 20, 1016
_INT4, _INT4_ARRAY = 23, 1007
_TEXT, _TEXT_ARRAY = 25, 1009
_BYTEA, _BYTEA_ARRAY = 17, 1001
_TIMESTAMPTZ, _TIMESTAMPTZ_ARRAY = 1184, 1185

_header: Final = struct.Struct(">iiIii").pack  # ndim 1, has NULLs, element type, length, lower bound
_empty: Final = struct.Struct(">iiI").pack  # ndim 0, no NULLs, element type
_length: Final = struct.Struct(">i").pack
_int8: Final = struct.Struct(">iq").pack
_NULL: Final = _length(-1)
#: the framed lengths of the usual elements, made once (payloads, audit paths, names are short)
_LENGTHS: Final = tuple(_length(n) for n in range(4096))
#: PostgreSQL's timestamp epoch
_EPOCH: Final = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
_MICROSECOND: Final = dt.timedelta(microseconds=1)


class BigintArray(bytes):
    """A ``bigint[]`` in binary (:func:`bigint_array`)."""


class IntegerArray(bytes):
    """An ``integer[]`` in binary (:func:`integer_array`)."""


class TextArray(bytes):
    """A ``text[]`` in binary (:func:`text_array`)."""


class ByteaArray(bytes):
    """A ``bytea[]`` in binary (:func:`bytea_array`)."""


class TimestamptzArray(bytes):
    """A ``timestamptz[]`` in binary (:func:`timestamptz_array`)."""


def _array(element: int, count: int, nulls: bool, body: bytes) -> bytes:
    if not count:
        return _empty(0, 0, element)
    return _header(1, 1 if nulls else 0, element, count, 1) + body


def bigint_array(values: Sequence[int | None]) -> BigintArray:
    """``values`` (each fits a signed 64-bit integer: else :class:`struct.error`) as a ``bigint[]``."""
    count = len(values)
    if None in values:
        body = b"".join([_NULL if v is None else _int8(8, v) for v in values])
        return BigintArray(_array(_INT8, count, True, body))
    return BigintArray(_array(_INT8, count, False, _framed(values, "q", 8)))


def integer_array(values: Sequence[int]) -> IntegerArray:
    """``values`` (each fits a signed 32-bit integer: else :class:`struct.error`) as an ``integer[]``."""
    return IntegerArray(_array(_INT4, len(values), False, _framed(values, "i", 4)))


@functools.lru_cache(maxsize=64)
def _framing(count: int, code: str) -> struct.Struct:
    return struct.Struct(">" + ("i" + code) * count)


def _framed(values: Sequence[int | None], code: str, size: int) -> bytes:
    """``values`` (no NULL: a ``None`` is a :class:`struct.error`) as elements, each its length ``size`` then its value: one pack of a remembered
    format (a batch's sizes repeat)."""
    framed: list[int | None] = [size] * (2 * len(values))
    framed[1::2] = values
    return _framing(len(values), code).pack(*framed)


def _elements(data: list[bytes]) -> bytes:
    """Each of ``data`` after its 4-byte length."""
    parts: list[bytes] = [b""] * (2 * len(data))
    parts[0::2] = [_LENGTHS[n] if n < len(_LENGTHS) else _length(n) for n in map(len, data)]
    parts[1::2] = data
    return b"".join(parts)


def text_array(values: Sequence[str]) -> TextArray:
    """``values`` as a ``text[]`` (UTF-8; the server refuses a NUL character, as it does psycopg's)."""
    return TextArray(_array(_TEXT, len(values), False, _elements([v.encode() for v in values])))


def bytea_array(values: Sequence[bytes]) -> ByteaArray:
    """``values`` as a ``bytea[]``."""
    return ByteaArray(_array(_BYTEA, len(values), False, _elements(list(values))))


def timestamptz_array(values: Sequence[dt.datetime]) -> TimestamptzArray:
    """``values`` (aware: a naive datetime is a :class:`TypeError`) as a ``timestamptz[]``."""
    # a batch's passports share their times: each distinct instant converted once
    seen: dict[dt.datetime, bytes] = {}
    parts: list[bytes] = []
    for v in values:
        element = seen.get(v)
        if element is None:
            element = seen[v] = _int8(8, (v - _EPOCH) // _MICROSECOND)
        parts.append(element)
    return TimestamptzArray(_array(_TIMESTAMPTZ, len(values), False, b"".join(parts)))


def _dumper(array_oid: int) -> type[Dumper]:
    class _Prebuilt(Dumper):
        format = Format.BINARY
        oid = array_oid

        def dump(self, obj: Any) -> bytes:
            return obj  # type: ignore[no-any-return]  # already the array's binary form

    return _Prebuilt


_DUMPERS: Final = (
    (BigintArray, _dumper(_INT8_ARRAY)),
    (IntegerArray, _dumper(_INT4_ARRAY)),
    (TextArray, _dumper(_TEXT_ARRAY)),
    (ByteaArray, _dumper(_BYTEA_ARRAY)),
    (TimestamptzArray, _dumper(_TIMESTAMPTZ_ARRAY)),
)


def register(conn: Any) -> None:
    """Let psycopg connection ``conn`` send the arrays built here (binary, typed); other values are unchanged."""
    for cls, dumper in _DUMPERS:
        conn.adapters.register_dumper(cls, dumper)
