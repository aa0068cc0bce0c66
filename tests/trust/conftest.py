"""Session fixtures for the trust tests (certificates are built in :mod:`tests.trust.certs`)."""

from __future__ import annotations

import pytest

from tests.trust.certs import DAY, NOW, Issued, make_ca, make_leaf, make_trust_list_cert
from vaxcred import keys


@pytest.fixture(scope="session")
def csca() -> Issued:
    return make_ca("VN")


@pytest.fixture(scope="session")
def dsc(csca: Issued) -> Issued:
    return make_leaf(csca)


@pytest.fixture(scope="session")
def trust_list_cert(csca: Issued) -> Issued:
    return make_trust_list_cert(csca)


@pytest.fixture(scope="session")
def keys_chain() -> tuple[keys.KeyPair, keys.KeyPair, keys.KeyPair]:
    """CSCA, DSC and trust-list signer as :mod:`vaxcred.keys` makes them."""
    start = NOW - 10 * DAY
    csca = keys.make_csca(now=start)
    return csca, keys.make_dsc(csca, now=start), keys.make_trust_list_signer(csca, now=start)
