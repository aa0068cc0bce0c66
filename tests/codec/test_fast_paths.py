"""The hand-written fast paths write exactly the bytes of the general code they replace (benchmarks.md)."""

from __future__ import annotations

import random
import zlib

import base45 as base45_package
import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vaxcred.codec import base45, cbor, compress, cose, cwt

DCC = {
    "ver": "1.3.0",
    "nam": {"fn": "Nguyễn", "gn": "Văn Đức", "fnt": "NGUYEN", "gnt": "VAN<DUC"},
    "dob": "1990-05-17",
    "v": [
        {
            "tg": "840539006",
            "vp": "1119349007",
            "mp": "EU/1/20/1528",
            "ma": "ORG-100030215",
            "dn": 2,
            "sd": 2,
            "dt": "2021-09-12",
            "co": "VN",
            "is": "Ministry of Health of Viet Nam",
            "ci": "URN:UVCI:01:VN:BYT/A7K2M9Q4X1#5",
        }
    ],
}


def _inputs(seed: int) -> list[bytes]:
    rng = random.Random(seed)
    sample = cwt.encode_claims(iss="VN", iat=1_700_000_000, exp=1_800_000_000, dcc=DCC)
    out = [b"", b"\x00", sample, sample * 12]
    for n in (*range(1, 64), *(rng.randint(0, 6000) for _ in range(60))):
        out.append(bytes(rng.getrandbits(8) for _ in range(n)))
        out.append(bytes(rng.choice(b"ABC<0123 ") for _ in range(n)))
        out.append((sample * 20)[:n])
    return out


def test_compress_is_zlib_level_9_byte_for_byte() -> None:
    """The small-window path writes what ``zlib.compress(data, 9)`` writes, for every size around it."""
    edge = compress._SMALL_MAX
    for data in [*_inputs(1), bytes(edge), bytes(edge + 1), b"x" * edge, b"x" * (edge + 1)]:
        out = compress.compress(data)
        assert out == zlib.compress(data, 9), len(data)
        assert out[:2] == b"\x78\xda"
        assert compress.decompress(out, max_size=1 << 20) == data


def test_b45encode_matches_the_base45_package() -> None:
    for data in _inputs(2):
        assert base45.b45encode(data) == base45_package.b45encode(data).decode("ascii")
        assert base45.b45decode(base45.b45encode(data)) == data
    assert base45.b45encode(b"\xff\xff") == "FGW"
    assert base45.b45encode(bytearray(b"AB")) == base45.b45encode(memoryview(b"AB")) == "BB8"


def _json_values(rng: random.Random, depth: int = 0) -> object:
    kind = rng.randrange(8 if depth < 4 else 4)
    if kind == 0:
        return rng.choice(["", "a", "Đức", "x" * 30, "é" * 12])
    if kind == 1:
        return rng.choice([0, 1, -1, 23, 24, -25, 2**32, 2**63, 2**70, -(2**70)])
    if kind == 2:
        return rng.choice([True, False, None])
    if kind == 3:
        return rng.choice([1.0, 2.5, float("inf"), b"bytes", cbor.Tagged(0, "2021-01-01")])
    if kind in (4, 5, 6):
        keys = ["a", "bb", "é", "ab", "b", "zz" * 13, "é" * 12, "ee" * 12, 1, -3]
        return {rng.choice(keys): _json_values(rng, depth + 1) for _ in range(rng.randrange(6))}
    return [_json_values(rng, depth + 1) for _ in range(rng.randrange(4))]


def test_dumps_json_equals_deterministic_dumps() -> None:
    rng = random.Random(3)
    assert cbor.dumps_json(DCC) == cbor.dumps(DCC) == cbor2.dumps(DCC, canonical=True)
    for _ in range(3000):
        value = _json_values(rng)
        assert cbor.dumps_json(value) == cbor.dumps(value)


_json_scalars = (
    st.text(max_size=30)
    | st.text(st.characters(), max_size=300)
    | st.integers(-(2**66), 2**66)
    | st.sampled_from([0, 23, 24, 255, 256, 65535, 65536, 2**32, 2**64 - 1, 2**64, -(2**64), -(2**64) - 1])
    | st.booleans()
    | st.none()
    | st.floats(allow_nan=False)
)
_json_like = st.recursive(
    _json_scalars,
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.dictionaries(st.text(max_size=26) | st.integers(-3, 3), inner, max_size=6)
    ),
    max_leaves=40,
)


@settings(max_examples=400, deadline=None)
@given(_json_like)
def test_dumps_json_writes_what_the_deterministic_encoder_writes(value: object) -> None:
    """For any JSON-like value (text of any length, integers around every head size and past 64 bits, floats,
    non-text keys, lone surrogates): dumps_json gives dumps's bytes, or fails as dumps fails."""
    try:
        expected: bytes | type[BaseException] = cbor.dumps(value)
    except Exception as e:
        expected = type(e)
    try:
        got: bytes | type[BaseException] = cbor.dumps_json(value)
    except Exception as e:
        got = type(e)
    assert got == expected


def test_dumps_json_of_nesting_past_its_depth_is_the_encoders() -> None:
    """Nesting deeper than the fast path goes (and a DCC-shaped value at every depth) gives dumps's bytes."""
    value: object = DCC
    for depth in range(40):
        value = [value, 1] if depth % 2 else {"k": value, "": None}
        assert cbor.dumps_json(value) == cbor.dumps(value)


@pytest.mark.parametrize("iss", [None, "VN", "", "x" * 24, "Đ" * 200])
@pytest.mark.parametrize("when", [0, 23, 24, 255, 256, 65535, 65536, 2**32 - 1, 2**32, cwt.MAX_TIME - 1])
def test_encode_claims_equals_the_encoder(iss: str | None, when: int) -> None:
    claims: dict[int, object] = {} if iss is None else {1: iss}
    claims.update({4: when, 6: when, -260: {1: DCC}})
    assert cwt.encode_claims(iss=iss, iat=when, exp=when, dcc=DCC) == cbor.dumps(claims)


@pytest.mark.parametrize("length", [0, 1, 23, 24, 255, 256, 65535, 65536])
def test_encode_sign1_and_protected_equal_the_encoder(length: int) -> None:
    blob = bytes(range(256)) * (length // 256 + 1)
    payload, signature = blob[:length], blob[: min(length, 64)]
    protected = cose.encode_protected(-7, blob[:8])
    assert cose.encode_sign1(protected, payload, signature) == cbor.dumps(
        cbor.Tagged(18, [protected, {}, payload, signature])
    )
    for alg in (-7, -37, 0, 23, 24, -24, -25, 70000, 2**64, -(2**64) - 1):
        assert cose.encode_protected(alg, blob[: length % 300]) == cbor.dumps(
            {1: alg, 4: blob[: length % 300]}
        )


def test_encode_head_is_the_shortest_form() -> None:
    for n in (0, 1, 23, 24, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**64 - 1):
        assert cbor.encode_head(0, n) == cbor2.dumps(n)
        assert cbor.encode_head(1, n) == cbor2.dumps(-1 - n)
    with pytest.raises(ValueError):
        cbor.encode_head(0, 2**64)
    with pytest.raises(ValueError):
        cbor.encode_head(8, 0)


def test_a_cached_protected_header_decides_like_a_fresh_decode() -> None:
    protected = cose.encode_protected(-7, b"12345678")
    message = cose.encode_sign1(protected, b"payload", bytes(64))
    first, second = cose.decode_sign1(message), cose.decode_sign1(message)
    assert first == second
    assert dict(first.protected) == {1: -7, 4: b"12345678"}
    assert first.alg == -7
    assert first.kid == b"12345678"
    assert first.kid_in_protected
