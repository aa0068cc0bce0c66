"""Key-chain fixtures shared by the issue and verify tests (session-scoped: key generation is the slow part)."""

from __future__ import annotations

import pytest

from tests.interop.payloads import DAY, NOW
from vaxcred import keys


@pytest.fixture(autouse=True)
def _private_state_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI keeps its trust rollback state under $XDG_STATE_HOME: never the real one in tests."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path_factory.mktemp("state")))


@pytest.fixture(scope="session")
def csca() -> keys.KeyPair:
    """A CSCA made 60 days before NOW."""
    return keys.make_csca(now=NOW - 60 * DAY)


@pytest.fixture(scope="session")
def dsc(csca: keys.KeyPair) -> keys.KeyPair:
    """An ES256 DSC (2 years, key usable 6 months) made a day before NOW."""
    return keys.make_dsc(csca, now=NOW - DAY)


@pytest.fixture(scope="session")
def rsa_dsc(csca: keys.KeyPair) -> keys.KeyPair:
    """A PS256 (RSA-2048) DSC made a day before NOW."""
    return keys.make_dsc(csca, now=NOW - DAY, key="rsa")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Long property runs (``@pytest.mark.slow``) run only when asked for: ``-m slow`` (``make fuzz``)."""
    if "slow" in (config.getoption("markexpr", "") or ""):
        return
    skip = pytest.mark.skip(reason="long property run: `make fuzz` (pytest -m slow) runs it")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
