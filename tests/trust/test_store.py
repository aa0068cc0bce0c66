"""The trust store: candidates per kid, one environment, freshness, immutability."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta

import pytest

from tests.trust.certs import DAY, NOW, Issued, make_ca, make_leaf, store_of, trusted
from vaxcred.errors import TrustStoreError
from vaxcred.trust import (
    DEFAULT_MAX_TRUST_AGE,
    MAX_CANDIDATES,
    Environment,
    TrustedDsc,
    TrustMode,
    TrustStore,
    require_environment,
)


def _with_kid(dsc: TrustedDsc, kid: bytes) -> TrustedDsc:
    return dataclasses.replace(dsc, info=dataclasses.replace(dsc.info, kid=kid))


def test_candidates_returns_every_dsc_sharing_a_kid(csca: Issued) -> None:
    """Two DSCs with one kid are both candidates, in list order (SECURITY.md pitfall 3)."""
    kid = b"\x00" * 8
    first, second = (_with_kid(trusted(make_leaf(csca)), kid) for _ in range(2))
    store = store_of([first, second])
    assert store.candidates(kid) == (first, second)
    assert store.candidates(b"\x01" * 8) == ()


def test_candidates_never_silently_capped(csca: Issued) -> None:
    """Every DSC for a kid is a candidate; a store refuses more than MAX_CANDIDATES (8) per kid when built
    (regression: candidates() used to drop the 9th and 10th silently, so a genuine passport failed)."""
    kid = b"\x07" * 8
    many = [_with_kid(trusted(make_leaf(csca)), kid) for _ in range(MAX_CANDIDATES + 2)]
    assert store_of(many[:MAX_CANDIDATES]).candidates(kid) == tuple(many[:MAX_CANDIDATES])
    with pytest.raises(ValueError, match="share kid"):
        store_of(many)


def test_build_drops_exact_duplicates(csca: Issued, dsc: Issued) -> None:
    """The same DER under the same country is kept once; under another country it is another entry."""
    store = store_of([trusted(dsc), trusted(dsc), trusted(dsc, "DE")], [("VN", csca), ("VN", csca)])
    assert [d.country for d in store.candidates(trusted(dsc).kid)] == ["VN", "DE"]
    assert store.cscas["VN"] == (csca.cert,)


def test_dsc_filed_under_wrong_kid_refused(dsc: Issued) -> None:
    """The store's invariant kid -> DSC with that kid is checked when built."""
    with pytest.raises(ValueError):
        TrustStore(environment=Environment.TST, mode=TrustMode.GATEWAY, dscs={b"\x00" * 8: (trusted(dsc),)})


def test_mappings_are_read_only(csca: Issued, dsc: Issued) -> None:
    """dscs and cscas cannot be changed after construction, not even through the dict passed in."""
    source = {trusted(dsc).kid: (trusted(dsc),)}
    store = TrustStore(environment=Environment.TST, mode=TrustMode.GATEWAY, dscs=source)
    source.clear()
    assert store.candidates(trusted(dsc).kid)
    with pytest.raises(TypeError):
        store.dscs[b"\x00" * 8] = ()  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        store.environment = Environment.PROD  # type: ignore[misc]


def test_from_dsc_certificates_is_the_dsc_mode(dsc: Issued) -> None:
    """--dsc mode: the certificates are the only candidates, no CSCA, chain not required."""
    store = TrustStore.from_dsc_certificates([dsc.der])
    (entry,) = store.all_dscs()
    assert store.mode is TrustMode.DSC
    assert store.environment is Environment.TST
    assert not store.has_cscas
    assert not store.chain_required
    assert entry.country == "VN"
    assert entry.source == "dsc"
    assert store.candidates(entry.kid) == (entry,)


def test_from_dsc_certificates_without_country(csca: Issued) -> None:
    """A bare DSC without C= is filed under the empty (unknown) country."""
    store = TrustStore.from_dsc_certificates([make_leaf(csca, country=None).der])
    assert store.all_dscs()[0].country == ""


def test_from_dsc_certificates_refuses_garbage() -> None:
    """Bytes that are not a certificate raise TrustStoreError, nothing else."""
    with pytest.raises(TrustStoreError) as info:
        TrustStore.from_dsc_certificates([b"\x30\x03\x02\x01\x00"])
    assert info.value.code == "trust.bad_certificate"


def test_production_verifier_refuses_test_store(dsc: Issued) -> None:
    """require_environment(store, PROD) refuses a TST store (SECURITY.md pitfall 13)."""
    store = TrustStore.from_dsc_certificates([dsc.der])
    with pytest.raises(TrustStoreError) as info:
        require_environment(store, Environment.PROD)
    assert info.value.code == "trust.wrong_environment"
    assert require_environment(store, Environment.TST) is store


def test_one_environment_per_store() -> None:
    """A store has exactly one Environment; a string is refused."""
    with pytest.raises(TypeError):
        TrustStore(environment="PROD", mode=TrustMode.GATEWAY)  # type: ignore[arg-type]


def _signed(issued_at: datetime | None, max_age: timedelta | None = None) -> TrustStore:
    return TrustStore(
        environment=Environment.PROD,
        mode=TrustMode.SIGNED_LIST,
        issued_at=issued_at,
        sequence=1 if issued_at else None,
        max_age=max_age,
    )


def test_freshness() -> None:
    """Fresh up to issued_at + max_age inclusive, stale after; the caller's bound wins."""
    store = _signed(NOW - 2 * DAY, max_age=3 * DAY)
    assert store.stale_after == NOW + DAY
    assert store.is_fresh(NOW)
    assert store.is_fresh(NOW + DAY)
    assert not store.is_fresh(NOW + DAY + timedelta(seconds=1))
    assert not store.is_fresh(NOW, DAY)


def test_freshness_unknown_without_signed_time() -> None:
    """Without an issue time a list is never fresh, whatever the bound (regression: with no bound it
    used to pass); bare --dsc certificates have no list and count as fresh."""
    store = _signed(None)
    assert not store.is_fresh(NOW)
    assert not store.is_fresh(NOW, DAY)
    assert store.stale_after is None
    assert TrustStore(environment=Environment.TST, mode=TrustMode.DSC).is_fresh(NOW)


def test_freshness_bound_is_on_by_default() -> None:
    """A year-old list with no bound given is stale under the 72-hour default (regression: no bound)."""
    store = _signed(NOW - 365 * DAY)
    assert store.is_fresh(NOW - 365 * DAY + DEFAULT_MAX_TRUST_AGE)
    assert not store.is_fresh(NOW)


def test_naive_times_are_caller_errors() -> None:
    """Naive datetimes raise ValueError (now and issued_at)."""
    with pytest.raises(ValueError):
        _signed(NOW).is_fresh(datetime(2025, 1, 1))
    with pytest.raises(ValueError):
        _signed(datetime(2025, 1, 1))


@pytest.mark.parametrize("sequence", [-1, True, 1.5])
def test_bad_sequence_refused(sequence: object) -> None:
    """sequence must be a non-negative int."""
    with pytest.raises(ValueError):
        TrustStore(environment=Environment.TST, mode=TrustMode.SIGNED_LIST, sequence=sequence)  # type: ignore[arg-type]


def test_trusted_dsc_country_validated(dsc: Issued) -> None:
    """A TrustedDsc country is ISO alpha-2 or empty."""
    with pytest.raises(ValueError):
        trusted(dsc, "vn")


def test_repr_is_short(csca: Issued, dsc: Issued) -> None:
    """repr shows counts, not certificates."""
    text = repr(store_of([trusted(dsc)], [("VN", csca), ("DE", make_ca("DE"))]))
    assert "dscs=1" in text
    assert "cscas=2" in text
    assert len(text) < 200
