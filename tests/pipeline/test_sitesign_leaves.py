"""Member payloads written straight from dose rows (site_signing.leaves, batch.sign_dose_rows) against the
straightforward way (a DoseRecord per row, then sign_batch): the same bytes, the same refusals, for any row."""

from __future__ import annotations

import datetime as dt
import pickle
import secrets
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vaxcred import keys
from vaxcred.crypto import Signer
from vaxcred.pipeline.records.model import DoseRecord
from vaxcred.pipeline.records.vaccines import canonical_vaccines
from vaxcred.pipeline.site_signing import batch as batch_module
from vaxcred.pipeline.site_signing import sign_rows
from vaxcred.pipeline.site_signing.batch import (
    BatchMember,
    SignedBatch,
    SignedRows,
    sign_batch,
    sign_dose_rows,
)
from vaxcred.pipeline.site_signing.pipelined import _pack, _unpack
from vaxcred.pipeline.site_signing.sign_rows import _sign_rows, _Signed
from vaxcred.pipeline.site_signing.work_queue import _DoseRow

CA_TIME = dt.datetime(2021, 1, 1, tzinfo=dt.UTC)
#: 15:30 in Viet Nam on 2021-10-01: doses of that day are signable, of the 2nd not
NOW = dt.datetime(2021, 10, 1, 8, 30, 15, 250_000, tzinfo=dt.UTC)
SITE = "HN-001"


@pytest.fixture(scope="module")
def signer() -> Signer:
    site_ca = keys.make_site_ca(now=CA_TIME)
    return keys.make_site_certificate(site_ca, site_id=SITE, site_name="Trạm Y tế", now=CA_TIME).signer()


@contextmanager
def _fixed_salts() -> Iterator[None]:
    """Salts as a counter (the same for both ways of signing), not from the CSPRNG."""
    counter = iter(range(1 << 30))

    def token_bytes(n: int | None = None) -> bytes:
        assert n is not None
        return bytes((next(counter) + i) % 256 for i in range(n))

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(batch_module.secrets, "token_bytes", token_bytes)
        yield


def _usual_row(i: int, **overrides: Any) -> _DoseRow:
    fields: dict[str, Any] = {
        "id": i,
        "dose_number": 1 + i % 3,
        "date": dt.date(2021, 9, 1) + dt.timedelta(days=i % 20),
        "site_id": SITE,
        "vaccine": "Comirnaty",
        "lot": f"FK{i:04d}",
        "citizen_id": f"0010900{i:05d}",
    }
    fields.update(overrides)
    return _DoseRow(**fields)


def _mostly(usual: st.SearchStrategy[Any], odd: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``usual`` three times in four: batches whose every row is usual but one field come up often."""
    return st.one_of(usual, usual, usual, odd)


_rows = st.builds(
    _DoseRow,
    id=st.integers(1, 10**6),
    dose_number=_mostly(st.integers(1, 9), st.one_of(st.integers(-1, 11), st.booleans())),
    date=_mostly(
        st.sampled_from([dt.date(2021, 9, 30), dt.date(2021, 10, 1), dt.date(2021, 10, 2)]),
        st.one_of(
            st.dates(dt.date(2020, 12, 1), dt.date(2021, 10, 3)),
            st.datetimes(dt.datetime(2021, 1, 1), dt.datetime(2021, 10, 1)),
            st.sampled_from([dt.date(1, 1, 1), dt.date(999, 12, 31)]),
        ),
    ),
    site_id=_mostly(st.just(SITE), st.sampled_from(["HCM-042", "hn 001", ""])),
    vaccine=_mostly(
        st.sampled_from(sorted(canonical_vaccines())), st.sampled_from(["", "BOGUS", " Comirnaty"])
    ),
    lot=_mostly(
        st.sampled_from(["FK0001", "AB-12/3", "Lô 7", "a" * 64, "ỗ" * 64]),
        st.one_of(st.sampled_from(["a" * 65, " FK", "FK\n", "\ud800", "", "FK\u3000"]), st.text(max_size=70)),
    ),
    citizen_id=_mostly(
        st.sampled_from(["001090012345", "ABC"]),
        st.one_of(st.sampled_from(["", "\udfff1"]), st.text(max_size=14)),
    ),
)


def _the_general_way(rows: Sequence[_DoseRow], signer: Signer) -> SignedBatch | str:
    """The straightforward implementation: a DoseRecord per row (a refused one fails the batch), then
    sign_batch."""
    try:
        records = [
            DoseRecord(
                citizen_id=row.citizen_id,
                vaccine=row.vaccine,
                lot=row.lot,
                date=row.date.isoformat(),
                dose_number=row.dose_number,
                site_id=row.site_id,
            )
            for row in rows
        ]
        return sign_batch(records, signer=signer, now=NOW)
    except (ValueError, TypeError) as e:  # a citizen ID that is no UTF-8 (a surrogate) fails in sign_batch
        return type(e).__name__


def _comparable(batch: SignedBatch | SignedRows) -> tuple[object, ...]:
    """Everything of a batch but its ECDSA signature (randomised); the straight way's columns as members."""
    assert batch.head is not None
    head = cbor2.loads(batch.head)
    if isinstance(batch, SignedRows):
        size = len(batch.payloads)
        outcomes: tuple[object, ...] = tuple(
            BatchMember(index=i, proof=proof, payload=payload)
            for i, (proof, payload) in enumerate(zip(batch.proofs, batch.payloads, strict=True))
        )
    else:
        size = batch.size
        outcomes = tuple(o.code if isinstance(o, Exception) else o for o in batch.outcomes)
    return (head.tag, head.value[:3], batch.kid, batch.site_id, batch.signed_at, size, outcomes)


@settings(max_examples=300, deadline=None)
@given(rows=st.lists(_rows, min_size=1, max_size=4))
def test_rows_signed_straight_or_not_at_all_as_the_general_way_signs_them(
    signer: Signer, rows: list[_DoseRow]
) -> None:
    """sign_dose_rows gives the general way's batch (payloads byte for byte, indices, paths, head) when every
    row is one a DoseRecord takes and the site signs without a refusal, and None for any other batch (which the
    general way then refuses, as a whole or dose by dose)."""
    with _fixed_salts():
        fast = sign_dose_rows(rows, signer=signer, now=NOW)
    with _fixed_salts():
        general = _the_general_way(rows, signer)
    every_row_signed = (
        not isinstance(general, str)
        and general.head is not None
        and not any(isinstance(o, Exception) for o in general.outcomes)
    )
    if fast is None:
        assert not every_row_signed
    else:
        assert not isinstance(general, str)
        assert _comparable(fast) == _comparable(general)


def test_usual_rows_take_the_straight_way(signer: Signer) -> None:
    """A batch of usual rows (non-ASCII lot and all) is signed without DoseRecords, to the general way's bytes."""
    rows = [_usual_row(i, lot="Lô-ỗ 7" if i == 3 else f"FK{i:04d}") for i in range(128)]
    with _fixed_salts():
        fast = sign_dose_rows(rows, signer=signer, now=NOW)
    with _fixed_salts():
        general = _the_general_way(rows, signer)
    assert fast is not None
    assert not isinstance(general, str)
    assert _comparable(fast) == _comparable(general)


@pytest.mark.parametrize(
    "odd",
    [
        {"date": dt.date(2021, 10, 2)},  # after the signing day (Viet Nam's)
        {"vaccine": "BOGUS"},
        {"site_id": "HCM-042"},
        {"lot": " FK"},
        {"dose_number": True},
    ],
)
def test_one_unusual_row_sends_the_batch_the_general_way(signer: Signer, odd: dict[str, Any]) -> None:
    """One row out of the usual form makes sign_dose_rows decline the whole batch (None), so _sign_rows'
    outcomes are the general way's: a refusal for that row (or the batch), the rest as before."""
    rows = [_usual_row(i, **(odd if i == 2 else {})) for i in range(5)]
    assert sign_dose_rows(rows, signer=signer, now=NOW) is None
    outcomes = _sign_rows(rows, {SITE: signer, "HCM-042": signer}, NOW, 128)
    assert any(isinstance(o, str) for o in outcomes)


def _signed_rows(
    rows: Sequence[_DoseRow], signer: Signer, straight: Callable[..., SignedRows | None]
) -> list[tuple[object, ...]]:
    with pytest.MonkeyPatch.context() as patch, _fixed_salts():
        patch.setattr(sign_rows, "sign_dose_rows", straight)
        outcomes = _sign_rows(rows, {SITE: signer}, NOW, 16)
    assert all(isinstance(o, _Signed) for o in outcomes)
    return [
        (o.dose_id, o.head.kid, o.head.size, o.head.signed_at, o.leaf_index, o.proof, o.payload, o.digest)
        for o in outcomes
        if isinstance(o, _Signed)
    ]


def test_sign_rows_stores_and_logs_the_same_members_either_way(signer: Signer) -> None:
    """_sign_rows with the straight payloads gives the members (payload, index, path, log digest) the general
    way gives, batch after batch."""
    rows = [_usual_row(i) for i in range(40)]
    assert _signed_rows(rows, signer, sign_dose_rows) == _signed_rows(rows, signer, lambda *a, **k: None)
    assert secrets.token_bytes is not None  # the CSPRNG is back after the test


def test_outcomes_cross_the_signing_pipe_unchanged(signer: Signer) -> None:
    """The pipelined child's packed outcomes come back equal (signed rows under several heads, refusals in
    place), each head one object again however many rows it signed."""
    rows = [_usual_row(i, **({"date": dt.date(2021, 10, 2)} if i == 20 else {})) for i in range(40)]
    outcomes = _sign_rows(rows, {SITE: signer}, NOW, 16)
    assert any(isinstance(o, str) for o in outcomes)
    back = _unpack(pickle.loads(pickle.dumps(_pack(outcomes))))
    assert back == outcomes
    heads = {id(o.head) for o in back if isinstance(o, _Signed)}
    assert len(heads) == len({o.head for o in outcomes if isinstance(o, _Signed)}) == 3
