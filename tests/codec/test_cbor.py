"""Tests for vaxcred.codec.cbor: the strict decoder (SECURITY.md pitfall 8) and the canonical encoder."""

from __future__ import annotations

import base64
import contextlib
import json
import math
import struct
from pathlib import Path
from typing import Any

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vaxcred.codec.cbor import MAX_DEPTH_LIMIT, Tagged, dumps, loads
from vaxcred.errors import CborError

DATA = Path(__file__).parents[1] / "data"
NOT_WELL_FORMED: dict[str, list[str]] = json.loads((DATA / "rfc8949" / "not_well_formed.json").read_text())[
    "groups"
]
APPENDIX_A: list[dict[str, Any]] = json.loads((DATA / "cbor-test-vectors" / "appendix_a.json").read_text())

ALL_NOT_WELL_FORMED = [(group, item) for group, items in NOT_WELL_FORMED.items() for item in items]


def _code(data: bytes, **kwargs: Any) -> str:
    with pytest.raises(CborError) as info:
        loads(data, **kwargs)
    return info.value.code


# --- RFC 8949 Appendix F not-well-formed items --------------------------------------------------


def test_not_well_formed_suite_has_121_items() -> None:
    """The vendored suite is complete."""
    assert len(ALL_NOT_WELL_FORMED) == 121


@pytest.mark.parametrize("allow_indefinite", [False, True], ids=["strict", "indefinite"])
@pytest.mark.parametrize(("group", "item"), ALL_NOT_WELL_FORMED, ids=[i for _, i in ALL_NOT_WELL_FORMED])
def test_not_well_formed_item_is_rejected(group: str, item: str, allow_indefinite: bool) -> None:
    """Every RFC 8949 not-well-formed item fails with CborError, with or without indefinite lengths."""
    with pytest.raises(CborError):
        loads(bytes.fromhex(item), allow_indefinite=allow_indefinite)


# --- RFC 8949 Appendix A examples --------------------------------------------------------------

# The DCC profile rejects these Appendix A items even though they are well-formed (or, for f818,
# were well-formed under RFC 7049 only):
#
#   hex    diagnostic    code                    why
#   f7     undefined     cbor.unsupported        no JSON/COSE/CWT meaning; strict profile rejects it
#   f0     simple(16)    cbor.unsupported        unassigned simple value
#   f818   simple(24)    cbor.not_well_formed    two-byte simple < 32 is not well-formed in RFC 8949
#   f8ff   simple(255)   cbor.unsupported        unassigned simple value
PROFILE_REJECTIONS = {
    "f7": "cbor.unsupported",
    "f0": "cbor.unsupported",
    "f818": "cbor.not_well_formed",
    "f8ff": "cbor.unsupported",
}

# Indefinite-length items: rejected with cbor.indefinite by default, decoded with allow_indefinite=True.
INDEFINITE = {
    "5f42010243030405ff",
    "7f657374726561646d696e67ff",
    "9fff",
    "9f018202039f0405ffff",
    "9f01820203820405ff",
    "83018202039f0405ff",
    "83019f0203ff820405",
    "9f0102030405060708090a0b0c0d0e0f101112131415161718181819ff",
    "bf61610161629f0203ffff",
    "826161bf61626163ff",
    "bf6346756ef563416d7421ff",
}

# Expected values where the vector file gives only diagnostic notation (JSON cannot hold them), and for
# bignums (tags 2, 3), which stay Tagged instead of the file's integers: the layers above decide what a
# tag means, and no DCC field is a bignum.
DIAGNOSTIC = {
    "f97c00": math.inf,
    "f9fc00": -math.inf,
    "fa7f800000": math.inf,
    "faff800000": -math.inf,
    "fb7ff0000000000000": math.inf,
    "fbfff0000000000000": -math.inf,
    "c074323031332d30332d32315432303a30343a30305a": Tagged(0, "2013-03-21T20:04:00Z"),
    "c11a514b67b0": Tagged(1, 1363896240),
    "c1fb41d452d9ec200000": Tagged(1, 1363896240.5),
    "d74401020304": Tagged(23, b"\x01\x02\x03\x04"),
    "d818456449455446": Tagged(24, b"dIETF"),
    "d82076687474703a2f2f7777772e6578616d706c652e636f6d": Tagged(32, "http://www.example.com"),
    "40": b"",
    "4401020304": b"\x01\x02\x03\x04",
    "a201020304": {1: 2, 3: 4},
    "5f42010243030405ff": b"\x01\x02\x03\x04\x05",
    "c249010000000000000000": Tagged(2, bytes.fromhex("010000000000000000")),
    "c349010000000000000000": Tagged(3, bytes.fromhex("010000000000000000")),
}
NAN = {"f97e00", "fa7fc00000", "fb7ff8000000000000"}


def test_appendix_a_hex_matches_base64() -> None:
    """The vector file's two encodings agree (guards against a bad copy)."""
    for vector in APPENDIX_A:
        assert base64.b64decode(vector["cbor"]) == bytes.fromhex(vector["hex"])


@pytest.mark.parametrize("vector", APPENDIX_A, ids=[v["hex"] for v in APPENDIX_A])
def test_appendix_a_item_decodes_or_is_a_listed_profile_rejection(vector: dict[str, Any]) -> None:
    """Each Appendix A item decodes to its value (indefinite ones when allowed) or is rejected as listed."""
    hex_ = vector["hex"]
    data = bytes.fromhex(hex_)
    if hex_ in PROFILE_REJECTIONS:
        assert _code(data, allow_indefinite=True) == PROFILE_REJECTIONS[hex_]
        return
    value = loads(data, allow_indefinite=True)
    if hex_ in NAN:
        assert isinstance(value, float)
        assert math.isnan(value)
    elif hex_ in DIAGNOSTIC:
        assert value == DIAGNOSTIC[hex_]
    else:
        assert value == vector["decoded"]
        assert type(value) is type(vector["decoded"]) or isinstance(value, float)


@pytest.mark.parametrize("hex_", sorted(INDEFINITE))
def test_appendix_a_indefinite_item_is_rejected_by_default(hex_: str) -> None:
    """Indefinite lengths fail with ``cbor.indefinite`` unless explicitly allowed."""
    assert _code(bytes.fromhex(hex_)) == "cbor.indefinite"


def test_appendix_a_definite_items_decode_in_strict_mode() -> None:
    """Every item not listed as indefinite or rejected decodes with the default settings."""
    for vector in APPENDIX_A:
        if vector["hex"] not in INDEFINITE and vector["hex"] not in PROFILE_REJECTIONS:
            loads(bytes.fromhex(vector["hex"]))


# --- strictness rules --------------------------------------------------------------------------


def test_empty_input_is_truncated() -> None:
    """No bytes is not a data item."""
    assert _code(b"") == "cbor.truncated"


def test_trailing_bytes_are_rejected() -> None:
    """Anything after the top-level item fails (cbor2.loads would ignore it)."""
    assert cbor2.loads(b"\x00\x00") == 0
    assert _code(b"\x00\x00") == "cbor.trailing_bytes"


@pytest.mark.parametrize(
    "hex_",
    [
        "a201000100",  # {1: 0, 1: 0}
        "a2616101616102",  # {"a": 1, "a": 2}
        "a3010002000100",  # duplicate not adjacent
        "a2397fff00397fff01",  # duplicate negative key
    ],
)
def test_duplicate_map_keys_are_rejected(hex_: str) -> None:
    """A key seen twice in one map fails (cbor2 5.x keeps the last one)."""
    assert _code(bytes.fromhex(hex_)) == "cbor.duplicate_key"


def test_duplicate_keys_are_rejected_in_indefinite_maps() -> None:
    """Indefinite maps get the same duplicate check."""
    assert _code(bytes.fromhex("bf01000100ff"), allow_indefinite=True) == "cbor.duplicate_key"


def test_int_and_text_keys_with_the_same_look_are_distinct() -> None:
    """``1`` and ``"1"`` are different keys."""
    assert loads(bytes.fromhex("a201006131f5")) == {1: 0, "1": True}


@pytest.mark.parametrize(
    ("hex_", "what"),
    [
        ("a1f500", "true"),
        ("a1f93c0000", "1.0"),
        ("a1410100", "bytes"),
        ("a18000", "array"),
        ("a1a000", "map"),
        ("a1f600", "null"),
        ("a1c06130", "tagged"),
        ("a2010af93c000b", "1 then 1.0"),
    ],
)
def test_map_keys_other_than_int_or_text_are_rejected(hex_: str, what: str) -> None:
    """Only int and text keys are allowed, so 1, True and 1.0 can never collide."""
    assert _code(bytes.fromhex(hex_), allow_indefinite=True) == "cbor.bad_key", what


def _nested_arrays(depth: int) -> bytes:
    return b"\x81" * depth + b"\x00"


def test_depth_16_is_accepted() -> None:
    """16 nested arrays decode at the default max_depth."""
    value: Any = loads(_nested_arrays(16))
    for _ in range(16):
        value = value[0]
    assert value == 0


def test_depth_17_is_rejected() -> None:
    """17 nested arrays fail with ``cbor.too_deep``."""
    assert _code(_nested_arrays(17)) == "cbor.too_deep"


def test_tags_count_towards_the_depth() -> None:
    """A chain of tags is nesting too (no unbounded recursion through tags)."""
    assert loads(b"\xc6" * 16 + b"\x00") is not None
    assert _code(b"\xc6" * 17 + b"\x00") == "cbor.too_deep"


def test_maps_and_indefinite_arrays_count_towards_the_depth() -> None:
    """Maps and indefinite arrays nest like definite arrays."""
    assert _code(b"\xa1\x00" * 17 + b"\x00") == "cbor.too_deep"
    assert _code(b"\x9f" * 17 + b"\xff" * 17, allow_indefinite=True) == "cbor.too_deep"


def test_deep_nesting_never_raises_recursion_error() -> None:
    """100 000 nested arrays fail cleanly with CborError."""
    assert _code(_nested_arrays(100_000), max_depth=MAX_DEPTH_LIMIT) == "cbor.too_deep"


def test_custom_max_depth_is_honoured() -> None:
    """``max_depth`` replaces the default."""
    assert loads(_nested_arrays(2), max_depth=2) == [[0]]
    assert _code(_nested_arrays(3), max_depth=2) == "cbor.too_deep"


@pytest.mark.parametrize("max_depth", [-1, MAX_DEPTH_LIMIT + 1])
def test_out_of_range_max_depth_is_a_value_error(max_depth: int) -> None:
    """max_depth outside 0..MAX_DEPTH_LIMIT is a caller mistake."""
    with pytest.raises(ValueError):
        loads(b"\x00", max_depth=max_depth)


@pytest.mark.parametrize(
    "hex_",
    [
        "5b00000001000000004100",  # bstr of 2**32 bytes, 2 present
        "7bffffffffffffffff00",  # tstr of 2**64-1 bytes
        "9bffffffffffffffff00",  # array of 2**64-1 items
        "bbffffffffffffffff0000",  # map of 2**64-1 pairs
        "9a0000000200",  # array of 2 items, 1 present
        "a20000",  # map of 2 pairs, 1 present
    ],
)
def test_lengths_beyond_the_input_are_truncated_without_allocating(hex_: str) -> None:
    """Declared lengths larger than the remaining input fail fast with ``cbor.truncated``."""
    assert _code(bytes.fromhex(hex_)) == "cbor.truncated"


@pytest.mark.parametrize("hex_", ["62c328", "61ff", "63eda080"])
def test_invalid_utf8_is_rejected(hex_: str) -> None:
    """Text strings must be valid UTF-8 (surrogates included)."""
    assert _code(bytes.fromhex(hex_)) == "cbor.bad_utf8"


def test_utf8_split_across_indefinite_chunks_is_rejected() -> None:
    """Each chunk of an indefinite text string must be valid UTF-8 on its own (RFC 8949 §3.2.3)."""
    assert _code(bytes.fromhex("7f61c361a9ff"), allow_indefinite=True) == "cbor.bad_utf8"


@pytest.mark.parametrize("hex_", ["5fff", "7fff", "9fff", "bfff"])
def test_indefinite_lengths_are_rejected_by_default(hex_: str) -> None:
    """Indefinite strings, arrays and maps fail with ``cbor.indefinite``."""
    assert _code(bytes.fromhex(hex_)) == "cbor.indefinite"


def test_indefinite_map_with_odd_items_is_rejected() -> None:
    """A break where a value is due is not well-formed."""
    assert _code(bytes.fromhex("bf00ff"), allow_indefinite=True) == "cbor.not_well_formed"


def test_undefined_is_rejected() -> None:
    """``undefined`` (f7) has no meaning in the DCC profile."""
    assert _code(b"\xf7") == "cbor.unsupported"


def test_floats_of_every_width_decode() -> None:
    """Half, single and double precision decode to float (iat/exp floats occur in the wild)."""
    assert loads(bytes.fromhex("f93e00")) == 1.5
    assert loads(bytes.fromhex("fa47c35000")) == 100000.0
    assert loads(b"\xfb" + struct.pack(">d", 1654330328.5)) == 1654330328.5


def test_simple_values_decode() -> None:
    """false, true and null decode to Python's values."""
    assert loads(b"\x83\xf4\xf5\xf6") == [False, True, None]


def test_extreme_integers_decode() -> None:
    """The full 64-bit argument range decodes for both signs."""
    assert loads(bytes.fromhex("1bffffffffffffffff")) == 2**64 - 1
    assert loads(bytes.fromhex("3bffffffffffffffff")) == -(2**64)


def test_bignums_stay_tagged() -> None:
    """Tag 2 bignums are not interpreted."""
    assert loads(bytes.fromhex("c240")) == Tagged(2, b"")


def test_bytes_like_input_is_accepted() -> None:
    """bytearray and memoryview decode like bytes."""
    assert loads(bytearray(b"\x01")) == loads(memoryview(b"\x01")) == 1


def test_str_input_is_a_type_error() -> None:
    """Passing text is a caller mistake."""
    with pytest.raises(TypeError):
        loads("00")  # type: ignore[arg-type]


def test_tagged_is_frozen_and_compares_by_value() -> None:
    """Tagged is an immutable value object."""
    tagged = Tagged(18, [])
    assert tagged == Tagged(18, [])
    with pytest.raises(AttributeError):
        tagged.tag = 1  # type: ignore[misc]


# --- encoder ----------------------------------------------------------------------------------


def test_dumps_sorts_map_keys_bytewise() -> None:
    """Deterministic encoding orders keys by their encoded bytes (RFC 8949 §4.2.1)."""
    assert dumps({"b": 1, "a": 2}) == bytes.fromhex("a2616102616201")
    assert dumps({-260: 0, 6: 0, 4: 0, 1: 0}) == bytes.fromhex("a4010004000600390103" + "00")


def test_dumps_uses_shortest_forms() -> None:
    """Integers and floats take their shortest encoding."""
    assert dumps(24) == b"\x18\x18"
    assert dumps(1.5) == bytes.fromhex("f93e00")


def test_dumps_encodes_tagged_values() -> None:
    """Tagged(18, x) is written as tag 18."""
    assert dumps(Tagged(18, [])) == b"\xd2\x80"


def test_dumps_rejects_unencodable_objects() -> None:
    """Objects with no CBOR form are a TypeError."""
    with pytest.raises(TypeError):
        dumps(object())


# --- properties -------------------------------------------------------------------------------

_keys = st.one_of(st.integers(-(2**64), 2**64 - 1), st.text(max_size=8))
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**64), 2**64 - 1),
    st.floats(allow_nan=False),
    st.text(max_size=20),
    st.binary(max_size=20),
)
_values = st.recursive(
    _scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(_keys, children, max_size=4),
        st.builds(Tagged, st.integers(0, 2**64 - 1).filter(lambda t: t not in (2, 3)), children),
    ),
    max_leaves=25,
)
# cbor2 interprets these tags itself (dates, bignums, decimals, shared references, regex, MIME, UUID, ...).
_CBOR2_SEMANTIC_TAGS = frozenset(
    {0, 1, 2, 3, 4, 5, 25, 28, 29, 30, 35, 36, 37, 100, 256, 258, 260, 261, 1004, 55799}
)
_plain_values = st.recursive(
    _scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(_keys, children, max_size=4),
        st.builds(
            Tagged, st.integers(0, 2**64 - 1).filter(lambda t: t not in _CBOR2_SEMANTIC_TAGS), children
        ),
    ),
    max_leaves=25,
)


@settings(max_examples=300, deadline=None)
@given(_values)
def test_loads_inverts_dumps(value: object) -> None:
    """Our decoder reads back what the cbor2 canonical encoder writes, tags included."""
    assert loads(dumps(value), max_depth=MAX_DEPTH_LIMIT) == value


@settings(max_examples=200, deadline=None)
@given(_plain_values)
def test_loads_agrees_with_cbor2_on_valid_input(value: object) -> None:
    """On well-formed input our decoder and cbor2 agree (after mapping CBORTag to Tagged)."""
    data = dumps(value)

    def convert(item: object) -> object:
        if isinstance(item, cbor2.CBORTag):
            return Tagged(item.tag, convert(item.value))
        if isinstance(item, list):
            return [convert(i) for i in item]
        if isinstance(item, dict):
            return {k: convert(v) for k, v in item.items()}
        return item

    assert loads(data, max_depth=MAX_DEPTH_LIMIT) == convert(cbor2.loads(data))


@settings(max_examples=1000, deadline=None)
@given(st.binary(max_size=64), st.booleans())
def test_random_bytes_raise_only_cbor_error(data: bytes, allow_indefinite: bool) -> None:
    """Arbitrary bytes either decode or fail with CborError, never another exception."""
    with contextlib.suppress(CborError):
        loads(data, allow_indefinite=allow_indefinite)


@settings(max_examples=300, deadline=None)
@given(_values, st.data())
def test_mutated_encodings_raise_only_cbor_error(value: object, data: st.DataObject) -> None:
    """A valid encoding with bytes changed, cut or appended decodes or fails with CborError."""
    encoded = bytearray(dumps(value))
    index = data.draw(st.integers(0, len(encoded) - 1))
    encoded[index] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(encoded)))
    mutated = bytes(encoded[:cut]) + data.draw(st.binary(max_size=4))
    with contextlib.suppress(CborError):
        loads(mutated, allow_indefinite=data.draw(st.booleans()))
