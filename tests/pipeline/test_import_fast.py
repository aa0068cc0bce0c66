"""The fast import path on both backends: worker processes, the staging table (PostgreSQL COPY), and a model.

The model is the import's meaning in a dozen lines: rows in file order, each validated by the reference
:func:`parse_row`; the first row of a citizen ID makes the person, the first row of a natural key the dose, every
other valid row is a duplicate, a dose conflict and/or a person conflict. Whatever the batch size and however many
workers validate, the database and the report must be exactly that.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.pipeline.import_child import HEADER
from vaxcred.errors import VaxcredError
from vaxcred.pipeline.errors import PipelineError
from vaxcred.pipeline.records import staging, workers
from vaxcred.pipeline.records.cccd import IdType
from vaxcred.pipeline.records.importer import ImportReport, import_lines
from vaxcred.pipeline.records.model import parse_row
from vaxcred.pipeline.records.reading import csv_cells, parse_header, read_row
from vaxcred.pipeline.records.validation import STAGED_COLUMNS, StagedRow
from vaxcred.storage import Database
from vaxcred.storage.schema import doses, persons, sites

TODAY = dt.date(2023, 1, 8)

# --- a model of the import ------------------------------------------------------------------------------------


def _model(
    lines: list[str],
) -> tuple[ImportReport, dict[str, tuple[str, ...]], dict[tuple[Any, ...], tuple[str, str]]]:
    """(report, persons by citizen ID, doses by natural key) that importing ``lines`` (CSV) into an empty
    database must give."""
    header = parse_header(lines[0])
    people: dict[str, tuple[str, ...]] = {}
    stored: dict[tuple[Any, ...], tuple[str, str]] = {}
    rows = imported = duplicates = rejected = person_conflicts = dose_conflicts = 0
    for number, line in enumerate(lines[1:], start=2):
        src = read_row(number, line, header)
        if src is None:
            continue
        rows += 1
        try:
            if src.fields is None:
                raise ValueError(src.reason)
            row = parse_row(src.fields, today=TODAY)
        except (ValueError, VaxcredError):
            rejected += 1
            continue
        p, d = row.person, row.dose
        person = (p.id_type.value, p.full_name, p.dob.text, p.gender.value)
        person_conflicts += people.setdefault(p.citizen_id, person) != person
        if d.natural_key not in stored:
            stored[d.natural_key] = (d.vaccine, d.lot)
            imported += 1
        elif stored[d.natural_key] != (d.vaccine, d.lot):
            dose_conflicts += 1
        else:
            duplicates += 1
    report = ImportReport(
        rows=rows,
        imported=imported,
        duplicates=duplicates,
        rejected=rejected,
        person_conflicts=person_conflicts,
        dose_conflicts=dose_conflicts,
    )
    return report, people, stored


def _stored(db: Database) -> tuple[dict[str, tuple[str, ...]], dict[tuple[Any, ...], tuple[str, str]]]:
    with db.connect() as conn:
        people = {
            r.citizen_id: (r.id_type, r.full_name, r.dob, r.gender) for r in conn.execute(sa.select(persons))
        }
        rows = conn.execute(
            sa.select(
                persons.c.citizen_id,
                doses.c.dose_number,
                doses.c.date,
                doses.c.site_id,
                doses.c.vaccine,
                doses.c.lot,
            ).join(persons)
        ).all()
    return people, {(cid, n, str(date), site): (vaccine, lot) for cid, n, date, site, vaccine, lot in rows}


def _empty(db: Database) -> None:
    with db.begin() as conn:
        if db.backend == "postgresql":
            # doses, persons and sites are never deleted (migration 0011's triggers refuse it); a test resets them
            # as a superuser would restore a dump: with the triggers off for this transaction
            conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
        for table in (doses, persons, sites):
            conn.execute(sa.delete(table))


# small pools, so that repeated persons, duplicate doses and conflicts are common
_IDS = ("001090012345", "079185001234", "123456789", "048203000111", "001090012346")
_NAMES = ("Nguyễn Văn Đức", "Trần Thị Bích Ngọc", "Lê Hoàng Yến", "Nguyen Van Duc")
_DOBS = ("1990-05-17", "1985", "1972-11", "2003-06-02", "1990")
_GENDERS = ("M", "F", "Nữ", "")
_VACCINES = ("Comirnaty", "AstraZeneca", "Vero Cell", "Spikevax", "NoSuchVaccine")
_LOTS = ("FK1", "FK2", '"AB,1"', "\\N", "=1+1", "a\\.b")
_DATES = ("2021-08-01", "2021-09-01", "2024-01-01", "2021-02-30")
_SITES = ("HN-001", "DN-003", "HCM-017")
_GARBAGE = ("", "   ", "too,few,cells", '"unbalanced,quote', "x" * 300, "001090012345,\x00,1990,M,a,b,c,1,d")

_good_line = st.tuples(
    st.sampled_from(_IDS),
    st.sampled_from(_NAMES),
    st.sampled_from(_DOBS),
    st.sampled_from(_GENDERS),
    st.sampled_from(_VACCINES),
    st.sampled_from(_LOTS),
    st.sampled_from(_DATES),
    st.sampled_from(("1", "2", "3", "0")),
    st.sampled_from(_SITES),
).map(lambda cells: ",".join(cells) + "\n")
_line = st.one_of(_good_line, _good_line, _good_line, st.sampled_from(_GARBAGE).map(lambda text: text + "\n"))


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    body=st.lists(_line, max_size=40),
    batch_size=st.integers(1, 9),
    workers=st.sampled_from((0, 1, 2)),
    writers=st.sampled_from((1, 2)),
    twice=st.booleans(),
)
def test_the_fast_path_stores_what_the_model_says(
    database: Database, body: list[str], batch_size: int, workers: int, writers: int, twice: bool
) -> None:
    """Random files with bad rows mixed in, any batch size, 0–2 workers, 1–2 writers (PostgreSQL; SQLite stores
    on one): the stored persons and doses and the report are the model's; a second import of the same file adds
    nothing and reports every good row."""
    _empty(database)
    lines = [HEADER, *body]
    expected, people, stored = _model(lines)
    options: dict[str, Any] = {
        "batch_size": batch_size,
        "workers": workers,
        "writers": writers,
        "today": TODAY,
    }
    report = import_lines(database, lines, format="csv", **options)
    assert report == expected
    assert _stored(database) == (people, stored)
    if twice:
        again = import_lines(database, lines, format="csv", **options)
        assert (again.rows, again.imported, again.rejected) == (expected.rows, 0, expected.rejected)
        assert again.duplicates + again.dose_conflicts == expected.rows - expected.rejected
        assert _stored(database) == (people, stored)


def test_workers_give_the_same_rejects_file_as_the_serial_path(database: Database, tmp_path: Path) -> None:
    """The rejects file (lines, fields, codes, reasons, raw) is the same, in file order, with 2 workers."""
    body = [f"00109001{i:04d},Nguyễn Văn An,1990,M,Comirnaty,L{i},2021-08-01,1,HN-001\n" for i in range(300)]
    for i in range(0, 300, 7):
        body[i] = body[i].replace("Comirnaty", "Sputnk") if i % 2 else '"' + body[i]
    paths = []
    for n in (0, 2):
        _empty(database)
        paths.append(tmp_path / f"rejects-{n}.csv")
        report = import_lines(
            database, [HEADER, *body], format="csv", rejects_path=paths[-1], batch_size=25, workers=n
        )
        assert (report.rows, report.rejected) == (300, 43)
    assert paths[0].read_bytes() == paths[1].read_bytes()
    assert paths[0].read_text(encoding="utf-8").count("\n") == 44


def test_workers_read_json_lines_as_the_serial_path_does(database: Database, tmp_path: Path) -> None:
    """JSON Lines with workers: the same report and byte-identical rejects (repeated keys, bad JSON, non-objects,
    a non-UTF-8 line, numbers as numbers)."""
    good = [
        json.dumps(
            {
                "citizen_id": f"00109001{i:04d}",
                "full_name": "Nguyễn Văn An",
                "dob": None,
                "gender": "M",
                "vaccine": "Comirnaty",
                "lot": f"L{i}",
                "date": "2021-08-01",
                "dose_number": 1 + i % 2,
                "site_id": "HN-001",
            },
            ensure_ascii=False,
        )
        for i in range(120)
    ]
    bad = ['{"citizen_id": "1", "citizen_id": "2"}', "{not json", "[1, 2]", "\udcff\udcfe", '"text"']
    lines = [line + "\n" for line in good]
    for i, line in enumerate(bad):
        lines.insert(i * 23, line + "\n")
    reports = []
    for n in (0, 2):
        _empty(database)
        reports.append(
            import_lines(
                database, lines, format="jsonl", rejects_path=tmp_path / f"r{n}.csv", batch_size=17, workers=n
            )
        )
    assert reports[0] == dataclasses.replace(reports[1], rejects_path=reports[0].rejects_path)
    assert (reports[0].rows, reports[0].imported, reports[0].rejected) == (125, 120, 5)
    assert (tmp_path / "r0.csv").read_bytes() == (tmp_path / "r2.csv").read_bytes()


def test_a_worker_that_dies_stops_the_import_after_the_stored_batches(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A validation worker killed mid-import: pipeline.import_worker_failed, whole batches stored before it;
    a re-run stores the rest once."""
    real = workers.validate_chunk

    def dying(chunk: Any, **kwargs: Any) -> Any:
        if chunk.first_line > 400:
            os._exit(3)  # the worker process (forked: it runs this patched function)
        return real(chunk, **kwargs)

    body = [f"00109001{i:04d},Nguyễn Văn An,1990,M,Comirnaty,L{i},2021-08-01,1,HN-001\n" for i in range(500)]
    monkeypatch.setattr(workers, "validate_chunk", dying)
    with pytest.raises(PipelineError) as caught:
        import_lines(database, [HEADER, *body], format="csv", batch_size=50, workers=2)
    assert caught.value.code == "pipeline.import_worker_failed"
    assert "exit code 3" in caught.value.message
    monkeypatch.setattr(workers, "validate_chunk", real)
    with database.connect() as conn:
        stored = conn.execute(sa.select(sa.func.count()).select_from(doses)).scalar_one()
    assert 0 < stored < 500
    assert stored % 50 == 0
    report = import_lines(database, [HEADER, *body], format="csv", batch_size=50, workers=2)
    assert (report.imported, report.duplicates) == (500 - stored, stored)


# --- the staging table: hostile cell content, both backends (PostgreSQL: COPY) -------------------------------


def _staged(cid: str, name: str, lot: str, *, site: str = "HN-001") -> StagedRow:
    return (cid, IdType.OTHER.value, name, "1990", "M", None, "Comirnaty", lot, "2021-08-01", 1, site)


HOSTILE = (
    "tab\there",
    "line\nbreak",
    "carriage\rreturn",
    "back\\slash",
    "\\N",
    "\\.",
    "end\\.\n\\.",
    '"quoted", "cells"',
    "semi;colon,comma",
    "ünïcødé ếẫ 𝔘",
    "x" * 64,
)


def test_hostile_cells_go_through_the_staging_table_unchanged(database: Database) -> None:
    """Tabs, line breaks, backslashes, COPY's \\N and \\. markers, quotes, long values: stored exactly."""
    rows = [_staged(f"H{i:04d}", "N" * 200 if i == 0 else value, value) for i, value in enumerate(HOSTILE)]
    with database.writer() as conn:
        staging.prepare(conn)
        with conn.begin():
            counts = staging.store_batch(conn, rows)
    assert counts == staging.BatchCounts(len(HOSTILE), 0, 0)
    with database.connect() as conn:
        got = dict(conn.execute(sa.select(persons.c.citizen_id, persons.c.full_name)).all())
        lots = dict(conn.execute(sa.select(persons.c.citizen_id, doses.c.lot).join(doses)).all())
    assert got == {row[0]: row[2] for row in rows}
    assert lots == {row[0]: row[7] for row in rows}


def test_the_conflicts_of_a_batch_of_new_doses_are_counted_on_every_path(database: Database) -> None:
    """A batch every row of which stores a new dose (SQLite counts its person conflicts from ``persons`` alone,
    PostgreSQL from the batch) and a batch meeting stored doses (both compare with the stored rows): a person's
    later row with another name counts as a person conflict in both, a stored key with another lot as a dose
    conflict."""
    first = [
        _staged("C0001", "First Name", "L1"),
        (*_staged("C0001", "Other Name", "L2")[:9], 2, "HN-001"),  # a new dose, the person differs
        _staged("C0002", "Second Name", "L3"),
    ]
    again = [
        _staged("C0001", "First Name", "L9"),  # stored key, another lot
        _staged("C0003", "Third Name", "L4"),
        _staged("C0002", "Not Second", "L3", site="HN-002"),  # a new dose, the stored person differs
    ]
    with database.writer() as conn:
        staging.prepare(conn)
        with conn.begin():
            assert staging.store_batch(conn, first) == staging.BatchCounts(3, 1, 0)
        with conn.begin():
            assert staging.store_batch(conn, again) == staging.BatchCounts(2, 1, 1)
        with conn.begin():
            assert staging.store_batch(conn, [_staged("C0004", "Fourth", "L5")]) == staging.BatchCounts(
                1, 0, 0
            )


@pytest.mark.parametrize("bad", ["nul", "out_of_range"])
def test_a_cell_postgresql_refuses_fails_the_batch_without_quoting_the_row(
    database: Database, bad: str
) -> None:
    """A NUL (refused by psycopg) or a dose number out of smallint range (refused by the server's COPY, whose
    CONTEXT line quotes the row): the error keeps no row value, the batch rolls back. (parse_row refuses such
    cells first; this guards the store itself.)"""
    if database.backend != "postgresql":
        pytest.skip("SQLite holds NUL and any integer")
    second = _staged("H0002", "Nul\x00Name", "L2")
    if bad == "out_of_range":
        second = (*_staged("H0002", "Other Name", "L2")[:9], 99_999, "HN-001")
    rows = [_staged("H0001", "Secret Name", "L1"), second]
    with database.writer() as conn:
        staging.prepare(conn)
        with pytest.raises(sa.exc.DBAPIError) as caught, conn.begin():
            staging.store_batch(conn, rows)
    text = str(caught.value) + "".join(str(arg) for arg in caught.value.orig.args)
    for secret in ("Secret", "H000", "Nul", "line 2", "Other"):
        assert secret not in text
    if bad == "out_of_range":
        assert "SQLSTATE 22003" in text  # numeric_value_out_of_range, details withheld
    with database.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(persons)).scalar_one() == 0


def test_hostile_lots_import_through_a_csv_file_unchanged(database: Database) -> None:
    """Lots that COPY's text format must escape (\\N, \\., quotes, commas) land exactly as written."""
    lots = ["\\N", "\\.", 'A"B', "C,D", "E\\F"]
    body = [
        f"00109001{i:04d},Nguyễn Văn An,1990,M,Comirnaty,{_csv_cell(lot)},2021-08-01,1,HN-001\n"
        for i, lot in enumerate(lots)
    ]
    report = import_lines(database, [HEADER, *body], format="csv", workers=1)
    assert (report.imported, report.rejected) == (5, 0)
    with database.connect() as conn:
        assert sorted(conn.execute(sa.select(doses.c.lot)).scalars()) == sorted(lots)


def _csv_cell(value: str) -> str:
    return '"' + value.replace('"', '""') + '"' if re.search(r'[",]', value) else value


def test_the_staging_statements_name_the_staged_columns_in_order() -> None:
    """COPY and the SQLite insert list the columns in STAGED_COLUMNS order (the rows are positional)."""
    for statement in (staging._PG_COPY, staging._SQLITE_STAGE):
        listed = re.search(r"\(([a-z_, ]+)\)", statement)
        assert listed is not None
        assert tuple(name.strip() for name in listed.group(1).split(",")) == STAGED_COLUMNS


# --- reading: the fast CSV split ------------------------------------------------------------------------------


@settings(max_examples=300)
@given(st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=60))
def test_the_fast_csv_split_agrees_with_csv_reader(line: str) -> None:
    """A line without quotes, CR, LF or NUL: str.split gives exactly csv.reader's cells; other lines go
    through csv.reader itself."""
    try:
        expected: list[str] | None = next(csv.reader([line], strict=True))
    except (csv.Error, StopIteration):
        expected = None
    got = csv_cells(line)
    if expected is not None:
        assert got == expected
    else:
        assert isinstance(got, str)
        assert got.startswith("malformed CSV")
