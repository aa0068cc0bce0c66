"""The national trust list: COSE_Sign1 by the trust-list key, anchored in the CSCA, fresh, no rollback."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.trust.certs import (
    DAY,
    NOW,
    Issued,
    make_ca,
    make_leaf,
    make_trust_list_cert,
    new_key,
    store_of,
    trusted,
)
from vaxcred import keys
from vaxcred.codec import cbor, cose
from vaxcred.crypto import Signer, kid_for
from vaxcred.errors import TrustStoreError
from vaxcred.oids import SITE_RECORD_EKU
from vaxcred.trust import (
    Environment,
    TrustMode,
    TrustStore,
    check_chain,
    load_signed_trust_list,
    sign_trust_list,
)
from vaxcred.trust.signed import CONTENT_TYPE, X5CHAIN

ISSUED = NOW - DAY


@pytest.fixture(scope="module")
def store(csca: Issued, dsc: Issued) -> TrustStore:
    de_csca = make_ca("DE")
    return store_of(
        [trusted(dsc), trusted(make_leaf(de_csca, country="DE"), "DE")],
        [("VN", csca), ("DE", de_csca)],
        environment=Environment.PROD,
    )


@pytest.fixture(scope="module")
def signed(store: TrustStore, trust_list_cert: Issued) -> bytes:
    return sign_trust_list(store, signer=trust_list_cert.signer(), issued_at=ISSUED, sequence=5)


def _load(data: bytes, anchor: Issued, **kwargs: object) -> TrustStore:
    options: dict[str, object] = {"environment": Environment.PROD, "now": NOW, **kwargs}
    return load_signed_trust_list(data, anchor=anchor.cert, **options)  # type: ignore[arg-type]


def _code(data: bytes, anchor: Issued, **kwargs: object) -> str:
    with pytest.raises(TrustStoreError) as info:
        _load(data, anchor, **kwargs)
    return info.value.code


def _forge(
    store: TrustStore, signer: Signer, *, kid: bytes | None = None, issued_at: datetime = ISSUED
) -> bytes:
    """Sign a list exactly like sign_trust_list, but with any key (sign_trust_list refuses non-list keys)."""
    payload = cbor.dumps(
        {
            "environment": store.environment.value,
            "issued_at": int(issued_at.timestamp()),
            "sequence": 1,
            "cscas": [{"country": c, "der": x.public_bytes(Encoding.DER)} for c, x in store.all_cscas()],
            "dscs": [{"country": d.country, "der": d.info.der} for d in store.all_dscs()],
        }
    )
    der = signer.certificate.public_bytes(Encoding.DER)
    protected = cbor.dumps({1: int(signer.algorithm), 3: CONTENT_TYPE, 4: kid or kid_for(der), X5CHAIN: der})
    return cose.encode_sign1(protected, payload, signer.sign(cose.sig_structure_for(protected, payload)))


def test_round_trip(store: TrustStore, signed: bytes, csca: Issued, dsc: Issued) -> None:
    """sign -> load with the CSCA as anchor gives the same certificates, issue time and sequence."""
    loaded = _load(signed, csca)
    assert loaded.mode is TrustMode.SIGNED_LIST
    assert loaded.environment is Environment.PROD
    assert loaded.issued_at == ISSUED
    assert loaded.sequence == 5
    assert {(d.country, d.info.der) for d in loaded.all_dscs()} == {
        (d.country, d.info.der) for d in store.all_dscs()
    }
    assert set(loaded.all_cscas()) == set(store.all_cscas())
    (vn_dsc,) = loaded.candidates(kid_for(dsc.der))
    assert vn_dsc.source == "signed_list"
    check_chain(vn_dsc, loaded, NOW)


def test_wire_format(signed: bytes, trust_list_cert: Issued) -> None:
    """Tag 18, everything in the protected header, ES256 from the key, kid of the trust-list certificate."""
    assert signed[:1] == b"\xd2"
    msg = cose.decode_sign1(signed)
    assert msg.unprotected == {}
    assert msg.alg == -7
    assert msg.kid == kid_for(trust_list_cert.der)
    assert msg.protected[3] == CONTENT_TYPE
    assert msg.protected[X5CHAIN] == trust_list_cert.der
    payload = cbor.loads(msg.payload)
    assert isinstance(payload, dict)
    assert set(payload) == {"environment", "issued_at", "sequence", "cscas", "dscs"}
    assert cbor.dumps(payload) == msg.payload  # canonical


def test_payload_deterministic(store: TrustStore, trust_list_cert: Issued) -> None:
    """The same store signs to the same payload (only the ECDSA signature differs)."""
    one, two = (
        cose.decode_sign1(
            sign_trust_list(store, signer=trust_list_cert.signer(), issued_at=ISSUED, sequence=5)
        )
        for _ in range(2)
    )
    assert one.payload == two.payload
    assert one.protected_bytes == two.protected_bytes


def test_pinned_trust_list_certificate_as_anchor(signed: bytes, trust_list_cert: Issued) -> None:
    """The anchor may be the trust-list certificate itself."""
    assert _load(signed, trust_list_cert).sequence == 5


def test_keys_module_signer(
    keys_chain: tuple[keys.KeyPair, keys.KeyPair, keys.KeyPair], store: TrustStore
) -> None:
    """The trust-list signer vaxcred.keys makes signs lists its CSCA anchors."""
    csca, _, signer = keys_chain
    data = sign_trust_list(store, signer=signer.signer(), issued_at=ISSUED, sequence=1)
    loaded = load_signed_trust_list(data, anchor=csca.certificate, environment=Environment.PROD, now=NOW)
    assert loaded.sequence == 1


def test_rsa_signer_uses_ps256(store: TrustStore, csca: Issued) -> None:
    """An RSA trust-list key signs PS256."""
    rsa_signer = make_trust_list_cert(csca, key=new_key("rsa", 2048))
    data = sign_trust_list(store, signer=rsa_signer.signer(), issued_at=ISSUED, sequence=1)
    assert cose.decode_sign1(data).alg == -37
    assert _load(data, csca).sequence == 1


@pytest.mark.parametrize("position", [0, 5, 40, 200, -300, -70, -1])
def test_tampered_byte_refused(signed: bytes, csca: Issued, position: int) -> None:
    """One changed byte anywhere (header, certificate, payload, signature): TrustStoreError."""
    tampered = bytearray(signed)
    tampered[position] ^= 0x01
    with pytest.raises(TrustStoreError):
        _load(bytes(tampered), csca)


def test_tampered_payload_is_a_bad_signature(signed: bytes, csca: Issued) -> None:
    """A flipped bit inside the payload fails the signature (trust.bad_signature)."""
    msg = cose.decode_sign1(signed)
    payload = bytearray(msg.payload)
    payload[-5] ^= 0x01
    forged = cose.encode_sign1(msg.protected_bytes, bytes(payload), msg.signature)
    assert _code(forged, csca) == "trust.bad_signature"


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_any_bit_flip_refused(signed: bytes, csca: Issued, data: st.DataObject) -> None:
    """Flipping any bit never yields a store, and only TrustStoreError escapes."""
    position = data.draw(st.integers(0, len(signed) - 1))
    bit = data.draw(st.integers(0, 7))
    tampered = bytearray(signed)
    tampered[position] ^= 1 << bit
    with pytest.raises(TrustStoreError):
        _load(bytes(tampered), csca)


def test_wrong_environment(signed: bytes, csca: Issued) -> None:
    """A PROD list loaded by a TST (or ACC) verifier, and vice versa, fails trust.wrong_environment."""
    assert _code(signed, csca, environment=Environment.TST) == "trust.wrong_environment"
    assert _code(signed, csca, environment=Environment.ACC) == "trust.wrong_environment"


def test_rollback_refused(signed: bytes, csca: Issued) -> None:
    """A list older than the last accepted sequence fails trust.rollback; the same sequence loads."""
    assert _code(signed, csca, min_sequence=6) == "trust.rollback"
    assert _load(signed, csca, min_sequence=5).sequence == 5


def test_signed_by_dsc_refused(store: TrustStore, csca: Issued, dsc: Issued) -> None:
    """A DSC of the same CSCA signing a trust list fails trust.wrong_purpose."""
    assert _code(_forge(store, dsc.signer()), csca) == "trust.wrong_purpose"


def test_signed_by_csca_refused(store: TrustStore, csca: Issued) -> None:
    """Even the CSCA key cannot sign a trust list directly (no TRUST_LIST_EKU)."""
    assert _code(_forge(store, csca.signer()), csca) == "trust.wrong_purpose"


def test_signed_by_site_certificate_refused(store: TrustStore, csca: Issued) -> None:
    """A vaccination-site certificate (own root) is not anchored in the CSCA; with its root as anchor
    it still lacks the trust-list purpose."""
    site_ca = make_ca("VN", cn="Vaccination site CA VN")
    site = make_leaf(site_ca, cn="site-001", eku=(SITE_RECORD_EKU,))
    forged = _forge(store, site.signer())
    assert _code(forged, csca) == "trust.untrusted_signer"
    assert _code(forged, site_ca) == "trust.wrong_purpose"


def test_sign_refuses_non_trust_list_key(store: TrustStore, dsc: Issued) -> None:
    """sign_trust_list itself refuses a DSC signer."""
    with pytest.raises(TrustStoreError) as info:
        sign_trust_list(store, signer=dsc.signer(), issued_at=ISSUED, sequence=1)
    assert info.value.code == "trust.wrong_purpose"


def test_trust_list_from_another_csca_refused(store: TrustStore, csca: Issued) -> None:
    """A trust-list certificate issued by another CSCA (same name, other key) fails trust.untrusted_signer."""
    other = make_trust_list_cert(make_ca("VN"))
    data = sign_trust_list(store, signer=other.signer(), issued_at=ISSUED, sequence=9)
    assert _code(data, csca) == "trust.untrusted_signer"


def test_expired_trust_list_certificate_refused(store: TrustStore, csca: Issued) -> None:
    """A trust-list certificate expired at now fails trust.untrusted_signer (shell model)."""
    old = make_trust_list_cert(csca, not_before=NOW - 100 * DAY, not_after=NOW - 2 * DAY)
    data = sign_trust_list(store, signer=old.signer(), issued_at=NOW - 3 * DAY, sequence=1)
    assert _code(data, csca) == "trust.untrusted_signer"


def test_kid_mismatch(store: TrustStore, csca: Issued, trust_list_cert: Issued) -> None:
    """A kid that is not the carried certificate's fails trust.kid_mismatch."""
    assert _code(_forge(store, trust_list_cert.signer(), kid=b"\x00" * 8), csca) == "trust.kid_mismatch"


def test_issued_in_future_refused(store: TrustStore, csca: Issued, trust_list_cert: Issued) -> None:
    """issued_at after now fails trust.issued_in_future."""
    data = sign_trust_list(store, signer=trust_list_cert.signer(), issued_at=NOW + DAY, sequence=1)
    assert _code(data, csca) == "trust.issued_in_future"


def test_stale_list_loads_but_is_not_fresh(signed: bytes, csca: Issued) -> None:
    """Older than max_age: loaded, yet is_fresh is false (the verifier answers NEEDS_CHECK)."""
    loaded = _load(signed, csca, max_age=timedelta(hours=12))
    assert not loaded.is_fresh(NOW)
    assert loaded.stale_after == ISSUED + timedelta(hours=12)
    assert _load(signed, csca, max_age=2 * DAY).is_fresh(NOW)


def test_hc1_style_cose_is_not_a_trust_list(csca: Issued, dsc: Issued) -> None:
    """A COSE_Sign1 without our content type (e.g. a passport) fails trust.wrong_purpose."""
    signer = dsc.signer()
    protected = cose.encode_protected(int(signer.algorithm), signer.kid)
    data = cose.encode_sign1(protected, b"\xa0", signer.sign(cose.sig_structure_for(protected, b"\xa0")))
    assert _code(data, csca) == "trust.wrong_purpose"
    assert _code(b"\xd2\x84\x40\xa0\x40\x40", csca) == "trust.wrong_purpose"  # empty headers


@pytest.mark.parametrize("data", [b"", b"\x00", b"\xd2\x84", b"hello", b"\xd2\x84\x40\xa0\x40"])
def test_not_cose_is_malformed(data: bytes, csca: Issued) -> None:
    """Bytes that are not a COSE_Sign1 fail trust.malformed."""
    assert _code(data, csca) == "trust.malformed"


def test_unprotected_header_refused(signed: bytes, csca: Issued) -> None:
    """Anything in the unprotected header fails trust.malformed (everything must be signed)."""
    msg = cose.decode_sign1(signed)
    data = cbor.dumps(cbor.Tagged(18, [msg.protected_bytes, {4: b"x"}, msg.payload, msg.signature]))
    assert _code(data, csca) == "trust.malformed"


def test_naive_now_is_a_caller_error(signed: bytes, csca: Issued) -> None:
    """A naive now raises ValueError."""
    with pytest.raises(ValueError):
        load_signed_trust_list(
            signed, anchor=csca.cert, environment=Environment.PROD, now=datetime(2025, 6, 1)
        )


def test_carried_certificate_with_a_negative_serial_is_refused(signed: bytes, csca: Issued) -> None:
    """One flipped bit that makes the carried (x5chain) certificate's serial number negative is a TrustStoreError,
    whatever the warning filters (cryptography only warns about such a serial; under ``-W error``, as here, the
    warning itself escaped: found by test_any_bit_flip_refused)."""
    chain = cose.decode_sign1(signed).protected[33]
    serial = x509.load_der_x509_certificate(chain).serial_number
    raw = serial.to_bytes(serial.bit_length() // 8 + 1, "big")  # DER: a leading zero when the top bit is set
    at = signed.index(bytes([0x02, len(raw)]) + raw) + 2
    tampered = bytearray(signed)
    tampered[at] ^= 0x80  # the sign bit: now negative
    with pytest.raises(TrustStoreError) as raised:
        _load(bytes(tampered), csca)
    assert raised.value.code == "trust.malformed"
