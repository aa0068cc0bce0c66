"""`vaxcred corrections … --field duplicate` through the commands: file, list, doses, resolve, refusals."""

from __future__ import annotations

from pathlib import Path

from tests.cli.test_pipeline_operators import HEADER, REGISTRY, fresh_db, run

CITIZEN = "001090012345"
#: dose 1 entered twice, on two days (the second is the duplicate), then dose 2
ROWS = (
    f"{CITIZEN},Nguyễn Văn Đức,1990-05-17,M,Comirnaty,FK1234,2021-08-01,1,HN-001\n"
    f"{CITIZEN},Nguyễn Văn Đức,1990-05-17,M,Comirnaty,FK1234,2021-08-09,1,HN-001\n"
    f"{CITIZEN},Nguyễn Văn Đức,1990-05-17,M,Comirnaty,FK5678,2021-09-12,2,HN-001\n"
)
AT = "2022-04-20T08:00:00Z"


def _database(tmp_path: Path) -> tuple[str, Path]:
    db = fresh_db(tmp_path)
    doses = tmp_path / "doses.csv"
    doses.write_text(HEADER + ROWS, encoding="utf-8")
    assert run(["import", str(doses), "--db", db, "--at", "2022-01-01T00:00:00Z"])[0] == 0
    registry = tmp_path / "registry.csv"
    registry.write_text(REGISTRY, encoding="utf-8")
    checked = run(["registry-check", "--registry", str(registry), "--db", db, "--at", "2022-01-01T00:00:00Z"])
    assert checked[0] == 0, checked[1]
    return db, registry


def _file(db: str, *extra: str) -> tuple[int, str]:
    return run(["corrections", "file", "--citizen-id", CITIZEN, "--db", db, "--at", AT, *extra])


def test_a_duplicate_is_filed_listed_resolved_and_shown_withdrawn(tmp_path: Path) -> None:
    """The second dose-1 record is filed as a duplicate, listed for its site, resolved: `corrections doses`
    shows it withdrawn (with the time) and the history no longer contradictory."""
    db, registry = _database(tmp_path)
    code, out = run(["corrections", "doses", "--citizen-id", CITIZEN, "--db", db])
    assert code == 0, out
    assert "contradictory history (dose_repeated): held from issuance" in out
    assert "--field duplicate" in out
    code, out = _file(db, "--dose-id", "2", "--field", "duplicate")
    assert code == 0, out
    assert "withdraw dose 2 (duplicate), site HN-001, open" in out
    correction_id = out.split("correction ", 1)[1].split(":", 1)[0]
    code, out = run(["corrections", "list", "--site", "HN-001", "--db", db, "--at", AT])
    assert code == 0, out
    assert f"correction {correction_id}: withdraw dose 2 (duplicate)" in out
    assert "proposed: withdraw the record (kept, never deleted)" in out
    code, out = run(
        ["corrections", "resolve", correction_id, "--registry", str(registry), "--db", db, "--at", AT]
    )
    assert code == 0, out
    assert f"correction {correction_id} resolved: dose 2 of person 1 withdrawn" in out
    code, out = run(["corrections", "doses", "--citizen-id", CITIZEN, "--db", db])
    assert code == 0, out
    withdrawn = [line for line in out.splitlines() if line.split()[:1] == ["2"]]
    assert withdrawn == [withdrawn[0]]
    assert withdrawn[0].split()[6:] == ["no", "0", "2022-04-20", "15:00", "ICT", "(08:00", "UTC)"]
    assert "contradictory" not in out
    code, out = _file(db, "--dose-id", "2", "--field", "lot", "--value", "FK0000")
    assert code == 1
    assert "[pipeline.dose_withdrawn]" in out
    assert "Traceback" not in out


def test_duplicate_usage_errors_and_refusals(tmp_path: Path) -> None:
    """--value with duplicate, no --value for another field: usage errors (3); withdrawing dose 2, which
    contradicts nothing: refused (1) with its code; nothing filed."""
    db, _ = _database(tmp_path)
    code, out = _file(db, "--dose-id", "2", "--field", "duplicate", "--value", "yes")
    assert code == 3
    assert "takes no --value" in out
    code, out = _file(db, "--dose-id", "2", "--field", "lot")
    assert code == 3
    assert "--field lot needs --value" in out
    code, out = _file(db, "--dose-id", "3", "--field", "duplicate")
    assert code == 1
    assert "[pipeline.bad_correction]" in out
    assert "contradicts no other record" in out
    code, out = _file(db, "--dose-id", "99", "--field", "duplicate")
    assert code == 1
    assert "[pipeline.unknown_record]" in out
    assert run(["corrections", "list", "--db", db, "--at", AT])[1].startswith(
        "nationally: no open corrections"
    )


def test_help_texts_name_the_duplicate_kind(tmp_path: Path) -> None:
    """`corrections file --help` explains duplicate and which contradiction each kind resolves."""
    code, out = run(["corrections", "file", "--help"])
    assert code == 0
    assert "duplicate" in out
    assert "withdraws the named record" in out
    code, out = run(["corrections", "doses", "--help"])
    assert code == 0
    assert "withdrawn" in out
