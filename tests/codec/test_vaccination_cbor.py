"""The one-pass writer of vaxcred's own vaccination layout (vaxcred.codec.vaccination_cbor): cbor2's canonical
bytes, or ``None`` (then ``dumps_json`` runs), for any value."""

from __future__ import annotations

import copy
from typing import Any

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.codec.test_fast_paths import DCC
from vaxcred.codec import cbor, cwt
from vaxcred.codec.vaccination_cbor import vaccination_cbor
from vaxcred.issue import vaccination_dcc

_ENTRY_KEYS = ("tg", "vp", "mp", "ma", "dn", "sd", "dt", "co", "is", "ci")
_TEXT = (
    st.text(max_size=30)
    | st.text(st.characters(), min_size=20, max_size=300)  # every head length, lone surrogates, astral planes
    | st.sampled_from(["", "x" * 23, "x" * 24, "Đ" * 12, "x" * 255, "x" * 256])
)
_VALUES = (
    _TEXT
    | st.integers(-30, 30)
    | st.sampled_from([23, 24, 255, 256, 2**64 - 1, 2**64, -(2**64) - 1, True, False, None, 2.0, 1.5])
    | st.lists(st.integers(0, 3), max_size=2)
    | st.dictionaries(st.sampled_from(["fn", "x"]), st.text(max_size=3), max_size=2)
)


def _expected(value: object) -> bytes | None:
    try:
        return cbor2.dumps(value, canonical=True)
    except Exception:
        return None


def test_issued_dcc_is_written_in_one_pass_as_the_encoder_writes_it() -> None:
    for payload in (
        DCC,
        vaccination_dcc(
            name="Nguyễn Văn An", dob="1990", vaccine="Comirnaty", dose=3, doses_total=3, date="2022-01-02"
        ).to_json(),
    ):
        written = vaccination_cbor(payload)
        assert written is not None
        assert written == cbor.dumps_json(payload) == cbor2.dumps(payload, canonical=True)


@pytest.mark.parametrize("names", [(), ("fn",), ("gnt",), ("fnt", "gn"), ("fn", "gn", "fnt", "gnt")])
def test_any_subset_of_the_name_fields(names: tuple[str, ...]) -> None:
    payload = copy.deepcopy(DCC)
    payload["nam"] = {key: payload["nam"][key] for key in reversed(names)}  # insertion order does not matter
    assert vaccination_cbor(payload) == cbor2.dumps(payload, canonical=True)


@pytest.mark.parametrize(
    "change",
    ["extra top key", "no dob", "extra name key", "two entries", "extra entry key", "no ci", "test entry"],
)
def test_other_layouts_are_left_to_the_general_encoder(change: str) -> None:
    payload: dict[str, Any] = copy.deepcopy(DCC)
    if change == "extra top key":
        payload["x"] = 1
    elif change == "no dob":
        del payload["dob"]
    elif change == "extra name key":
        payload["nam"]["x"] = "y"
    elif change == "two entries":
        payload["v"].append(copy.deepcopy(payload["v"][0]))
    elif change == "extra entry key":
        payload["v"][0]["x"] = "y"
    elif change == "no ci":
        del payload["v"][0]["ci"]
    else:
        payload["t"] = payload.pop("v")
    assert vaccination_cbor(payload) is None
    assert cwt.encode_claims(iss=None, iat=1, exp=2, dcc=payload) == cbor.dumps(
        {4: 2, 6: 1, -260: {1: payload}}
    )


_DOSE = st.integers(0, 30) | st.sampled_from([255, 256, 2**64 - 1, 2**64, -1, True, False, 2.0, "2", None])


@pytest.mark.parametrize("number", [0, 1, 9, 23, 24, 25, 255, 256, 65536, 2**64, -1, True, 2.0])
@pytest.mark.parametrize("key", ["dn", "sd"])
def test_dose_numbers_around_the_one_byte_head(key: str, number: object) -> None:
    payload = copy.deepcopy(DCC)
    payload["v"][0][key] = number
    written = vaccination_cbor(payload)
    assert written is None or written == cbor2.dumps(payload, canonical=True)
    assert (written is not None) == (type(number) is int and 0 <= number < 24)  # type: ignore[operator]


def test_remembered_values_are_told_apart() -> None:
    """Values of the remembered fields that share prefixes, lengths or code points: each DCC's own bytes."""
    for value in [
        "VN",
        "vn",
        "VNX",
        "V",
        "",
        "x" * 23,
        "x" * 24,
        "x" * 25,
        "Đ",
        "Ð",
        "VN\x00",
        "1.3.0",
        "1.3.00",
    ]:
        payload = copy.deepcopy(DCC)
        payload["ver"] = value
        for key in ("co", "is", "ma", "mp", "tg", "vp", "dt"):
            payload["v"][0][key] = value[::-1] + key
        assert vaccination_cbor(payload) == cbor2.dumps(payload, canonical=True)


@st.composite
def layouts(draw: st.DrawFn) -> dict[str, Any]:
    """vaxcred's layout with mostly text values, dose numbers around the one-byte limit, now and then a value of
    another type, a key dropped or added."""

    def text() -> Any:
        return draw(_VALUES) if draw(st.integers(0, 19)) == 0 else draw(_TEXT)

    entry = {
        key: draw(_DOSE) if key in ("dn", "sd") else text() for key in draw(st.permutations(_ENTRY_KEYS))
    }
    names = draw(st.lists(st.sampled_from(["fn", "gn", "fnt", "gnt"]), unique=True, max_size=4))
    payload: dict[str, Any] = {
        "ver": text(),
        "nam": {key: text() for key in names},
        "dob": text(),
        "v": [entry],
    }
    if draw(st.integers(0, 9)) == 0:
        target = draw(st.sampled_from([payload, payload["nam"], entry]))
        if target and draw(st.booleans()):
            del target[draw(st.sampled_from(sorted(target)))]
        else:
            target[draw(st.sampled_from(["x", "v", "fn", "ci"]))] = draw(_VALUES)
    return payload


@settings(max_examples=1500, deadline=None)
@given(layouts())
def test_property_bytes_are_the_canonical_encoders_or_none(payload: dict[str, Any]) -> None:
    """Any values in (or near) the layout: the canonical encoding exactly, or None; and encode_claims gives the
    canonical encoding whichever path it takes."""
    written = vaccination_cbor(payload)
    expected = _expected(payload)
    if written is not None:
        assert written == expected
    if expected is not None:
        claims = {4: 2, 6: 1, -260: {1: payload}}
        assert cwt.encode_claims(iss=None, iat=1, exp=2, dcc=payload) == cbor2.dumps(claims, canonical=True)


@settings(max_examples=300, deadline=None)
@given(layouts())
def test_property_plain_layouts_take_the_one_pass_writer(payload: dict[str, Any]) -> None:
    """Text everywhere, small dose numbers: always written here (the writer is not a dead path)."""
    entries = payload.get("v")
    entry = entries[0] if type(entries) is list and len(entries) == 1 and type(entries[0]) is dict else {}
    names = payload.get("nam")
    plain = (
        set(payload) == {"ver", "nam", "dob", "v"}
        and set(entry) == set(_ENTRY_KEYS)
        and type(names) is dict
        and set(names) <= {"fn", "gn", "fnt", "gnt"}
        and all(type(entry[k]) is str for k in _ENTRY_KEYS if k not in ("dn", "sd"))
        and all(type(entry[k]) is int and 0 <= entry[k] < 24 for k in ("dn", "sd"))
        and all(type(v) is str for v in (payload["ver"], payload["dob"], *names.values()))
        and _expected(payload) is not None
    )
    assert (vaccination_cbor(payload) is not None) == plain
