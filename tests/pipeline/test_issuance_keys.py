"""The pipeline with the key chain's own keys: site signing and issuance with every key on a SoftHSM2 token (one
token session per worker process), and site certificates revoked through the site CA's CRL."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from tests.pipeline.issuance_child import NOW
from tests.pipeline.test_issuance import (
    SIGN_TIME,
    SITE_TIME,
    SITES,
    Chain,
    active_passports,
    assert_exactly_one_each,
    plan,
    populate,
)
from vaxcred import keys
from vaxcred.crypto import ExternalSigner
from vaxcred.errors import ChainError
from vaxcred.issue import Issuer
from vaxcred.pipeline.issuance.select import Reason
from vaxcred.pipeline.issuance.stage import KeyChainIssuerFactory, run_issuance
from vaxcred.result import Status
from vaxcred.storage import Database
from vaxcred.trust import TrustStore
from vaxcred.verify import verify

FAST = 1_000


def _chain_of(folder: keys.KeyChainDir) -> Chain:
    sites = {site: folder.load(f"sites/{site}") for site in SITES}
    dsc = folder.load(f"dsc-{folder.load_dsc_signer(now=NOW).kid.hex()}")
    return Chain(dsc=dsc, site_ca=folder.load("site-ca"), sites=sites, rogue_site=sites[SITES[0]])


def _make(folder: keys.KeyChainDir) -> keys.KeyChainDir:
    for site in SITES:
        folder.new_site(site_id=site, site_name=f"Trạm Y tế {site}", now=SITE_TIME)
    return folder


@pytest.fixture(scope="module")
def token_folder(
    softhsm_token: keys.TokenConfig, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[keys.KeyChainDir]:
    """A key chain made on the token at SITE_TIME, with a site certificate per site."""
    path = tmp_path_factory.mktemp("token-chain") / "keys"
    with keys.KeyChainDir.init(path, b"", SITE_TIME, token=softhsm_token) as folder:
        yield _make(folder)


@pytest.fixture
def file_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> keys.KeyChainDir:
    """A key chain of encrypted files (fast KDF) made at SITE_TIME, with a site certificate per site."""
    from vaxcred.keys import chain_dir

    monkeypatch.setattr(
        chain_dir, "save_private_key", functools.partial(keys.save_private_key, iterations=FAST)
    )
    return _make(keys.KeyChainDir.init(tmp_path / "keys", b"correct horse battery staple", SITE_TIME))


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the worker processes are the slow part
def test_token_keys_sign_sites_and_issue_in_two_worker_processes(
    database: Database, token_folder: keys.KeyChainDir
) -> None:
    """Sites sign dose records on the token; two worker processes each open their own token session (PIN from
    VAXCRED_PKCS11_PIN) and issue passports that verify against the token DSC."""
    chain = _chain_of(token_folder)
    assert isinstance(chain.sites[SITES[0]].signer(), ExternalSigner)
    people = [plan(i) for i in range(8)]
    populate(database, chain, people)

    report = run_issuance(
        database,
        KeyChainIssuerFactory(folder=token_folder.folder, at=NOW),
        now=NOW,
        site_ca=chain.site_ca.certificate,
        workers=2,
        batch_size=2,
    )

    assert (report.issued, report.failed) == (8, 0)
    assert_exactly_one_each(database, people)
    trust = TrustStore.from_dsc_certificates(
        [d.public_bytes(Encoding.DER) for d in token_folder.dsc_certificates()]
    )
    for hc1s in active_passports(database).values():
        assert verify(hc1s[0], trust, now=NOW).status is Status.VALID


@pytest.mark.parametrize(
    ("revoked_at", "refused"),
    [
        (SIGN_TIME - dt.timedelta(days=1), True),
        (SIGN_TIME, True),
        (SIGN_TIME + dt.timedelta(seconds=1), False),
    ],
)
def test_records_signed_after_the_site_revocation_are_refused(
    database: Database, file_folder: keys.KeyChainDir, revoked_at: dt.datetime, refused: bool
) -> None:
    """A site certificate in the site CA's CRL signs nothing from its revocation time on: its records are
    refused (untrusted certificate), other sites' are issued; records signed before the revocation stand."""
    chain = _chain_of(file_folder)
    people = [
        plan(i) for i in range(4)
    ]  # 0: HN-001 only; 1: HCM-017; 2: HCM-017 + DN-003; 3: DN-003 + HN-001
    populate(database, chain, people)
    crl = file_folder.revoke_site("HN-001", now=revoked_at)

    report = run_issuance(
        database,
        functools.partial(Issuer, chain.dsc.signer()),
        now=NOW,
        site_ca=chain.site_ca.certificate,
        site_crl=crl,
    )

    if refused:
        assert (report.issued, report.skipped_ineligible) == (2, 2)
        assert dict(report.reasons) == {Reason.UNTRUSTED_CERTIFICATE: 2}
        assert set(active_passports(database)) == {people[1].citizen_id, people[2].citizen_id}
    else:
        assert report.issued == 4


def test_a_crl_not_signed_by_the_site_ca_is_refused_before_any_work(
    database: Database, file_folder: keys.KeyChainDir
) -> None:
    """A CRL from another CA is chain.bad_crl at the start of the run."""
    chain = _chain_of(file_folder)
    other = keys.make_site_ca(now=SITE_TIME)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(chain.site_ca.certificate.subject)
        .last_update(SITE_TIME)
        .next_update(SITE_TIME + dt.timedelta(days=7))
    )
    forged = keys.x509sign.sign_crl(builder, other.private_key)
    with pytest.raises(ChainError) as e:
        run_issuance(database, chain.issuer, now=NOW, site_ca=chain.site_ca.certificate, site_crl=forged)
    assert e.value.code == "chain.bad_crl"
