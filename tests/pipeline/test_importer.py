"""Bulk import on both backends: CSV and JSON Lines, rejects, idempotency, crashes, constant memory."""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import json
import signal
import stat
import subprocess
import sys
import time
import tracemalloc
import unicodedata
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.pipeline.import_child import CHILD_BATCH, HEADER, generated_rows
from vaxcred.pipeline.errors import PipelineError
from vaxcred.pipeline.records import importer, staging
from vaxcred.pipeline.records.importer import ImportReport, import_file, import_lines
from vaxcred.pipeline.records.streams import stream_of
from vaxcred.storage import Database
from vaxcred.storage.schema import doses, persons, sites

REPO = Path(__file__).resolve().parents[2]
NFD_NAME = unicodedata.normalize("NFD", "Trần Thị Bích Ngọc")

#: four people: a CCCD man (two doses), a CCCD woman typed in NFD with a year-only birth date and "Nữ",
#: a CMND holder with a year-month birth date, and a seed-004 person (see below)
GOOD_CSV = (
    HEADER
    + "001090012345,Nguyễn Văn Đức,1990-05-17,M,Comirnaty,FK1234,2021-08-01,1,HN-001\n"
    + "001090012345,Nguyễn Văn Đức,1990-05-17,M,Comirnaty,FK5678,2021-09-01,2,HN-001\n"
    + f"079185001234,{NFD_NAME},1985,Nữ,AstraZeneca,AZ-01,2021-07-15,1,HCM-017\n"
    + "123456789,Lê Hoàng Yến,1972-11,F,Vero Cell,VC-9,2021-10-02,1,DN-003\n"
    # seed 004: comes for dose 2 without the paper for dose 1, gives dose 1's details: both recorded,
    # dose 2 first, dose 1 after it
    + "048203000111,Đặng Quốc Bảo,2003-06-02,M,Comirnaty,FL-2,2021-12-10,2,DN-003\n"
    + "048203000111,Đặng Quốc Bảo,2003-06-02,M,Comirnaty,FL-1,2021-11-12,1,DN-003\n"
)


def _write(path: Path, text: str, *, encoding: str = "utf-8", newline: str = "\n") -> Path:
    with path.open("w", encoding=encoding, newline=newline) as f:
        f.write(text)
    return path


def _as_jsonl(csv_text: str) -> str:
    lines = []
    for row in csv.DictReader(csv_text.splitlines()):
        obj: dict[str, Any] = dict(row)
        obj["dose_number"] = int(row["dose_number"])  # JSON gives numbers as numbers
        lines.append(json.dumps(obj, ensure_ascii=False))
    return "\n".join(lines) + "\n"


def _count(db: Database, table: sa.Table) -> int:
    with db.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def _stored_doses(db: Database) -> list[tuple[str, int, str, str, str, str]]:
    query = (
        sa.select(
            doses.c.dose_number,
            doses.c.date,
            doses.c.site_id,
            doses.c.vaccine,
            doses.c.lot,
            persons.c.citizen_id,
        )
        .join(persons)
        .order_by(persons.c.citizen_id, doses.c.dose_number)
    )
    with db.connect() as conn:
        return [(cid, n, str(d), site, vaccine, lot) for n, d, site, vaccine, lot, cid in conn.execute(query)]


def _rejects(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", errors="surrogateescape", newline="") as f:
        return list(csv.DictReader(f))


EXPECTED_DOSES = [
    ("001090012345", 1, "2021-08-01", "HN-001", "Comirnaty", "FK1234"),
    ("001090012345", 2, "2021-09-01", "HN-001", "Comirnaty", "FK5678"),
    ("048203000111", 1, "2021-11-12", "DN-003", "Comirnaty", "FL-1"),
    ("048203000111", 2, "2021-12-10", "DN-003", "Comirnaty", "FL-2"),
    ("079185001234", 1, "2021-07-15", "HCM-017", "Vaxzevria", "AZ-01"),
    ("123456789", 1, "2021-10-02", "DN-003", "BBIBP-CorV", "VC-9"),
]


def test_csv_import_lands_every_good_row(database: Database, tmp_path: Path) -> None:
    """An Excel-style CSV (BOM, CRLF) with Vietnamese names lands every dose, names NFC, persons once."""
    path = _write(tmp_path / "doses.csv", GOOD_CSV, encoding="utf-8-sig", newline="\r\n")
    report = import_file(database, path, rejects_path=tmp_path / "rejects.csv")
    assert report == ImportReport(
        rows=6, imported=6, duplicates=0, rejected=0, rejects_path=tmp_path / "rejects.csv"
    )
    assert _stored_doses(database) == EXPECTED_DOSES
    with database.connect() as conn:
        people = {r.citizen_id: r for r in conn.execute(sa.select(persons))}
    assert set(people) == {"001090012345", "079185001234", "123456789", "048203000111"}
    tran = people["079185001234"]
    assert tran.full_name == "Trần Thị Bích Ngọc"
    assert unicodedata.is_normalized("NFC", tran.full_name)
    assert (tran.id_type, tran.dob, tran.gender, tran.province_code) == ("CCCD", "1985", "F", "079")
    cmnd = people["123456789"]
    assert (cmnd.id_type, cmnd.dob, cmnd.province_code, cmnd.registry_status) == (
        "CMND",
        "1972-11",
        None,
        None,
    )


def test_jsonl_import_lands_every_good_row(database: Database, tmp_path: Path) -> None:
    """The same records as JSON Lines (numbers as numbers, a null field) land the same way."""
    text = _as_jsonl(GOOD_CSV).replace('"dob": "1972-11"', '"dob": null')
    report = import_file(database, _write(tmp_path / "doses.jsonl", text))
    assert (report.rows, report.imported, report.rejected) == (6, 6, 0)
    assert _stored_doses(database) == EXPECTED_DOSES
    with database.connect() as conn:
        dob = conn.execute(sa.select(persons.c.dob).where(persons.c.citizen_id == "123456789")).scalar_one()
    assert dob == ""


def test_dose_2_without_the_paper_for_dose_1_lands_both(database: Database) -> None:
    """Seed 004: dose 2 recorded before the dose 1 the person describes; both are stored."""
    lines = [HEADER, *GOOD_CSV.splitlines(keepends=True)[-2:]]
    report = import_lines(database, lines, format="csv")
    assert report.imported == 2
    assert [d[:3] for d in _stored_doses(database)] == [
        ("048203000111", 1, "2021-11-12"),
        ("048203000111", 2, "2021-12-10"),
    ]


def test_sites_first_seen_in_an_import_are_created(database: Database) -> None:
    """Every site a row names exists afterwards (ID only: name and province unknown)."""
    import_lines(database, GOOD_CSV.splitlines(keepends=True), format="csv")
    with database.connect() as conn:
        rows = conn.execute(sa.select(sites.c.site_id, sites.c.name).order_by(sites.c.site_id)).all()
    assert rows == [("DN-003", None), ("HCM-017", None), ("HN-001", None)]


BAD_CSV = (
    HEADER.encode()  # line 1
    + "001090012345,Nguyễn Văn Đức,1990-05-17,M,Comirnaty,FK1234,2021-08-01,1,HN-001\n".encode()  # 2 good
    + "001090012346,Nguyễn Văn Bình,1990-02-30,M,Comirnaty,FK1,2021-08-01,1,HN-001\n".encode()  # 3 dob
    + "079185001234,Trần Thị Lan,1985,F,Comirnaty,FK2,2021-08-01,1,HCM-017\n".encode()  # 4 good
    + '079185001235,"Trần Thị\nLan",1985,F,Comirnaty,FK2,2021-08-01,1,HCM-017\n'.encode()  # 5-6 name: two rejected lines
    + b"too,few,cells\n"  # 7
    + b"001090012347,Nguy\xff\xfe Van,1990,M,Comirnaty,FK3,2021-08-01,1,HN-001\n"  # 8 not UTF-8
    + b"\n"  # 9 blank: skipped, not a row
    + "001090012348,Nguyễn Văn Cường,1990,M,NoSuchVaccine,FK3,2021-08-01,1,HN-001\n".encode()  # 10
    + "123456789,Lê Hoàng Yến,1972-11,F,Vero Cell,VC-9,2021-10-02,1,DN-003\n".encode()  # 11 good
)


def test_bad_rows_are_rejected_with_line_and_reason_while_good_rows_land(
    database: Database, tmp_path: Path
) -> None:
    """Each bad row goes to the rejects file with its line, field, code and raw text; good rows land; a quoted
    line break splits its row into two rejected lines."""
    path = tmp_path / "doses.csv"
    path.write_bytes(BAD_CSV)
    rejects_path = tmp_path / "rejects.csv"
    report = import_file(database, path, rejects_path=rejects_path)
    assert (report.rows, report.imported, report.duplicates, report.rejected) == (9, 3, 0, 6)
    assert _count(database, doses) == 3
    rejects = _rejects(rejects_path)
    assert [(r["line"], r["field"], r["code"]) for r in rejects] == [
        ("3", "dob", "pipeline.bad_row"),
        ("5", "", "pipeline.unreadable_row"),
        ("6", "", "pipeline.unreadable_row"),
        ("7", "", "pipeline.unreadable_row"),
        ("8", "", "pipeline.unreadable_row"),
        ("10", "vaccine", "pipeline.bad_row"),
    ]
    assert rejects[1]["raw"] == '079185001235,"Trần Thị'
    assert "unbalanced quote" in rejects[1]["reason"]
    assert rejects[3]["reason"] == "3 cells, the header has 9"
    assert rejects[4]["reason"] == "not valid UTF-8"
    assert rejects_path.read_bytes().count(b"Nguy\xff\xfe Van") == 1  # the raw bytes, unchanged
    assert all(r["reason"] for r in rejects)


def test_rejects_file_is_readable_by_its_owner_only(database: Database, tmp_path: Path) -> None:
    """The rejects file holds personal data: mode 0600, even when it existed with wider permissions."""
    rejects_path = tmp_path / "rejects.csv"
    rejects_path.write_text("old content\n")
    rejects_path.chmod(0o644)
    path = tmp_path / "doses.csv"
    path.write_bytes(BAD_CSV)
    import_file(database, path, rejects_path=rejects_path)
    assert stat.S_IMODE(rejects_path.stat().st_mode) == 0o600
    assert "old content" not in rejects_path.read_text(errors="replace")


def test_jsonl_bad_lines_are_rejected_with_reasons(database: Database, tmp_path: Path) -> None:
    """Malformed JSON, non-objects, absurd nesting, wrong field types, runaway lines are rejected; good ones land."""
    good = _as_jsonl(GOOD_CSV).splitlines()
    wrong_type = json.loads(good[2]) | {"full_name": 123}
    text = "\n".join(
        [
            good[0],  # 1
            '{"citizen_id": "0010',  # 2
            "[1, 2]",  # 3
            "[" * 20_000 + "]" * 20_000,  # 4
            json.dumps(json.loads(good[1]) | {"dose_number": "two"}),  # 5
            json.dumps(wrong_type, ensure_ascii=False),  # 6
            "",  # 7
            good[3],  # 8
            '{"x": "' + "x" * importer.MAX_LINE_CHARS + '"}',  # 9
        ]
    )
    rejects_path = tmp_path / "rejects.csv"
    report = import_file(database, _write(tmp_path / "d.jsonl", text), rejects_path=rejects_path)
    assert (report.rows, report.imported, report.rejected) == (8, 2, 6)
    rejects = _rejects(rejects_path)
    assert [(r["line"], r["field"]) for r in rejects] == [
        ("2", ""),
        ("3", ""),
        ("4", ""),
        ("5", "dose_number"),
        ("6", "full_name"),
        ("9", ""),
    ]
    assert rejects[0]["reason"].startswith("not valid JSON")
    assert rejects[1]["reason"] == "a JSON list, not an object"
    assert rejects[2]["reason"] == "not valid JSON: nested too deeply"
    assert rejects[5]["reason"] == f"a line is longer than {importer.MAX_LINE_CHARS} characters"
    assert len(rejects[5]["raw"]) <= importer.MAX_RAW_CHARS + len("…[cut]")


def test_reimporting_the_same_file_adds_nothing(database: Database, tmp_path: Path) -> None:
    """A second run finds every row already stored: all duplicates, the tables unchanged."""
    path = _write(tmp_path / "doses.csv", GOOD_CSV)
    first = import_file(database, path)
    before = _stored_doses(database)
    second = import_file(database, path)
    assert (first.imported, first.duplicates) == (6, 0)
    assert (second.rows, second.imported, second.duplicates, second.rejected) == (6, 0, 6, 0)
    assert _stored_doses(database) == before
    assert _count(database, persons) == 4


def test_the_same_dose_twice_in_one_file_is_stored_once(database: Database) -> None:
    """A row repeated within one batch is a duplicate, not an error."""
    line = GOOD_CSV.splitlines(keepends=True)[1]
    report = import_lines(database, [HEADER, line, line, line], format="csv")
    assert (report.imported, report.duplicates) == (1, 2)


def test_a_differing_person_keeps_the_stored_one(database: Database) -> None:
    """A later row with other person data lands its dose, leaves the person as stored, and is counted."""
    import_lines(database, GOOD_CSV.splitlines(keepends=True), format="csv")
    other = "001090012345,Nguyen Van Duc,1990-05-17,M,Comirnaty,FK9,2022-01-05,3,HN-002\n"
    report = import_lines(database, [HEADER, other], format="csv")
    assert (report.imported, report.person_conflicts) == (1, 1)
    with database.connect() as conn:
        name = conn.execute(
            sa.select(persons.c.full_name).where(persons.c.citizen_id == "001090012345")
        ).scalar_one()
    assert name == "Nguyễn Văn Đức"


def test_progress_is_reported_after_each_committed_batch(database: Database) -> None:
    """on_progress gets the rows done after every batch and once at the end."""
    seen: list[int] = []
    import_lines(database, generated_rows(25), format="csv", batch_size=10, on_progress=seen.append)
    assert seen == [10, 20, 25]


def test_a_crash_after_some_batches_then_a_rerun_stores_every_row_once(database: Database) -> None:
    """An exception from the progress callback after 3 batches; the re-run adds exactly the missing rows."""

    def crash_after_three_batches(done: int) -> None:
        if done == 30:
            raise RuntimeError("simulated crash")

    with pytest.raises(RuntimeError, match="simulated crash"):
        import_lines(
            database, generated_rows(95), format="csv", batch_size=10, on_progress=crash_after_three_batches
        )
    assert _count(database, doses) == 30
    report = import_lines(database, generated_rows(95), format="csv", batch_size=10)
    assert (report.imported, report.duplicates) == (65, 30)
    assert _count(database, doses) == 95
    assert len(set(_stored_doses(database))) == 95


def test_a_crash_inside_a_batch_rolls_that_batch_back(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure after the third batch's inserts, before its commit, leaves two batches; a re-run completes."""
    real_store = staging.store_batch
    calls = 0

    def failing_store(*args: Any) -> tuple[int, int]:
        nonlocal calls
        calls += 1
        result = real_store(*args)
        if calls == 3:
            raise ConnectionError("connection lost")
        return result

    monkeypatch.setattr(staging, "store_batch", failing_store)
    with pytest.raises(ConnectionError):
        import_lines(database, generated_rows(95), format="csv", batch_size=10)
    assert _count(database, doses) == 20
    assert _count(database, persons) == 10  # the third batch's new persons are gone too
    monkeypatch.setattr(staging, "store_batch", real_store)
    report = import_lines(database, generated_rows(95), format="csv", batch_size=10)
    assert (report.imported, report.duplicates) == (75, 20)
    assert _count(database, doses) == 95


def _children(pid: int) -> set[int]:
    """The processes whose parent is ``pid`` (from /proc)."""
    found = set()
    for stat_path in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat_path.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.add(int(stat_path.parent.name))
    return found


def _gone(pids: set[int], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(Path(f"/proc/{pid}").exists() for pid in pids):
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize(
    ("workers", "writers"), [(0, 1), (2, 1), (2, 2)], ids=["serial", "workers", "two-writers"]
)
def test_kill_9_mid_import_then_a_rerun_stores_every_row_once(
    database: Database, database_url: str, tmp_path: Path, workers: int, writers: int
) -> None:
    """A child killed with SIGKILL mid-import leaves whole batches only (PostgreSQL: COPY batches; two writers:
    whole parts of batches, each stream's a prefix of the file's, at most one batch apart), its validation
    workers die with it; the re-run stores the rest once."""
    if writers > 1 and database.backend != "postgresql":
        pytest.skip("SQLite stores on one connection whatever writers says")
    rows = 30_000
    path = tmp_path / "doses.csv"
    with path.open("w", encoding="utf-8") as f:
        f.writelines(generated_rows(rows))
    argv = [
        sys.executable,
        "-m",
        "tests.pipeline.import_child",
        database_url,
        str(rows),
        "progress",
        str(path),
        str(workers),
        str(writers),
    ]
    helpers: set[int] = set()
    with subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, text=True) as child:
        assert child.stdout is not None
        try:
            for line in child.stdout:
                if int(line) >= 5 * CHILD_BATCH:
                    helpers = _children(child.pid)
                    child.send_signal(signal.SIGKILL)
                    break
        finally:
            child.kill()  # no-op once dead; never leave a child behind on a failed assertion
    assert child.returncode == -signal.SIGKILL
    assert len(helpers) >= workers
    assert _gone(helpers), "validation workers outlived the killed import"
    stored = _count(database, doses)
    assert 5 * CHILD_BATCH <= stored < rows
    committed = _committed_parts(database, writers)
    assert min(committed) >= 5
    assert (
        max(committed) - min(committed) <= 1
    )  # a batch is handed over once every stream committed the one before
    report = import_file(database, path)
    assert (report.imported, report.duplicates) == (rows - stored, stored)
    assert _count(database, doses) == rows


def _committed_parts(database: Database, writers: int) -> list[int]:
    """Per stream, how many of its parts of batches (of :data:`CHILD_BATCH` rows of ``generated_rows``) are
    stored; fails unless each is whole and they are the stream's first ones (committed in file order)."""
    expected: dict[tuple[int, int], int] = {}
    for i in range(30_000):
        citizen_id = f"0010900{i // 2:05d}"
        key = (stream_of(citizen_id, writers), i // CHILD_BATCH)
        expected[key] = expected.get(key, 0) + 1
    found = dict.fromkeys(expected, 0)
    with database.connect() as conn:
        for citizen_id, dose_number in conn.execute(
            sa.select(persons.c.citizen_id, doses.c.dose_number).join(persons)
        ):
            i = 2 * int(citizen_id[-5:]) + dose_number - 1
            found[(stream_of(citizen_id, writers), i // CHILD_BATCH)] += 1
    assert all(found[key] in (0, expected[key]) for key in expected), "a part of a batch was stored in part"
    committed = []
    for stream in range(writers):
        parts = [found[key] == expected[key] for key in sorted(expected) if key[0] == stream]
        count = parts.index(False) if False in parts else len(parts)
        assert not any(parts[count:]), f"stream {stream} committed a part after one it lost"
        committed.append(count)
    return committed


def test_import_streams_200k_rows_in_constant_memory(database: Database, database_url: str) -> None:
    """200 000 generated rows stream through a child process whose peak RSS barely exceeds its RSS after 20 000.

    Held in memory, the parsed rows alone would take over 100 MiB; streaming keeps one batch.
    """
    result = subprocess.run(
        [sys.executable, "-m", "tests.pipeline.import_child", database_url, "200000", "memory"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["imported"] == 200_000
    growth_mib = (figures["peak_kib"] - figures["warm_rss_kib"]) / 1024
    assert growth_mib < 24, figures
    assert _count(database, doses) == 200_000


def test_import_traced_memory_peak_is_one_batch_not_the_file(database: Database) -> None:
    """tracemalloc: 10 000 rows in batches of 100 peak near 1 MiB; held, the parsed rows alone take 5.3 MiB."""
    tracemalloc.start()
    try:
        report = import_lines(database, generated_rows(10_000), format="csv", batch_size=100)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert report.imported == 10_000
    assert peak < 2 * 1024 * 1024, peak


def test_a_file_without_a_required_column_is_refused(database: Database, tmp_path: Path) -> None:
    """A header lacking a ROW_FIELDS column refuses the file: pipeline.bad_import, nothing imported."""
    text = GOOD_CSV.replace("dose_number,", "dose,", 1)
    with pytest.raises(PipelineError) as caught:
        import_file(database, _write(tmp_path / "doses.csv", text))
    assert caught.value.code == "pipeline.bad_import"
    assert "dose_number" in caught.value.message
    assert _count(database, doses) == 0


def test_extra_columns_and_an_id_type_column_are_accepted(database: Database) -> None:
    """Unknown columns are ignored; the optional id_type column is passed to parse_row."""
    lines = [
        "note," + HEADER.rstrip("\n") + ",id_type\n",
        "x,B1234567,Lê Văn Tám,1980,M,Comirnaty,L1,2021-08-01,1,HN-001,OTHER\n",
    ]
    report = import_lines(database, lines, format="csv")
    assert report.imported == 1
    with database.connect() as conn:
        assert conn.execute(sa.select(persons.c.id_type)).scalar_one() == "OTHER"


def test_compressed_files_and_format_detection(database: Database, tmp_path: Path) -> None:
    """.csv.gz and .jsonl.gz are read; an unknown suffix needs an explicit format."""
    with gzip.open(tmp_path / "a.csv.gz", "wt", encoding="utf-8") as f:
        f.write(GOOD_CSV)
    with gzip.open(tmp_path / "b.jsonl.gz", "wt", encoding="utf-8") as f:
        f.write(_as_jsonl(GOOD_CSV))
    assert import_file(database, tmp_path / "a.csv.gz").imported == 6
    assert import_file(database, tmp_path / "b.jsonl.gz").duplicates == 6
    odd = _write(tmp_path / "export.txt", GOOD_CSV)
    with pytest.raises(PipelineError) as caught:
        import_file(database, odd)
    assert caught.value.code == "pipeline.bad_import"
    assert import_file(database, odd, format="csv").duplicates == 6


def test_today_refuses_future_doses(database: Database) -> None:
    """With the caller's today, a dose dated after it is rejected."""
    lines = GOOD_CSV.splitlines(keepends=True)
    report = import_lines(database, lines, format="csv", today=dt.date(2021, 9, 30))
    assert (report.imported, report.rejected) == (3, 3)


def test_empty_inputs(database: Database) -> None:
    """An empty JSONL import does nothing; a CSV without even a header is refused."""
    assert import_lines(database, [], format="jsonl") == ImportReport(
        rows=0, imported=0, duplicates=0, rejected=0
    )
    with pytest.raises(PipelineError, match="no header"):
        import_lines(database, ["\n"], format="csv")


def test_nothing_personal_is_logged(database: Database, caplog: pytest.LogCaptureFixture) -> None:
    """Importing at DEBUG level logs no citizen ID and no name."""
    caplog.set_level("DEBUG")
    import_lines(database, GOOD_CSV.splitlines(keepends=True), format="csv")
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "001090012345" not in logged
    assert "Đức" not in logged


def test_a_runaway_line_is_rejected_without_being_held(database: Database, tmp_path: Path) -> None:
    """A 5 MiB line without a newline is skipped in pieces; the rows after it still land."""
    path = tmp_path / "doses.csv"
    lines = GOOD_CSV.splitlines(keepends=True)
    with path.open("w", encoding="utf-8") as f:
        f.write(lines[0] + lines[1] + "0" * (5 << 20) + "\n" + lines[2])
    rejects_path = tmp_path / "rejects.csv"
    tracemalloc.start()
    try:
        report = import_file(database, path, rejects_path=rejects_path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (report.rows, report.imported, report.rejected) == (3, 2, 1)
    assert peak < 2 << 20, peak
    [reject] = _rejects(rejects_path)
    assert (reject["line"], reject["reason"]) == (
        "3",
        f"a line is longer than {importer.MAX_LINE_CHARS} characters",
    )


# --- issue 9: nothing good lost, nothing bad stored -----------------------------------------------------------


def _good_rows(n: int, *, start: int = 0) -> str:
    return "".join(
        f"001090{start + i:06d},Nguyễn Văn An,1990,M,Comirnaty,L{i},2021-08-01,1,HN-001\n" for i in range(n)
    )


def test_an_unbalanced_quote_rejects_its_line_only_and_keeps_the_rows_after_it(database: Database) -> None:
    """A stray quote at the start of a name used to swallow the following rows; now only its line is lost."""
    text = (
        HEADER
        + _good_rows(10)
        + '001091000001,"Nguyễn Văn An,1990,M,Comirnaty,L1,2021-08-01,1,HN-001\n'
        + _good_rows(3000, start=100)
    )
    report = import_lines(database, text.splitlines(keepends=True), format="csv", batch_size=500)
    assert report.rows == 3011 == text.count("\n") - 1
    assert (report.imported, report.rejected) == (3010, 1)
    assert _count(database, doses) == 3010


def test_rows_read_equals_data_lines_whatever_the_quotes(database: Database) -> None:
    """Quotes opened and never closed on several lines: every non-blank data line is one row read."""
    text = HEADER + '"a,b\n' + _good_rows(2) + 'x,"y\n\n' + _good_rows(2, start=50) + '"\n'
    report = import_lines(database, text.splitlines(keepends=True), format="csv")
    assert report.rows == 7
    assert (report.imported, report.rejected) == (4, 3)


def test_a_jsonl_object_repeating_a_key_is_rejected(database: Database, tmp_path: Path) -> None:
    """JSON keeps the last of two equal keys silently; a dose row with a repeated key is refused instead."""
    row = json.loads(_as_jsonl(HEADER + _good_rows(1)))
    text = json.dumps(row, ensure_ascii=False)[:-1] + ', "lot": "OTHER"}\n'
    rejects_path = tmp_path / "rejects.csv"
    report = import_lines(database, [text], format="jsonl", rejects_path=rejects_path)
    assert (report.rows, report.imported, report.rejected) == (1, 0, 1)
    assert "repeats a key" in _rejects(rejects_path)[0]["reason"]


def test_a_shortened_citizen_id_is_rejected_not_stored_as_another_person(database: Database) -> None:
    """11 digits (a leading zero lost in a spreadsheet) are rejected; the clean import makes one person."""
    short = HEADER + "79185001234,Trần Thị Lan,1985,F,Comirnaty,FK2,2021-08-01,1,HCM-017\n"
    clean = HEADER + "079185001234,Trần Thị Lan,1985,F,Comirnaty,FK2,2021-08-01,1,HCM-017\n"
    assert import_lines(database, short.splitlines(True), format="csv").rejected == 1
    assert import_lines(database, clean.splitlines(True), format="csv").imported == 1
    assert _count(database, persons) == 1


def test_a_reimported_dose_with_another_lot_is_a_conflict_not_a_duplicate(database: Database) -> None:
    """The same natural key with another vaccine or lot is counted as a dose conflict; the stored dose stays."""
    first = HEADER + "001090012345,Nguyễn Văn Đức,1990-05-17,M,Comirnaty,FK1234,2021-08-01,1,HN-001\n"
    again = first + "001090012345,Nguyễn Văn Đức,1990-05-17,M,Comirnaty,FK9999,2021-08-01,1,HN-001\n"
    again += "001090012345,Nguyễn Văn Đức,1990-05-17,M,Spikevax,FK1234,2021-08-01,1,HN-001\n"
    import_lines(database, first.splitlines(True), format="csv")
    report = import_lines(database, again.splitlines(True), format="csv")
    assert (report.rows, report.imported, report.duplicates, report.dose_conflicts) == (3, 0, 1, 2)
    with database.connect() as conn:
        assert conn.execute(sa.select(doses.c.vaccine, doses.c.lot)).all() == [("Comirnaty", "FK1234")]


def test_rejects_file_cells_cannot_run_as_spreadsheet_formulas(database: Database, tmp_path: Path) -> None:
    """A raw row starting with =, +, - or @ is written with a leading quote (CSV injection)."""
    text = HEADER + '=HYPERLINK("http://x"),Nguyễn Văn An,1990,M,Comirnaty,L1,2021-08-01,1,HN-001\n'
    text += "@SUM(1),x\n" + "-2+3,y\n" + "+1,z\n"
    rejects_path = tmp_path / "rejects.csv"
    import_lines(database, text.splitlines(True), format="csv", rejects_path=rejects_path)
    rows = _rejects(rejects_path)
    assert [r["raw"][:2] for r in rows] == ["'=", "'@", "'-", "'+"]
    assert all(not cell.startswith(("=", "+", "-", "@")) for r in rows for cell in r.values())


def test_a_lot_that_a_spreadsheet_would_run_is_refused(database: Database) -> None:
    """A lot starting with =, +, - or @ is rejected like a name would be."""
    text = HEADER + "001090012345,Nguyễn Văn Đức,1990,M,Comirnaty,=1+1,2021-08-01,1,HN-001\n"
    report = import_lines(database, text.splitlines(True), format="csv")
    assert (report.imported, report.rejected) == (0, 1)


def test_a_full_disk_for_the_rejects_file_keeps_the_import_and_says_so(database: Database) -> None:
    """Writing the rejects file to a full disk (/dev/full) neither raises nor loses the good rows."""
    text = HEADER + _good_rows(3) + "bad,row\n"
    report = import_lines(
        database, text.splitlines(True), format="csv", rejects_path=Path("/dev/full"), batch_size=1
    )
    assert (report.rows, report.imported, report.rejected) == (4, 3, 1)
    assert "No space left" in report.rejects_error


def test_a_semicolon_separated_file_is_refused_with_a_hint(database: Database) -> None:
    """A spreadsheet's semicolon CSV gets a message that says so."""
    text = HEADER.replace(",", ";") + "001090012345;Nguyễn Văn Đức;1990;M;Comirnaty;L;2021-08-01;1;HN-001\n"
    with pytest.raises(PipelineError, match="semicolons"):
        import_lines(database, text.splitlines(True), format="csv")


def test_a_file_in_another_encoding_gets_a_hint(database: Database, tmp_path: Path) -> None:
    """A Windows-1258 / Latin-1 file: every row rejected as not UTF-8, and the report says to save it as UTF-8."""
    path = tmp_path / "doses.csv"
    path.write_bytes(
        (HEADER + "001090012345,Tr\xe2n V\xe2n,1990,M,Comirnaty,L,2021-08-01,1,HN-001\n").encode("latin-1")
    )
    report = import_file(database, path)
    assert report.rejected == 1
    assert "UTF-8" in report.hint


def test_two_rows_of_one_new_dose_with_different_lots_are_one_dose_and_one_conflict(
    database: Database,
) -> None:
    """Within one file: the first row lands, the second (same natural key, another lot) is a dose conflict."""
    text = HEADER + "001090012345,Nguyễn Văn Đức,1990-05-17,M,Comirnaty,FK1234,2021-08-01,1,HN-001\n"
    text += "001090012345,Nguyễn Văn Đức,1990-05-17,M,Comirnaty,FK4321,2021-08-01,1,HN-001\n"
    report = import_lines(database, text.splitlines(True), format="csv")
    assert (report.imported, report.duplicates, report.dose_conflicts) == (1, 0, 1)
