"""Tests for vaxcred.codec.cwt: the CWT claims of an HC1 payload."""

from __future__ import annotations

import contextlib
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vaxcred.codec.cbor import Tagged, dumps, loads
from vaxcred.codec.cwt import MAX_TIME, Claims, CWTClaim, HCertKey, decode_claims, encode_claims
from vaxcred.errors import ClaimsError, DecodeError

IAT = 1_620_000_000
EXP = 1_650_000_000
DCC: dict[str, Any] = {
    "ver": "1.3.0",
    "nam": {"fn": "Nguyễn", "fnt": "NGUYEN", "gn": "Văn A", "gnt": "VAN<A"},
    "dob": "1990-01-01",
    "v": [{"tg": "840539006", "dn": 2, "sd": 2, "dt": "2021-09-01", "co": "VN", "ci": "URN:UVCI:01:VN:X"}],
}


def _claims(**overrides: object) -> dict[int, object]:
    claims: dict[int, object] = {1: "VN", 4: EXP, 6: IAT, -260: {1: DCC}}
    for key, value in overrides.items():
        label = int(CWTClaim[key.upper()])
        if value is _DROP:
            del claims[label]
        else:
            claims[label] = value
    return claims


_DROP = object()


def _code(claims: object) -> str:
    with pytest.raises(ClaimsError) as info:
        decode_claims(dumps(claims))
    return info.value.code


def test_round_trip() -> None:
    """decode_claims(encode_claims(...)) returns the same claims."""
    claims = decode_claims(encode_claims(iss="VN", iat=IAT, exp=EXP, dcc=DCC))
    assert claims == Claims(iss="VN", iat=IAT, exp=EXP, dcc=DCC)


def test_encode_claims_writes_the_canonical_layout() -> None:
    """Keys in deterministic order 1, 4, 6, -260 (``39 01 03``), hcert ``{1: dcc}``."""
    data = encode_claims(iss="VN", iat=IAT, exp=EXP, dcc={})
    expected = (
        b"\xa4\x01\x62VN"
        + b"\x04\x1a"
        + EXP.to_bytes(4, "big")
        + b"\x06\x1a"
        + IAT.to_bytes(4, "big")
        + b"\x39\x01\x03\xa1\x01\xa0"
    )
    assert data == expected


def test_encode_claims_omits_a_missing_iss() -> None:
    """``iss=None`` leaves claim 1 out."""
    assert 1 not in loads(encode_claims(iss=None, iat=IAT, exp=EXP, dcc={}))  # type: ignore[operator]


@pytest.mark.parametrize(("field", "value"), [("iat", 1.5), ("exp", True), ("iat", -1), ("exp", MAX_TIME)])
def test_encode_claims_rejects_bad_times(field: str, value: object) -> None:
    """Non-int or out-of-range times are caller mistakes."""
    kwargs: dict[str, Any] = {"iss": "VN", "iat": IAT, "exp": EXP, "dcc": {}}
    kwargs[field] = value
    with pytest.raises((TypeError, ValueError)):
        encode_claims(**kwargs)


def test_claim_labels_use_the_iana_values() -> None:
    """CWTClaim and HCertKey carry the registered labels."""
    assert (CWTClaim.ISS, CWTClaim.EXP, CWTClaim.IAT, CWTClaim.HCERT) == (1, 4, 6, -260)
    assert int(HCertKey.EU_DCC_V1) == 1


@pytest.mark.parametrize(
    ("claim", "raw", "expected"), [("iat", 1620000000.75, 1620000000), ("exp", 1.0e9, 10**9)]
)
def test_float_times_are_floored(claim: str, raw: float, expected: int) -> None:
    """Finite non-negative float times are accepted and floored (RFC 8392 §2)."""
    claims = decode_claims(dumps(_claims(**{claim: raw})))
    assert getattr(claims, claim) == expected


@pytest.mark.parametrize(
    "value",
    [
        math.nan,
        math.inf,
        -math.inf,
        -1,
        -0.5,
        "1620000000",
        True,
        None,
        Tagged(1, IAT),
        MAX_TIME,
        2.0**41,
        b"\x01",
    ],
)
def test_bad_times_are_rejected(value: object) -> None:
    """Non-numbers, tags, negative, non-finite and huge times fail with ``cose.bad_time``."""
    assert _code(_claims(iat=value)) == "cose.bad_time"
    assert _code(_claims(exp=value)) == "cose.bad_time"


def test_missing_iat_is_rejected() -> None:
    """No iat fails with ``cose.missing_iat``."""
    assert _code(_claims(iat=_DROP)) == "cose.missing_iat"


def test_missing_exp_is_rejected() -> None:
    """No exp fails with ``cose.missing_exp``."""
    assert _code(_claims(exp=_DROP)) == "cose.missing_exp"


def test_missing_iss_is_none() -> None:
    """iss is optional."""
    assert decode_claims(dumps(_claims(iss=_DROP))).iss is None


def test_non_iso_iss_text_is_kept() -> None:
    """Any text iss is informational and kept (GE, LI)."""
    assert decode_claims(dumps(_claims(iss="Georgia"))).iss == "Georgia"


@pytest.mark.parametrize("iss", [1, b"VN", None, ["VN"]])
def test_non_text_iss_is_rejected(iss: object) -> None:
    """A non-text iss is a malformed CWT (``cose.bad_iss``)."""
    assert _code(_claims(iss=iss)) == "cose.bad_iss"


@pytest.mark.parametrize("claims", [[1, 2], "claims", 5, Tagged(61, {})])
def test_claims_must_be_a_map(claims: object) -> None:
    """A payload that is not a map fails with ``cose.claims_invalid``."""
    assert _code(claims) == "cose.claims_invalid"


def test_missing_hcert_is_rejected() -> None:
    """No -260 claim fails with ``cose.missing_hcert``."""
    assert _code(_claims(hcert=_DROP)) == "cose.missing_hcert"


def test_hcert_without_eu_dcc_v1_is_rejected() -> None:
    """hcert without key 1 fails with ``cose.missing_hcert``."""
    assert _code(_claims(hcert={2: DCC})) == "cose.missing_hcert"


@pytest.mark.parametrize("hcert", [[DCC], {1: [DCC]}, {1: b"x"}, "x"])
def test_hcert_of_the_wrong_shape_is_rejected(hcert: object) -> None:
    """hcert must be a map and hcert[1] a map (``cose.bad_hcert``)."""
    assert _code(_claims(hcert=hcert)) == "cose.bad_hcert"


def test_tag_0_date_time_is_kept_as_text() -> None:
    """Tag-0 date-times inside the DCC become their text (eu-dcc-schema issue #66)."""
    dcc = {"t": [{"sc": Tagged(0, "2021-05-30T10:12:22Z")}], "dob": Tagged(1004, "1990-01-01")}
    claims = decode_claims(dumps(_claims(hcert={1: dcc})))
    assert claims.dcc == {"t": [{"sc": "2021-05-30T10:12:22Z"}], "dob": "1990-01-01"}


@pytest.mark.parametrize(
    "value",
    [
        Tagged(1, 1620000000),
        Tagged(0, 5),
        Tagged(2, b"\x01"),
        b"bytes",
        [b"x"],
        {"k": Tagged(32, "http://x")},
    ],
)
def test_other_tags_and_bytes_in_the_dcc_are_rejected(value: object) -> None:
    """Only text date tags are unwrapped; other tags and byte strings fail with ``cose.bad_dcc``."""
    assert _code(_claims(hcert={1: {"x": value}})) == "cose.bad_dcc"


def test_non_text_keys_in_the_dcc_are_rejected() -> None:
    """DCC maps are JSON objects: integer keys fail with ``cose.bad_dcc``."""
    assert _code(_claims(hcert={1: {"v": [{1: "x"}]}})) == "cose.bad_dcc"


def test_floats_bools_and_nulls_in_the_dcc_are_kept() -> None:
    """Other JSON values pass through for the schema to judge."""
    dcc = {"a": 1.5, "b": True, "c": None, "d": [1, "x", False]}
    assert decode_claims(dumps(_claims(hcert={1: dcc}))).dcc == dcc


def test_unknown_claims_are_ignored() -> None:
    """Claims other than 1, 4, 6 and -260 do not matter."""
    claims = _claims()
    claims[7] = b"cti"
    claims[-70000] = "x"
    assert decode_claims(dumps(claims)).iat == IAT


def test_claims_are_frozen() -> None:
    """Claims is immutable."""
    claims = decode_claims(encode_claims(iss="VN", iat=IAT, exp=EXP, dcc=DCC))
    with pytest.raises(AttributeError):
        claims.iat = 0  # type: ignore[misc]


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=64))
def test_random_bytes_raise_only_decode_errors(data: bytes) -> None:
    """Arbitrary bytes either decode or fail with a DecodeError subclass."""
    with contextlib.suppress(DecodeError):
        decode_claims(data)


_json = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**63), 2**63),
        st.floats(allow_nan=False),
        st.text(max_size=10),
        st.builds(Tagged, st.sampled_from([0, 1, 1004, 18]), st.one_of(st.text(max_size=10), st.integers())),
        st.binary(max_size=4),
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(st.one_of(st.text(max_size=5), st.integers()), children),
    ),
    max_leaves=15,
)


@settings(max_examples=300, deadline=None)
@given(_json, st.one_of(st.integers(-5, 2**41), st.floats()))
def test_generated_claims_decode_or_raise_only_claims_errors(dcc: object, iat: object) -> None:
    """Claims with arbitrary DCC content and times decode or fail with DecodeError, never crash."""
    with contextlib.suppress(DecodeError):
        decode_claims(dumps(_claims(iat=iat, hcert={1: dcc})))
