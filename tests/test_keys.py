"""vaxcred.keys: CSCA / DSC / trust-list / site certificates, encrypted PKCS#8 files, the key-chain folder."""

from __future__ import annotations

import functools
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

import vaxcred.keys.chain_dir as keys_chain_dir
import vaxcred.keys.files as keys_files
from vaxcred.crypto import Algorithm, LocalSigner, verify_signature
from vaxcred.errors import KeyStoreError
from vaxcred.keys import (
    KeyChainDir,
    KeyPair,
    load_certificate,
    load_private_key,
    make_csca,
    make_dsc,
    make_site_ca,
    make_site_certificate,
    make_trust_list_signer,
    passphrase_from_env,
    save_certificate,
    save_private_key,
)
from vaxcred.oids import (
    DCC_EKU_OIDS,
    EKU_TEST,
    EKU_VACCINATION,
    SITE_RECORD_EKU,
    TRUST_LIST_EKU,
)
from vaxcred.pkcs8 import encrypt_pkcs8
from vaxcred.x509util import eku_allows, parse_dsc

from .test_pkcs8 import read_encrypted_pkcs8

NOW = datetime(2026, 3, 1, 9, 30, 15, 123456, tzinfo=UTC)
NOW_S = NOW.replace(microsecond=0)
PASSPHRASE = b"correct horse battery staple"
FAST = 1_000  # PBKDF2 iterations for key-file tests that do not test the default (600,000)


@pytest.fixture(scope="session")
def csca() -> KeyPair:
    return make_csca(now=NOW)


@pytest.fixture(scope="session")
def dsc(csca: KeyPair) -> KeyPair:
    return make_dsc(csca, now=NOW)


@pytest.fixture(scope="session")
def rsa_csca() -> KeyPair:
    return make_csca(now=NOW, key="rsa")


@pytest.fixture(scope="session")
def rsa_dsc(rsa_csca: KeyPair) -> KeyPair:
    return make_dsc(rsa_csca, now=NOW, key="rsa")


@pytest.fixture(scope="session")
def site_ca() -> KeyPair:
    return make_site_ca(now=NOW)


@pytest.fixture(scope="session")
def site(site_ca: KeyPair) -> KeyPair:
    return make_site_certificate(site_ca, site_id="HN-0042", site_name="Trạm Y tế Phường Hàng Bạc", now=NOW)


def _ext(cert: x509.Certificate, kind: type[x509.ExtensionType]) -> x509.Extension[x509.ExtensionType]:
    return cert.extensions.get_extension_for_class(kind)


def _der(pair: KeyPair) -> bytes:
    return pair.certificate.public_bytes(serialization.Encoding.DER)


# --- CSCA ----------------------------------------------------------------------------------------------


def test_csca_is_self_signed_ca_with_pathlen_0(csca: KeyPair) -> None:
    """The CSCA is self-signed, basicConstraints CA (critical) with pathlen 0."""
    cert = csca.certificate
    assert cert.issuer == cert.subject
    cert.verify_directly_issued_by(cert)
    constraints = _ext(cert, x509.BasicConstraints)
    assert constraints.critical
    assert constraints.value == x509.BasicConstraints(ca=True, path_length=0)


def test_csca_key_usage_is_cert_sign_and_crl_sign(csca: KeyPair) -> None:
    """The CSCA may sign certificates and CRLs, nothing else."""
    usage = _ext(csca.certificate, x509.KeyUsage).value
    assert isinstance(usage, x509.KeyUsage)
    assert (usage.key_cert_sign, usage.crl_sign, usage.digital_signature) == (True, True, False)


def test_csca_subject_carries_country_and_ministry(csca: KeyPair) -> None:
    """CSCA subject: C=VN, O=Ministry of Health."""
    subject = csca.certificate.subject
    assert subject.get_attributes_for_oid(NameOID.COUNTRY_NAME)[0].value == "VN"
    assert subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "Ministry of Health"


def test_csca_is_valid_four_years_from_now(csca: KeyPair) -> None:
    """CSCA validity: notBefore = now (seconds), 4 × 365 days."""
    assert csca.certificate.not_valid_before_utc == NOW_S
    assert csca.certificate.not_valid_after_utc - NOW_S == timedelta(days=4 * 365)


def test_csca_has_subject_key_identifier(csca: KeyPair) -> None:
    """The CSCA carries an SKI derived from its key."""
    ski = _ext(csca.certificate, x509.SubjectKeyIdentifier).value
    assert ski == x509.SubjectKeyIdentifier.from_public_key(csca.private_key.public_key())


def test_make_csca_rejects_naive_now() -> None:
    """A naive datetime is a caller mistake."""
    with pytest.raises(ValueError):
        make_csca(now=datetime(2026, 1, 1))


def test_make_csca_rejects_non_iso_country() -> None:
    """Country must be an ISO 3166-1 alpha-2 code."""
    with pytest.raises(ValueError):
        make_csca(now=NOW, country="Viet Nam")


# --- DSC -----------------------------------------------------------------------------------------------


def test_dsc_is_signed_by_csca_and_not_a_ca(dsc: KeyPair, csca: KeyPair) -> None:
    """The DSC is issued by the CSCA and is not a CA."""
    dsc.certificate.verify_directly_issued_by(csca.certificate)
    assert _ext(dsc.certificate, x509.BasicConstraints).value == x509.BasicConstraints(
        ca=False, path_length=None
    )


def test_dsc_aki_is_csca_ski(dsc: KeyPair, csca: KeyPair) -> None:
    """AKI of the DSC = SKI of the CSCA."""
    info = parse_dsc(_der(dsc))
    assert info.aki == parse_dsc(_der(csca)).ski
    assert info.ski is not None


def test_dsc_carries_first_family_vaccination_eku_only(dsc: KeyPair) -> None:
    """A default DSC carries exactly the first-family vaccination EKU, so it signs v only."""
    info = parse_dsc(_der(dsc))
    assert info.eku == frozenset({EKU_VACCINATION.dotted_string})
    assert [eku_allows(info, t) for t in ("v", "t", "r")] == [True, False, False]


def test_dsc_eku_lists_each_requested_type(csca: KeyPair) -> None:
    """types=("t", "v") gives both first-family OIDs."""
    info = parse_dsc(_der(make_dsc(csca, now=NOW, types=("t", "v"))))
    assert info.eku == frozenset({EKU_TEST.dotted_string, EKU_VACCINATION.dotted_string})


@pytest.mark.parametrize("types", [(), ("x",), ("v", "v")])
def test_make_dsc_rejects_bad_types(csca: KeyPair, types: tuple[str, ...]) -> None:
    """types must be distinct members of v/t/r."""
    with pytest.raises(ValueError):
        make_dsc(csca, now=NOW, types=types)


def test_make_dsc_rejects_plain_string_types(csca: KeyPair) -> None:
    """types="vt" is a caller mistake (a string is not a tuple of types): TypeError."""
    with pytest.raises(TypeError):
        make_dsc(csca, now=NOW, types="vt")


def test_dsc_key_usage_is_digital_signature(dsc: KeyPair) -> None:
    """The DSC keyUsage is digitalSignature only (critical)."""
    usage = _ext(dsc.certificate, x509.KeyUsage)
    assert usage.critical
    assert isinstance(usage.value, x509.KeyUsage)
    assert usage.value.digital_signature
    assert not usage.value.key_cert_sign


def test_dsc_country_is_csca_country(csca: KeyPair, dsc: KeyPair) -> None:
    """The DSC subject C equals the CSCA's."""
    assert parse_dsc(_der(dsc)).country == "VN"


def test_dsc_is_valid_two_years_from_now(dsc: KeyPair) -> None:
    """DSC validity: notBefore = now (seconds), 2 × 365 days."""
    info = parse_dsc(_der(dsc))
    assert (info.not_before, info.not_after - info.not_before) == (NOW_S, timedelta(days=2 * 365))


def test_dsc_private_key_usage_period_is_six_months(dsc: KeyPair) -> None:
    """privateKeyUsagePeriod runs from notBefore for 6 calendar months."""
    assert parse_dsc(_der(dsc)).pkup == (NOW_S, NOW_S.replace(month=9))


def test_dsc_private_key_usage_period_clamps_day_to_month_end(csca: KeyPair) -> None:
    """From 31 August, 6 months later is 28 February (day clamped)."""
    start = datetime(2026, 8, 31, 12, 0, tzinfo=UTC)
    info = parse_dsc(_der(make_dsc(csca, now=start)))
    assert info.pkup == (start, datetime(2027, 2, 28, 12, 0, tzinfo=UTC))


def test_dsc_pkup_extension_is_non_critical_2_5_29_16(dsc: KeyPair) -> None:
    """privateKeyUsagePeriod is present as OID 2.5.29.16, non-critical."""
    ext = dsc.certificate.extensions.get_extension_for_oid(x509.ObjectIdentifier("2.5.29.16"))
    assert not ext.critical


def test_dsc_not_after_never_passes_csca_not_after(csca: KeyPair) -> None:
    """A DSC issued near the end of the CSCA's life ends with the CSCA."""
    late = csca.certificate.not_valid_after_utc - timedelta(days=100)
    info = parse_dsc(_der(make_dsc(csca, now=late)))
    assert info.not_after == csca.certificate.not_valid_after_utc
    assert info.pkup is not None
    assert info.pkup[1] == csca.certificate.not_valid_after_utc


def test_make_dsc_refuses_when_csca_not_valid(csca: KeyPair) -> None:
    """No DSC before the CSCA's notBefore or after its notAfter."""
    with pytest.raises(ValueError):
        make_dsc(csca, now=NOW - timedelta(days=1))
    with pytest.raises(ValueError):
        make_dsc(csca, now=csca.certificate.not_valid_after_utc + timedelta(seconds=1))


def test_rsa_dsc_is_rsa_2048_and_signs_ps256(rsa_dsc: KeyPair) -> None:
    """key="rsa" gives an RSA-2048 DSC whose signer is PS256 and verifies."""
    assert isinstance(rsa_dsc.private_key, rsa.RSAPrivateKey)
    assert rsa_dsc.private_key.key_size == 2048
    signer = rsa_dsc.signer()
    assert signer.algorithm is Algorithm.PS256
    verify_signature(rsa_dsc.certificate.public_key(), Algorithm.PS256, b"data", signer.sign(b"data"))


def test_ec_dsc_signer_is_es256_and_verifies(dsc: KeyPair) -> None:
    """The default DSC is EC P-256; its signer makes ES256 signatures that verify."""
    signer = dsc.signer()
    assert signer.algorithm is Algorithm.ES256
    assert signer.kid == dsc.kid
    verify_signature(dsc.certificate.public_key(), Algorithm.ES256, b"data", signer.sign(b"data"))


def test_keypair_repr_hides_private_key(dsc: KeyPair) -> None:
    """repr(KeyPair) shows subject and kid, never the private scalar."""
    assert isinstance(dsc.private_key, ec.EllipticCurvePrivateKey)
    private_value = dsc.private_key.private_numbers().private_value
    text = repr(dsc)
    assert dsc.kid.hex() in text
    assert format(private_value, "x") not in text
    assert str(private_value) not in text


# --- trust-list signer and site certificates -----------------------------------------------------------


def test_trust_list_signer_has_trust_list_eku_only(csca: KeyPair) -> None:
    """The trust-list signer is under the CSCA with EKU TRUST_LIST_EKU only: no passport type."""
    signer = make_trust_list_signer(csca, now=NOW)
    signer.certificate.verify_directly_issued_by(csca.certificate)
    info = parse_dsc(_der(signer))
    assert info.eku == frozenset({TRUST_LIST_EKU.dotted_string})
    assert not any(eku_allows(info, t) for t in ("v", "t", "r"))
    assert info.not_after - info.not_before == timedelta(days=2 * 365)


def test_site_ca_is_a_separate_root(site_ca: KeyPair, csca: KeyPair) -> None:
    """The site CA is self-signed and shares neither key nor name with the CSCA."""
    site_ca.certificate.verify_directly_issued_by(site_ca.certificate)
    assert site_ca.certificate.subject != csca.certificate.subject
    assert parse_dsc(_der(site_ca)).ski != parse_dsc(_der(csca)).ski
    assert _ext(site_ca.certificate, x509.BasicConstraints).value.ca  # type: ignore[attr-defined]


def test_site_certificate_is_issued_by_site_ca_not_csca(
    site: KeyPair, site_ca: KeyPair, csca: KeyPair
) -> None:
    """A site certificate chains to the site CA only, never to the published CSCA."""
    site.certificate.verify_directly_issued_by(site_ca.certificate)
    with pytest.raises(ValueError):  # issuer name differs: not issued by the CSCA
        site.certificate.verify_directly_issued_by(csca.certificate)
    assert parse_dsc(_der(site)).aki == parse_dsc(_der(site_ca)).ski


def test_site_certificate_has_site_record_eku_and_no_dcc_eku(site: KeyPair) -> None:
    """The site EKU is SITE_RECORD_EKU only: no DCC OID, so it can never pass key_usage for a passport."""
    info = parse_dsc(_der(site))
    assert info.eku == frozenset({SITE_RECORD_EKU.dotted_string})
    assert not info.eku & DCC_EKU_OIDS
    assert not any(eku_allows(info, t) for t in ("v", "t", "r"))


def test_site_certificate_names_the_site(site: KeyPair) -> None:
    """Site subject: CN = site id, O = site name (UTF-8), C = country; valid one year."""
    subject = site.certificate.subject
    assert subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "HN-0042"
    assert subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "Trạm Y tế Phường Hàng Bạc"
    info = parse_dsc(_der(site))
    assert info.not_after - info.not_before == timedelta(days=365)


@pytest.mark.parametrize("site_id", ["", "../etc", "a/b", "x" * 65, "-lead"])
def test_make_site_certificate_rejects_unsafe_site_id(site_ca: KeyPair, site_id: str) -> None:
    """Site ids are short path-safe tokens (they become file names)."""
    with pytest.raises(ValueError):
        make_site_certificate(site_ca, site_id=site_id, site_name="x", now=NOW)


def test_no_certificate_in_the_chain_lacks_an_eku(csca: KeyPair, dsc: KeyPair, site: KeyPair) -> None:
    """Every leaf vaxcred makes carries an EKU (an absent EKU would permit every payload type)."""
    for pair in (dsc, site, make_trust_list_signer(csca, now=NOW)):
        assert parse_dsc(_der(pair)).eku


def test_server_auth_oid_is_not_used(dsc: KeyPair) -> None:
    """vaxcred DSCs never carry web PKI purposes."""
    eku = _ext(dsc.certificate, x509.ExtendedKeyUsage).value
    assert isinstance(eku, x509.ExtendedKeyUsage)
    assert ExtendedKeyUsageOID.SERVER_AUTH not in list(eku)


# --- key files -----------------------------------------------------------------------------------------


def test_private_key_round_trips_through_encrypted_pkcs8(tmp_path: Path, dsc: KeyPair) -> None:
    """save_private_key + load_private_key give back the same key; by default PBKDF2 runs ≥ 600,000 times."""
    path = tmp_path / "dsc.key"
    save_private_key(path, dsc.private_key, PASSPHRASE)
    info = read_encrypted_pkcs8(path.read_bytes())
    assert info.iterations >= 600_000
    assert (info.scheme, info.kdf, info.prf, info.cipher) == (
        "1.2.840.113549.1.5.13",  # PBES2
        "1.2.840.113549.1.5.12",  # PBKDF2
        "1.2.840.113549.2.9",  # hmacWithSHA256
        "2.16.840.1.101.3.4.1.42",  # aes256-CBC
    )
    loaded = load_private_key(path, PASSPHRASE)
    assert isinstance(loaded, ec.EllipticCurvePrivateKey)
    assert isinstance(dsc.private_key, ec.EllipticCurvePrivateKey)
    assert loaded.private_numbers() == dsc.private_key.private_numbers()


def test_rsa_private_key_round_trips_through_encrypted_pkcs8(tmp_path: Path, rsa_dsc: KeyPair) -> None:
    """RSA keys round-trip too."""
    path = tmp_path / "rsa.key"
    save_private_key(path, rsa_dsc.private_key, PASSPHRASE, iterations=FAST)
    loaded = load_private_key(path, PASSPHRASE)
    assert isinstance(loaded, rsa.RSAPrivateKey)
    assert isinstance(rsa_dsc.private_key, rsa.RSAPrivateKey)
    assert loaded.private_numbers() == rsa_dsc.private_key.private_numbers()


def test_saved_key_file_has_mode_0600(tmp_path: Path, dsc: KeyPair) -> None:
    """Key files are created owner read/write only."""
    path = tmp_path / "dsc.key"
    save_private_key(path, dsc.private_key, PASSPHRASE, iterations=FAST)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_saved_key_file_is_encrypted_pkcs8_only(tmp_path: Path, dsc: KeyPair) -> None:
    """The file holds one ENCRYPTED PRIVATE KEY block and no clear-text key in any encoding."""
    path = tmp_path / "dsc.key"
    save_private_key(path, dsc.private_key, PASSPHRASE, iterations=FAST)
    data = path.read_bytes()
    assert data.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert data.count(b"PRIVATE KEY-----") == 2
    assert b"BEGIN PRIVATE KEY" not in data
    assert b"BEGIN EC PRIVATE KEY" not in data
    assert isinstance(dsc.private_key, ec.EllipticCurvePrivateKey)
    scalar = dsc.private_key.private_numbers().private_value.to_bytes(32, "big")
    clear_der = dsc.private_key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    assert scalar not in data
    assert clear_der[-40:] not in data
    assert PASSPHRASE not in data


def test_load_private_key_with_wrong_passphrase_raises_bad_passphrase(tmp_path: Path, dsc: KeyPair) -> None:
    """A wrong passphrase is KeyStoreError(keys.bad_passphrase)."""
    path = tmp_path / "dsc.key"
    save_private_key(path, dsc.private_key, PASSPHRASE, iterations=FAST)
    with pytest.raises(KeyStoreError) as info:
        load_private_key(path, b"wrong passphrase")
    assert info.value.code == "keys.bad_passphrase"


def test_load_private_key_refuses_garbage(tmp_path: Path) -> None:
    """A file that is not a PEM key is KeyStoreError(keys.bad_key)."""
    path = tmp_path / "garbage.key"
    path.write_bytes(b"\x00\x01 not a key")
    with pytest.raises(KeyStoreError) as info:
        load_private_key(path, PASSPHRASE)
    assert info.value.code == "keys.bad_key"


def test_load_private_key_refuses_unencrypted_key(tmp_path: Path, dsc: KeyPair) -> None:
    """An unencrypted PKCS#8 key file is refused (keys.unencrypted), never loaded."""
    path = tmp_path / "clear.key"
    path.write_bytes(
        dsc.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    with pytest.raises(KeyStoreError) as info:
        load_private_key(path, PASSPHRASE)
    assert info.value.code == "keys.unencrypted"


def test_load_private_key_missing_file_raises_keystore_error(tmp_path: Path) -> None:
    """A missing key file is KeyStoreError(keys.io)."""
    with pytest.raises(KeyStoreError) as info:
        load_private_key(tmp_path / "absent.key", PASSPHRASE)
    assert info.value.code == "keys.io"


def test_save_private_key_refuses_empty_passphrase(tmp_path: Path, dsc: KeyPair) -> None:
    """An empty passphrase would mean a clear-text key: ValueError, no file written."""
    path = tmp_path / "dsc.key"
    with pytest.raises(ValueError):
        save_private_key(path, dsc.private_key, b"", iterations=FAST)
    assert not path.exists()


def test_save_private_key_refuses_to_overwrite(tmp_path: Path, dsc: KeyPair) -> None:
    """An existing key file is never overwritten (keys.exists)."""
    path = tmp_path / "dsc.key"
    path.write_bytes(b"precious")
    with pytest.raises(KeyStoreError) as info:
        save_private_key(path, dsc.private_key, PASSPHRASE, iterations=FAST)
    assert info.value.code == "keys.exists"
    assert path.read_bytes() == b"precious"


def test_save_private_key_writes_nothing_that_does_not_read_back(
    tmp_path: Path, dsc: KeyPair, site: KeyPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If the encrypted PEM would not decrypt to the same key, nothing is written (keys.unreadable)."""
    path = tmp_path / "dsc.key"
    other = encrypt_pkcs8(site.private_key, PASSPHRASE, iterations=FAST)
    monkeypatch.setattr(keys_files, "encrypt_pkcs8", lambda *_a, **_k: other)
    with pytest.raises(KeyStoreError) as info:
        save_private_key(path, dsc.private_key, PASSPHRASE, iterations=FAST)
    assert info.value.code == "keys.unreadable"
    garbage = other.replace(other.splitlines()[1], b"A" * 64)
    monkeypatch.setattr(keys_files, "encrypt_pkcs8", lambda *_a, **_k: garbage)
    with pytest.raises(KeyStoreError) as info:
        save_private_key(path, dsc.private_key, PASSPHRASE, iterations=FAST)
    assert info.value.code == "keys.unreadable"
    assert not path.exists()


def test_save_private_key_refuses_bad_iterations(tmp_path: Path, dsc: KeyPair) -> None:
    """iterations must be a positive int; no file is written otherwise."""
    path = tmp_path / "dsc.key"
    with pytest.raises(ValueError):
        save_private_key(path, dsc.private_key, PASSPHRASE, iterations=0)
    assert not path.exists()


def test_passphrase_from_env_reads_utf8(monkeypatch: pytest.MonkeyPatch) -> None:
    """The passphrase comes from VAXCRED_PASSPHRASE as UTF-8 bytes."""
    monkeypatch.setenv("VAXCRED_PASSPHRASE", "mật khẩu")
    assert passphrase_from_env() == "mật khẩu".encode()


def test_passphrase_from_env_missing_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    """An unset or empty variable is KeyStoreError(keys.no_passphrase)."""
    monkeypatch.delenv("VAXCRED_PASSPHRASE", raising=False)
    with pytest.raises(KeyStoreError) as info:
        passphrase_from_env()
    assert info.value.code == "keys.no_passphrase"
    with pytest.raises(KeyStoreError):
        passphrase_from_env(environ={"VAXCRED_PASSPHRASE": ""})


def test_certificate_round_trips_as_pem(tmp_path: Path, dsc: KeyPair) -> None:
    """save_certificate writes PEM; load_certificate reads it back."""
    path = tmp_path / "dsc.pem"
    save_certificate(path, dsc.certificate)
    assert path.read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")
    assert load_certificate(path) == dsc.certificate


# --- KeyChainDir ---------------------------------------------------------------------------------------


@pytest.fixture
def fast_key_files(monkeypatch: pytest.MonkeyPatch) -> None:
    """KeyChainDir writes with FAST iterations (for chain tests that do not test key-file strength)."""
    monkeypatch.setattr(
        keys_chain_dir, "save_private_key", functools.partial(save_private_key, iterations=FAST)
    )


@pytest.fixture(scope="session")
def chain_dir(tmp_path_factory: pytest.TempPathFactory) -> KeyChainDir:
    return KeyChainDir.init(tmp_path_factory.mktemp("chain") / "keys", PASSPHRASE, NOW)


def test_key_chain_init_writes_layout(chain_dir: KeyChainDir) -> None:
    """init writes CSCA, trust-list signer, site CA and one DSC, keys at mode 0600."""
    names = sorted(p.name for p in chain_dir.folder.iterdir())
    dsc_files = [n for n in names if n.startswith("dsc-")]
    assert {"csca.pem", "csca.key", "trustlist.pem", "trustlist.key", "site-ca.pem", "site-ca.key"} <= set(
        names
    )
    assert len(dsc_files) >= 2
    for key_file in chain_dir.folder.glob("*.key"):
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        assert read_encrypted_pkcs8(key_file.read_bytes()).iterations >= 600_000  # the default strength


def test_key_chain_init_refuses_existing_chain(chain_dir: KeyChainDir) -> None:
    """init never overwrites an existing chain."""
    with pytest.raises(KeyStoreError) as info:
        KeyChainDir.init(chain_dir.folder, PASSPHRASE, NOW)
    assert info.value.code == "keys.exists"


def test_key_chain_repr_hides_passphrase(chain_dir: KeyChainDir) -> None:
    """repr(KeyChainDir) does not show the passphrase."""
    assert PASSPHRASE.decode() not in repr(chain_dir)


def test_key_chain_dsc_signer_is_usable_now(chain_dir: KeyChainDir) -> None:
    """load_dsc_signer gives a LocalSigner for a DSC issued by the chain's CSCA."""
    signer = chain_dir.load_dsc_signer(now=NOW + timedelta(days=1))
    assert isinstance(signer, LocalSigner)
    signer.certificate.verify_directly_issued_by(chain_dir.load("csca").certificate)


@pytest.mark.usefixtures("fast_key_files")
def test_key_chain_rotation_prefers_newest_dsc_and_keeps_old(tmp_path: Path) -> None:
    """new_dsc adds a DSC; the newest usable one signs, the old one stays on disk and by kid."""
    chain = KeyChainDir.init(tmp_path / "keys", PASSPHRASE, NOW)
    first = chain.load_dsc_signer(now=NOW)
    later = NOW + timedelta(days=150)
    second = chain.new_dsc(now=later)
    assert len(chain.dsc_certificates()) == 2
    assert chain.load_dsc_signer(now=later + timedelta(days=1)).kid == second.kid
    assert chain.load_dsc_signer(now=later, kid=first.kid).kid == first.kid


@pytest.mark.usefixtures("fast_key_files")
def test_key_chain_refuses_dsc_after_its_key_usage_period(tmp_path: Path) -> None:
    """Past the 6-month privateKeyUsagePeriod (still within validity) no DSC may sign."""
    chain = KeyChainDir.init(tmp_path / "keys", PASSPHRASE, NOW)
    with pytest.raises(KeyStoreError) as info:
        chain.load_dsc_signer(now=NOW + timedelta(days=200))
    assert info.value.code == "keys.no_usable_dsc"


def test_key_chain_new_site_is_stored_under_sites(chain_dir: KeyChainDir) -> None:
    """new_site writes sites/<id>.pem/.key, issued by the site CA."""
    site = chain_dir.new_site(site_id="HCM-7", site_name="Bệnh viện Chợ Rẫy", now=NOW)
    assert (chain_dir.folder / "sites" / "HCM-7.pem").is_file()
    assert stat.S_IMODE((chain_dir.folder / "sites" / "HCM-7.key").stat().st_mode) == 0o600
    site.certificate.verify_directly_issued_by(chain_dir.load("site-ca").certificate)


def test_key_chain_with_wrong_passphrase_cannot_load(chain_dir: KeyChainDir) -> None:
    """A KeyChainDir opened with the wrong passphrase raises keys.bad_passphrase on load."""
    wrong = KeyChainDir(folder=chain_dir.folder, passphrase=b"nope")
    with pytest.raises(KeyStoreError) as info:
        wrong.load("csca")
    assert info.value.code == "keys.bad_passphrase"
