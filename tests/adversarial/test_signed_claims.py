"""verify() never raises: hostile claims and DCC payloads under a *valid* signature by a trusted key.

Random bytes stop before the signature; here every check after it (chain, time, key usage, schema) and
the result built from them are fed hostile values: huge, negative and non-finite times, bytes, tags,
nested maps, control characters, several entries, any ``ver``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.adversarial.signing import der, gateway_store, sign_claims
from tests.adversarial.strategies import hostile_claims, hostile_dccs, times
from tests.interop.payloads import DAY, NOW, sample_dcc
from vaxcred import keys
from vaxcred.codec.cwt import MAX_TIME
from vaxcred.result import STEP_NAMES, Status, StepResult, VerificationResult
from vaxcred.revocation import HashType, RevocationBatch, RevocationList
from vaxcred.rules.ruleset import vietnam_rules
from vaxcred.text import json_dumps_safe
from vaxcred.trust import TrustStore
from vaxcred.verify import verify

AFTER = NOW + DAY
QUICK = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
LONG = settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
#: no step message may echo input at length
MAX_MESSAGE = 2000
_AFTER_SIGNATURE = STEP_NAMES[STEP_NAMES.index("signature") + 1 :]
#: the index of the last step every VALID result has passed (revocation and rules may be "not configured")


@pytest.fixture(scope="module")
def dsc_store(dsc: keys.KeyPair, rsa_dsc: keys.KeyPair) -> TrustStore:
    return TrustStore.from_dsc_certificates([der(dsc), der(rsa_dsc)])


@pytest.fixture(scope="module")
def chain_store(dsc: keys.KeyPair, csca: keys.KeyPair) -> TrustStore:
    return gateway_store(dsc, csca)


_UNCONFIGURED = frozenset({"chain.not_checked", "revocation.not_configured", "rules.not_configured"})


def check_result(result: VerificationResult) -> None:
    """The invariants of any result: its shape, VALID only when every step passed, bounded, JSON-able."""
    assert isinstance(result, VerificationResult)
    assert tuple(s.name for s in result.steps) == STEP_NAMES
    for step in result.steps:
        assert len(step.message) <= MAX_MESSAGE, (step.code, len(step.message))
    if result.status is Status.VALID:
        assert not result.failures
        for step in result.steps:
            # skipped only where nothing was configured to check (bare DSCs; no revocation list; no rules)
            assert step.result is StepResult.PASS or step.code in _UNCONFIGURED, step
    if result.step("signature").result is StepResult.PASS:
        assert result.certificate is not None
        # once the signature holds, every remaining check runs and reports
        ran = [result.step(name).code for name in _AFTER_SIGNATURE]
        assert not [code for code in ran if code.startswith("skipped.")], ran
        # a failed step means INVALID; none means VALID, or NEEDS_CHECK when trust or revocation data is stale
        assert (result.status is Status.INVALID) == bool(result.failures)
    else:
        assert result.status is Status.INVALID
        assert result.certificate is None
    assert result.kid is None or len(result.kid) <= 8
    json.dumps(result.to_json(), allow_nan=False)  # strict JSON as it is (an HTTP service sends it so)
    document = json.loads(json_dumps_safe(result.to_json()))
    assert document["status"] == result.status.value


def _claims(dcc: object, iat: object, exp: object) -> dict[int, object]:
    return {1: "VN", 4: exp, 6: iat, -260: {1: dcc}}


@QUICK
@given(claims=hostile_claims(), signer=st.sampled_from(["dsc", "rsa_dsc"]))
def test_any_signed_claims_give_a_result(
    dsc: keys.KeyPair, rsa_dsc: keys.KeyPair, dsc_store: TrustStore, claims: object, signer: str
) -> None:
    """Arbitrary claims maps signed by a trusted ES256 or PS256 DSC yield a well-formed result, never an error."""
    pair = dsc if signer == "dsc" else rsa_dsc
    check_result(verify(sign_claims(pair, claims), dsc_store, now=AFTER))


@QUICK
@given(dcc=hostile_dccs(), iat=times, exp=times)
def test_any_signed_dcc_payload_gives_a_result(
    dsc: keys.KeyPair, chain_store: TrustStore, dcc: object, iat: object, exp: object
) -> None:
    """Hostile DCC payloads in the schema's shape, signed and chained, yield a result; every check runs."""
    check_result(verify(sign_claims(dsc, _claims(dcc, iat, exp)), chain_store, now=AFTER))


@QUICK
@given(
    dcc=hostile_dccs(),
    now=st.datetimes(timezones=st.just(UTC)) | st.sampled_from([datetime.max.replace(tzinfo=UTC)]),
    skew=st.timedeltas(min_value=timedelta(0)),
)
def test_any_clock_and_skew_give_a_result(
    dsc: keys.KeyPair, dsc_store: TrustStore, dcc: object, now: datetime, skew: timedelta
) -> None:
    """Any aware ``now`` (year 1 to 9999) and any non-negative skew: a result, never an overflow."""
    iat = int(NOW.timestamp())
    check_result(
        verify(sign_claims(dsc, _claims(dcc, iat, iat + 100 * 86400)), dsc_store, now=now, skew=skew)
    )


@pytest.fixture(scope="module")
def revocations(dsc: keys.KeyPair) -> RevocationList:
    """A list with batches of every hash type under the DSC's kid (none of them our payloads' hashes)."""
    batches = [
        RevocationBatch(
            country="VN", expires=NOW + 400 * DAY, kid=dsc.kid, hash_type=kind, entries=(bytes([i]) * 16,)
        )
        for i, kind in enumerate(HashType)
    ]
    return RevocationList.from_batches(batches, now=NOW, issued_at=NOW, max_age=timedelta(days=2))


@QUICK
@given(dcc=hostile_dccs(), iat=times, exp=times)
def test_any_signed_dcc_through_revocation_and_rules_gives_a_result(
    dsc: keys.KeyPair,
    chain_store: TrustStore,
    revocations: RevocationList,
    dcc: object,
    iat: object,
    exp: object,
) -> None:
    """The same with a revocation list and Viet Nam's business rules: those steps see hostile payloads too."""
    result = verify(
        sign_claims(dsc, _claims(dcc, iat, exp)),
        chain_store,
        now=AFTER,
        revocation=revocations,
        rules=vietnam_rules(),
        country="VN",
    )
    check_result(result)


@pytest.mark.slow
@LONG
@given(claims=hostile_claims())
def test_any_signed_claims_give_a_result_long(
    dsc: keys.KeyPair, chain_store: TrustStore, claims: object
) -> None:
    """The same property over many more examples (``make fuzz``)."""
    check_result(verify(sign_claims(dsc, claims), chain_store, now=AFTER))


# --- regressions -------------------------------------------------------------------------------------------


def test_non_finite_floats_in_a_signed_dcc_give_strict_json(dsc: keys.KeyPair, dsc_store: TrustStore) -> None:
    """A signed DCC holding NaN and infinities: to_json() is strict JSON (it held bare NaN before)."""
    iat = int(NOW.timestamp())
    dcc = {**sample_dcc().to_json(), "x": [float("nan"), float("inf"), float("-inf"), 1.5]}
    result = verify(sign_claims(dsc, _claims(dcc, iat, iat + 86400)), dsc_store, now=AFTER)
    check_result(result)
    assert json.loads(json.dumps(result.to_json(), allow_nan=False))["certificate"]["x"] == [
        "NaN",
        "Infinity",
        "-Infinity",
        1.5,
    ]


@pytest.mark.parametrize("field", ["iat", "exp"])
@pytest.mark.parametrize("seconds", [MAX_TIME, 2**40 - 1, 300_000_000_000])
def test_signed_time_beyond_year_9999_is_a_bad_time(
    dsc: keys.KeyPair, dsc_store: TrustStore, field: str, seconds: int
) -> None:
    """A validly signed iat or exp past 9999-12-31 fails cose.bad_time (verify() used to raise OverflowError)."""
    good = int(NOW.timestamp())
    claims = _claims(
        sample_dcc().to_json(), seconds if field == "iat" else good, seconds if field == "exp" else good
    )
    result = verify(sign_claims(dsc, claims), dsc_store, now=AFTER)
    check_result(result)
    assert result.step("cose").code == "cose.bad_time"


def test_last_representable_second_is_accepted_by_the_codec(dsc: keys.KeyPair, dsc_store: TrustStore) -> None:
    """exp = 9999-12-31T23:59:59Z decodes; it fails only the time step (beyond the DSC's notAfter)."""
    claims = _claims(sample_dcc().to_json(), int(NOW.timestamp()), MAX_TIME - 1)
    result = verify(sign_claims(dsc, claims), dsc_store, now=AFTER)
    check_result(result)
    assert result.exp == datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
    assert result.step("time").code == "time.exp_after_dsc"


def test_skew_near_the_end_of_time_does_not_overflow(dsc: keys.KeyPair, dsc_store: TrustStore) -> None:
    """now = datetime.max with a large skew is judged, not an OverflowError from now + skew."""
    iat = int(NOW.timestamp())
    hc1 = sign_claims(dsc, _claims(sample_dcc().to_json(), iat, iat + 86400))
    result = verify(hc1, dsc_store, now=datetime.max.replace(tzinfo=UTC), skew=timedelta(days=3650))
    check_result(result)
    assert result.step("time").code == "time.expired"


def test_now_beyond_utc_range_is_a_caller_error(dsc: keys.KeyPair, dsc_store: TrustStore) -> None:
    """An aware now whose UTC instant is past datetime.max raises ValueError, not OverflowError."""
    from datetime import timezone

    late = datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone(-timedelta(hours=12)))
    with pytest.raises(ValueError, match="range"):
        verify("HC1:", dsc_store, now=late)


def test_negative_skew_is_a_caller_error(dsc_store: TrustStore) -> None:
    """A negative skew raises ValueError."""
    with pytest.raises(ValueError, match="skew"):
        verify("HC1:", dsc_store, now=AFTER, skew=-DAY)
