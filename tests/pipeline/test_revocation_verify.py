"""The pipeline's revocation export, unchanged, at the border: a corrected passport's predecessor is INVALID
(revoked), its successor VALID.

The flow is the corrections one (tests/pipeline/test_corrections.py): Đức's passport is issued with a
typo, a correction fixes his name, the old passport is revoked and a new one issued.  The export is made
by the CLI (`vaxcred revocations export`), loaded by :func:`vaxcred.sync.load_revocation_files` and used by
:func:`vaxcred.verify`.  SQLite only: the export is the same on both backends (test_corrections covers both).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from tests.pipeline import test_corrections as flow
from vaxcred.cli import main
from vaxcred.result import Status
from vaxcred.sync import load_revocation_files
from vaxcred.trust import TrustStore
from vaxcred.verify import verify

# the corrections flow's fixtures, used here as they are
pipeline = flow.pipeline
site_ca = flow.site_ca
site_keys = flow.site_keys
dsc = flow.dsc


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """SQLite only (see the module docstring)."""
    return f"sqlite:///{tmp_path / 'vaxcred.db'}"


def test_exported_revocations_make_the_old_passport_invalid_and_leave_the_new_valid(
    pipeline: flow.Pipeline, database_url: str, tmp_path: Path
) -> None:
    """CLI export -> load_revocation_files -> verify: predecessor INVALID (revocation.revoked), successor VALID."""
    old, new = flow._revoke_duc(pipeline)
    at = flow.RESOLVED + dt.timedelta(days=1)
    out = tmp_path / "revocations.json"
    code = main(["revocations", "export", "--out", str(out), "--db", database_url, "--at", at.isoformat()])
    assert code == 0

    revoked, problems = load_revocation_files([out], now=at)
    assert problems == ()
    assert len(revoked) == 2  # UCI and SIGNATURE of the one revoked passport
    trust = TrustStore.from_dsc_certificates([pipeline.dsc.certificate.public_bytes(Encoding.DER)])

    before = verify(old.hc1, trust, now=at, revocation=revoked)
    assert before.status is Status.INVALID
    step = before.step("revocation")
    assert (step.result.value, step.code) == ("fail", "revocation.revoked")
    assert [s.name for s in before.failures] == ["revocation"]

    after = verify(new.hc1, trust, now=at, revocation=revoked)
    assert after.status is Status.VALID, after.failures
    assert after.step("revocation").code == "revocation.ok"
