"""Key-chain fixtures shared by the issue and verify tests (session-scoped: key generation is the slow part)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests import softhsm
from tests.interop.payloads import DAY, NOW
from vaxcred import keys
from vaxcred.keys import PIN_ENV, TokenConfig


@pytest.fixture(scope="session", autouse=True)
def _session_state_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Session-scoped fixtures (servers started once) must not reach the real $XDG_STATE_HOME either."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_STATE_HOME", str(tmp_path_factory.mktemp("session-state")))
        yield


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


# --- a SoftHSM2 token (tests/softhsm.py): one token folder per test process ------------------------------------


@pytest.fixture(scope="session")
def softhsm_token(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TokenConfig]:
    """A freshly initialised SoftHSM2 token (PIN ``tests.softhsm.PIN``); SOFTHSM2_CONF set for the session."""
    folder = tmp_path_factory.mktemp("softhsm")
    config = softhsm.init_token(folder)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SOFTHSM2_CONF", str(folder / "softhsm2.conf"))
        mp.setenv(PIN_ENV, softhsm.PIN.decode())
        yield config


@pytest.fixture(scope="session")
def token(softhsm_token: TokenConfig) -> Iterator[keys.Pkcs11Token]:
    """A logged-in session on the test token."""
    with keys.Pkcs11Token.open(softhsm_token, softhsm.PIN) as session:
        yield session


@pytest.fixture(scope="session")
def token_csca(token: keys.Pkcs11Token) -> keys.KeyPair:
    """A CSCA whose key was generated inside the token."""
    return keys.make_csca(now=NOW - 60 * DAY, private_key=token.generate("ec", label="test csca"))


@pytest.fixture(scope="session", params=["ec", "rsa"])
def token_dsc(
    request: pytest.FixtureRequest, token: keys.Pkcs11Token, token_csca: keys.KeyPair
) -> keys.KeyPair:
    """An ES256 or PS256 DSC: its key and its issuer's key on the token."""
    key = token.generate(request.param, label=f"test dsc {request.param}")
    return keys.make_dsc(token_csca, now=NOW - DAY, private_key=key)
