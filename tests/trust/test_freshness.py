"""Freshness policy and rollback state: the public API vaxcred sync and the CLI build on."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.trust.certs import DAY, NOW, Issued, make_leaf, store_of, trusted
from vaxcred.errors import TrustStoreError
from vaxcred.trust import (
    DEFAULT_MAX_TRUST_AGE,
    Environment,
    RollbackState,
    TrustFreshnessPolicy,
    TrustMode,
    TrustStore,
    format_age,
    load_signed_trust_list,
    sign_trust_list,
)

HOUR = timedelta(hours=1)


def _signed_store(sequence: int, issued_at: object = NOW, env: Environment = Environment.PROD) -> TrustStore:
    return TrustStore(environment=env, mode=TrustMode.SIGNED_LIST, sequence=sequence, issued_at=issued_at)  # type: ignore[arg-type]


# --- TrustFreshnessPolicy ---------------------------------------------------------------------------


def test_default_bound_is_72_hours() -> None:
    """The default policy holds lists to 72 hours."""
    assert TrustFreshnessPolicy().max_age == DEFAULT_MAX_TRUST_AGE == 72 * HOUR


def test_fresh_until_the_bound_inclusive() -> None:
    """Fresh at exactly max_age, stale one second later, with the age in the message."""
    policy = TrustFreshnessPolicy(max_age=DAY)
    store = _signed_store(1)
    assert policy.assess(store, NOW + DAY).fresh
    stale = policy.assess(store, NOW + DAY + timedelta(seconds=1))
    assert not stale.fresh
    assert stale.code == "trust.stale"
    assert stale.age == DAY + timedelta(seconds=1)
    assert stale.updated_at == NOW
    assert "1d 0h old" in stale.message
    assert "1d 0h" in stale.message


def test_year_old_list_is_stale_by_default() -> None:
    """A year-old list is not fresh under the default policy (regression: no bound by default)."""
    result = TrustFreshnessPolicy().assess(_signed_store(1), NOW + 365 * DAY)
    assert not result.fresh
    assert "365d 0h old" in result.message


def test_unknown_age_is_not_fresh() -> None:
    """A list without an update time (gateway JSON, no retrieval time) is trust.age_unknown."""
    store = TrustStore(environment=Environment.PROD, mode=TrustMode.GATEWAY)
    result = TrustFreshnessPolicy().assess(store, NOW)
    assert (result.fresh, result.code, result.age) == (False, "trust.age_unknown", None)


def test_bare_dscs_have_no_age() -> None:
    """Bare --dsc certificates: not applicable (fresh) under the default bound; under an explicit bound
    their age is unknown, so not fresh (the caller asked for trust of a known age)."""
    store = TrustStore(environment=Environment.TST, mode=TrustMode.DSC)
    result = TrustFreshnessPolicy.for_store(store).assess(store, NOW)
    assert (result.fresh, result.code) == (True, "trust.not_applicable")
    strict = TrustFreshnessPolicy.for_store(store, DAY).assess(store, NOW)
    assert (strict.fresh, strict.code) == (False, "trust.age_unknown")
    assert store.is_fresh(NOW)
    assert not store.is_fresh(NOW, DAY)


def test_for_store_prefers_the_caller_then_the_loader() -> None:
    """for_store: the caller's bound, else the loader's, else the default."""
    store = TrustStore(environment=Environment.PROD, mode=TrustMode.SIGNED_LIST, max_age=5 * HOUR)
    assert TrustFreshnessPolicy.for_store(store, HOUR).max_age == HOUR
    assert TrustFreshnessPolicy.for_store(store).max_age == 5 * HOUR
    assert TrustFreshnessPolicy.for_store(_signed_store(1)).max_age == DEFAULT_MAX_TRUST_AGE


@pytest.mark.parametrize("bad", [timedelta(0), -HOUR, 3600])
def test_bound_must_be_positive(bad: object) -> None:
    """A zero, negative or non-timedelta bound is a caller mistake."""
    with pytest.raises(ValueError):
        TrustFreshnessPolicy(max_age=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("age", "text"),
    [(timedelta(seconds=42), "42s"), (90 * timedelta(seconds=60), "1h 30m"), (3 * DAY + HOUR, "3d 1h")],
)
def test_format_age(age: timedelta, text: str) -> None:
    """Ages are shown short: 42s, 1h 30m, 3d 1h."""
    assert format_age(age) == text


# --- RollbackState ----------------------------------------------------------------------------------


def test_first_list_is_accepted_and_recorded() -> None:
    """An empty state accepts any list and records its sequence and issue time."""
    state = RollbackState().accept(_signed_store(7))
    assert state.min_sequence(Environment.PROD) == 7
    assert state.last_update(Environment.PROD) == NOW
    assert state.min_sequence(Environment.TST) is None


def test_older_sequence_refused() -> None:
    """A list with a lower sequence than the last accepted is a rollback."""
    state = RollbackState().accept(_signed_store(7))
    with pytest.raises(TrustStoreError) as info:
        state.accept(_signed_store(6, NOW + DAY))
    assert info.value.code == "trust.rollback"


def test_same_list_again_is_fine_newer_list_advances() -> None:
    """The same list again leaves the state unchanged; a newer one advances it."""
    state = RollbackState().accept(_signed_store(7))
    assert state.accept(_signed_store(7)) == state
    newer = state.accept(_signed_store(8, NOW + DAY))
    assert newer.min_sequence(Environment.PROD) == 8


def test_same_sequence_reissued_later_moves_the_time_forward() -> None:
    """The same sequence issued later is accepted and recorded; its earlier issue is then refused."""
    state = RollbackState().accept(_signed_store(7)).accept(_signed_store(7, NOW + HOUR))
    assert state.last_update(Environment.PROD) == NOW + HOUR
    with pytest.raises(TrustStoreError) as info:
        state.accept(_signed_store(7))
    assert info.value.code == "trust.rollback"


def test_higher_sequence_issued_earlier_refused() -> None:
    """A higher sequence issued before the last accepted list is refused."""
    state = RollbackState().accept(_signed_store(7))
    with pytest.raises(TrustStoreError):
        state.accept(_signed_store(8, NOW - HOUR))


def test_environments_are_independent() -> None:
    """A TST list never moves the PROD high-water mark."""
    state = RollbackState().accept(_signed_store(50, env=Environment.TST)).accept(_signed_store(3))
    assert state.min_sequence(Environment.TST) == 50
    assert state.min_sequence(Environment.PROD) == 3


def test_lists_without_sequence_leave_the_state() -> None:
    """Gateway stores carry no sequence: the state stays as it is."""
    state = RollbackState().accept(_signed_store(7))
    gateway = TrustStore(environment=Environment.PROD, mode=TrustMode.GATEWAY, issued_at=NOW)
    assert state.accept(gateway) is state


def test_json_round_trip() -> None:
    """to_json / from_json round-trip exactly; the file is deterministic."""
    state = RollbackState().accept(_signed_store(7)).accept(_signed_store(2, env=Environment.ACC))
    data = state.to_json()
    assert RollbackState.from_json(data) == state
    assert json.loads(data)["lists"]["PROD"] == {"sequence": 7, "issued_at": NOW.isoformat()}


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"[]",
        b'{"version": 2, "lists": {}}',
        b'{"version": 1}',
        b'{"version": 1, "lists": {"PROD": {"sequence": -1, "issued_at": "2025-01-01T00:00:00+00:00"}}}',
        b'{"version": 1, "lists": {"XX": {"sequence": 1, "issued_at": "2025-01-01T00:00:00+00:00"}}}',
        b'{"version": 1, "lists": {"PROD": {"sequence": 1, "issued_at": "2025-01-01T00:00:00"}}}',
        b'{"version": 1, "lists": {"PROD": {"sequence": true, "issued_at": "2025-01-01T00:00:00+00:00"}}}',
        b'{"version": 1, "lists": {"PROD": {"sequence": 1}}}',
        b'{"version": 1, "lists": {}, "extra": 1}',
        b"\xff",
        b"[" * 100_000,
    ],
)
def test_bad_state_files_refused(data: bytes) -> None:
    """A state file that is not exactly the format raises TrustStoreError(trust.bad_state)."""
    with pytest.raises(TrustStoreError) as info:
        RollbackState.from_json(data)
    assert info.value.code == "trust.bad_state"


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_random_state_bytes_raise_only_trust_errors(data: bytes) -> None:
    """Arbitrary bytes either load or raise TrustStoreError(trust.bad_state), nothing else."""
    code = None
    try:
        RollbackState.from_json(data)
    except TrustStoreError as e:
        code = e.code
    assert code in (None, "trust.bad_state")


def test_replayed_signed_list_refused_through_the_state(csca: Issued, trust_list_cert: Issued) -> None:
    """The workflow: an old signed list replayed after a newer one is refused (regression: no state)."""
    dsc = make_leaf(csca)
    store = store_of([trusted(dsc)], [("VN", csca)], environment=Environment.PROD)
    signer = trust_list_cert.signer()
    old = sign_trust_list(store, signer=signer, issued_at=NOW - DAY, sequence=4)
    new = sign_trust_list(store, signer=signer, issued_at=NOW, sequence=5)
    state = RollbackState()
    for data in (new,):
        loaded = load_signed_trust_list(
            data,
            anchor=csca.cert,
            environment=Environment.PROD,
            now=NOW,
            min_sequence=state.min_sequence(Environment.PROD),
        )
        state = state.accept(loaded)
    with pytest.raises(TrustStoreError) as info:
        load_signed_trust_list(
            old,
            anchor=csca.cert,
            environment=Environment.PROD,
            now=NOW,
            min_sequence=state.min_sequence(Environment.PROD),
        )
    assert info.value.code == "trust.rollback"
