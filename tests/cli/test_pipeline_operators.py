"""Issue 9 through the commands: Viet Nam's day, summaries that survive errors, operator conveniences."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

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
