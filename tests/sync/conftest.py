"""Sync fixtures: a ministry key chain, a publisher writing served folders, a real loopback server."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

import vaxcred
from tests.interop.payloads import DAY, NOW
from tests.sync.server import ServedFolder, serve
from vaxcred import keys
from vaxcred.revocation import HashType, RevocationBatch
from vaxcred.sync import SyncIndex, publish_folder
from vaxcred.trust import Environment, TrustedDsc, TrustMode, TrustStore, sign_trust_list
from vaxcred.x509util import parse_dsc

RULES_DIR = Path(vaxcred.__file__).parent / "data" / "rules" / "VN"
ENV = Environment.TST
#: when the client syncs (a day after the first publication)
SYNC_AT = NOW + DAY
#: one rule of vaxcred's Viet Nam set (the disease must be COVID-19), served as a rule file
RULES = [("rules/GR-VN-0001.json", (RULES_DIR / "GR-VN-0001.json").read_bytes())]
#: a value set as the EU publishes it, trimmed to two products: the synced set replaces the vendored one
VALUE_SETS = [
    (
        "valuesets/vaccines.json",
        b'{"valueSetId": "vaccines-covid-19-names", "valueSetDate": "2026-11-01", "valueSetValues": {'
        b'"EU/1/20/1528": {"display": "Comirnaty", "lang": "en", "active": true, "version": "", "system": ""},'
        b'"EU/1/20/1507": {"display": "Spikevax", "lang": "en", "active": true, "version": "", "system": ""}}}',
    )
]


def batch(i: int, *, kid: bytes | None, hash_type: HashType = HashType.UCI) -> RevocationBatch:
    return RevocationBatch(
        country="VN", expires=NOW + 365 * DAY, kid=kid, hash_type=hash_type, entries=(i.to_bytes(16, "big"),)
    )


@pytest.fixture(scope="session")
def trust_signer(csca: keys.KeyPair) -> keys.KeyPair:
    return keys.make_trust_list_signer(csca, now=NOW - 50 * DAY)


@dataclass
class Publisher:
    """The ministry's side: publishes numbered versions of the folder into ``root``."""

    root: Path
    csca: keys.KeyPair
    dsc: keys.KeyPair
    signer: keys.KeyPair

    def store(self) -> TrustStore:
        der = self.dsc.certificate.public_bytes(Encoding.DER)
        return TrustStore.build(
            environment=ENV,
            mode=TrustMode.SIGNED_LIST,
            dscs=[TrustedDsc(info=parse_dsc(der), country="VN", source="keychain")],
            cscas=[("VN", self.csca.certificate)],
        )

    def trust_list(self, *, sequence: int, issued_at: datetime) -> bytes:
        return sign_trust_list(
            self.store(), signer=self.signer.signer(), issued_at=issued_at, sequence=sequence
        )

    def publish(
        self,
        *,
        sequence: int,
        issued_at: datetime = NOW,
        batches: tuple[RevocationBatch, ...] | None = None,
        environment: Environment = ENV,
        rules: list[tuple[str, bytes]] = RULES,
    ) -> SyncIndex:
        if batches is None:
            batches = (batch(1, kid=self.dsc.kid), batch(2, kid=None, hash_type=HashType.SIGNATURE))
        return publish_folder(
            self.root,
            trust_list=self.trust_list(sequence=sequence, issued_at=issued_at),
            signer=self.signer.signer(),
            environment=environment,
            issued_at=issued_at,
            sequence=sequence,
            rules=rules,
            value_sets=VALUE_SETS,
            revocation_batches=batches,
        )


@pytest.fixture
def publisher(tmp_path: Path, csca: keys.KeyPair, dsc: keys.KeyPair, trust_signer: keys.KeyPair) -> Publisher:
    return Publisher(root=tmp_path / "served", csca=csca, dsc=dsc, signer=trust_signer)


@pytest.fixture
def server(publisher: Publisher) -> Iterator[ServedFolder]:
    publisher.root.mkdir(parents=True, exist_ok=True)
    with serve(publisher.root) as served:
        yield served
