"""The hand-written member digests of a dose batch's log entry (log.dose_batch_member_digests) hash exactly the
canonical CBOR that cbor2 writes for the member row, for any values, the unusual ones included."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vaxcred.codec import cbor
from vaxcred.pipeline import log

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _reference(
    site_id: str,
    certificate: bytes,
    kid: bytes,
    signed_at: datetime,
    index: int,
    proof: bytes,
    payload: bytes,
) -> bytes:
    micros = (signed_at - _EPOCH) // timedelta(microseconds=1)
    return hashlib.sha256(cbor.dumps([site_id, certificate, kid, micros, index, proof, payload])).digest()


_times = st.datetimes(
    min_value=datetime(1900, 1, 1), max_value=datetime(9999, 12, 31), timezones=st.just(UTC)
)
_members = st.lists(
    st.tuples(
        st.one_of(st.integers(min_value=0, max_value=300), st.integers(min_value=-(2**70), max_value=2**70)),
        st.binary(max_size=300),
        st.binary(max_size=70000),
    ),
    max_size=6,
)


@given(
    site_id=st.text(max_size=30),
    certificate=st.binary(max_size=300),
    kid=st.binary(max_size=40),
    signed_at=_times,
    members=_members,
)
def test_member_digests_hash_the_canonical_cbor_of_each_row(
    site_id: str,
    certificate: bytes,
    kid: bytes,
    signed_at: datetime,
    members: list[tuple[int, bytes, bytes]],
) -> None:
    """Each digest is SHA-256 of cbor.dumps of the member's row, whatever its values (long ones, negative or huge
    indexes, times before 1970, any text)."""
    expected = [_reference(site_id, certificate, kid, signed_at, *m) for m in members]
    assert log.dose_batch_member_digests(site_id, certificate, kid, signed_at, members) == expected
    for member, digest in zip(members, expected, strict=True):
        assert log.dose_batch_member_digest(site_id, certificate, kid, signed_at, *member) == digest


def test_a_lone_surrogate_site_id_fails_as_cbor2_fails() -> None:
    """A site id UTF-8 cannot encode raises what cbor2 raises for it, not another error."""
    when = datetime(2021, 7, 1, tzinfo=UTC)
    with pytest.raises(UnicodeEncodeError):
        cbor.dumps(["\ud800"])
    with pytest.raises(UnicodeEncodeError):
        log.dose_batch_member_digests("\ud800", b"c", b"k", when, [(0, b"", b"p")])
