"""A key chain made through the CLI, shared by the adversarial CLI tests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vaxcred.cli import main

PASSPHRASE = "adversarial test passphrase"
CHAIN_AT = "2026-01-01T00:00:00Z"
ISSUE_AT = "2026-01-02T00:00:00Z"
PERSON = {
    "name": "Nguyễn Văn Đức",
    "dob": "1990-05-17",
    "vaccine": "Comirnaty",
    "dose": 2,
    "doses_total": 2,
    "date": "2021-09-12",
}


@pytest.fixture(scope="session")
def cli_chain(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A key chain made by `vaxcred keys init` at a fixed time."""
    folder = tmp_path_factory.mktemp("adversarial-chain") / "keys"
    mp = pytest.MonkeyPatch()
    mp.setenv("VAXCRED_PASSPHRASE", PASSPHRASE)
    try:
        assert main(["keys", "init", str(folder), "--at", CHAIN_AT]) == 0
    finally:
        mp.undo()
    return folder


@pytest.fixture
def person_file(tmp_path: Path) -> Path:
    path = tmp_path / "person.json"
    path.write_text(json.dumps(PERSON, ensure_ascii=False), encoding="utf-8")
    return path
