"""`vaxcred log audit` and withdrawals, through the commands: a withdrawal made by `corrections resolve` is logged
(audit exit 0); `doses.withdrawn_at` set or cleared by hand SQL makes the audit exit 1 naming it."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from pathlib import Path

from tests.cli.test_corrections_duplicate_cli import AT, _database, _file
from tests.cli.test_log_audit_cli import signed  # noqa: F401 (a fixture)
from tests.cli.test_pipeline_cli import KEYS_AT, db_copy, flow, passphrase, run  # noqa: F401 (fixtures)


def _sql(db: str, script: str) -> None:
    with contextlib.closing(sqlite3.connect(db.removeprefix("sqlite:///"))) as conn:
        conn.executescript(script)
        conn.commit()


def _findings(db: str, cert: Path) -> tuple[int, set[str]]:
    status, out = run(["log", "audit", "--db", db, "--log-cert", str(cert), "--json"])
    return status, {f["code"] for f in json.loads(out)["findings"]}


def test_a_dose_withdrawn_by_hand_sql_fails_the_audit(signed: tuple[str, Path, Path]) -> None:  # noqa: F811
    """On the CLI-built database: withdrawn_at set by SQL, with no correction and no entry: exit 1,
    log.object_unlogged."""
    db, cert, _ = signed
    assert _findings(db, cert) == (0, set())
    _sql(db, "UPDATE doses SET withdrawn_at = '2026-01-03 00:00:00.000000' WHERE id = 1")
    assert _findings(db, cert) == (1, {"log.object_unlogged"})


def test_a_resolved_duplicate_is_logged_and_undoing_it_by_hand_fails_the_audit(
    tmp_path: Path,
    passphrase: None,  # noqa: F811
) -> None:
    """`corrections resolve` of a duplicate: the audit is intact; withdrawn_at cleared by SQL afterwards: exit 1,
    log.withdrawal_undone."""
    db, registry = _database(tmp_path)
    keys = tmp_path / "keys"
    assert run(["keys", "init", str(keys), "--at", KEYS_AT])[0] == 0
    assert run(["log", "init-key", "--keys", str(keys), "--at", KEYS_AT])[0] == 0
    cert = keys / "log-signer.pem"
    code, out = _file(db, "--dose-id", "2", "--field", "duplicate")
    assert code == 0, out
    correction_id = out.split("correction ", 1)[1].split(":", 1)[0]
    code, out = run(
        ["corrections", "resolve", correction_id, "--registry", str(registry), "--db", db, "--at", AT]
    )
    assert code == 0, out
    assert _findings(db, cert) == (0, set())
    _sql(db, "UPDATE doses SET withdrawn_at = NULL WHERE id = 2")
    assert _findings(db, cert) == (1, {"log.withdrawal_undone"})
