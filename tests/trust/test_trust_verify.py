"""The trust path as verify sees it: VALID only with authenticated, fresh trust; every kid candidate tried
for signature *and* chain; the iss notice; a CA DSC never chains.  Each test names the defect it guards."""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta

import pytest

from tests.interop.payloads import NOW as ISSUED
from tests.interop.payloads import sample_dcc
from tests.trust.certs import (
    DAY,
    NOW,
    GatewayWorld,
    Issued,
    gateway_entry,
    make_ca,
    make_gateway_world,
    make_leaf,
    make_trust_list_cert,
    new_key,
    store_of,
    trusted,
)
from vaxcred.codec import base45, compress, cose, cwt, prefix
from vaxcred.errors import TrustStoreError
from vaxcred.issue import issue
from vaxcred.oids import EKU_VACCINATION, TRUST_LIST_EKU
from vaxcred.result import Status, StepResult
from vaxcred.trust import (
    Environment,
    TrustedDsc,
    TrustMode,
    TrustStore,
    load_gateway_trust_list,
    load_gateway_trust_list_unsafe_unauthenticated,
    load_signed_trust_list,
    sign_trust_list,
)
from vaxcred.trust import signed as signed_module
from vaxcred.verify import verify

AT = ISSUED + DAY  # verification time: the passports are issued at ISSUED (2026-01-10)


@pytest.fixture(scope="module")
def world() -> GatewayWorld:
    return make_gateway_world()


@pytest.fixture(scope="module")
def hc1(world: GatewayWorld) -> str:
    return issue(sample_dcc(), world.dsc.signer(), now=ISSUED).hc1


def _fresh(store: TrustStore) -> TrustStore:
    return dataclasses.replace(store, issued_at=AT - timedelta(hours=1))


# --- authenticated trust only -------------------------------------------------------------------------


def test_authenticated_gateway_list_is_valid(world: GatewayWorld, hc1: str) -> None:
    """A gateway list whose entries carry the anchor's / upload key's CMS signatures, freshly retrieved:
    VALID, trust mode gateway, last update and age in the result."""
    loaded = load_gateway_trust_list(
        json.dumps(world.entries()).encode(),
        environment=Environment.PROD,
        anchors=[world.anchor.cert],
        now=AT,
        retrieved_at=AT - timedelta(hours=2),
    )
    result = verify(hc1, loaded.store, now=AT)
    assert result.status is Status.VALID, result.failures
    assert result.trust_mode == "gateway"
    assert result.trust_updated_at == AT - timedelta(hours=2)
    assert result.trust_age == timedelta(hours=2)
    assert result.notices == ()
    doc = result.to_json()
    assert (doc["trust_mode"], doc["trust_age_seconds"], doc["trust_max_age_seconds"]) == (
        "gateway",
        7200,
        259200,
    )


def test_rogue_chain_in_an_unsigned_list_is_never_valid(hc1: str) -> None:
    """A rogue CSCA + DSC in an unsigned gateway list: loaded only through the unsafe opt-in, and then
    NEEDS_CHECK with trust.unauthenticated, never VALID (regression: it verified VALID)."""
    rogue_csca = make_ca("VN")
    rogue_dsc = make_leaf(rogue_csca)
    rogue_hc1 = issue(sample_dcc(), rogue_dsc.signer(), now=ISSUED).hc1
    document = json.dumps([gateway_entry(rogue_csca, "CSCA"), gateway_entry(rogue_dsc)]).encode()
    store = load_gateway_trust_list_unsafe_unauthenticated(
        document, environment=Environment.PROD, retrieved_at=AT
    ).store
    result = verify(rogue_hc1, store, now=AT)
    assert result.status is Status.NEEDS_CHECK
    assert result.failures == ()
    assert result.trust_mode == "unauthenticated"
    assert "trust.unauthenticated" in [n.code for n in result.notices]


def test_unauthenticated_store_does_not_hide_a_failure(world: GatewayWorld, hc1: str) -> None:
    """An INVALID passport stays INVALID on an unauthenticated store."""
    document = json.dumps([gateway_entry(world.csca, "CSCA"), gateway_entry(world.dsc)]).encode()
    store = load_gateway_trust_list_unsafe_unauthenticated(
        document, environment=Environment.PROD, retrieved_at=AT
    )
    assert verify(hc1, store.store, now=ISSUED + 400 * DAY).status is Status.INVALID


# --- freshness by default ------------------------------------------------------------------------------


def test_months_old_signed_list_needs_check_by_default(world: GatewayWorld, hc1: str) -> None:
    """A national list 200 days old, no bound given anywhere: NEEDS_CHECK with the age in the notice
    (regression: with no max age by default it verified VALID)."""
    store = store_of([trusted(world.dsc)], [("VN", world.csca)], environment=Environment.PROD)
    signer_cert = make_trust_list_cert(world.csca)
    issued = AT - 200 * DAY
    signed = sign_trust_list(store, signer=signer_cert.signer(), issued_at=issued, sequence=1)
    loaded = load_signed_trust_list(
        signed, anchor=world.csca.cert, environment=Environment.PROD, now=issued + DAY
    )
    result = verify(hc1, loaded, now=AT)
    assert result.status is Status.NEEDS_CHECK
    assert result.failures == ()
    (notice,) = result.notices
    assert notice.code == "trust.stale"
    assert "200d 0h old" in notice.message
    assert result.trust_updated_at == issued
    assert verify(hc1, loaded, now=AT, max_trust_age=400 * DAY).status is Status.VALID


def test_gateway_list_of_unknown_age_needs_check(world: GatewayWorld, hc1: str) -> None:
    """An authenticated gateway list without a retrieval time: its age is unknown, NEEDS_CHECK."""
    loaded = load_gateway_trust_list(
        json.dumps(world.entries()).encode(),
        environment=Environment.PROD,
        anchors=[world.anchor.cert],
        now=AT,
    )
    result = verify(hc1, loaded.store, now=AT)
    assert result.status is Status.NEEDS_CHECK
    assert [n.code for n in result.notices] == ["trust.age_unknown"]


# --- candidates: signature and chain, every one -----------------------------------------------------------


def _same_kid(dsc: TrustedDsc, kid: bytes) -> TrustedDsc:
    return dataclasses.replace(dsc, info=dataclasses.replace(dsc.info, kid=kid))


def test_second_candidate_passing_the_chain_is_used(world: GatewayWorld) -> None:
    """Two DSCs share a kid and a key; the first is issued by a rogue CSCA (chain fails), the second by the
    real one: VALID (regression: only the first verifying DSC got a chain check, so INVALID)."""
    key = new_key()
    rogue = make_leaf(make_ca("VN"), key=key)
    real = make_leaf(world.csca, key=key)
    passport = issue(sample_dcc(), real.signer(), now=ISSUED).hc1
    kid = trusted(real).kid
    store = _fresh(store_of([_same_kid(trusted(rogue), kid), trusted(real)], [("VN", world.csca)]))
    result = verify(passport, store, now=AT)
    assert result.status is Status.VALID, result.failures
    assert result.step("chain").result is StepResult.PASS


def test_chain_failure_reported_when_no_candidate_chains(world: GatewayWorld) -> None:
    """When every DSC whose signature verifies fails the chain, signature passes and chain fails."""
    rogue = make_leaf(make_ca("VN"))
    passport = issue(sample_dcc(), rogue.signer(), now=ISSUED).hc1
    store = _fresh(store_of([trusted(rogue)], [("VN", world.csca)]))
    result = verify(passport, store, now=AT)
    assert result.status is Status.INVALID
    assert result.step("signature").result is StepResult.PASS
    assert [s.name for s in result.failures] == ["chain"]


def test_all_eight_candidates_are_tried(world: GatewayWorld) -> None:
    """The right DSC is the 8th of 8 sharing a kid: it is found (no candidate is left out)."""
    real = make_leaf(world.csca)
    passport = issue(sample_dcc(), real.signer(), now=ISSUED).hc1
    kid = trusted(real).kid
    decoys = [_same_kid(trusted(make_leaf(world.csca)), kid) for _ in range(7)]
    store = _fresh(store_of([*decoys, trusted(real)], [("VN", world.csca)]))
    assert len(store.candidates(kid)) == 8
    assert verify(passport, store, now=AT).status is Status.VALID


# --- hygiene ---------------------------------------------------------------------------------------------


def _with_iss(signer_cert: Issued, iss: str) -> str:
    signer = signer_cert.signer()
    iat, exp = int(ISSUED.timestamp()), int((ISSUED + 300 * DAY).timestamp())
    claims = cwt.encode_claims(iss=iss, iat=iat, exp=exp, dcc=sample_dcc().to_json())
    protected = cose.encode_protected(int(signer.algorithm), signer.kid)
    signature = signer.sign(cose.sig_structure_for(protected, claims))
    return prefix.add_prefix(
        base45.b45encode(compress.compress(cose.encode_sign1(protected, claims, signature)))
    )


def test_iss_differing_from_the_dsc_country_is_reported(world: GatewayWorld) -> None:
    """A VN DSC signing a passport that claims iss DE: a notice iss.mismatch, the claim in the result
    (regression: not reported); the status is not changed by it."""
    store = _fresh(store_of([trusted(world.dsc)], [("VN", world.csca)]))
    result = verify(_with_iss(world.dsc, "DE"), store, now=AT)
    assert result.iss == "DE"
    assert [n.code for n in result.notices] == ["iss.mismatch"]
    assert result.status is Status.VALID
    assert verify(_with_iss(world.dsc, "VN"), store, now=AT).notices == ()


def test_dsc_that_is_a_ca_fails_the_chain() -> None:
    """A CA certificate (issued by the CSCA) used as a DSC in a hand-built store fails chain.dsc_is_ca."""
    csca = make_ca("VN")
    sub_ca = make_leaf(csca, cn="DSC")
    # make the leaf a CA by re-issuing with basicConstraints cA
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    cert = (
        x509.CertificateBuilder()
        .subject_name(sub_ca.cert.subject)
        .issuer_name(csca.cert.subject)
        .public_key(sub_ca.key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - DAY)
        .not_valid_after(NOW + 900 * DAY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(csca.key, hashes.SHA256())
    )
    ca_dsc = Issued(key=sub_ca.key, cert=cert)
    passport = issue(sample_dcc(), ca_dsc.signer(), now=ISSUED).hc1
    store = _fresh(store_of([trusted(ca_dsc)], [("VN", csca)]))
    result = verify(passport, store, now=AT)
    assert result.status is Status.INVALID
    assert result.step("chain").code == "chain.dsc_is_ca"


def test_trust_mode_values() -> None:
    """The result's trust_mode is the store's mode value, for every mode."""
    assert {m.value for m in TrustMode} == {"dsc", "gateway", "signed_list", "unauthenticated"}
    assert [m for m in TrustMode if m.authenticated] == [TrustMode.GATEWAY, TrustMode.SIGNED_LIST]


def test_signed_list_listing_a_ca_as_dsc_is_refused() -> None:
    """A national list whose DSC entries include a CA certificate is refused (trust.dsc_is_ca)."""
    csca = make_ca("VN")
    ca_as_dsc = make_ca("VN", cn="DSC")
    store = store_of([trusted(ca_as_dsc)], [("VN", csca)], environment=Environment.PROD)
    signed = sign_trust_list(store, signer=make_trust_list_cert(csca).signer(), issued_at=NOW, sequence=1)
    with pytest.raises(TrustStoreError) as info:
        load_signed_trust_list(signed, anchor=csca.cert, environment=Environment.PROD, now=NOW)
    assert info.value.code == "trust.dsc_is_ca"


def test_trust_list_key_with_a_dcc_purpose_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """A trust-list certificate that may also sign passports (TRUST_LIST_EKU + a DCC EKU) can neither sign
    nor vouch for a trust list (trust.wrong_purpose): one key, one purpose."""
    csca = make_ca("VN")
    dual = make_leaf(csca, cn="Trust list", eku=(TRUST_LIST_EKU, EKU_VACCINATION))
    store = store_of([trusted(make_leaf(csca))], [("VN", csca)], environment=Environment.PROD)
    with pytest.raises(TrustStoreError) as info:
        sign_trust_list(store, signer=dual.signer(), issued_at=NOW, sequence=1)
    assert info.value.code == "trust.wrong_purpose"
    with monkeypatch.context() as mp:  # a list made by some other tool
        mp.setattr(signed_module, "_has_trust_list_eku", lambda _cert: True)
        signed = sign_trust_list(store, signer=dual.signer(), issued_at=NOW, sequence=1)
    with pytest.raises(TrustStoreError) as info:
        load_signed_trust_list(signed, anchor=csca.cert, environment=Environment.PROD, now=NOW)
    assert info.value.code == "trust.wrong_purpose"
