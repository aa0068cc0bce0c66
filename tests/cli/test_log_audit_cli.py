"""`vaxcred log audit` after hand-edited SQL on a database the CLI built (the `flow` fixture of
test_pipeline_cli): each kind of insider tampering exits 1 and names its code; `--head` checks kept heads."""

from __future__ import annotations

import contextlib
import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from tests.cli import test_pipeline_cli as pipeline_cli
from tests.cli.test_pipeline_cli import AT, KEYS_AT, Flow, run

flow = pipeline_cli.flow
passphrase = pipeline_cli.passphrase
db_copy = pipeline_cli.db_copy

#: plain SQL an insider could run, and the finding `log audit` must name
TAMPERING = {
    "passport deleted": (
        "DELETE FROM passport_doses WHERE passport_id = 2; DELETE FROM passports WHERE id = 2",
        "log.object_missing",
    ),
    "passport back-dated": (
        "UPDATE passports SET issued_at = '2025-12-01 00:00:00.000000' WHERE id = 2",
        "log.object_altered",
    ),
    "passport moved to another person": (
        "UPDATE passports SET person_id = (SELECT max(id) FROM persons WHERE id NOT IN "
        "(SELECT person_id FROM passports)) WHERE id = 2",
        "log.object_altered",
    ),
    # a batch member: its batch's entry lists it, so the batch is altered
    "site signature deleted": ("DELETE FROM site_signatures WHERE id = 3", "log.object_altered"),
    "site signature back-dated": (
        "UPDATE site_signatures SET signed_at = '2025-12-01 00:00:00.000000' WHERE id = 3",
        "log.object_altered",
    ),
    "log rows reordered": (
        "UPDATE issuance_log SET seq = -1 WHERE seq = 0; UPDATE issuance_log SET seq = 0 WHERE seq = 1; "
        "UPDATE issuance_log SET seq = 1 WHERE seq = -1",
        "log.head_root_mismatch",
    ),
    "log row deleted": ("DELETE FROM issuance_log WHERE seq = 5", "log.gap"),
    "tree head replaced": (
        "UPDATE log_tree_heads SET root_hash = zeroblob(32)",
        "log.head_mismatch",
    ),
}


@pytest.fixture
def signed(flow: Flow, db_copy: str, tmp_path: Path, passphrase: None) -> tuple[str, Path, Path]:
    """A copy of the flow's database with a log signer and a signed head kept in a file: (db, cert, head)."""
    keys = tmp_path / "keys"
    shutil.copytree(flow.keys, keys)
    assert run(["log", "init-key", "--keys", str(keys), "--at", KEYS_AT])[0] == 0
    head = tmp_path / "head.cose"
    code, out = run(
        ["log", "sign-head", "--keys", str(keys), "--db", db_copy, "--at", AT, "--out", str(head)]
    )
    assert code == 0, out
    return db_copy, keys / "log-signer.pem", head


def _sql(db: str, script: str) -> None:
    with contextlib.closing(sqlite3.connect(db.removeprefix("sqlite:///"))) as conn:
        conn.executescript(script)
        conn.commit()


@pytest.mark.parametrize("case", sorted(TAMPERING))
def test_log_audit_exits_1_naming_each_insider_edit(signed: tuple[str, Path, Path], case: str) -> None:
    """Each hand edit of a CLI-built database makes `log audit` exit 1 with the finding's code."""
    db, cert, _ = signed
    assert run(["log", "audit", "--db", db, "--log-cert", str(cert)])[0] == 0
    script, code = TAMPERING[case]
    _sql(db, script)
    status, out = run(["log", "audit", "--db", db, "--log-cert", str(cert), "--json"])
    assert status == 1, out
    assert code in {f["code"] for f in json.loads(out)["findings"]}


def test_log_audit_head_finds_heads_deleted_from_the_database(signed: tuple[str, Path, Path]) -> None:
    """With every stored head deleted the log only looks unsigned (exit 0); `--head` with the kept head exits 1."""
    db, cert, head = signed
    _sql(db, "DELETE FROM log_tree_heads")
    assert run(["log", "audit", "--db", db, "--log-cert", str(cert)])[0] == 0
    status, out = run(["log", "audit", "--db", db, "--log-cert", str(cert), "--head", str(head)])
    assert status == 1, out
    assert "[log.head_missing] published tree head #1" in out


def test_registry_status_forged_then_restored_shows_in_log_anomalies(
    flow: Flow,
    signed: tuple[str, Path, Path],
) -> None:
    """An insider marks a mismatched person VERIFIED by SQL, has the site sign at 00:30 in Hà Nội and issues,
    then restores the registry row: `log audit` cannot see it (registry checks are not logged objects), but
    `log anomalies` exits 1 with the night signing and the passport without a VERIFIED registry result."""
    db, cert, _ = signed
    path = db.removeprefix("sqlite:///")
    with contextlib.closing(sqlite3.connect(path)) as conn:
        person, check = conn.execute(
            "SELECT p.id, max(c.id) FROM persons p JOIN registry_checks c ON c.person_id = p.id "
            "WHERE p.registry_status = 'MISMATCH' GROUP BY p.id ORDER BY p.id LIMIT 1"
        ).fetchone()
    _sql(
        db,
        f"UPDATE registry_checks SET status = 'VERIFIED' WHERE id = {check}; "
        f"UPDATE persons SET registry_status = 'VERIFIED' WHERE id = {person}",
    )
    night = "2026-01-02T17:30:00Z"  # 00:30 ICT
    assert run(["sign-sites", "--keys", str(flow.keys), "--db", db, "--at", night])[0] == 0
    code, out = run(["issue-batch", "--keys", str(flow.keys), "--db", db, "--at", night])
    assert code == 0, out
    assert "issued:             1" in out
    _sql(
        db,
        f"UPDATE registry_checks SET status = 'MISMATCH' WHERE id = {check}; "
        f"UPDATE persons SET registry_status = 'MISMATCH' WHERE id = {person}",
    )
    # registry checks are not logged objects: the audit passes
    assert run(["log", "audit", "--db", db, "--log-cert", str(cert)])[0] == 0
    code, out = run(["log", "anomalies", "--db", db, "--json"])
    assert code == 1, out
    report = json.loads(out)
    assert report["passports_without_verified_registry"] == 1
    assert report["outside_hours"], report
