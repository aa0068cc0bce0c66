"""Issue 9 through the commands: Viet Nam's day, summaries that survive errors, operator conveniences."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest

from vaxcred.cli import main

HEADER = "citizen_id,full_name,dob,gender,vaccine,lot,date,dose_number,site_id\n"
ROW = "001090012345,Nguyễn Văn Đức,1990-05-17,M,Comirnaty,FK1234,{date},1,HN-001\n"


def run(args: list[str]) -> tuple[int, str]:
    """``main(args)`` with stdout and stderr captured together."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
        code = main(args)
    return code, buffer.getvalue()


def fresh_db(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'vaxcred.db'}"
    assert run(["db", "init", "--db", url])[0] == 0
    return url


def test_import_today_is_viet_nams_calendar_day(tmp_path: Path) -> None:
    """A dose given at 06:30 in Hà Nội (23:30 UTC the day before) is not 'in the future'."""
    db = fresh_db(tmp_path)
    doses = tmp_path / "doses.csv"
    doses.write_text(HEADER + ROW.format(date="2021-09-12"), encoding="utf-8")
    code, out = run(["import", str(doses), "--db", db, "--at", "2021-09-11T23:30:00Z"])
    assert code == 0, out
    assert "doses imported:   1" in out


def test_import_on_a_full_disk_prints_the_summary_and_exits_1(tmp_path: Path) -> None:
    """The rejects file on a full disk: no traceback, the counts printed, exit 1."""
    db = fresh_db(tmp_path)
    doses = tmp_path / "doses.csv"
    doses.write_text(HEADER + ROW.format(date="2021-09-12") + "bad,row\n", encoding="utf-8")
    code, out = run(["import", str(doses), "--db", db, "--rejects", "/dev/full"])
    assert code == 1, out
    assert "Traceback" not in out
    assert "doses imported:   1" in out
    assert "rejected:         1" in out
    assert "No space left" in out


REGISTRY = "citizen_id,full_name,dob,gender\n001090012345,Nguyễn Văn Đức,1990-05-17,M\n"


def imported_db(tmp_path: Path) -> tuple[str, Path]:
    """A database with one person (one dose at HN-001) and a registry file that verifies them."""
    db = fresh_db(tmp_path)
    doses = tmp_path / "doses.csv"
    doses.write_text(HEADER + ROW.format(date="2021-09-12"), encoding="utf-8")
    assert run(["import", str(doses), "--db", db, "--at", "2022-01-01T00:00:00Z"])[0] == 0
    registry = tmp_path / "registry.csv"
    registry.write_text(REGISTRY, encoding="utf-8")
    assert (
        run(["registry-check", "--registry", str(registry), "--db", db, "--at", "2022-01-01T00:00:00Z"])[0]
        == 0
    )
    return db, registry


def file_lot_correction(db: str, at: str = "2022-04-20T08:00:00Z") -> str:
    code, out = run(
        [
            "corrections",
            "file",
            "--citizen-id",
            "001090012345",
            "--dose-id",
            "1",
            "--field",
            "lot",
            "--value",
            "FK9999",
            "--db",
            db,
            "--at",
            at,
        ]
    )
    assert code == 0, out
    return out.split("correction ", 1)[1].split(":", 1)[0]


def test_corrections_doses_shows_the_dose_ids_a_correction_names(tmp_path: Path) -> None:
    """`corrections doses` lists the person's records with their dose ids, signed state and open corrections."""
    db, _ = imported_db(tmp_path)
    file_lot_correction(db)
    code, out = run(["corrections", "doses", "--citizen-id", "001090012345", "--db", db])
    assert code == 0, out
    row = out.splitlines()[1].split()
    assert row[:6] == ["1", "1", "2021-09-12", "HN-001", "Comirnaty", "FK1234"]
    assert row[6:] == ["no", "1"]


def test_corrections_list_without_a_site_lists_the_nation_with_local_deadlines(tmp_path: Path) -> None:
    """No --site: every open correction, with its dose id and the deadline in Viet Nam time (UTC beside)."""
    db, _ = imported_db(tmp_path)
    correction_id = file_lot_correction(db)
    code, out = run(["corrections", "list", "--db", db, "--at", "2022-04-20T09:00:00Z"])
    assert code == 0, out
    assert f"correction {correction_id}: lot of dose 1, site HN-001" in out
    assert "due 2022-04-22 15:00 ICT (08:00 UTC)" in out


def test_resolving_before_the_filing_time_is_a_clear_error(tmp_path: Path) -> None:
    """--at before the correction was filed: a coded message, no traceback."""
    db, registry = imported_db(tmp_path)
    correction_id = file_lot_correction(db)
    code, out = run(
        [
            "corrections",
            "resolve",
            correction_id,
            "--registry",
            str(registry),
            "--db",
            db,
            "--at",
            "2022-04-19T00:00:00Z",
        ]
    )
    assert code == 1
    assert "[pipeline.bad_correction]" in out
    assert "filed later" in out
    assert "Traceback" not in out


def test_a_blank_or_overlong_note_is_a_clear_error(tmp_path: Path) -> None:
    """Reject with a blank note, or resolve with a 201-character one: coded messages, exit 1, no traceback."""
    db, registry = imported_db(tmp_path)
    correction_id = file_lot_correction(db)
    code, out = run(["corrections", "reject", correction_id, "--note", "   ", "--db", db])
    assert (code, "[pipeline.bad_correction]" in out) == (1, True)
    code, out = run(
        [
            "corrections",
            "resolve",
            correction_id,
            "--registry",
            str(registry),
            "--note",
            "x" * 201,
            "--db",
            db,
        ]
    )
    assert (code, "at most 200 characters" in out) == (1, True)


def test_resolving_for_a_person_without_a_passport_says_what_to_run_next(tmp_path: Path) -> None:
    """No passport to revoke: the command names the next steps instead of stopping silently."""
    db, registry = imported_db(tmp_path)
    correction_id = file_lot_correction(db)
    code, out = run(
        [
            "corrections",
            "resolve",
            correction_id,
            "--registry",
            str(registry),
            "--db",
            db,
            "--at",
            "2022-04-20T10:00:00Z",
        ]
    )
    assert code == 0, out
    assert "no active passport to revoke" in out
    assert "vaxcred sign-sites" in out
    assert "vaxcred issue-batch" in out


def test_sites_register_names_provinces_and_certificates_in_one_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One CSV, one run, one passphrase: every site in the database with its name and province, and a site
    certificate each; a second run keeps the keys and changes nothing."""
    monkeypatch.setenv("VAXCRED_PASSPHRASE", "sites test passphrase")
    keys = tmp_path / "keys"
    assert run(["keys", "init", str(keys), "--at", "2026-01-01T00:00:00Z"])[0] == 0
    db = fresh_db(tmp_path)
    table = tmp_path / "sites.csv"
    table.write_text(
        "site_id,name,province\nVN001-S01,Trạm Y tế phường Phúc Xá,001\nVN079-S07,Bệnh viện Quận 7,079\n",
        encoding="utf-8",
    )
    args = ["sites", "register", str(table), "--keys", str(keys), "--db", db, "--at", "2026-01-01T00:00:00Z"]
    code, out = run(args)
    assert code == 0, out
    assert "2 sites: 2 new, 0 updated" in out
    assert "site certificates: 2 made, 0 kept" in out
    assert sorted(p.name for p in (keys / "sites").iterdir()) == [
        "VN001-S01.key",
        "VN001-S01.pem",
        "VN079-S07.key",
        "VN079-S07.pem",
    ]
    assert (keys / "sites" / "VN001-S01.key").stat().st_mode & 0o077 == 0
    code, out = run(args)
    assert "0 new, 0 updated" in out
    assert "0 made, 2 kept" in out
    code, out = run(["sites", "list", "--db", db])
    assert "VN079-S07                079  Bệnh viện Quận 7" in out


def test_sites_register_names_the_line_of_a_bad_row_and_stores_nothing(tmp_path: Path) -> None:
    """A province code that does not exist: exit 1 naming the line; no site stored."""
    db = fresh_db(tmp_path)
    table = tmp_path / "sites.csv"
    table.write_text("site_id,name,province\nVN001-S01,Trạm A,001\nVN999-S01,Trạm B,999\n", encoding="utf-8")
    code, out = run(["sites", "register", str(table), "--db", db])
    assert code == 1
    assert "line 3" in out
    assert "[pipeline.bad_site]" in out
    assert run(["sites", "list", "--db", db])[1].strip() == "0 sites"


def test_progress_outside_a_terminal_is_logged_with_rate_and_remaining(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under cron or systemd (stderr not a terminal) the import logs progress lines: done, of, rate, remaining."""
    monkeypatch.setenv("VAXCRED_PROGRESS_SECONDS", "0")
    db = fresh_db(tmp_path)
    doses = tmp_path / "doses.csv"
    rows = "".join(
        f"001090{i:06d},Nguyễn Văn An,1990,M,Comirnaty,L{i},2021-08-01,1,HN-001\n" for i in range(12_000)
    )
    doses.write_text(HEADER + rows, encoding="utf-8")
    code, out = run(["import", str(doses), "--db", db])
    assert code == 0, out
    lines = [line for line in out.splitlines() if "importing rows:" in line]
    assert len(lines) >= 3  # one per 5,000-row batch, and the end
    assert "importing rows: 5,000 of 12,000 (41.7 %)" in lines[0]
    assert "/s, 7,000 remaining" in lines[0]
    assert lines[-1].endswith("(done)")
