"""The hand-written passport entry of the issuance log (log.passport_entry) is byte for byte the canonical CBOR
that cbor2 writes for it, for any values, the unusual ones included (issue 9 §2, session 5)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from vaxcred.codec import cbor
from vaxcred.pipeline import log

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ids = st.integers(0, 300) | st.integers(0, 2**64 - 1) | st.integers(-(2**70), 2**70)
_times = st.datetimes(
    min_value=datetime(1900, 1, 1), max_value=datetime(9999, 12, 31), timezones=st.just(UTC)
)


def _micros(when: datetime) -> int:
    return (when - _EPOCH) // timedelta(microseconds=1)


@given(
    passport_id=_ids,
    person_id=_ids,
    hc1=st.text(max_size=40),
    kid=st.binary(max_size=40),
    iat=_times,
    exp=_times,
    issued_at=_times,
    registry_check_id=st.none() | _ids,
    doses=st.lists(st.tuples(_ids, _ids), max_size=5),
    supersedes=st.none() | _ids,
)
def test_passport_entry_is_the_canonical_cbor_of_its_list(
    passport_id: int,
    person_id: int,
    hc1: str,
    kid: bytes,
    iat: datetime,
    exp: datetime,
    issued_at: datetime,
    registry_check_id: int | None,
    doses: list[tuple[int, int]],
    supersedes: int | None,
) -> None:
    """The entry equals cbor.dumps of [2, "passport", id, SHA-256(hc1), trace], whatever the values (huge or
    negative ids, times before 1970, no check, no predecessor, doses in any order)."""
    trace = {
        "person_id": person_id,
        "kid": kid,
        "iat": _micros(iat),
        "exp": _micros(exp),
        "issued_at": _micros(issued_at),
        "registry_check_id": registry_check_id,
        "doses": [[d, s] for d, s in sorted(doses)],
        "supersedes": supersedes,
    }
    expected = cbor.dumps([2, "passport", passport_id, hashlib.sha256(hc1.encode()).digest(), trace])
    values: dict[str, Any] = {
        "person_id": person_id,
        "hc1": hc1,
        "kid": kid,
        "iat": iat,
        "exp": exp,
        "issued_at": issued_at,
        "registry_check_id": registry_check_id,
        "doses": doses,
    }
    assert log.passport_entry(passport_id=passport_id, supersedes=supersedes, **values) == expected
    # issuance drafts the entry before its storing transaction and adds the two ids under the write lock
    # (log.passport_entry_draft): the same bytes, and one draft serves any id and predecessor (the
    # person-by-person retry completes the same draft again)
    draft = log.passport_entry_draft(**values)
    assert draft.entry(passport_id, supersedes) == expected
    first = cbor.dumps(
        [2, "passport", 7, hashlib.sha256(hc1.encode()).digest(), {**trace, "supersedes": None}]
    )
    assert draft.entry(7, None) == first
