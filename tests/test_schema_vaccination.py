"""The one-pass acceptance of vaxcred's own vaccination layout (vaxcred.schema.vaccination), held to jsonschema.

It may only accept what the oracle (jsonschema over the vendored schema, plus the DCC profile's checks) accepts;
whatever it leaves, the compiled schema decides, so ``validate_dcc`` as a whole still agrees with the oracle.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.test_schema import TRICKY, VALUES, _mutate, accepts, expected_validate_dcc
from vaxcred.issue import vaccination_dcc
from vaxcred.schema import validation
from vaxcred.schema.vaccination import plainly_valid


def _issued_layout(ver: str = "1.3.0") -> dict[str, Any]:
    """A payload as Issuer.issue validates it (DCC.to_json of a vaccination DCC vaxcred builds)."""
    dcc = vaccination_dcc(
        name="Nguyễn Văn An", dob="1990-05-17", vaccine="Comirnaty", dose=2, doses_total=2, date="2021-09-01"
    )
    payload = dcc.to_json()
    payload["ver"] = ver
    return payload


@pytest.mark.parametrize("ver", ["1.3.0", "1.3.1", "1.3.2", "1.3.3"])
def test_issued_layout_is_accepted_in_one_pass(ver: str, monkeypatch: pytest.MonkeyPatch) -> None:
    payload = _issued_layout(ver)
    assert expected_validate_dcc(payload)
    assert plainly_valid(payload)

    def compiled(version: str) -> Any:
        raise AssertionError("the compiled schema was consulted")

    monkeypatch.setattr(validation, "_compiled", compiled)
    validation.validate_dcc(payload)  # no exception: the fast path decided


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("ver",), "1.2.1"),  # another schema
        (("ver",), "1.3.0\n"),
        (("dob",), "1964\n"),
        (("dob",), "19٦٤"),
        (("dob",), "1899-01-01"),
        (("dob",), "1964-01-01-01"),
        (("dob",), "1964-1"),
        (("dob",), None),
        (("nam", "fnt"), "Ä"),
        (("nam", "fnt"), "ABC\n"),
        (("nam", "fnt"), "A" * 81),
        (("nam", "gnt"), "abc"),
        (("nam", "fn"), "x" * 81),
        (("nam", "gn"), 5),
        (("v", 0, "dn"), 0),
        (("v", 0, "dn"), True),
        (("v", 0, "dn"), 2.0),  # valid for the schema ("integer" admits 2.0): left to the compiled schema
        (("v", 0, "sd"), "2"),
        (("v", 0, "co"), "xVNx"),
        (("v", 0, "co"), "ABCDEFGHIJK"),
        (("v", 0, "co"), "VN\n"),
        (("v", 0, "is"), "x" * 81),
        (("v", 0, "ci"), "x" * 81),
        (("v", 0, "tg"), None),
        (("v", 0, "dt"), 20210901),
    ],
)
def test_each_departure_is_left_to_the_compiled_schema(path: tuple[Any, ...], value: Any) -> None:
    payload = _issued_layout()
    target: Any = payload
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    assert not plainly_valid(payload)
    assert accepts(payload) == expected_validate_dcc(payload)


@pytest.mark.parametrize(
    "change", ["extra top key", "extra name key", "extra entry key", "no fnt", "two entries"]
)
def test_other_layouts_are_left_to_the_compiled_schema(change: str) -> None:
    payload = _issued_layout()
    if change == "extra top key":
        payload["x"] = 1
    elif change == "extra name key":
        payload["nam"]["x"] = "y"
    elif change == "extra entry key":
        payload["v"][0]["x"] = "y"
    elif change == "no fnt":
        del payload["nam"]["fnt"]
        payload["nam"]["gnt"] = "AN"
    else:
        payload["v"].append(copy.deepcopy(payload["v"][0]))
    assert not plainly_valid(payload)
    assert accepts(payload) == expected_validate_dcc(payload)


@st.composite
def mutated_issued(draw: st.DrawFn) -> Any:
    payload = _issued_layout(draw(st.sampled_from(["1.3.0", "1.3.3"])))
    if draw(st.booleans()):
        del payload["nam"][draw(st.sampled_from(["fn", "gn", "gnt"]))]
    for _ in range(draw(st.integers(min_value=0, max_value=2))):
        _mutate(payload, draw)
    return payload


@settings(max_examples=600, deadline=None)
@given(mutated_issued())
def test_property_accepted_only_when_the_oracle_accepts(payload: Any) -> None:
    """Our layout mutated (types, lengths, patterns, keys, versions, tricky strings): accepted in one pass only
    when jsonschema and the profile accept it; validate_dcc's verdict is the oracle's either way."""
    if plainly_valid(payload):
        assert expected_validate_dcc(payload)
    assert accepts(payload) == expected_validate_dcc(payload)


@settings(max_examples=300, deadline=None)
@given(st.one_of(VALUES, st.sampled_from(TRICKY)))
def test_property_arbitrary_values_never_accepted_in_one_pass_wrongly(value: Any) -> None:
    assert not plainly_valid(value) or expected_validate_dcc(value)
