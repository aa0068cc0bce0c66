"""The ``revocation`` verify step: not configured, listed by each hash type, ES256 malleability, stale data."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from tests.interop.payloads import DAY, NOW, sample_dcc
from vaxcred import errors, keys
from vaxcred.codec import base45, compress, cose, prefix
from vaxcred.issue import IssuedPassport, issue
from vaxcred.result import Status, StepResult, VerificationResult
from vaxcred.revocation import HashType, RevocationBatch, RevocationList, revocation_hashes
from vaxcred.trust import TrustStore
from vaxcred.verify import verify

AFTER = NOW + DAY
#: P-256 group order
N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


@pytest.fixture(scope="module")
def store(dsc: keys.KeyPair, rsa_dsc: keys.KeyPair) -> TrustStore:
    return TrustStore.from_dsc_certificates(
        [p.certificate.public_bytes(Encoding.DER) for p in (dsc, rsa_dsc)]
    )


@pytest.fixture(scope="module")
def passport(dsc: keys.KeyPair) -> IssuedPassport:
    return issue(sample_dcc(), dsc.signer(), now=NOW)


@pytest.fixture(scope="module")
def rsa_passport(rsa_dsc: keys.KeyPair) -> IssuedPassport:
    return issue(sample_dcc(), rsa_dsc.signer(), now=NOW)


def _hashes(p: IssuedPassport, country: str = "VN") -> dict[HashType, bytes]:
    msg = cose.decode_sign1(p.cose)
    assert msg.alg is not None
    return revocation_hashes(uvci=p.uvci, country=country, signature=msg.signature, alg=msg.alg)


def _listing(kid: bytes | None, hash_type: HashType, value: bytes, **ages: Any) -> RevocationList:
    batch = RevocationBatch(
        country="VN", expires=NOW + 400 * DAY, kid=kid, hash_type=hash_type, entries=(value,)
    )
    return RevocationList.from_batches([batch], now=AFTER, **ages)


def _step(result: VerificationResult) -> tuple[StepResult, str, str]:
    step = result.step("revocation")
    return step.result, step.code, step.message


def test_no_list_skips_the_step_as_not_configured(passport: IssuedPassport, store: TrustStore) -> None:
    """Without a list the step is a skip (revocation.not_configured) and the passport stays VALID."""
    result = verify(passport.hc1, store, now=AFTER)
    assert result.status is Status.VALID
    assert _step(result)[:2] == (StepResult.SKIP, "revocation.not_configured")


def test_an_unlisted_passport_passes(passport: IssuedPassport, store: TrustStore, dsc: keys.KeyPair) -> None:
    """A list that holds other hashes (or this one under another kid) lets the passport pass."""
    listed = _listing(bytes(8), HashType.UCI, _hashes(passport)[HashType.UCI])
    result = verify(passport.hc1, store, now=AFTER, revocation=listed)
    assert result.status is Status.VALID
    assert _step(result)[:2] == (StepResult.PASS, "revocation.ok")
    other = _listing(dsc.kid, HashType.UCI, b"\x00" * 16)
    assert verify(passport.hc1, store, now=AFTER, revocation=other).status is Status.VALID


@pytest.mark.parametrize("hash_type", list(HashType))
@pytest.mark.parametrize("by_unknown_kid", [False, True])
def test_a_passport_listed_by_any_hash_type_is_invalid(
    passport: IssuedPassport, store: TrustStore, dsc: keys.KeyPair, hash_type: HashType, by_unknown_kid: bool
) -> None:
    """Listed under its kid or UNKNOWN_KID by UCI, COUNTRYCODEUCI or SIGNATURE: INVALID, the type named."""
    listed = _listing(None if by_unknown_kid else dsc.kid, hash_type, _hashes(passport)[hash_type])
    result = verify(passport.hc1, store, now=AFTER, revocation=listed)
    assert result.status is Status.INVALID
    outcome, code, message = _step(result)
    assert (outcome, code) == (StepResult.FAIL, "revocation.revoked")
    assert hash_type.value in message
    with pytest.raises(errors.RevokedError) as info:
        result.raise_for_status()
    assert info.value.code == "revocation.revoked"


def test_es256_signature_revocation_survives_the_malleated_signature(
    passport: IssuedPassport, store: TrustStore, dsc: keys.KeyPair
) -> None:
    """(r, n - s) verifies too; listed by SIGNATURE (r only), the malleated passport is still revoked."""
    msg = cose.decode_sign1(passport.cose)
    r, s = msg.signature[:32], int.from_bytes(msg.signature[32:], "big")
    malleated = cose.encode_sign1(msg.protected_bytes, msg.payload, r + (N - s).to_bytes(32, "big"))
    hc1 = prefix.add_prefix(base45.b45encode(compress.compress(malleated)))
    assert hc1 != passport.hc1
    listed = _listing(dsc.kid, HashType.SIGNATURE, _hashes(passport)[HashType.SIGNATURE])
    result = verify(hc1, store, now=AFTER, revocation=listed)
    assert result.step("signature").result is StepResult.PASS
    assert _step(result)[:2] == (StepResult.FAIL, "revocation.revoked")


def test_ps256_signature_hash_is_the_whole_signature(
    rsa_passport: IssuedPassport, store: TrustStore, rsa_dsc: keys.KeyPair
) -> None:
    """A PS256 passport listed by the hash of its whole signature is revoked."""
    listed = _listing(rsa_dsc.kid, HashType.SIGNATURE, _hashes(rsa_passport)[HashType.SIGNATURE])
    assert verify(rsa_passport.hc1, store, now=AFTER, revocation=listed).status is Status.INVALID


def test_stale_data_needs_a_check_but_a_listed_passport_stays_invalid(
    passport: IssuedPassport, store: TrustStore, dsc: keys.KeyPair
) -> None:
    """Past its maximum age: unlisted -> NEEDS_CHECK (revocation.stale); listed -> INVALID all the same."""
    ages = {"issued_at": NOW - 3 * DAY, "max_age": 2 * DAY}
    unlisted = _listing(dsc.kid, HashType.UCI, b"\x00" * 16, **ages)
    result = verify(passport.hc1, store, now=AFTER, revocation=unlisted)
    assert result.status is Status.NEEDS_CHECK
    assert _step(result)[:2] == (StepResult.SKIP, "revocation.stale")
    listed = _listing(dsc.kid, HashType.UCI, _hashes(passport)[HashType.UCI], **ages)
    assert verify(passport.hc1, store, now=AFTER, revocation=listed).status is Status.INVALID
    fresh = _listing(dsc.kid, HashType.UCI, b"\x00" * 16, issued_at=NOW, max_age=2 * DAY)
    assert verify(passport.hc1, store, now=AFTER + timedelta(hours=1), revocation=fresh).ok


def test_a_wrong_revocation_argument_is_a_caller_mistake(passport: IssuedPassport, store: TrustStore) -> None:
    """Anything but a RevocationList raises TypeError."""
    with pytest.raises(TypeError):
        verify(passport.hc1, store, now=AFTER, revocation=set())  # type: ignore[arg-type]
