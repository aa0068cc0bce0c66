"""Keys on a real PKCS#11 token (SoftHSM2): made inside, never exported, mechanisms named; passports, certificates
and CRLs signed there verify with cryptography and with vaxcred's own verifier."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pkcs11
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from pkcs11 import Attribute, ObjectClass

from tests import softhsm
from tests.interop.payloads import DAY, NOW, sample_dcc
from vaxcred import errors, keys
from vaxcred.crypto import Algorithm, ExternalSigner, SignatureScheme, raw_to_der, verify_signature
from vaxcred.issue import issue
from vaxcred.result import Status
from vaxcred.trust import Environment, TrustedDsc, TrustMode, TrustStore
from vaxcred.verify import verify
from vaxcred.x509util import parse_dsc

AFTER = NOW + DAY


def _raw_session(config: keys.TokenConfig) -> pkcs11.Session:
    """A second session without a PIN: the process is logged in already (PKCS#11 logins are per
    application), and this session must not log it out when it closes."""
    return pkcs11.lib(config.module).get_token(token_label=config.token_label).open()


def _store(dsc: keys.KeyPair, csca: keys.KeyPair) -> TrustStore:
    return TrustStore.build(
        environment=Environment.TST,
        mode=TrustMode.GATEWAY,
        dscs=[
            TrustedDsc(info=parse_dsc(dsc.certificate.public_bytes(Encoding.DER)), country="VN", source="t")
        ],
        cscas=[("VN", csca.certificate)],
        issued_at=NOW,  # retrieved at NOW: a store of unknown age is NEEDS_CHECK
    )


# --- custody: made on the token, never exported -----------------------------------------------------------


@pytest.mark.parametrize("key_type", ["ec", "rsa"])
def test_token_key_is_local_sensitive_and_never_extractable(
    token: keys.Pkcs11Token, softhsm_token: keys.TokenConfig, key_type: str
) -> None:
    """A generated key is LOCAL, SENSITIVE, ALWAYS_SENSITIVE, not EXTRACTABLE and NEVER_EXTRACTABLE."""
    token.generate(key_type, label=f"custody {key_type}")
    with _raw_session(softhsm_token) as session:
        private = session.get_key(object_class=ObjectClass.PRIVATE_KEY, label=f"custody {key_type}")
        assert private[Attribute.TOKEN] is True
        assert private[Attribute.LOCAL] is True
        assert private[Attribute.SENSITIVE] is True
        assert private[Attribute.ALWAYS_SENSITIVE] is True
        assert private[Attribute.EXTRACTABLE] is False
        assert private[Attribute.NEVER_EXTRACTABLE] is True


@pytest.mark.parametrize(
    ("key_type", "secret"), [("ec", Attribute.VALUE), ("rsa", Attribute.PRIVATE_EXPONENT)]
)
def test_token_private_key_cannot_be_exported(
    token: keys.Pkcs11Token, softhsm_token: keys.TokenConfig, key_type: str, secret: Attribute
) -> None:
    """Reading the secret value of a token key fails (CKR_ATTRIBUTE_SENSITIVE), and wrapping is refused."""
    token.generate(key_type, label=f"export {key_type}")
    with _raw_session(softhsm_token) as session:
        private = session.get_key(object_class=ObjectClass.PRIVATE_KEY, label=f"export {key_type}")
        with pytest.raises(pkcs11.exceptions.AttributeSensitive):
            private[secret]


def test_token_never_writes_key_files_for_a_token_chain(
    softhsm_token: keys.TokenConfig, tmp_path: Path
) -> None:
    """A token-backed chain writes certificates, token.json and the log, and no private key in any form."""
    chain = keys.KeyChainDir.init(tmp_path / "chain", b"", NOW - 30 * DAY, token=softhsm_token)
    with chain:
        chain.new_site(site_id="HN-001", site_name="Trạm y tế", now=NOW - 29 * DAY)
        files = [p for p in (tmp_path / "chain").rglob("*") if p.is_file()]
    assert not [p for p in files if p.suffix == ".key"]
    assert all(b"PRIVATE KEY" not in p.read_bytes() for p in files)
    assert (tmp_path / "chain" / "token.json").exists()


# --- mechanisms: named, never the library defaults (SHA-512) -----------------------------------------------


def test_token_ecdsa_is_sha256_raw_r_s(token: keys.Pkcs11Token) -> None:
    """ECDSA on the token hashes with SHA-256 (not python-pkcs11's ECDSA_SHA512 default) and returns 64-byte r‖s."""
    key = token.generate("ec", label="mechanism ec")
    signature = key.sign_with(b"message", SignatureScheme.ECDSA_SHA256)
    assert len(signature) == 64
    public_key = key.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    public_key.verify(raw_to_der(signature), b"message", ec.ECDSA(hashes.SHA256()))


def test_token_rsa_pss_is_sha256_mgf1_sha256_salt_32(token: keys.Pkcs11Token) -> None:
    """PS256 on the token verifies only as PSS with SHA-256, MGF1-SHA-256 and a 32-byte salt."""
    key = token.generate("rsa", label="mechanism pss")
    signature = key.sign_with(b"message", SignatureScheme.RSA_PSS_SHA256)
    public_key = key.public_key()
    assert isinstance(public_key, rsa.RSAPublicKey)
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
    public_key.verify(signature, b"message", pss, hashes.SHA256())
    verify_signature(public_key, int(Algorithm.PS256), b"message", signature)


def test_token_key_refuses_a_scheme_of_another_key_type(token: keys.Pkcs11Token) -> None:
    """An EC token key never signs RSA-PSS (the scheme follows the key type)."""
    key = token.generate("ec", label="mechanism mismatch")
    with pytest.raises(errors.KeyStoreError) as e:
        key.sign_with(b"message", SignatureScheme.RSA_PSS_SHA256)
    assert e.value.code == "keys.unsupported_key"


# --- certificates, passports, CRLs signed on the token -----------------------------------------------------


def test_token_csca_is_self_signed_by_its_token_key(token_csca: keys.KeyPair) -> None:
    """The CSCA certificate's signature (made on the token over the TBS) verifies with its own key."""
    cert = token_csca.certificate
    cert.verify_directly_issued_by(cert)
    assert token_csca.on_token


def test_token_dsc_is_issued_by_the_token_csca(token_dsc: keys.KeyPair, token_csca: keys.KeyPair) -> None:
    """A DSC for a token key, signed by the token-held CSCA, chains to it."""
    token_dsc.certificate.verify_directly_issued_by(token_csca.certificate)
    assert token_dsc.certificate.public_key() == token_dsc.private_key.public_key()


def test_token_rsa_ca_signs_with_sha256_rsa(token: keys.Pkcs11Token) -> None:
    """An RSA CA on the token signs certificates sha256WithRSAEncryption (PKCS#1 v1.5), verifiable by anyone."""
    csca = keys.make_csca(now=NOW - 60 * DAY, private_key=token.generate("rsa", label="rsa csca"))
    dsc = keys.make_dsc(csca, now=NOW - DAY)
    dsc.certificate.verify_directly_issued_by(csca.certificate)
    assert dsc.certificate.signature_hash_algorithm is not None
    assert dsc.certificate.signature_hash_algorithm.name == "sha256"


def test_token_signed_passport_verifies(token_dsc: keys.KeyPair, token_csca: keys.KeyPair) -> None:
    """A passport signed on the token (ES256 and PS256) verifies VALID through the chain to the token CSCA."""
    signer = token_dsc.signer()
    assert isinstance(signer, ExternalSigner)
    passport = issue(sample_dcc(), signer, now=NOW)
    result = verify(passport.hc1, _store(token_dsc, token_csca), now=AFTER)
    assert result.status is Status.VALID, result.failures


def test_token_signer_algorithm_follows_key_type(token_dsc: keys.KeyPair) -> None:
    """The signer's COSE algorithm is ES256 for a P-256 token key, PS256 for an RSA one."""
    expected = (
        Algorithm.ES256
        if isinstance(token_dsc.private_key.public_key(), ec.EllipticCurvePublicKey)
        else Algorithm.PS256
    )
    assert token_dsc.signer().algorithm is expected


def test_external_signer_refuses_a_certificate_of_another_key(
    token_dsc: keys.KeyPair, dsc: keys.KeyPair
) -> None:
    """A token key paired with another key's certificate is refused (keys.key_mismatch)."""
    assert isinstance(token_dsc.private_key, keys.TokenKey)
    with pytest.raises(errors.KeyStoreError) as e:
        ExternalSigner(token_dsc.private_key, dsc.certificate)
    assert e.value.code == "keys.key_mismatch"


def test_external_signer_repr_shows_no_key(token_dsc: keys.KeyPair) -> None:
    """``repr`` of a token signer shows the algorithm, kid and subject only."""
    text = repr(token_dsc.signer())
    assert text.startswith("ExternalSigner(algorithm=")
    assert token_dsc.kid.hex() in text


# --- opening the token ------------------------------------------------------------------------------------


def test_token_with_wrong_pin_raises_bad_pin(softhsm_token: keys.TokenConfig) -> None:
    """A wrong PIN is a typed error with a stable code, never a pkcs11 exception."""
    with pytest.raises(errors.KeyStoreError) as e:
        keys.Pkcs11Token.open(softhsm_token, b"0000-0000")
    assert e.value.code == "keys.bad_pin"


def test_unknown_token_label_raises_no_token(softhsm_token: keys.TokenConfig) -> None:
    """A label no token carries is keys.no_token."""
    config = keys.TokenConfig(module=softhsm_token.module, token_label="no such token")
    with pytest.raises(errors.KeyStoreError) as e:
        keys.Pkcs11Token.open(config, softhsm.PIN)
    assert e.value.code == "keys.no_token"


def test_missing_module_raises_device_error(tmp_path: Path) -> None:
    """A module path that does not load is keys.device."""
    config = keys.TokenConfig(module=str(tmp_path / "nothing.so"), token_label="x")
    with pytest.raises(errors.KeyStoreError) as e:
        keys.Pkcs11Token.open(config, softhsm.PIN)
    assert e.value.code == "keys.device"


def test_find_locates_a_key_by_its_public_key_in_a_new_session(
    token: keys.Pkcs11Token, softhsm_token: keys.TokenConfig, token_dsc: keys.KeyPair
) -> None:
    """A second session finds the key of a certificate by its public key, and it signs for that certificate."""
    with keys.Pkcs11Token.open(softhsm_token, softhsm.PIN) as other:
        key = other.find(token_dsc.private_key.public_key())
        signer = ExternalSigner(key, token_dsc.certificate)
        signature = signer.sign(b"data")
    cert_key = token_dsc.certificate.public_key()
    assert isinstance(cert_key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey)
    verify_signature(cert_key, int(signer.algorithm), b"data", signature)


def test_find_unknown_public_key_raises_not_on_token(token: keys.Pkcs11Token, dsc: keys.KeyPair) -> None:
    """A file key's public key is not on the token: keys.not_on_token."""
    public_key = dsc.private_key.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    with pytest.raises(errors.KeyStoreError) as e:
        token.find(public_key)
    assert e.value.code == "keys.not_on_token"


def test_token_config_round_trips_and_rejects_garbage(
    tmp_path: Path, softhsm_token: keys.TokenConfig
) -> None:
    """token.json holds module and label only; a damaged one is keys.bad_config."""
    softhsm_token.save(tmp_path)
    assert keys.TokenConfig.load(tmp_path) == softhsm_token
    assert b"pin" not in (tmp_path / "token.json").read_bytes().lower()
    (tmp_path / "token.json").write_text("[1]")
    with pytest.raises(errors.KeyStoreError) as e:
        keys.TokenConfig.load(tmp_path)
    assert e.value.code == "keys.bad_config"


def test_token_chain_signs_passports_and_site_crl(softhsm_token: keys.TokenConfig, tmp_path: Path) -> None:
    """A token chain's DSC signer is an ExternalSigner whose passports verify; its CRL is signed by the site CA."""
    start = NOW - 30 * DAY
    with keys.KeyChainDir.init(tmp_path / "chain", b"", start, token=softhsm_token) as chain:
        signer = chain.load_dsc_signer(now=NOW)
        assert isinstance(signer, ExternalSigner)
        passport = issue(sample_dcc(), signer, now=NOW)
        chain.new_site(site_id="HN-001", site_name="Trạm y tế Ba Đình", now=start)
        crl = chain.revoke_site("HN-001", now=NOW)
        site_ca = chain.load("site-ca")
        csca = chain.load("csca")
    trust = TrustStore.from_dsc_certificates([signer.certificate.public_bytes(Encoding.DER)])
    assert verify(passport.hc1, trust, now=AFTER).status is Status.VALID
    assert crl.is_signature_valid(site_ca.certificate.public_key())  # type: ignore[arg-type]
    assert len(list(crl)) == 1
    assert site_ca.on_token
    assert csca.on_token


def test_token_chain_kid_is_sha256_of_certificate(softhsm_token: keys.TokenConfig, tmp_path: Path) -> None:
    """The DSC file of a token chain is named by the kid of its certificate."""
    with keys.KeyChainDir.init(tmp_path / "chain", b"", NOW - DAY, token=softhsm_token) as chain:
        (cert,) = chain.dsc_certificates()
    kid = hashlib.sha256(cert.public_bytes(Encoding.DER)).digest()[:8]
    assert (tmp_path / "chain" / f"dsc-{kid.hex()}.pem").exists()
    assert isinstance(cert, x509.Certificate)


def test_find_finishes_the_public_key_search_before_the_private_key_lookup(
    token: keys.Pkcs11Token, token_dsc: keys.KeyPair
) -> None:
    """Regression: find() with an empty cache searched for the private key inside the public-key search
    (CKR_OPERATION_ACTIVE, keys.device); it must list the public keys first."""
    token._found.clear()
    key = token.find(token_dsc.private_key.public_key())
    assert key.public_key() == token_dsc.private_key.public_key()
