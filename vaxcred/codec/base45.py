"""Base45 (RFC 9285), strict: our own implementation (the ``base45`` package is a test oracle only).

Rules (RFC 9285 §4, §6; DCC.md §1; SECURITY.md pitfall 10): only the 45 characters
``0-9A-Z $%*+-./:`` are data (space included; lower case, newline and everything else are rejected),
a length ≡ 1 (mod 3) is rejected, a triplet must be ≤ 65535 and a final pair ≤ 255.  No whitespace is
trimmed here: that happens once, at the prefix.

Encoding and decoding run entirely in C-level primitives, no Python loop per character: ``bytes.translate``
maps characters to digit values (0xFF for anything else), strided slices split the
digits into the c, d and e columns, and each column is spread into 3-byte lanes of one big integer,
so that ``c + 45·d + 2025·e`` is computed for every triplet at once by three big-integer operations.
A lane value is < 2**17 < 2**24, so lanes never carry into each other; a non-zero high byte in a lane
means the triplet exceeded 65535.
"""

from __future__ import annotations

from collections.abc import Callable

from vaxcred.errors import Base45Error

__all__ = ["ALPHABET", "b45decode", "b45encode"]

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"

_INVALID = 0xFF
_DECODE_TABLE = bytes(ALPHABET.index(chr(i)) if chr(i) in ALPHABET else _INVALID for i in range(256))
_ENCODE_PAIRS: tuple[str, ...] = tuple(ALPHABET[i % 45] + ALPHABET[i // 45] for i in range(45 * 45))


def _table(f: Callable[[int], int]) -> bytes:
    return bytes(f(i) for i in range(256))


# Encoding, vectorised like decoding.  A pair n = 256·a + b is split into base-45 digits per byte:
# 256·a = 2025·ea + 45·da + ca and b = 45·db + cb (translate tables), so n = 2025·ea + 45·(da + db) +
# (ca + cb).  The digit sums are added lane-wise in big integers (one byte per pair: every sum stays below
# 256, so lanes never carry into each other) and normalised with two carry steps, again by translate:
# c = (ca + cb) mod 45, d = (da + db + carry) mod 45, e = ea + carry'.
_HI_C = _table(lambda a: (256 * a) % 45)
_HI_D = _table(lambda a: (256 * a) % 2025 // 45)
_HI_E = _table(lambda a: (256 * a) // 2025)
_LO_C = _table(lambda b: b % 45)
_LO_D = _table(lambda b: b // 45)
_CARRY = _table(lambda i: i // 45 if i < 90 else 0)  # lanes hold at most 88 (c) or 50 (d)
_MOD45_CHAR = _table(lambda i: ord(ALPHABET[i % 45]))


def b45encode(data: bytes | bytearray | memoryview) -> str:
    """Encode ``data`` as Base45 text (RFC 9285 §4)."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"b45encode() expects bytes, not {type(data).__name__}")
    raw = bytes(data)
    pairs = len(raw) // 2
    full = 2 * pairs
    out = bytearray(3 * pairs)
    if pairs:
        hi = raw[0:full:2]
        lo = raw[1:full:2]
        from_bytes = int.from_bytes
        c = (from_bytes(hi.translate(_HI_C), "big") + from_bytes(lo.translate(_LO_C), "big")).to_bytes(
            pairs, "big"
        )
        d = (
            from_bytes(hi.translate(_HI_D), "big")
            + from_bytes(lo.translate(_LO_D), "big")
            + from_bytes(c.translate(_CARRY), "big")
        ).to_bytes(pairs, "big")
        e = (from_bytes(hi.translate(_HI_E), "big") + from_bytes(d.translate(_CARRY), "big")).to_bytes(
            pairs, "big"
        )
        out[0::3] = c.translate(_MOD45_CHAR)
        out[1::3] = d.translate(_MOD45_CHAR)
        out[2::3] = e.translate(_MOD45_CHAR)
    if full != len(raw):
        out += _ENCODE_PAIRS[raw[-1]].encode("ascii")
    return out.decode("ascii")


def b45decode(text: str) -> bytes:
    """Decode strict Base45 ``text`` to bytes.

    Raises :class:`Base45Error` with code ``base45.invalid_char``, ``base45.bad_length`` or
    ``base45.overflow``; :class:`TypeError` for a non-``str`` argument.
    """
    if not isinstance(text, str):
        raise TypeError(f"b45decode() expects str, not {type(text).__name__}")
    if not text.isascii():
        raise Base45Error("text contains a character outside the Base45 alphabet", code="base45.invalid_char")
    digits = text.encode("ascii").translate(_DECODE_TABLE)
    if _INVALID in digits:
        pos = digits.index(_INVALID)
        raise Base45Error(
            f"character {text[pos]!r} at position {pos} is outside the Base45 alphabet",
            code="base45.invalid_char",
        )
    n = len(digits)
    triplets, rest = divmod(n, 3)
    if rest == 1:
        raise Base45Error(f"length {n} is 1 more than a multiple of 3", code="base45.bad_length")
    out = b""
    if triplets:
        full = triplets * 3
        lane_c = bytearray(full)
        lane_d = bytearray(full)
        lane_e = bytearray(full)
        lane_c[2::3] = digits[0:full:3]
        lane_d[2::3] = digits[1:full:3]
        lane_e[2::3] = digits[2:full:3]
        value = (
            int.from_bytes(lane_c, "big")
            + 45 * int.from_bytes(lane_d, "big")
            + 2025 * int.from_bytes(lane_e, "big")
        )
        lanes = value.to_bytes(full, "big")
        if lanes[0::3].count(0) != triplets:
            raise Base45Error("a 3-character group encodes a value above 65535", code="base45.overflow")
        decoded = bytearray(2 * triplets)
        decoded[0::2] = lanes[1::3]
        decoded[1::2] = lanes[2::3]
        out = bytes(decoded)
    if rest:
        last = digits[-2] + 45 * digits[-1]
        if last > 0xFF:
            raise Base45Error("the final 2-character group encodes a value above 255", code="base45.overflow")
        out += bytes((last,))
    return out
