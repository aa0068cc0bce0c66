"""Live ``vaxcred serve`` processes on loopback, shared by the service tests (one key chain per session)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.service.support import Chain, LiveServer, serving


@pytest.fixture(scope="session")
def chain() -> Chain:
    return Chain.make()


@pytest.fixture(scope="session")
def trust_files(chain: Chain, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return chain.write(tmp_path_factory.mktemp("trust"))


@pytest.fixture(scope="session")
def server(trust_files: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """Full details, a signed national trust list (chain checked), ``at`` honoured (testing flag)."""
    args = [
        "--trust-list", str(trust_files["trust_list"]), "--anchor", str(trust_files["csca"]),
        "--environment", "TST", "--testing-allow-at",
    ]  # fmt: skip
    yield from serving(args, tmp_path_factory.mktemp("server") / "stderr.log")


@pytest.fixture(scope="session")
def minimal_server(
    trust_files: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """Minimal disclosure, bare DSCs (chain not checked), the service's own clock only."""
    args = [
        "--dsc", str(trust_files["dsc"]), "--dsc", str(trust_files["old_dsc"]),
        "--environment", "TST", "--minimal",
    ]  # fmt: skip
    yield from serving(args, tmp_path_factory.mktemp("minimal") / "stderr.log")


@pytest.fixture(scope="session")
def stale_server(
    trust_files: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """A signed list issued an hour ago under --max-trust-age 0.5 (hours): trust is stale."""
    args = [
        "--trust-list",
        str(trust_files["trust_list"]),
        "--anchor",
        str(trust_files["csca"]),
        "--environment",
        "TST",
        "--max-trust-age",
        "0.5",
    ]
    yield from serving(args, tmp_path_factory.mktemp("stale") / "stderr.log")
