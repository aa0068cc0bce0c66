"""Session key chains for the interop tests: ES256 and PS256 DSCs at the fixed NOW and at the wall clock."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from tests.interop.payloads import DAY, NOW
from vaxcred import keys
from vaxcred.trust import TrustStore


@dataclass(frozen=True, slots=True)
class Chain:
    """A CSCA, one DSC under it and the ``--dsc`` trust store holding that DSC."""

    csca: keys.KeyPair
    dsc: keys.KeyPair
    store: TrustStore

    @property
    def dsc_der(self) -> bytes:
        return self.dsc.certificate.public_bytes(Encoding.DER)


def make_chain(key: keys.KeyType, now: datetime) -> Chain:
    csca = keys.make_csca(now=now - DAY)
    dsc = keys.make_dsc(csca, now=now - DAY, key=key)
    store = TrustStore.from_dsc_certificates([dsc.certificate.public_bytes(Encoding.DER)])
    return Chain(csca=csca, dsc=dsc, store=store)


@pytest.fixture(scope="session")
def es256() -> Chain:
    return make_chain("ec", NOW)


@pytest.fixture(scope="session")
def ps256() -> Chain:
    return make_chain("rsa", NOW)


@pytest.fixture(scope="session", params=["ec", "rsa"], ids=["ES256", "PS256"])
def chain(request: pytest.FixtureRequest, es256: Chain, ps256: Chain) -> Chain:
    return es256 if request.param == "ec" else ps256


@pytest.fixture(scope="session")
def wall_clock_now() -> datetime:
    """The real current time, for python-cwt, which checks ``exp`` and ``iat`` against the wall clock."""
    return datetime.now(UTC).replace(microsecond=0)


@pytest.fixture(scope="session", params=["ec", "rsa"], ids=["ES256", "PS256"])
def wall_clock_chain(request: pytest.FixtureRequest, wall_clock_now: datetime) -> Chain:
    return make_chain(request.param, wall_clock_now)
