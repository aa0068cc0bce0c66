"""The key chain's lifecycle — rotate, retire, withdraw, revoke a site (CRL) — and its hash-chained
key-operations log, with the keys in files and on a SoftHSM2 token; passphrase normalisation and strength."""

from __future__ import annotations

import functools
import json
import unicodedata
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from tests.interop.payloads import DAY, NOW
from vaxcred import errors, keys
from vaxcred.crypto import SignatureScheme, der_to_raw
from vaxcred.keys import KeyChainDir, KeyOperationsLog
from vaxcred.keys import chain_dir as keys_chain_dir
from vaxcred.keys.lifecycle import kid_of
from vaxcred.keys.x509sign import sign_certificate, sign_crl, sign_csr

PASSPHRASE = b"correct horse battery staple"
FAST = 1_000
START = NOW - 30 * DAY


@pytest.fixture(params=["file", "pkcs11"])
def chain(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[KeyChainDir]:
    """A fresh chain made at START, its keys in encrypted files (fast KDF) or on the SoftHSM2 token."""
    if request.param == "file":
        monkeypatch.setattr(
            keys_chain_dir, "save_private_key", functools.partial(keys.save_private_key, iterations=FAST)
        )
        made = KeyChainDir.init(tmp_path / "chain", PASSPHRASE, START, operator="custodian-1")
    else:
        token = request.getfixturevalue("softhsm_token")
        made = KeyChainDir.init(tmp_path / "chain", b"", START, token=token, operator="custodian-1")
    with made:
        yield made


def _spki(cert: x509.Certificate) -> bytes:
    return cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


# --- one purpose per key, every operation logged ---------------------------------------------------------


def test_init_logs_one_generate_per_key_with_its_purpose(chain: KeyChainDir) -> None:
    """init appends csca, trust_list, site_ca and dsc-v generate lines naming the operator."""
    ops = chain.operations()
    assert [(o.operation, o.purpose) for o in ops] == [
        ("generate", "csca"),
        ("generate", "trust_list"),
        ("generate", "site_ca"),
        ("generate", "dsc-v"),
    ]
    assert {o.operator for o in ops} == {"custodian-1"}
    (dsc,) = chain.dsc_certificates()
    assert ops[-1].kid == kid_of(dsc).hex()


def test_every_certificate_of_a_chain_has_its_own_key(chain: KeyChainDir) -> None:
    """CSCA, trust-list signer, site CA, DSC and site certificate: five certificates, five distinct keys."""
    chain.new_site(site_id="HN-1", site_name="Trạm y tế", now=START)
    certs = [chain.load(stem).certificate for stem in ("csca", "trustlist", "site-ca", "sites/HN-1")]
    certs += list(chain.dsc_certificates())
    assert len({_spki(c) for c in certs}) == 5


def test_a_chain_dsc_signs_exactly_one_payload_type(chain: KeyChainDir) -> None:
    """new_dsc refuses two types in one DSC (one purpose per key)."""
    with pytest.raises(ValueError, match="exactly one"):
        chain.new_dsc(now=START, types=("v", "t"))


# --- DSC rotation, retirement, withdrawal ----------------------------------------------------------------


def test_rotate_makes_a_new_dsc_before_the_key_usage_period_ends(chain: KeyChainDir) -> None:
    """Early on, rotate does nothing; within the margin of the 6-month usage period it issues a new DSC."""
    assert chain.rotate(now=START + 10 * DAY) is None
    new = chain.rotate(now=START + 165 * DAY)
    assert new is not None
    assert chain.load_dsc_signer(now=START + 190 * DAY).kid == new.kid
    assert len(chain.dsc_certificates()) == 2


def test_retired_dsc_no_longer_signs_but_stays_published(chain: KeyChainDir) -> None:
    """retire_dsc: no signer at all any more, but the DSC stays in the published set (its passports verify)."""
    (dsc,) = chain.dsc_certificates()
    kid = kid_of(dsc)
    chain.retire_dsc(kid, now=START + DAY, reason="rotation")
    with pytest.raises(errors.KeyStoreError) as e:
        chain.load_dsc_signer(now=START + 2 * DAY)
    assert e.value.code == "keys.no_usable_dsc"
    assert chain.published_dsc_certificates() == (dsc,)
    assert chain.dsc_states() == {kid.hex(): "retired"}


def test_withdrawn_dsc_leaves_the_published_set(chain: KeyChainDir) -> None:
    """withdraw_dsc: the DSC is listed as withdrawn and no longer published; a newer DSC signs."""
    (old,) = chain.dsc_certificates()
    new = chain.new_dsc(now=START + DAY)
    chain.withdraw_dsc(kid_of(old), now=START + 2 * DAY, reason="compromise drill")
    assert chain.published_dsc_certificates() == (new.certificate,)
    assert chain.withdrawn_dsc_certificates() == (old,)
    assert chain.load_dsc_signer(now=START + 3 * DAY).kid == new.kid


def test_withdraw_after_retire_is_withdrawn(chain: KeyChainDir) -> None:
    """A retired DSC can still be withdrawn; a withdrawn one never comes back by a later retire."""
    (dsc,) = chain.dsc_certificates()
    kid = kid_of(dsc)
    chain.retire_dsc(kid, now=START + DAY)
    chain.withdraw_dsc(kid, now=START + 2 * DAY)
    chain.retire_dsc(kid, now=START + 3 * DAY)
    assert chain.dsc_states() == {kid.hex(): "withdrawn"}


def test_withdraw_unknown_kid_raises_unknown_key(chain: KeyChainDir) -> None:
    """A kid not in the chain is keys.unknown_key, and nothing is logged."""
    before = len(chain.operations())
    with pytest.raises(errors.KeyStoreError) as e:
        chain.withdraw_dsc(b"\x00" * 8, now=START)
    assert e.value.code == "keys.unknown_key"
    assert len(chain.operations()) == before


# --- site revocation and the CRL -------------------------------------------------------------------------


def test_revoke_site_publishes_a_crl_signed_by_the_site_ca(chain: KeyChainDir) -> None:
    """The CRL lists the site certificate's serial at the revocation time with its reason, signed by the site CA."""
    site = chain.new_site(site_id="HN-1", site_name="Trạm y tế", now=START)
    at = START + 5 * DAY
    crl = chain.revoke_site("HN-1", now=at, reason="key_compromise")
    site_ca = chain.load("site-ca").certificate
    public_key = site_ca.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    assert crl.is_signature_valid(public_key)
    assert crl.issuer == site_ca.subject
    entry = crl.get_revoked_certificate_by_serial_number(site.certificate.serial_number)
    assert entry is not None
    assert entry.revocation_date_utc == at
    assert (
        entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
        is x509.ReasonFlags.key_compromise
    )
    assert chain.site_crl() == crl
    assert chain.site_revocations() == {site.certificate.serial_number: (at, "key_compromise")}


def test_revoked_site_is_moved_aside_and_can_be_reissued(chain: KeyChainDir) -> None:
    """After revocation the site may get a new certificate; the old one stays under sites/revoked/."""
    old = chain.new_site(site_id="HN-1", site_name="Trạm y tế", now=START)
    chain.revoke_site("HN-1", now=START + DAY)
    assert list((chain.folder / "sites" / "revoked").glob(f"HN-1-{old.certificate.serial_number:x}.pem"))
    new = chain.new_site(site_id="HN-1", site_name="Trạm y tế", now=START + DAY)
    assert new.certificate.serial_number != old.certificate.serial_number
    crl = chain.site_crl()
    assert crl is not None
    assert crl.get_revoked_certificate_by_serial_number(new.certificate.serial_number) is None


def test_new_site_refuses_a_second_certificate_for_a_site(chain: KeyChainDir) -> None:
    """A site holds one current certificate: a second new_site is keys.exists."""
    chain.new_site(site_id="HN-1", site_name="Trạm y tế", now=START)
    with pytest.raises(errors.KeyStoreError) as e:
        chain.new_site(site_id="HN-1", site_name="Trạm y tế", now=START)
    assert e.value.code == "keys.exists"


def test_revoke_site_rejects_unknown_reason(chain: KeyChainDir) -> None:
    """The reason must be an RFC 5280 reason name."""
    chain.new_site(site_id="HN-1", site_name="Trạm y tế", now=START)
    with pytest.raises(ValueError, match="reason"):
        chain.revoke_site("HN-1", now=START, reason="because")


def test_site_crl_is_none_before_any_revocation(chain: KeyChainDir) -> None:
    """No revocation, no CRL file."""
    assert chain.site_crl() is None


# --- the key-operations log ------------------------------------------------------------------------------


def _log_with_three(tmp_path: Path) -> KeyOperationsLog:
    log = KeyOperationsLog(tmp_path / "ops.jsonl")
    for i, op in enumerate(("generate", "retire", "withdraw")):
        log.append(keys.KeyOperation(time=NOW + i * DAY, operation=op, purpose="dsc-v", kid=f"{i:016x}"))
    return log


def test_log_lines_chain_by_sha256_of_the_previous_line(tmp_path: Path) -> None:
    """Each line's prev is the SHA-256 of the line before; the first line's is 64 zeros; seq counts from 1."""
    import hashlib

    log = _log_with_three(tmp_path)
    lines = log.path.read_bytes().splitlines()
    records = [json.loads(line) for line in lines]
    assert records[0]["prev"] == "0" * 64
    assert records[1]["prev"] == hashlib.sha256(lines[0]).hexdigest()
    assert records[2]["prev"] == hashlib.sha256(lines[1]).hexdigest()
    assert [r["seq"] for r in records] == [1, 2, 3]
    assert log.head() == hashlib.sha256(lines[2]).hexdigest()
    assert [o.operation for o in log.read()] == ["generate", "retire", "withdraw"]


@pytest.mark.parametrize(
    ("tamper", "line"),
    [
        (
            lambda ls: [ls[0].replace(b"dsc-v", b"dsc-t"), *ls[1:]],
            2,
        ),  # edit a line: the next one's prev breaks
        (lambda ls: [ls[0], ls[2]], 2),  # delete a line
        (lambda ls: [ls[1], ls[0], ls[2]], 1),  # reorder
        (lambda ls: [ls[0], ls[1] + b" ", ls[2]], 2),  # not canonical JSON
    ],
)
def test_log_detects_editing_deleting_and_reordering(
    tmp_path: Path, tamper: Callable[[list[bytes]], list[bytes]], line: int
) -> None:
    """A changed, missing or moved line is keys.audit_broken naming the first bad line."""
    log = _log_with_three(tmp_path)
    lines = log.path.read_bytes().splitlines()
    changed = tamper(lines)
    log.path.write_bytes(b"\n".join(changed) + b"\n")
    with pytest.raises(errors.KeyStoreError) as e:
        log.read()
    assert e.value.code == "keys.audit_broken"
    assert f"line {line}:" in e.value.message


def test_log_editing_the_last_line_shows_against_the_recorded_head(tmp_path: Path) -> None:
    """The last line has no successor to break: an edit to it keeps the chain valid but changes the head."""
    log = _log_with_three(tmp_path)
    recorded = log.head()
    log.path.write_bytes(log.path.read_bytes().replace(b'"withdraw"', b'"retire"'))
    assert log.read()[-1].operation == "retire"
    assert log.head() != recorded


def test_log_tail_truncation_shows_only_against_the_recorded_head(tmp_path: Path) -> None:
    """Cutting the last line leaves a valid chain whose head differs from the head recorded before."""
    log = _log_with_three(tmp_path)
    recorded = log.head()
    lines = log.path.read_bytes().splitlines()
    log.path.write_bytes(b"\n".join(lines[:2]) + b"\n")
    assert len(log.read()) == 2
    assert log.head() != recorded


def test_log_refuses_an_incomplete_last_line(tmp_path: Path) -> None:
    """A line cut in the middle (no newline) is keys.audit_broken."""
    log = _log_with_three(tmp_path)
    log.path.write_bytes(log.path.read_bytes()[:-10])
    with pytest.raises(errors.KeyStoreError) as e:
        log.read()
    assert e.value.code == "keys.audit_broken"


def test_absent_log_is_empty_with_the_genesis_head(tmp_path: Path) -> None:
    """No file: no operations, head of 64 zeros."""
    log = KeyOperationsLog(tmp_path / "none.jsonl")
    assert log.read() == ()
    assert log.head() == "0" * 64


def test_key_operation_rejects_unknown_operation_and_naive_time() -> None:
    """Only the known operations, only aware times."""
    with pytest.raises(ValueError, match="operation"):
        keys.KeyOperation(time=NOW, operation="delete", purpose="dsc-v")
    with pytest.raises(ValueError, match="aware"):
        keys.KeyOperation(time=NOW.replace(tzinfo=None), operation="generate", purpose="dsc-v")


def test_a_tampered_log_stops_the_chain_from_reporting_states(chain: KeyChainDir) -> None:
    """dsc_states replays the log: a broken log is an error, never silently 'active'."""
    path = chain.log.path
    lines = path.read_bytes().splitlines()
    path.write_bytes(b"\n".join([lines[1], lines[0], *lines[2:]]) + b"\n")
    with pytest.raises(errors.KeyStoreError) as e:
        chain.dsc_states()
    assert e.value.code == "keys.audit_broken"


# --- passphrases (issue 7) -------------------------------------------------------------------------------


def test_nfd_passphrase_opens_a_key_encrypted_with_its_nfc_form(tmp_path: Path, dsc: keys.KeyPair) -> None:
    """'Mật khẩu…' typed decomposed (NFD) decrypts the key saved under the composed (NFC) form."""
    text = "Mật khẩu của Bộ Y tế 2021"
    nfc, nfd = unicodedata.normalize("NFC", text).encode(), unicodedata.normalize("NFD", text).encode()
    assert nfc != nfd
    keys.save_private_key(tmp_path / "k.key", dsc.private_key, nfc, iterations=FAST)  # type: ignore[arg-type]
    loaded = keys.load_private_key(tmp_path / "k.key", nfd)
    assert loaded.public_key() == dsc.private_key.public_key()


def test_normalize_passphrase_keeps_non_utf8_bytes() -> None:
    """Bytes that are not UTF-8 are used as they are (an old key's passphrase still opens it)."""
    assert keys.normalize_passphrase(b"\xff\xfe old") == b"\xff\xfe old"


def test_passphrase_from_env_is_nfc(monkeypatch: pytest.MonkeyPatch) -> None:
    """The environment passphrase is NFC-normalised too."""
    monkeypatch.setenv("VAXCRED_PASSPHRASE", unicodedata.normalize("NFD", "mật khẩu"))
    assert keys.passphrase_from_env() == unicodedata.normalize("NFC", "mật khẩu").encode()


@pytest.mark.parametrize(
    "weak",
    [b"Short1!", b"alllowercase", b"aaaaaaaaaaaaaaaaaaaaaa", b"abcdef123456", b"Ab1Ab1Ab1Ab1"],
)
def test_weak_csca_passphrase_is_refused(weak: bytes, tmp_path: Path) -> None:
    """Too short, too few classes under 16 characters, or too few distinct characters: keys.weak_passphrase."""
    with pytest.raises(errors.KeyStoreError) as e:
        KeyChainDir.init(tmp_path / "chain", weak, START)
    assert e.value.code == "keys.weak_passphrase"
    assert not (tmp_path / "chain").exists()


@pytest.mark.parametrize(
    "strong", [b"correct horse battery staple", b"Tr4m-Y-te!2021", "mật khẩu rất dài".encode()]
)
def test_strong_passphrases_pass_the_csca_rule(strong: bytes) -> None:
    """16+ characters of words, or 12+ characters from three classes, pass."""
    keys.check_passphrase_strength(strong)


def test_passphrase_strength_counts_characters_not_bytes() -> None:
    """Vietnamese letters are one character each however many UTF-8 bytes: 'ệệệệệệ1A' is short."""
    with pytest.raises(errors.KeyStoreError):
        keys.check_passphrase_strength("ệệệệệệ1A".encode())


# --- X.509 signing by an external key (the token path, here over an in-memory key) --------------------------


class _Device:
    """An ExternalKey over an in-memory P-256 key; ``lie`` flips a bit of every signature."""

    def __init__(self, *, lie: bool = False) -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())
        self._lie = lie

    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self._key.public_key()

    def sign_with(self, data: bytes, scheme: SignatureScheme) -> bytes:
        assert scheme is SignatureScheme.ECDSA_SHA256
        raw = der_to_raw(self._key.sign(data, ec.ECDSA(hashes.SHA256())))
        return raw[:-1] + bytes([raw[-1] ^ 1]) if self._lie else raw


def test_external_key_csr_names_the_external_key_and_verifies() -> None:
    """The CSR's public key is the device's (not the throwaway's) and its signature verifies."""
    device = _Device()
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "csr")])
    csr = sign_csr(x509.CertificateSigningRequestBuilder().subject_name(name), device)
    assert csr.public_key() == device.public_key()
    assert csr.is_signature_valid
    assert csr.subject == name


def test_external_key_crl_verifies_with_the_issuer_key() -> None:
    """A CRL signed through the device verifies with the device's public key."""
    device = _Device()
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "ca")])
    builder = (
        x509.CertificateRevocationListBuilder().issuer_name(name).last_update(NOW).next_update(NOW + DAY)
    )
    assert sign_crl(builder, device).is_signature_valid(device.public_key())


def test_a_device_that_signs_wrongly_cannot_produce_a_certificate() -> None:
    """The re-assembled certificate is checked: a bad device signature is keys.device, nothing returned."""
    csca = keys.make_csca(now=NOW)
    builder = (
        x509.CertificateBuilder()
        .subject_name(csca.certificate.subject)
        .issuer_name(csca.certificate.subject)
        .public_key(csca.certificate.public_key())
        .serial_number(1)
        .not_valid_before(NOW)
        .not_valid_after(NOW + timedelta(days=1))
    )
    with pytest.raises(errors.KeyStoreError) as e:
        sign_certificate(builder, _Device(lie=True))
    assert e.value.code == "keys.device"


# --- single-purpose signers under the CSCA ------------------------------------------------------------------


def test_log_and_document_signers_are_issued_by_the_chain_and_logged(chain: KeyChainDir) -> None:
    """The log and document signers get their own keys (on the token for a token chain), chain to the CSCA, carry
    one EKU each and appear in the key-operations log with their purpose."""
    from vaxcred.oids import DOCUMENT_SIGNING_EKU, LOG_SIGNING_EKU

    log_signer = chain.new_log_signer(now=START)
    document_signer = chain.new_document_signer(now=START)
    csca = chain.load("csca").certificate
    for pair, eku in ((log_signer, LOG_SIGNING_EKU), (document_signer, DOCUMENT_SIGNING_EKU)):
        pair.certificate.verify_directly_issued_by(csca)
        assert list(pair.certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [eku]
        assert pair.on_token == (chain.token is not None)
    assert [o.purpose for o in chain.operations()][-2:] == ["log", "document"]
    assert chain.load("log-signer").certificate == log_signer.certificate
    with pytest.raises(errors.KeyStoreError) as e:
        chain.new_log_signer(now=START)
    assert e.value.code == "keys.exists"
