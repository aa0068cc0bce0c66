"""`vaxcred corrections … --field duplicate` through the commands: file, list, doses, resolve, refusals."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

from tests.cli.test_pipeline_cli import AT as FLOW_AT
from tests.cli.test_pipeline_cli import (
    SITES,
    Flow,
    _first_holder,
    db_copy,  # noqa: F401 (a fixture)
    flow,  # noqa: F401 (a fixture)
    passphrase,  # noqa: F401 (a fixture)
)
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


def test_the_same_dose_at_two_sites_is_withdrawn_and_reissued_through_the_commands(
    flow: Flow,  # noqa: F811 (the fixture imported above)
    db_copy: str,  # noqa: F811
    passphrase: None,  # noqa: F811
    tmp_path: Path,
) -> None:
    """A passport holder's newest dose is imported again at another site (held: dose_repeated); the record the
    passport rested on is withdrawn with `resolve --keys`: the passport is revoked and re-issued at once on the
    other record; `corrections doses` shows the withdrawal and no contradiction."""
    path = Path(db_copy.removeprefix("sqlite:///"))
    citizen_id, dose_id, site = _first_holder(path)
    with contextlib.closing(sqlite3.connect(path)) as conn:
        person = conn.execute(
            "SELECT p.id_type, p.full_name, p.dob, p.gender, d.vaccine, d.lot, d.date, d.dose_number "
            "FROM persons p JOIN doses d ON d.person_id = p.id WHERE d.id = ?",
            (dose_id,),
        ).fetchone()
    id_type, name, dob, gender, vaccine, lot, date, number = person
    other_site = next(s for s in SITES if s != site)
    again = tmp_path / "again.csv"
    again.write_text(
        "citizen_id,id_type,full_name,dob,gender,vaccine,lot,date,dose_number,site_id\n"
        f"{citizen_id},{id_type},{name},{dob},{gender},{vaccine},{lot},{date},{number},{other_site}\n",
        encoding="utf-8",
    )
    db = ["--db", db_copy]
    code, out = run(["import", str(again), *db, "--at", FLOW_AT])
    assert code == 0, out
    assert "doses imported:   1" in out
    assert run(["sign-sites", "--keys", str(flow.keys), *db, "--at", FLOW_AT])[0] == 0
    code, out = run(["corrections", "doses", "--citizen-id", citizen_id, *db])
    assert "contradictory history (dose_repeated)" in out
    code, out = run(
        [
            "corrections",
            "file",
            "--citizen-id",
            citizen_id,
            "--dose-id",
            str(dose_id),
            "--field",
            "duplicate",
            *db,
            "--at",
            FLOW_AT,
        ]
    )
    assert code == 0, out
    assert f"withdraw dose {dose_id} (duplicate), site {site}, open" in out
    correction_id = out.split("correction ", 1)[1].split(":", 1)[0]
    code, out = run(
        [
            "corrections",
            "resolve",
            correction_id,
            "--registry",
            str(flow.registry),
            "--keys",
            str(flow.keys),
            *db,
            "--at",
            "2026-01-02T10:00:00Z",
        ]
    )
    assert code == 0, out
    assert "withdrawn (kept, ignored from now on)" in out
    assert "never signed again" in out
    assert "revoked (UCI and signature hash" in out
    assert "re-signed and re-issued: 1 new passport" in out
    code, out = run(["corrections", "doses", "--citizen-id", citizen_id, *db])
    assert "contradictory" not in out
    (line,) = [row for row in out.splitlines()[1:] if row.split()[0] == str(dose_id)]
    assert "2026-01-02 17:00 ICT" in line
