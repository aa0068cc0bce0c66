"""The verify pipeline end to end: step order, early stops, every failure after the signature, trust modes."""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import base45
import cbor2
import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from tests.interop.payloads import DAY, NOW, sample_dcc
from vaxcred import errors, keys, qr
from vaxcred.codec import base45 as b45
from vaxcred.codec import compress, cose, cwt, prefix
from vaxcred.crypto import Signer
from vaxcred.issue import IssuedPassport, issue
from vaxcred.result import STEP_NAMES, Status, StepResult, VerificationResult
from vaxcred.trust import (
    Environment,
    TrustedDsc,
    TrustMode,
    TrustStore,
    load_signed_trust_list,
    sign_trust_list,
)
from vaxcred.verify import verify
from vaxcred.x509util import parse_dsc

VIETNAM = Path(__file__).parent / "data" / "vietnam"
AFTER = NOW + DAY  # a verification time well inside every passport's validity
SECOND = timedelta(seconds=1)
LATER_STEPS = ("chain", "time", "key_usage", "schema")


def _der(pair: keys.KeyPair) -> bytes:
    return pair.certificate.public_bytes(Encoding.DER)


def _rewrap(cose_bytes: bytes) -> str:
    return prefix.add_prefix(b45.b45encode(compress.compress(cose_bytes)))


def _hand_built(signer: Signer, dcc: Mapping[str, Any], *, iat: datetime, exp: datetime) -> str:
    """An HC1 assembled from the codec functions, bypassing every issuing-side check."""
    claims = cwt.encode_claims(iss="VN", iat=int(iat.timestamp()), exp=int(exp.timestamp()), dcc=dcc)
    protected = cose.encode_protected(int(signer.algorithm), signer.kid)
    signature = signer.sign(cose.sig_structure_for(protected, claims))
    return _rewrap(cose.encode_sign1(protected, claims, signature))


def _tampered_signature(p: IssuedPassport) -> str:
    return _rewrap(p.cose[:-1] + bytes([p.cose[-1] ^ 0x01]))


def _codes(result: VerificationResult) -> dict[str, tuple[StepResult, str]]:
    return {s.name: (s.result, s.code) for s in result.steps}


def _gateway_store(
    dsc: keys.KeyPair, csca: keys.KeyPair, *, retrieved_at: datetime | None = NOW
) -> TrustStore:
    """An authenticated gateway store retrieved at ``retrieved_at`` (``None``: age unknown)."""
    return TrustStore.build(
        environment=Environment.TST,
        mode=TrustMode.GATEWAY,
        dscs=[TrustedDsc(info=parse_dsc(_der(dsc)), country="VN", source="gateway")],
        cscas=[("VN", csca.certificate)],
        issued_at=retrieved_at,
    )


# --- fixtures -----------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def test_only_dsc(csca: keys.KeyPair) -> keys.KeyPair:
    """A DSC whose EKU permits test certificates only."""
    return keys.make_dsc(csca, now=NOW - DAY, types=("t",))


@pytest.fixture(scope="session")
def store(dsc: keys.KeyPair, rsa_dsc: keys.KeyPair, test_only_dsc: keys.KeyPair) -> TrustStore:
    """The ``--dsc`` store: bare DSCs, chain not checked."""
    return TrustStore.from_dsc_certificates([_der(dsc), _der(rsa_dsc), _der(test_only_dsc)])


@pytest.fixture(scope="session")
def passport(dsc: keys.KeyPair) -> IssuedPassport:
    return issue(sample_dcc(), dsc.signer(), now=NOW)


@pytest.fixture(scope="session")
def multi_failure_hc1(test_only_dsc: keys.KeyPair) -> str:
    """Signed by a test-only DSC, expired a day before AFTER, with a schema-invalid payload (dn 0)."""
    payload = sample_dcc().to_json()
    payload["v"][0]["dn"] = 0
    return _hand_built(test_only_dsc.signer(), payload, iat=NOW - 12 * 3600 * SECOND, exp=NOW)


@pytest.fixture(scope="session")
def results(
    passport: IssuedPassport, store: TrustStore, multi_failure_hc1: str, csca: keys.KeyPair
) -> dict[str, VerificationResult]:
    """One result per way of ending: VALID, each early stop, several late failures, NEEDS_CHECK."""
    other = TrustStore.from_dsc_certificates([_der(keys.make_dsc(csca, now=NOW - DAY))])
    stale = dataclasses.replace(store, issued_at=NOW - 10 * DAY, max_age=DAY)
    return {
        "valid": verify(passport.hc1, store, now=AFTER),
        "prefix": verify("HC2:" + passport.hc1[4:], store, now=AFTER),
        "base45": verify(passport.hc1.lower().replace("hc1:", "HC1:"), store, now=AFTER),
        "zlib": verify(prefix.add_prefix(b45.b45encode(passport.cose)), store, now=AFTER),
        "cose": verify(_rewrap(passport.cose[:-1]), store, now=AFTER),
        "kid": verify(passport.hc1, other, now=AFTER),
        "signature": verify(_tampered_signature(passport), store, now=AFTER),
        "late": verify(multi_failure_hc1, store, now=AFTER),
        "needs_check": verify(passport.hc1, stale, now=AFTER),
    }


# --- the shape of every result ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "case", ["valid", "prefix", "base45", "zlib", "cose", "kid", "signature", "late", "needs_check"]
)
def test_every_step_appears_once_in_order(results: dict[str, VerificationResult], case: str) -> None:
    """Every result lists exactly the STEP_NAMES, each once, in pipeline order."""
    assert tuple(s.name for s in results[case].steps) == STEP_NAMES


@pytest.mark.parametrize("case", ["prefix", "base45", "zlib", "cose", "kid", "signature"])
def test_early_failure_fails_that_step_and_skips_the_rest(
    results: dict[str, VerificationResult], case: str
) -> None:
    """A failure before the signature holds stops there: earlier steps pass, later ones are skipped."""
    result = results[case]
    index = STEP_NAMES.index(case)
    assert result.status is Status.INVALID
    assert [s.result for s in result.steps[:index]] == [StepResult.PASS] * index
    assert result.steps[index].result is StepResult.FAIL
    assert all(s.code == "skipped.earlier_failure" for s in result.steps[index + 1 :])


def test_valid_passport_passes_every_step_but_the_skipped_chain(
    results: dict[str, VerificationResult],
) -> None:
    """A fresh passport verified with its bare DSC passes all steps; chain is skipped as not checked,
    revocation and rules as not configured."""
    result = results["valid"]
    assert result.status is Status.VALID
    assert result.ok
    assert {name: r for name, (r, _) in _codes(result).items() if r is not StepResult.PASS} == {
        "chain": StepResult.SKIP,
        "revocation": StepResult.SKIP,
        "rules": StepResult.SKIP,
    }
    assert result.step("revocation").code == "revocation.not_configured"
    assert result.step("chain").code == "chain.not_checked"
    assert result.step("rules").code == "rules.not_configured"
    assert result.trust_mode == "dsc"


def test_valid_result_carries_holder_and_certificate(
    passport: IssuedPassport, results: dict[str, VerificationResult]
) -> None:
    """VALID results expose the holder's names and DOB, the decoded DCC, country, iat, exp and kid."""
    result = results["valid"]
    assert result.holder is not None
    assert result.holder.to_json() == {
        "fn": "Nguyễn",
        "gn": "Văn Đức",
        "fnt": "NGUYEN",
        "gnt": "VAN<DUC",
        "dob": "1990-05-17",
    }
    assert result.certificate == sample_dcc(ci=passport.uvci).to_json()
    assert (result.issuer_country, result.iat, result.exp, result.kid) == (
        "VN",
        passport.iat,
        passport.exp,
        passport.kid,
    )


def test_ps256_passport_is_valid(rsa_dsc: keys.KeyPair, store: TrustStore) -> None:
    """A passport signed by an RSA DSC (PS256) verifies VALID."""
    result = verify(issue(sample_dcc(), rsa_dsc.signer(), now=NOW).hc1, store, now=AFTER)
    assert result.status is Status.VALID, result.failures


# --- signature ----------------------------------------------------------------------------------------


def test_tampered_signature_fails_signature_and_skips_later_checks(
    results: dict[str, VerificationResult],
) -> None:
    """One flipped signature bit: signature fails (signature.invalid) and chain/time/key_usage/schema are skipped."""
    result = results["signature"]
    assert result.status is Status.INVALID
    assert result.step("signature").code == "signature.invalid"
    for name in LATER_STEPS:
        assert result.step(name).result is StepResult.SKIP
        assert result.step(name).code == "skipped.earlier_failure"


def test_holder_and_certificate_are_none_when_the_signature_fails(
    results: dict[str, VerificationResult],
) -> None:
    """Nothing from an unverified payload reaches the caller: holder, certificate, iat, exp are None."""
    result = results["signature"]
    assert (result.holder, result.certificate, result.iat, result.exp) == (None, None, None, None)


def test_tampered_payload_fails_the_signature(passport: IssuedPassport, store: TrustStore) -> None:
    """Changing one letter of the signed name (Đức -> Đực) fails the signature step."""
    changed = passport.cose.replace("Đức".encode(), "Đực".encode())
    assert changed != passport.cose
    result = verify(_rewrap(changed), store, now=AFTER)
    assert result.step("signature").code == "signature.invalid"


def test_unknown_kid_fails_kid(results: dict[str, VerificationResult], passport: IssuedPassport) -> None:
    """A store without the signing DSC fails kid with kid.unknown and still reports the kid read."""
    result = results["kid"]
    assert result.step("kid").code == "kid.unknown"
    assert result.kid == passport.kid


# --- time ---------------------------------------------------------------------------------------------


def test_expired_passport_fails_time(passport: IssuedPassport, store: TrustStore) -> None:
    """One second after exp the time step fails with time.expired."""
    result = verify(passport.hc1, store, now=passport.exp + SECOND)
    assert result.status is Status.INVALID
    assert _codes(result)["time"] == (StepResult.FAIL, "time.expired")


def test_now_equal_to_exp_passes(passport: IssuedPassport, store: TrustStore) -> None:
    """now == exp is still valid: the bound is inclusive."""
    result = verify(passport.hc1, store, now=passport.exp)
    assert result.status is Status.VALID
    assert result.step("time").result is StepResult.PASS


def test_iat_in_the_future_fails_time(passport: IssuedPassport, store: TrustStore) -> None:
    """Ten seconds before iat, without skew, time fails with time.not_yet_valid."""
    result = verify(passport.hc1, store, now=passport.iat - 10 * SECOND)
    assert _codes(result)["time"] == (StepResult.FAIL, "time.not_yet_valid")


def test_skew_admits_iat_that_far_in_the_future(passport: IssuedPassport, store: TrustStore) -> None:
    """A skew of 10 s admits an iat 10 s ahead; 9 s does not."""
    now = passport.iat - 10 * SECOND
    assert verify(passport.hc1, store, now=now, skew=10 * SECOND).status is Status.VALID
    assert verify(passport.hc1, store, now=now, skew=9 * SECOND).step("time").code == "time.not_yet_valid"


def test_now_in_another_timezone_is_the_same_instant(passport: IssuedPassport, store: TrustStore) -> None:
    """An aware now in UTC+7 is compared as the same instant (exp + 1 s is expired in any zone)."""
    ict = timezone(timedelta(hours=7))
    assert verify(passport.hc1, store, now=passport.exp.astimezone(ict)).status is Status.VALID
    assert verify(passport.hc1, store, now=(passport.exp + SECOND).astimezone(ict)).status is Status.INVALID


# --- after the signature: every check reports ---------------------------------------------------------


def test_all_late_failures_are_reported_together(results: dict[str, VerificationResult]) -> None:
    """Expired, test-only DSC and schema-invalid payload: time, key_usage and schema all fail in one result."""
    codes = _codes(results["late"])
    assert codes["signature"] == (StepResult.PASS, "signature.ok")
    assert codes["chain"] == (StepResult.SKIP, "chain.not_checked")
    assert codes["time"] == (StepResult.FAIL, "time.expired")
    assert codes["key_usage"] == (StepResult.FAIL, "key_usage.not_allowed")
    assert codes["schema"] == (StepResult.FAIL, "schema.invalid")
    assert results["late"].status is Status.INVALID


def test_late_failures_still_expose_the_verified_holder(results: dict[str, VerificationResult]) -> None:
    """Once the signature holds the holder is reported even when later checks fail."""
    holder = results["late"].holder
    assert holder is not None
    assert (holder.fnt, holder.gnt) == ("NGUYEN", "VAN<DUC")


# --- raise_for_status ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "error", "code"),
    [
        ("prefix", errors.PrefixError, "prefix.missing"),
        ("base45", errors.Base45Error, "base45.invalid_char"),
        ("zlib", errors.ZlibError, "zlib.invalid"),
        ("cose", errors.CoseError, "cbor.truncated"),  # the cose step reports the CBOR cause
        ("kid", errors.KidError, "kid.unknown"),
        ("signature", errors.SignatureError, "signature.invalid"),
        ("late", errors.TimeError, "time.expired"),
    ],
)
def test_raise_for_status_raises_the_first_failure(
    results: dict[str, VerificationResult], case: str, error: type[errors.VaxcredError], code: str
) -> None:
    """raise_for_status raises the typed error of the first failed step with that step's code."""
    result = results[case]
    with pytest.raises(error) as info:
        result.raise_for_status()
    assert info.value.code == code == result.failures[0].code


def test_raise_for_status_returns_self_when_valid(results: dict[str, VerificationResult]) -> None:
    """raise_for_status on a VALID result returns that very result."""
    assert results["valid"].raise_for_status() is results["valid"]


def test_raise_for_status_on_needs_check_raises(results: dict[str, VerificationResult]) -> None:
    """A NEEDS_CHECK result has no failed step but still raises verify.needs_check."""
    assert results["needs_check"].failures == ()
    with pytest.raises(errors.VerificationError) as info:
        results["needs_check"].raise_for_status()
    assert info.value.code == "verify.needs_check"


# --- trust modes --------------------------------------------------------------------------------------


def test_chain_to_the_csca_passes(passport: IssuedPassport, dsc: keys.KeyPair, csca: keys.KeyPair) -> None:
    """With a gateway store holding the DSC and its CSCA, chain passes and the passport is VALID."""
    result = verify(passport.hc1, _gateway_store(dsc, csca), now=AFTER)
    assert result.status is Status.VALID
    assert _codes(result)["chain"] == (StepResult.PASS, "chain.ok")
    assert result.trust_mode == "gateway"


def test_dsc_from_another_csca_fails_chain(csca: keys.KeyPair) -> None:
    """A DSC listed under VN but issued by a different CSCA (same name, other key) fails chain.*."""
    impostor_csca = keys.make_csca(now=NOW - 60 * DAY)
    impostor = keys.make_dsc(impostor_csca, now=NOW - DAY)
    hc1 = issue(sample_dcc(), impostor.signer(), now=NOW).hc1
    result = verify(hc1, _gateway_store(impostor, csca), now=AFTER)
    assert result.status is Status.INVALID
    assert result.step("signature").result is StepResult.PASS
    assert result.step("chain").result is StepResult.FAIL
    assert result.step("chain").code.startswith("chain.")
    assert [s.name for s in result.failures] == ["chain"]


def test_gateway_store_without_issue_time_needs_check_under_max_trust_age(
    passport: IssuedPassport, dsc: keys.KeyPair, csca: keys.KeyPair
) -> None:
    """A gateway store has no signed issue time, so any max_trust_age turns VALID into NEEDS_CHECK."""
    store = _gateway_store(dsc, csca, retrieved_at=None)
    result = verify(passport.hc1, store, now=AFTER, max_trust_age=30 * DAY)
    assert result.status is Status.NEEDS_CHECK


@pytest.fixture(scope="session")
def signed_list(dsc: keys.KeyPair, csca: keys.KeyPair) -> bytes:
    """A national trust list issued at NOW listing the DSC and the CSCA."""
    signer = keys.make_trust_list_signer(csca, now=NOW - DAY)
    return sign_trust_list(_gateway_store(dsc, csca), signer=signer.signer(), issued_at=NOW, sequence=7)


def _load(signed: bytes, csca: keys.KeyPair) -> TrustStore:
    return load_signed_trust_list(
        signed, anchor=csca.certificate, environment=Environment.TST, now=NOW + SECOND, max_age=DAY
    )


def test_fresh_signed_trust_list_is_valid_with_chain(
    passport: IssuedPassport, signed_list: bytes, csca: keys.KeyPair
) -> None:
    """Within the signed list's max_age the passport is VALID and the chain step passes."""
    result = verify(passport.hc1, _load(signed_list, csca), now=NOW + DAY)
    assert result.status is Status.VALID
    assert result.step("chain").result is StepResult.PASS


def test_stale_signed_trust_list_needs_check(
    passport: IssuedPassport, signed_list: bytes, csca: keys.KeyPair
) -> None:
    """Past the signed list's max_age an otherwise VALID passport is NEEDS_CHECK, with no failed step."""
    result = verify(passport.hc1, _load(signed_list, csca), now=NOW + DAY + SECOND)
    assert result.status is Status.NEEDS_CHECK
    assert result.failures == ()


def test_stale_trust_list_does_not_hide_an_invalid_passport(
    passport: IssuedPassport, signed_list: bytes, csca: keys.KeyPair
) -> None:
    """A stale store never upgrades a failure: an expired passport stays INVALID."""
    result = verify(passport.hc1, _load(signed_list, csca), now=passport.exp + SECOND)
    assert result.status is Status.INVALID


def test_max_trust_age_argument_overrides_the_loader_bound(
    passport: IssuedPassport, signed_list: bytes, csca: keys.KeyPair
) -> None:
    """max_trust_age given to verify replaces the loader's max_age in both directions."""
    trust = _load(signed_list, csca)
    assert verify(passport.hc1, trust, now=NOW + 2 * DAY, max_trust_age=3 * DAY).status is Status.VALID
    assert (
        verify(passport.hc1, trust, now=NOW + 2 * SECOND, max_trust_age=SECOND).status is Status.NEEDS_CHECK
    )


# --- input forms --------------------------------------------------------------------------------------


def test_png_of_the_rendered_qr_is_valid(passport: IssuedPassport, store: TrustStore) -> None:
    """The PNG bytes of the QR code vaxcred renders verify VALID."""
    result = verify(qr.render_png(passport.hc1), store, now=AFTER)
    assert result.status is Status.VALID, result.failures


def test_ascii_bytes_are_read_as_text(passport: IssuedPassport, store: TrustStore) -> None:
    """The HC1 text as ASCII bytes (bytes, bytearray, memoryview) verifies VALID."""
    raw = passport.hc1.encode("ascii")
    for data in (raw, bytearray(raw), memoryview(raw)):
        assert verify(data, store, now=AFTER).status is Status.VALID


def test_surrounding_whitespace_is_trimmed(passport: IssuedPassport, store: TrustStore) -> None:
    """A scanner's trailing newline or leading spaces do not matter."""
    assert verify(f"  {passport.hc1}\r\n", store, now=AFTER).status is Status.VALID


def test_non_ascii_bytes_fail_prefix(store: TrustStore) -> None:
    """Bytes that are neither an image nor ASCII fail the prefix step with prefix.not_text."""
    result = verify("HC1:Nguyễn".encode(), store, now=AFTER)
    assert _codes(result)["prefix"] == (StepResult.FAIL, "prefix.not_text")


def test_wrong_prefix_fails_prefix(results: dict[str, VerificationResult]) -> None:
    """'HC2:' instead of 'HC1:' fails prefix with prefix.missing."""
    assert _codes(results["prefix"])["prefix"] == (StepResult.FAIL, "prefix.missing")


def test_lowercase_base45_fails_base45(results: dict[str, VerificationResult]) -> None:
    """Lower-case letters are not Base45: base45 fails with base45.invalid_char."""
    assert _codes(results["base45"])["base45"] == (StepResult.FAIL, "base45.invalid_char")


def test_non_str_input_is_a_type_error(store: TrustStore) -> None:
    """verify(123, ...) is a caller mistake: TypeError, not a result."""
    with pytest.raises(TypeError):
        verify(123, store, now=AFTER)  # type: ignore[arg-type]


def test_naive_now_is_a_value_error(passport: IssuedPassport, store: TrustStore) -> None:
    """A naive now raises ValueError."""
    with pytest.raises(ValueError, match="timezone-aware"):
        verify(passport.hc1, store, now=datetime(2026, 1, 11))


# --- the real Vietnamese passport ---------------------------------------------------------------------


def _vn_kid(text: str) -> bytes:
    """The kid of the real passport, read with cbor2, zlib and the base45 package (not vaxcred)."""
    message = cbor2.loads(zlib.decompress(base45.b45decode(text.strip()[4:])))
    protected, unprotected = cbor2.loads(message.value[0]), message.value[1]
    return protected.get(4, unprotected.get(4))


@pytest.fixture(scope="session")
def vn_text() -> str:
    return (VIETNAM / "VAC_VN.qr.txt").read_text(encoding="ascii")


def test_real_vietnamese_passport_decodes_and_fails_kid_without_its_dsc(vn_text: str) -> None:
    """VAC_VN.qr.txt without its DSC: prefix..cose pass, kid fails kid.unknown with the kid it carries."""
    result = verify(vn_text, TrustStore.from_dsc_certificates([]), now=AFTER)
    assert [s.result for s in result.steps[:4]] == [StepResult.PASS] * 4
    assert _codes(result)["kid"] == (StepResult.FAIL, "kid.unknown")
    assert result.kid == _vn_kid(vn_text)
    assert len(result.kid) == 8


def test_real_vietnamese_passport_image_gives_the_text_result(vn_text: str) -> None:
    """The JPEG of the real passport (VAC_VN.png) yields the same steps and kid as its text."""
    empty = TrustStore.from_dsc_certificates([])
    from_image = verify((VIETNAM / "VAC_VN.png").read_bytes(), empty, now=AFTER)
    from_text = verify(vn_text, empty, now=AFTER)
    assert from_image.steps == from_text.steps
    assert from_image.kid == from_text.kid
