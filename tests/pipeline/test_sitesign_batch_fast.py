"""The fast paths of batch-member verification give exactly what the general ones give (issue 9 §2)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import given, settings
from hypothesis import strategies as st

from vaxcred import keys
from vaxcred.errors import VaxcredError
from vaxcred.pipeline.site_signing.certs import _facts, site_id_of
from vaxcred.pipeline.site_signing.claims import BATCH_VERSION
from vaxcred.pipeline.site_signing.decoding import (
    _canonical_leaf,
    _decode_map,
)
from vaxcred.pipeline.site_signing.encoding import (
    _LEAF_FIELDS,
    _encode_leaf,
    _encode_payload,
)

CA_TIME = datetime(2021, 1, 1, tzinfo=UTC)

_LEAF = _encode_leaf(
    site="HN-001",
    cid=bytes(range(32)),
    salt=bytes(range(16)),
    mp="EU/1/20/1528",
    ma="ORG-100030215",
    vp="J07BX03",
    lot="FK0001",
    dt="2021-09-01",
    dn=2,
)


def _general(raw: bytes) -> dict[object, object] | str:
    try:
        return _decode_map(raw, _LEAF_FIELDS, BATCH_VERSION, what="batch record payload")
    except VaxcredError as e:
        return e.code


def test_canonical_leaf_reads_a_signed_payload() -> None:
    """A payload as sign_batch writes it is read in place, to the map the general decoder returns."""
    assert _canonical_leaf(_LEAF) == _general(_LEAF)


@settings(max_examples=400, deadline=None)
@given(st.integers(0, len(_LEAF)), st.integers(0, len(_LEAF)), st.binary(max_size=6))
def test_canonical_leaf_accepts_only_what_the_general_decoder_accepts(
    start: int, stop: int, insert: bytes
) -> None:
    """Any edit of a payload: the fast reader either declines (None) or returns the general decoder's map."""
    start, stop = min(start, stop), max(start, stop)
    raw = _LEAF[:start] + insert + _LEAF[stop:]
    fast = _canonical_leaf(raw)
    if fast is not None:
        assert fast == _general(raw)
        assert _encode_payload(fast) == raw


@given(
    st.fixed_dictionaries(
        {
            "v": st.just(BATCH_VERSION),
            "site": st.text(max_size=300) | st.integers(0, 2**70),
            "cid": st.binary(max_size=300),
            "salt": st.binary(max_size=20) | st.text(max_size=3),
            "mp": st.text(max_size=30),
            "ma": st.text(max_size=3),
            "vp": st.text(max_size=3),
            "lot": st.text(max_size=300),
            "dt": st.text(max_size=12),
            "dn": st.integers(0, 2**40) | st.binary(max_size=2),
        }
    )
)
def test_canonical_leaf_reads_every_canonical_map(payload: dict[str, object]) -> None:
    """Every canonical leaf map with long and short values, ints and strings: read to itself, or declined."""
    raw = _encode_payload(dict(payload))
    fast = _canonical_leaf(raw)
    assert fast is None or fast == payload
    if all(type(v) is not int or v < 1 << 16 for v in payload.values()) and all(
        len(v) < 1 << 16 for v in payload.values() if isinstance(v, bytes | str)
    ):
        assert fast == payload


def test_non_canonical_leaf_is_declined() -> None:
    """A non-shortest length (dn as a one-byte argument) goes to the general decoder, which refuses it."""
    raw = _LEAF.replace(b"bdn\x02", b"bdn\x18\x02", 1)
    assert raw != _LEAF
    assert _canonical_leaf(raw) is None
    assert _general(raw) == "sitesign.not_canonical"


@pytest.fixture(scope="module")
def site_ca() -> keys.KeyPair:
    return keys.make_site_ca(now=CA_TIME)


def test_facts_follow_the_certificate_not_the_object(site_ca: keys.KeyPair) -> None:
    """The identity cache: an equal certificate parsed again has equal facts, another certificate its own."""
    a = keys.make_site_certificate(site_ca, site_id="HN-001", site_name="A", now=CA_TIME).certificate
    b = keys.make_site_certificate(site_ca, site_id="HCM-042", site_name="B", now=CA_TIME).certificate
    again = x509.load_der_x509_certificate(a.public_bytes(Encoding.DER))
    assert _facts(a) == _facts(again)
    assert _facts(a).ref == _facts(again).ref
    assert hash(_facts(a).ref) == hash(_facts(again).ref)
    assert (site_id_of(a), site_id_of(b), site_id_of(again)) == ("HN-001", "HCM-042", "HN-001")
    assert _facts(a).ref != _facts(b).ref
