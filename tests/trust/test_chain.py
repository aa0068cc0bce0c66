"""The ``chain`` step: DSC -> CSCA of its country, valid at ``now``, each failure with its own code."""

from __future__ import annotations

import dataclasses
from datetime import datetime

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from tests.trust.certs import DAY, NOW, Issued, make_ca, make_leaf, new_key, store_of, trusted
from vaxcred import keys
from vaxcred.errors import ChainError
from vaxcred.trust import Environment, TrustedDsc, TrustMode, TrustStore, check_chain
from vaxcred.x509util import parse_dsc


def _code(dsc: TrustedDsc, store: TrustStore, now: datetime = NOW) -> str:
    with pytest.raises(ChainError) as info:
        check_chain(dsc, store, now)
    return info.value.code


def test_valid_chain_passes(csca: Issued, dsc: Issued) -> None:
    """A DSC signed by its country's CSCA, both valid at now, passes."""
    check_chain(trusted(dsc), store_of(cscas=[("VN", csca)]), NOW)


def test_keys_module_chain_passes(keys_chain: tuple[keys.KeyPair, keys.KeyPair, keys.KeyPair]) -> None:
    """The CSCA and DSC vaxcred.keys makes pass vaxcred's own chain check."""
    csca, dsc, _ = keys_chain
    store = TrustStore.build(
        environment=Environment.TST, mode=TrustMode.SIGNED_LIST, cscas=[("VN", csca.certificate)]
    )
    info = parse_dsc(dsc.certificate.public_bytes(Encoding.DER))
    check_chain(TrustedDsc(info=info, country="VN", source="keys"), store, NOW)


def test_rsa_chain_passes() -> None:
    """RSA CSCA and RSA DSC (the PS256 case, as in Viet Nam's passport) pass."""
    csca = make_ca(key=new_key("rsa", 3072))
    dsc = make_leaf(csca, key=new_key("rsa", 2048))
    check_chain(trusted(dsc), store_of(cscas=[("VN", csca)]), NOW)


def test_no_csca_for_country(csca: Issued, dsc: Issued) -> None:
    """A store without a CSCA of the DSC's country fails chain.no_csca."""
    store = store_of(cscas=[("DE", make_ca("DE"))])
    assert _code(trusted(dsc), store) == "chain.no_csca"


def test_dsc_only_store_has_no_csca(dsc: Issued) -> None:
    """In the --dsc mode there is nothing to chain to (the verifier skips the step)."""
    store = TrustStore.from_dsc_certificates([dsc.der])
    assert not store.chain_required
    assert _code(store.candidates(store.all_dscs()[0].kid)[0], store) == "chain.no_csca"


def test_dsc_from_another_csca(csca: Issued) -> None:
    """A DSC signed by a different CSCA (same name, other key) fails chain.bad_signature."""
    impostor = make_ca("VN")  # same subject DN as the real CSCA
    dsc = make_leaf(impostor)
    assert _code(trusted(dsc), store_of(cscas=[("VN", csca)])) == "chain.bad_signature"


def test_self_signed_dsc_refused(csca: Issued) -> None:
    """A home-made "DSC" signing itself fails chain.bad_signature (SECURITY.md pitfall 15)."""
    fake = make_ca("VN", cn="DSC")
    assert _code(trusted(fake), store_of(cscas=[("VN", csca)])) == "chain.bad_signature"


def test_expired_csca() -> None:
    """A CSCA past notAfter at now fails chain.expired (shell model)."""
    csca = make_ca(not_before=NOW - 4 * 365 * DAY, not_after=NOW - DAY)
    dsc = make_leaf(csca)
    assert _code(trusted(dsc), store_of(cscas=[("VN", csca)])) == "chain.expired"


def test_csca_not_yet_valid() -> None:
    """A CSCA before notBefore at now fails chain.not_yet_valid."""
    csca = make_ca(not_before=NOW + DAY)
    dsc = make_leaf(csca)
    assert _code(trusted(dsc), store_of(cscas=[("VN", csca)])) == "chain.not_yet_valid"


def test_dsc_not_yet_valid(csca: Issued) -> None:
    """A DSC before its notBefore fails chain.not_yet_valid."""
    dsc = make_leaf(csca, not_before=NOW + DAY)
    assert _code(trusted(dsc), store_of(cscas=[("VN", csca)])) == "chain.not_yet_valid"


def test_dsc_expired(csca: Issued) -> None:
    """A DSC after its notAfter fails chain.expired."""
    dsc = make_leaf(csca, not_before=NOW - 100 * DAY, not_after=NOW - DAY)
    assert _code(trusted(dsc), store_of(cscas=[("VN", csca)])) == "chain.expired"


def test_validity_bounds_inclusive(csca: Issued, dsc: Issued) -> None:
    """now exactly on the DSC's notAfter still passes."""
    check_chain(trusted(dsc), store_of(cscas=[("VN", csca)]), dsc.cert.not_valid_after_utc)


def test_dsc_country_differs_from_csca(csca: Issued) -> None:
    """A DSC with C=DE under the VN CSCA fails chain.country_mismatch."""
    dsc = make_leaf(csca, country="DE")
    assert _code(trusted(dsc, "VN"), store_of(cscas=[("VN", csca)])) == "chain.country_mismatch"


def test_dsc_without_country(csca: Issued) -> None:
    """A DSC without C= cannot show it belongs to its CSCA's country."""
    dsc = make_leaf(csca, country=None)
    assert _code(trusted(dsc, "VN"), store_of(cscas=[("VN", csca)])) == "chain.country_mismatch"


def test_csca_filed_under_other_country(csca: Issued, dsc: Issued) -> None:
    """A VN CSCA filed under DE in the trust list does not vouch for a DSC listed as DE."""
    assert _code(trusted(dsc, "DE"), store_of(cscas=[("DE", csca)])) == "chain.country_mismatch"


@pytest.mark.parametrize("ca", [False, None], ids=["cA-false", "no-basicConstraints"])
def test_csca_not_a_ca(ca: bool | None) -> None:
    """A "CSCA" without the CA flag fails chain.not_ca."""
    csca = make_ca(ca=ca)
    dsc = make_leaf(csca)
    assert _code(trusted(dsc), store_of(cscas=[("VN", csca)])) == "chain.not_ca"


def test_csca_without_key_cert_sign() -> None:
    """A CA whose keyUsage lacks keyCertSign fails chain.not_ca."""
    csca = make_ca(key_cert_sign=False)
    dsc = make_leaf(csca)
    assert _code(trusted(dsc), store_of(cscas=[("VN", csca)])) == "chain.not_ca"


def test_aki_mismatch(csca: Issued) -> None:
    """A DSC signed by the CSCA but naming another key in its AKI fails chain.aki_mismatch."""
    dsc = make_leaf(csca, aki=b"\x01" * 20)
    assert _code(trusted(dsc), store_of(cscas=[("VN", csca)])) == "chain.aki_mismatch"


def test_missing_aki_left_to_signature(csca: Issued) -> None:
    """A DSC without AKI is judged by name chaining and signature."""
    check_chain(trusted(make_leaf(csca, aki=None)), store_of(cscas=[("VN", csca)]), NOW)


def test_dsc_without_digital_signature(csca: Issued) -> None:
    """A DSC whose keyUsage lacks digitalSignature fails chain.no_digital_signature."""
    dsc = make_leaf(csca, digital_signature=False)
    assert _code(trusted(dsc), store_of(cscas=[("VN", csca)])) == "chain.no_digital_signature"


def test_dsc_without_key_usage_passes(csca: Issued) -> None:
    """No keyUsage extension means no restriction (RFC 5280)."""
    check_chain(trusted(make_leaf(csca, digital_signature=None)), store_of(cscas=[("VN", csca)]), NOW)


def test_dsc_with_empty_eku_passes(csca: Issued) -> None:
    """An empty EKU (CO15: pyca cannot read the extensions) is checked by hand and passes."""
    dsc = make_leaf(csca, eku=())
    with pytest.raises(ValueError):
        dsc.cert.extensions  # noqa: B018 - pyca refuses this certificate's extensions
    check_chain(trusted(dsc), store_of(cscas=[("VN", csca)]), NOW)


def test_renewed_csca_any_issuer_suffices() -> None:
    """With an expired and a current CSCA of the same name, a DSC of the current one passes."""
    old = make_ca(not_before=NOW - 5 * 365 * DAY, not_after=NOW - DAY)
    new = make_ca()
    dsc = make_leaf(new)
    store = store_of(cscas=[("VN", old), ("VN", new)])
    check_chain(trusted(dsc), store, NOW)
    assert _code(trusted(make_leaf(old)), store) == "chain.expired"


def test_path_validation_layer_refuses_weak_csca_key() -> None:
    """pyca's RFC 5280 layer adds checks the hand checks lack: an RSA-1024 CSCA fails chain.policy."""
    csca = make_ca(key=new_key("rsa", 1024))
    dsc = make_leaf(csca)
    assert _code(trusted(dsc), store_of(cscas=[("VN", csca)])) == "chain.policy"


def test_naive_now_is_a_caller_error(csca: Issued, dsc: Issued) -> None:
    """A naive datetime raises ValueError, not a ChainError."""
    with pytest.raises(ValueError):
        check_chain(trusted(dsc), store_of(cscas=[("VN", csca)]), datetime(2025, 6, 1))


def test_only_chain_errors_escape(csca: Issued) -> None:
    """A DSC that pyca cannot load at all fails chain.malformed (no library exception)."""
    dsc = trusted(make_leaf(csca))
    broken = dataclasses.replace(dsc, info=dataclasses.replace(dsc.info, certificate=None))
    assert _code(broken, store_of(cscas=[("VN", csca)])) == "chain.malformed"


def test_check_chain_is_pure(csca: Issued, dsc: Issued) -> None:
    """The same inputs give the same answer at any later time: only ``now`` matters."""
    store = store_of(cscas=[("VN", csca)])
    check_chain(trusted(dsc), store, NOW)
    assert _code(trusted(dsc), store, NOW + 800 * DAY) == "chain.expired"


def test_memoised_chain_still_checks_time_on_every_call() -> None:
    """The per-pair memo (signature, CA profile, RFC 5280 path) never hides validity at `now`."""
    from datetime import UTC, datetime, timedelta

    from cryptography.hazmat.primitives.serialization import Encoding

    from vaxcred import keys
    from vaxcred.errors import ChainError
    from vaxcred.trust import Environment, TrustedDsc, TrustMode, TrustStore, check_chain
    from vaxcred.x509util import parse_dsc

    start = datetime(2026, 1, 1, tzinfo=UTC)
    csca = keys.make_csca(now=start)
    dsc = keys.make_dsc(csca, now=start)
    trusted = TrustedDsc(info=parse_dsc(dsc.certificate.public_bytes(Encoding.DER)), country="VN", source="t")
    store = TrustStore.build(
        environment=Environment.TST,
        mode=TrustMode.SIGNED_LIST,
        dscs=[trusted],
        cscas=[("VN", csca.certificate)],
    )
    check_chain(trusted, store, start + timedelta(days=1))
    with pytest.raises(ChainError) as exc:
        check_chain(trusted, store, start + timedelta(days=3 * 365))
    assert exc.value.code == "chain.expired"
    with pytest.raises(ChainError) as exc:
        check_chain(trusted, store, start - timedelta(days=1))
    assert exc.value.code == "chain.not_yet_valid"
    check_chain(trusted, store, start + timedelta(days=2))
