"""vaxcred.crypto: the ES256 / PS256 allowlist, raw r||s, PSS salt 32, Wycheproof, LocalSigner."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from cryptography.x509.oid import NameOID
from hypothesis import given
from hypothesis import strategies as st

from vaxcred.crypto import (
    Algorithm,
    LocalSigner,
    Signer,
    SigningKey,
    algorithm_for_key,
    der_to_raw,
    kid_for,
    raw_to_der,
    verify_signature,
)
from vaxcred.errors import KeyStoreError, SignatureError

WYCHEPROOF = Path(__file__).parent / "data" / "wycheproof"
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
DATA = b"\x84jSignature1Ce\xa0@Xpayload"
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


# --- Wycheproof ----------------------------------------------------------------------------------------


def _wycheproof_cases(name: str) -> list[Any]:
    suite = json.loads((WYCHEPROOF / name).read_text())
    return [
        pytest.param(group, test, id=f"tc{test['tcId']}-{test['result']}")
        for group in suite["testGroups"]
        for test in group["tests"]
    ]


def _expect(public_key: Any, alg: Algorithm, test: dict[str, Any]) -> None:
    msg, sig = bytes.fromhex(test["msg"]), bytes.fromhex(test["sig"])
    # "valid" must verify; "invalid" must be a SignatureError.  Neither file has "acceptable" cases; were
    # one added, vaxcred's policy is strict (COSE fixes the encoding exactly), so it must be rejected too.
    if test["result"] == "valid":
        verify_signature(public_key, alg, msg, sig)
    else:
        with pytest.raises(SignatureError):
            verify_signature(public_key, alg, msg, sig)


@pytest.mark.parametrize(("group", "test"), _wycheproof_cases("ecdsa_secp256r1_sha256_p1363_test.json"))
def test_wycheproof_ecdsa_p256_sha256_p1363(group: dict[str, Any], test: dict[str, Any]) -> None:
    """Every Wycheproof ECDSA P-256/SHA-256 P1363 (= COSE r||s) vector gets its expected result."""
    public_key = serialization.load_der_public_key(bytes.fromhex(group["publicKeyDer"]))
    _expect(public_key, Algorithm.ES256, test)


@pytest.mark.parametrize(("group", "test"), _wycheproof_cases("rsa_pss_2048_sha256_mgf1_32_test.json"))
def test_wycheproof_rsa_pss_2048_sha256_mgf1_salt32(group: dict[str, Any], test: dict[str, Any]) -> None:
    """Every Wycheproof RSASSA-PSS 2048 / SHA-256 / MGF1-SHA-256 / salt 32 vector gets its expected result."""
    assert (group["sha"], group["mgfSha"], group["sLen"]) == ("SHA-256", "SHA-256", 32)
    public_key = serialization.load_der_public_key(bytes.fromhex(group["publicKeyDer"]))
    _expect(public_key, Algorithm.PS256, test)


@pytest.mark.parametrize(
    ("name", "valid", "invalid"),
    [
        ("ecdsa_secp256r1_sha256_p1363_test.json", 173, 89),
        ("rsa_pss_2048_sha256_mgf1_32_test.json", 63, 45),
    ],
)
def test_wycheproof_vendored_files_have_expected_counts(name: str, valid: int, invalid: int) -> None:
    """The vendored Wycheproof files are complete (SECURITY.md §6 counts) and have no "acceptable" cases."""
    suite = json.loads((WYCHEPROOF / name).read_text())
    results = [t["result"] for g in suite["testGroups"] for t in g["tests"]]
    assert len(results) == suite["numberOfTests"] == valid + invalid
    assert (results.count("valid"), results.count("invalid")) == (valid, invalid)


# --- keys and certificates -----------------------------------------------------------------------------


def _self_signed(key: SigningKey) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test DSC")])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(NOW)
        .not_valid_after(NOW + timedelta(days=30))
        .sign(key, hashes.SHA256())
    )


@pytest.fixture(scope="session")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="session")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="session")
def ec_signer(ec_key: ec.EllipticCurvePrivateKey) -> LocalSigner:
    return LocalSigner(ec_key, _self_signed(ec_key))


@pytest.fixture(scope="session")
def rsa_signer(rsa_key: rsa.RSAPrivateKey) -> LocalSigner:
    return LocalSigner(rsa_key, _self_signed(rsa_key))


def _rsa_public_key(bits: int) -> rsa.RSAPublicKey:
    """An RSA public key of exactly ``bits`` bits (not a real key: only its size matters here)."""
    return rsa.RSAPublicNumbers(65537, (1 << (bits - 1)) | 1).public_key()


# --- algorithm_for_key ---------------------------------------------------------------------------------


def test_algorithm_for_p256_key_is_es256(ec_key: ec.EllipticCurvePrivateKey) -> None:
    """An EC P-256 key is bound to ES256."""
    assert algorithm_for_key(ec_key.public_key()) is Algorithm.ES256


@pytest.mark.parametrize("bits", [2048, 3072, 4096])
def test_algorithm_for_rsa_2048_to_4096_key_is_ps256(bits: int) -> None:
    """RSA moduli of 2048-4096 bits are bound to PS256."""
    assert algorithm_for_key(_rsa_public_key(bits)) is Algorithm.PS256


@pytest.mark.parametrize("bits", [1024, 2047, 4097, 8192])
def test_algorithm_for_rsa_key_outside_2048_to_4096_is_unsupported(bits: int) -> None:
    """RSA moduli below 2048 or above 4096 bits are refused."""
    with pytest.raises(SignatureError) as info:
        algorithm_for_key(_rsa_public_key(bits))
    assert info.value.code == "signature.unsupported_key"


@pytest.mark.parametrize("curve", [ec.SECP384R1(), ec.SECP521R1(), ec.SECP256K1()])
def test_algorithm_for_ec_key_on_other_curve_is_unsupported(curve: ec.EllipticCurve) -> None:
    """EC keys on curves other than P-256 (P-384, P-521, secp256k1) are refused."""
    with pytest.raises(SignatureError) as info:
        algorithm_for_key(ec.generate_private_key(curve).public_key())
    assert info.value.code == "signature.unsupported_key"


def test_algorithm_for_ed25519_key_is_unsupported() -> None:
    """Key types outside EC/RSA are refused."""
    with pytest.raises(SignatureError) as info:
        algorithm_for_key(ed25519.Ed25519PrivateKey.generate().public_key())
    assert info.value.code == "signature.unsupported_key"


# --- verify_signature ----------------------------------------------------------------------------------


def test_es256_sign_verify_round_trip(ec_signer: LocalSigner) -> None:
    """An ES256 signature from LocalSigner verifies with the certificate's key."""
    verify_signature(ec_signer.certificate.public_key(), Algorithm.ES256, DATA, ec_signer.sign(DATA))


def test_ps256_sign_verify_round_trip(rsa_signer: LocalSigner) -> None:
    """A PS256 signature from LocalSigner verifies with the certificate's key."""
    verify_signature(rsa_signer.certificate.public_key(), Algorithm.PS256, DATA, rsa_signer.sign(DATA))


def test_verify_accepts_plain_int_alg(ec_signer: LocalSigner) -> None:
    """The header alg may be a plain int (as decoded from CBOR)."""
    verify_signature(ec_signer.certificate.public_key(), -7, DATA, ec_signer.sign(DATA))


def test_es256_signature_is_64_bytes_raw_r_s(ec_signer: LocalSigner) -> None:
    """LocalSigner's ES256 output is raw r||s, 64 bytes, not DER."""
    signature = ec_signer.sign(DATA)
    assert len(signature) == 64
    assert der_to_raw(raw_to_der(signature)) == signature


def test_ps256_signature_is_modulus_length(rsa_signer: LocalSigner) -> None:
    """LocalSigner's PS256 output is as long as the modulus (256 bytes for RSA-2048)."""
    assert len(rsa_signer.sign(DATA)) == 256


def test_ps256_signature_uses_salt_32(rsa_signer: LocalSigner, rsa_key: rsa.RSAPrivateKey) -> None:
    """A PS256 signature verifies under PSS salt 32 exactly (checked with cryptography directly)."""
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
    rsa_key.public_key().verify(rsa_signer.sign(DATA), DATA, pss, hashes.SHA256())


@pytest.mark.parametrize("alg", [Algorithm.ES256, Algorithm.PS256])
def test_verify_rejects_tampered_data(
    alg: Algorithm, ec_signer: LocalSigner, rsa_signer: LocalSigner
) -> None:
    """A signature over other bytes fails with signature.invalid."""
    signer = ec_signer if alg is Algorithm.ES256 else rsa_signer
    with pytest.raises(SignatureError) as info:
        verify_signature(signer.certificate.public_key(), alg, DATA + b"x", signer.sign(DATA))
    assert info.value.code == "signature.invalid"


def test_verify_rejects_ps256_header_with_ec_key(ec_signer: LocalSigner) -> None:
    """alg PS256 with an EC key fails with signature.alg_mismatch (the key decides the algorithm)."""
    with pytest.raises(SignatureError) as info:
        verify_signature(ec_signer.certificate.public_key(), Algorithm.PS256, DATA, ec_signer.sign(DATA))
    assert info.value.code == "signature.alg_mismatch"


def test_verify_rejects_es256_header_with_rsa_key(rsa_signer: LocalSigner) -> None:
    """alg ES256 with an RSA key fails with signature.alg_mismatch."""
    with pytest.raises(SignatureError) as info:
        verify_signature(rsa_signer.certificate.public_key(), Algorithm.ES256, DATA, rsa_signer.sign(DATA))
    assert info.value.code == "signature.alg_mismatch"


@pytest.mark.parametrize("alg", [-35, -36, -8, -257, -38, 0, 1, True, None, "ES256", 1.5, b"\x26"])
def test_verify_rejects_alg_outside_allowlist(alg: Any, ec_signer: LocalSigner) -> None:
    """Any alg but -7 / -37 (ES384, EdDSA, RS256, PS384, text, bool, None...) is signature.unsupported_alg."""
    with pytest.raises(SignatureError) as info:
        verify_signature(ec_signer.certificate.public_key(), alg, DATA, ec_signer.sign(DATA))
    assert info.value.code == "signature.unsupported_alg"


def test_verify_rejects_rsa_1024_key() -> None:
    """A PS256 signature under an RSA-1024 key is refused before any math: signature.unsupported_key."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    sig = key.sign(DATA, padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32), hashes.SHA256())
    with pytest.raises(SignatureError) as info:
        verify_signature(key.public_key(), Algorithm.PS256, DATA, sig)
    assert info.value.code == "signature.unsupported_key"


def test_verify_rejects_p384_key() -> None:
    """An ES256-labelled signature under a P-384 key is refused: signature.unsupported_key."""
    key = ec.generate_private_key(ec.SECP384R1())
    sig = der_to_raw(key.sign(DATA, ec.ECDSA(hashes.SHA256())), 48)
    with pytest.raises(SignatureError) as info:
        verify_signature(key.public_key(), Algorithm.ES256, DATA, sig)
    assert info.value.code == "signature.unsupported_key"


@pytest.mark.parametrize("length", [0, 63, 65, 70, 72, 128])
def test_verify_rejects_es256_signature_not_64_bytes(length: int, ec_signer: LocalSigner) -> None:
    """ES256 signatures of any length but 64 (63, 65, DER-sized...) fail with signature.bad_length."""
    signature = (ec_signer.sign(DATA) * 3)[:length]
    with pytest.raises(SignatureError) as info:
        verify_signature(ec_signer.certificate.public_key(), Algorithm.ES256, DATA, signature)
    assert info.value.code == "signature.bad_length"


def test_verify_rejects_der_encoded_es256_signature(
    ec_key: ec.EllipticCurvePrivateKey, ec_signer: LocalSigner
) -> None:
    """A valid signature in DER form (not COSE r||s) is refused."""
    der = ec_key.sign(DATA, ec.ECDSA(hashes.SHA256()))
    with pytest.raises(SignatureError):
        verify_signature(ec_signer.certificate.public_key(), Algorithm.ES256, DATA, der)


@pytest.mark.parametrize("length", [0, 255, 257, 512])
def test_verify_rejects_ps256_signature_not_modulus_length(length: int, rsa_signer: LocalSigner) -> None:
    """PS256 signatures must be exactly the modulus length: signature.bad_length."""
    signature = (rsa_signer.sign(DATA) * 2)[:length]
    with pytest.raises(SignatureError) as info:
        verify_signature(rsa_signer.certificate.public_key(), Algorithm.PS256, DATA, signature)
    assert info.value.code == "signature.bad_length"


@pytest.mark.parametrize("salt", [0, 20, 64, padding.PSS.MAX_LENGTH])
def test_verify_rejects_pss_signature_with_other_salt_length(salt: int, rsa_key: rsa.RSAPrivateKey) -> None:
    """PSS signatures with a salt other than 32 fail: the verifier never uses PSS.AUTO."""
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=salt)
    sig = rsa_key.sign(DATA, pss, hashes.SHA256())
    with pytest.raises(SignatureError) as info:
        verify_signature(rsa_key.public_key(), Algorithm.PS256, DATA, sig)
    assert info.value.code == "signature.invalid"


def test_verify_rejects_pss_with_sha512_mgf(rsa_key: rsa.RSAPrivateKey) -> None:
    """PSS with MGF1-SHA-512 (other hash in the mask) fails."""
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA512()), salt_length=32)
    with pytest.raises(SignatureError):
        verify_signature(
            rsa_key.public_key(), Algorithm.PS256, DATA, rsa_key.sign(DATA, pss, hashes.SHA256())
        )


def test_verify_rejects_pkcs1v15_signature_as_ps256(rsa_key: rsa.RSAPrivateKey) -> None:
    """An RSASSA-PKCS1-v1_5 (RS256) signature does not pass as PS256."""
    sig = rsa_key.sign(DATA, padding.PKCS1v15(), hashes.SHA256())
    with pytest.raises(SignatureError) as info:
        verify_signature(rsa_key.public_key(), Algorithm.PS256, DATA, sig)
    assert info.value.code == "signature.invalid"


def test_verify_rejects_es256_over_sha512(ec_key: ec.EllipticCurvePrivateKey) -> None:
    """ "P-256 with SHA-512" (COSE WG fail case) does not verify as ES256."""
    sig = der_to_raw(ec_key.sign(DATA, ec.ECDSA(hashes.SHA512())))
    with pytest.raises(SignatureError):
        verify_signature(ec_key.public_key(), Algorithm.ES256, DATA, sig)


def test_verify_rejects_r_or_s_at_group_order(ec_signer: LocalSigner) -> None:
    """r = n (out of range) is rejected, not reduced mod n."""
    sig = ec_signer.sign(DATA)
    bad = P256_ORDER.to_bytes(32, "big") + sig[32:]
    with pytest.raises(SignatureError):
        verify_signature(ec_signer.certificate.public_key(), Algorithm.ES256, DATA, bad)


@given(signature=st.binary(min_size=64, max_size=64), data=st.binary(max_size=64))
def test_verify_random_es256_signature_raises_only_signature_error(signature: bytes, data: bytes) -> None:
    """Random 64-byte signatures never verify and never raise anything but SignatureError."""
    with pytest.raises(SignatureError):
        verify_signature(_FIXED_EC_KEY.public_key(), Algorithm.ES256, data, signature)


@given(signature=st.binary(min_size=256, max_size=256))
def test_verify_random_ps256_signature_raises_only_signature_error(signature: bytes) -> None:
    """Random modulus-length PS256 signatures (also ≥ n) raise only SignatureError."""
    with pytest.raises(SignatureError):
        verify_signature(_FIXED_RSA_PUBLIC_KEY, Algorithm.PS256, DATA, signature)


_FIXED_EC_KEY = ec.derive_private_key(0x1234567890ABCDEF, ec.SECP256R1())
_FIXED_RSA_PUBLIC_KEY = serialization.load_der_public_key(
    bytes.fromhex(
        json.loads((WYCHEPROOF / "rsa_pss_2048_sha256_mgf1_32_test.json").read_text())["testGroups"][0][
            "publicKeyDer"
        ]
    )
)


# --- DER <-> raw ---------------------------------------------------------------------------------------


@given(r=st.integers(0, 2**256 - 1), s=st.integers(0, 2**256 - 1))
def test_raw_der_round_trip(r: int, s: int) -> None:
    """raw r||s -> DER -> raw is the identity, and the DER holds the same r and s."""
    raw = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    der = raw_to_der(raw)
    assert decode_dss_signature(der) == (r, s)
    assert der_to_raw(der) == raw


@given(r=st.integers(1, 2**384 - 1), s=st.integers(1, 2**384 - 1))
def test_der_to_raw_with_size_48_pads_both_halves(r: int, s: int) -> None:
    """der_to_raw(size=48) gives two left-padded 48-byte halves (P-384 layout)."""
    raw = der_to_raw(encode_dss_signature(r, s), 48)
    assert raw == r.to_bytes(48, "big") + s.to_bytes(48, "big")


def test_der_to_raw_rejects_integer_wider_than_size() -> None:
    """An r that needs 33 bytes does not fit a 32-byte half: signature.bad_encoding."""
    with pytest.raises(SignatureError) as info:
        der_to_raw(encode_dss_signature(2**256, 1))
    assert info.value.code == "signature.bad_encoding"


@pytest.mark.parametrize(
    "der", [b"", b"\x30\x00", b"\x30\x06\x02\x01\x01\x02\x01", b"garbage", b"\x02\x01\x01"]
)
def test_der_to_raw_rejects_malformed_der(der: bytes) -> None:
    """Malformed DER raises SignatureError(signature.bad_encoding), never a ValueError."""
    with pytest.raises(SignatureError) as info:
        der_to_raw(der)
    assert info.value.code == "signature.bad_encoding"


@pytest.mark.parametrize("raw", [b"", b"\x01", bytes(63)])
def test_raw_to_der_rejects_odd_or_empty_input(raw: bytes) -> None:
    """raw_to_der needs two equal, non-empty halves."""
    with pytest.raises(SignatureError) as info:
        raw_to_der(raw)
    assert info.value.code == "signature.bad_length"


# --- kid, LocalSigner ----------------------------------------------------------------------------------


def test_kid_for_is_first_8_bytes_of_sha256() -> None:
    """kid = SHA-256(DER)[:8]."""
    assert kid_for(b"certificate") == hashlib.sha256(b"certificate").digest()[:8]


def test_local_signer_kid_is_kid_of_certificate_der(ec_signer: LocalSigner) -> None:
    """LocalSigner.kid is kid_for(its certificate's DER)."""
    assert ec_signer.kid == kid_for(ec_signer.certificate.public_bytes(serialization.Encoding.DER))


def test_local_signer_algorithm_follows_key_type(ec_signer: LocalSigner, rsa_signer: LocalSigner) -> None:
    """EC key -> ES256, RSA key -> PS256."""
    assert (ec_signer.algorithm, rsa_signer.algorithm) == (Algorithm.ES256, Algorithm.PS256)


def test_local_signer_satisfies_signer_protocol(ec_signer: LocalSigner) -> None:
    """LocalSigner is a runtime-checkable Signer."""
    assert isinstance(ec_signer, Signer)


def test_local_signer_rejects_certificate_of_another_key(ec_key: ec.EllipticCurvePrivateKey) -> None:
    """A certificate whose public key is not the private key's is refused: keys.key_mismatch."""
    other = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(KeyStoreError) as info:
        LocalSigner(ec_key, _self_signed(other))
    assert info.value.code == "keys.key_mismatch"


def test_local_signer_rejects_p384_key() -> None:
    """A P-384 private key cannot make a LocalSigner: keys.unsupported_key."""
    key = ec.generate_private_key(ec.SECP384R1())
    with pytest.raises(KeyStoreError) as info:
        LocalSigner(key, _self_signed(key))
    assert info.value.code == "keys.unsupported_key"


def test_local_signer_repr_hides_key_material(
    ec_key: ec.EllipticCurvePrivateKey, ec_signer: LocalSigner
) -> None:
    """repr(LocalSigner) shows algorithm and kid, never the private scalar."""
    text = repr(ec_signer)
    private_value = ec_key.private_numbers().private_value
    assert "ES256" in text
    assert ec_signer.kid.hex() in text
    assert format(private_value, "x") not in text
    assert str(private_value) not in text
    assert "PRIVATE" not in text.upper()
