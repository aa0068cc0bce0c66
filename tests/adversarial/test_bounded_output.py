"""Bounded output: nothing from the input is echoed back at length, and every kid code can be emitted."""

from __future__ import annotations

import json

import cbor2
import pytest

from tests.adversarial.signing import der, sign_payload
from tests.adversarial.test_signed_claims import check_result
from tests.interop.payloads import DAY, NOW, sample_dcc, wrap_hc1
from vaxcred import keys
from vaxcred.codec import cwt
from vaxcred.text import clip
from vaxcred.trust import TrustStore
from vaxcred.verify import verify

AFTER = NOW + DAY


@pytest.fixture(scope="module")
def store(dsc: keys.KeyPair) -> TrustStore:
    return TrustStore.from_dsc_certificates([der(dsc)])


def _payload() -> bytes:
    iat = int(NOW.timestamp())
    return cwt.encode_claims(iss="VN", iat=iat, exp=iat + 86400, dcc=sample_dcc().to_json())


def _unsigned(protected: dict[int, object], unprotected: dict[int, object] | None = None) -> str:
    message = cbor2.CBORTag(18, [cbor2.dumps(protected), unprotected or {}, _payload(), b"\0" * 64])
    return wrap_hc1(cbor2.dumps(message))


def test_huge_kid_is_not_echoed_whole(store: TrustStore) -> None:
    """A 60,000-byte kid: kid.bad_length, result.kid None, and neither the result nor its JSON holds it."""
    huge = bytes(range(256)) * 234 + b"\xab" * 96  # 60,000 bytes
    assert len(huge) == 60_000
    result = verify(_unsigned({1: -7, 4: huge}), store, now=AFTER)
    check_result(result)
    assert result.step("kid").code == "kid.bad_length"
    assert result.kid is None
    assert len(json.dumps(result.to_json())) < 2000


@pytest.mark.parametrize("length", [0, 1, 7, 8])
def test_kid_up_to_eight_bytes_is_echoed(store: TrustStore, length: int) -> None:
    """A kid no longer than a kid may be is echoed (for diagnosis), whatever the verdict."""
    kid = b"\x11" * length
    result = verify(_unsigned({1: -7, 4: kid}), store, now=AFTER)
    check_result(result)
    assert result.kid == kid


@pytest.mark.parametrize(
    ("protected", "unprotected"),
    [
        ({1: -7, 4: "text kid"}, {}),
        ({1: -7, 4: 12345}, {}),
        ({1: -7}, {4: ["array"]}),
        ({1: -7, 4: None}, {}),
    ],
)
def test_kid_that_is_not_a_byte_string_is_kid_malformed(
    store: TrustStore, protected: dict[int, object], unprotected: dict[int, object]
) -> None:
    """A kid header that is not a bstr fails kid.malformed (it was reported as kid.missing: code unreachable)."""
    result = verify(_unsigned(protected, unprotected), store, now=AFTER)
    check_result(result)
    assert result.step("kid").code == "kid.malformed"
    assert result.kid is None


def test_absent_kid_is_kid_missing(store: TrustStore) -> None:
    """No kid in either header fails kid.missing."""
    result = verify(_unsigned({1: -7}), store, now=AFTER)
    assert result.step("kid").code == "kid.missing"


def test_huge_duplicate_cbor_key_is_not_echoed(store: TrustStore, dsc: keys.KeyPair) -> None:
    """A duplicate map key of 30,000 characters is named in at most a few dozen characters."""
    key = "K" * 30_000
    payload = b"\xa2" + cbor2.dumps(key) + b"\x01" + cbor2.dumps(key) + b"\x02"
    result = verify(sign_payload(dsc, payload), store, now=AFTER)
    check_result(result)
    assert result.step("cose").code == "cbor.duplicate_key"
    assert len(result.step("cose").message) < 200


def test_non_text_dcc_key_is_named_briefly(store: TrustStore, dsc: keys.KeyPair) -> None:
    """A DCC map key that is an integer fails cose.bad_dcc with a short message."""
    iat = int(NOW.timestamp())
    claims = {1: "VN", 4: iat + 86400, 6: iat, -260: {1: {**sample_dcc().to_json(), 2**64 - 1: 1}}}
    result = verify(sign_payload(dsc, cbor2.dumps(claims)), store, now=AFTER)
    check_result(result)
    assert result.step("cose").code == "cose.bad_dcc"
    assert len(result.step("cose").message) < 200


def test_huge_critical_header_label_is_not_echoed(store: TrustStore, dsc: keys.KeyPair) -> None:
    """A 'crit' label of 20,000 characters fails cose.crit_unknown with a short message."""
    label = "c" * 20_000
    protected = cbor2.dumps({1: -7, 2: [label], 4: dsc.kid, label: 1})
    result = verify(sign_payload(dsc, _payload(), protected=protected), store, now=AFTER)
    check_result(result)
    assert result.step("cose").code == "cose.crit_unknown"
    assert len(result.step("cose").message) < 200


@pytest.mark.parametrize(
    ("value", "most"),
    [("x" * 10_000, 80), (b"\x00" * 10_000, 80), (2**100_000, 40), (1, 3), ({"a": "b" * 10_000}, 80)],
    ids=["text", "bytes", "huge-int", "int", "dict"],
)
def test_clip_bounds_any_value(value: object, most: int) -> None:
    """clip() names a value in a bounded number of characters, even an integer too long for str()."""
    assert len(clip(value)) <= most
