"""PostgreSQL imports on two connections (streams split by citizen ID): the same result as one, both stores at once,
errors in one stream, ^C during both, sites new to both streams."""

from __future__ import annotations

import dataclasses
import random
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.pipeline.import_child import HEADER, generated_rows
from tests.pipeline.pg import PostgresCluster
from tests.pipeline.test_import_overlap import OVERLAP_TIMEOUT, STORE_THREAD, Counted, _nothing_left_running
from vaxcred.pipeline.errors import PipelineError
from vaxcred.pipeline.records import importer, staging, workers
from vaxcred.pipeline.records.importer import ImportReport, default_writers, import_file, import_lines
from vaxcred.pipeline.records.streams import StreamWriters, split_by_stream, stream_of
from vaxcred.pipeline.records.validation import ChunkResult, StagedRow
from vaxcred.pipeline.records.workers import IMPORT_WORKER_FAILED
from vaxcred.pipeline.records.writer import BatchWriter
from vaxcred.storage import Database, open_database
from vaxcred.storage.schema import doses, persons, sites


@pytest.fixture
def pg_pair(pg_cluster: PostgresCluster) -> Iterator[tuple[Database, Database]]:
    """Two migrated databases on the throwaway PostgreSQL cluster (one import each, to compare)."""
    urls = [pg_cluster.create_database() for _ in range(2)]
    dbs = [open_database(url) for url in urls]
    try:
        for db in dbs:
            db.migrate()
        yield dbs[0], dbs[1]
    finally:
        for db, url in zip(dbs, urls, strict=True):
            db.dispose()
            pg_cluster.drop_database(url)


@pytest.fixture
def pg_database(pg_pair: tuple[Database, Database]) -> Database:
    return pg_pair[0]


def _tables(db: Database) -> tuple[list[Any], ...]:
    """Every stored person, dose and site, without the generated IDs (two streams number persons differently)."""
    person_columns = [c for c in persons.c if c.name != "id"]
    dose_columns = [c for c in doses.c if c.name not in ("id", "person_id")]
    with db.connect() as conn:
        return (
            sorted(conn.execute(sa.select(*person_columns)).all()),
            sorted(conn.execute(sa.select(persons.c.citizen_id, *dose_columns).join(persons)).all()),
            sorted(conn.execute(sa.select(sites)).all()),
        )


def _count(db: Database, table: sa.Table) -> int:
    with db.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


_IDS = (*(f"0010900{n:05d}" for n in range(30)), "123456789", "048203000111")
_GARBAGE = (
    "too,few,cells",
    '"unbalanced,quote',
    "0010900,Nguyễn Văn Đức,1990-05-17,M,Comirnaty,FK,2021-08-01,1,X",
)


def _messy_file(seed: int, rows: int) -> list[str]:
    """A CSV of ``rows`` rows over few citizen IDs: repeated persons across batches and streams, person fields
    that conflict, doses repeated with another vaccine or lot, new sites all along, bad rows."""
    rng = random.Random(seed)
    lines = [HEADER]
    for i in range(rows):
        if rng.random() < 0.05:
            lines.append(rng.choice(_GARBAGE) + "\n")
            continue
        citizen_id = rng.choice(_IDS)
        name = rng.choice(("Nguyễn Văn Đức", "Nguyễn Văn Đức", "Trần Văn Bình"))
        dob = "1990-05-17" if citizen_id.startswith("0010") else rng.choice(("1985", "1972-11"))
        vaccine, lot = rng.choice(("Comirnaty", "Spikevax")), rng.choice(("FK1", "FK2"))
        date, number = rng.choice(("2021-08-01", "2021-09-01", "2022-01-15")), rng.randint(1, 3)
        site = rng.choice(("HN-001", "DN-003", f"HCM-{i // 40:03d}"))
        lines.append(f"{citizen_id},{name},{dob},M,{vaccine},{lot},{date},{number},{site}\n")
    return lines


def _import(db: Database, lines: list[str], writers: int, tmp_path: Path, **kwargs: Any) -> ImportReport:
    return import_lines(
        db,
        lines,
        format="csv",
        rejects_path=tmp_path / f"rejects-{writers}.csv",
        batch_size=23,
        writers=writers,
        **kwargs,
    )


def test_the_messy_file_reaches_both_streams() -> None:
    """The fixtures below test two streams only if the file's persons fall in both."""
    assert {stream_of(citizen_id, 2) for citizen_id in _IDS} == {0, 1}


@pytest.mark.parametrize("validators", [0, 2], ids=["here", "workers"])
def test_two_writers_store_exactly_what_one_writer_stores(
    pg_pair: tuple[Database, Database], tmp_path: Path, validators: int
) -> None:
    """A file with persons repeated across batches and streams, conflicting person fields, rejects, then a
    re-import of another file repeating its keys with other vaccines and lots: the same tables (persons, doses,
    sites), the same reports and byte-identical rejects files with one writer and with two."""
    one, two = pg_pair
    first, second = _messy_file(1, 700), _messy_file(2, 700)
    for lines in (first, second):
        reports = [
            _import(db, lines, writers, tmp_path, workers=validators) for db, writers in ((one, 1), (two, 2))
        ]
        assert reports[0] == dataclasses.replace(reports[1], rejects_path=reports[0].rejects_path)
        rejects = [(tmp_path / f"rejects-{n}.csv").read_bytes() for n in (1, 2)]
        assert rejects[0] == rejects[1]
        assert _tables(one) == _tables(two)
    last = reports[1]
    assert min(last.person_conflicts, last.dose_conflicts, last.duplicates, last.rejected, last.imported) > 0
    _nothing_left_running()


def test_the_rows_of_a_batch_keep_their_order_in_each_stream() -> None:
    """split_by_stream: every row in the stream of its citizen ID, file order kept; one stream takes all."""
    rows: list[StagedRow] = [
        (citizen_id, "CCCD", "A", "1990", "M", None, "Comirnaty", f"L{n}", "2021-08-01", 1, "HN-001")
        for n, citizen_id in enumerate(_IDS * 2)
    ]
    parts = split_by_stream(rows, 2)
    assert sorted(row for part in parts for row in part) == sorted(rows)
    for stream, part in enumerate(parts):
        assert part == [row for row in rows if stream_of(row[0], 2) == stream]
    assert split_by_stream(rows, 1) == [rows]


def test_a_batch_is_collected_from_every_stream_before_the_next_is_submitted(pg_database: Database) -> None:
    """StreamWriters holds one batch at a time: submitting again before every stream's part was collected is a
    caller's bug; the batch comes back once, its counts summed over the streams."""
    rows: list[StagedRow] = [
        (f"0010900{n:05d}", "CCCD", "A", "1990", "M", "001", "Comirnaty", "L", "2021-08-01", 1, "HN-001")
        for n in range(8)
    ]
    with pg_database.writer() as first, pg_database.writer() as second:
        for conn in (first, second):
            staging.prepare(conn)
        with BatchWriter(first, shared_sites=True) as a, BatchWriter(second, shared_sites=True) as b:
            writers = StreamWriters([a, b])
            assert writers.collect(wait=True) is None
            writers.submit(rows, 8)
            with pytest.raises(RuntimeError, match="not collected"):
                writers.submit(rows, 8)
            stored = writers.collect(wait=True)
            assert stored is not None
            assert (stored.counts.inserted, stored.rows_done) == (8, 8)
            assert writers.collect(wait=True) is None


def test_writers_must_be_one_or_more(pg_database: Database) -> None:
    """writers=0 is a caller's bug, refused before anything is read."""
    with pytest.raises(ValueError, match="writers"):
        import_lines(pg_database, generated_rows(3), format="csv", writers=0)


def test_stream_of_is_stable() -> None:
    """The stream of a citizen ID is CRC-32 of its bytes: the same in every process and run (not Python's
    salted hash), pinned here."""
    assert [stream_of(f"0010900{n:05d}", 2) for n in range(8)] == [0, 0, 0, 0, 1, 1, 1, 1]
    assert stream_of("001090000005", 3) == zlib.crc32(b"001090000005") % 3


#: 20 ms per site inserted: the window in which two streams inserting the same sites in different orders deadlock
_SLOW_SITES = """
CREATE FUNCTION slow_site() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(0.02); RETURN NEW; END $$;
CREATE TRIGGER slow_site BEFORE INSERT ON sites FOR EACH ROW EXECUTE FUNCTION slow_site()
"""


def test_sites_new_to_both_streams_in_every_batch_do_not_deadlock(pg_database: Database) -> None:
    """Every batch brings four new sites, each used by persons of both streams, met in opposite orders by the
    two (both insert each; one waits for the other's commit; a trigger makes each insert slow): the import ends
    without a deadlock error (inserting in the order met, it fails), every dose and site stored."""
    persons_by_stream: dict[int, list[str]] = {0: [], 1: []}
    for n in range(200):
        citizen_id = f"0010900{n:05d}"
        persons_by_stream[stream_of(citizen_id, 2)].append(citizen_id)
    lines = [HEADER]
    batches, batch = 12, 16
    for b in range(batches):
        for r in range(batch):
            citizen_id = persons_by_stream[r % 2][(b * batch + r) // 2 % 80]
            # four new sites a batch, met by stream 0 in one order and by stream 1 in the other
            site = f"Z{b:03d}-{(r // 2 % 4 if r % 2 == 0 else 3 - r // 2 % 4):03d}"
            lines.append(
                f"{citizen_id},Nguyễn Văn Đức,1990-05-17,M,Comirnaty,FK1,2021-08-01,{b % 9 + 1},{site}\n"
            )
    with pg_database.begin() as conn:  # each new site takes a while: the two streams' inserts overlap
        conn.exec_driver_sql(_SLOW_SITES)
    report = import_lines(pg_database, lines, format="csv", batch_size=batch, writers=2)
    assert report.rejected == 0
    assert report.imported + report.duplicates == batches * batch
    assert _count(pg_database, sites) == batches * 4
    _nothing_left_running()


def test_both_streams_store_at_once(pg_database: Database) -> None:
    """Stream 0's store waits on a lock (another session inserted, uncommitted, one of its persons) while
    stream 1 commits its part of the same batch; stored one after the other, stream 1 would wait in vain."""
    lines = list(generated_rows(40))
    ids = sorted({line.split(",", 1)[0] for line in lines[1:]})
    blocked = next(cid for cid in ids if stream_of(cid, 2) == 0)
    other_doses = sum(2 for cid in ids if stream_of(cid, 2) == 1)
    holder = pg_database.engine.raw_connection()
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(import_lines(pg_database, lines, format="csv", batch_size=100, writers=2))
        except BaseException as e:
            outcome.append(e)

    importing = threading.Thread(target=run)
    try:
        holder.cursor().execute(
            "INSERT INTO persons (citizen_id, id_type, full_name, dob, gender) VALUES (%s, 'CCCD', 'X', '', '')",
            (blocked,),
        )
        importing.start()
        deadline = time.monotonic() + OVERLAP_TIMEOUT
        while _count(pg_database, doses) < other_doses and time.monotonic() < deadline:
            time.sleep(0.05)
        committed_while_blocked = _count(pg_database, doses)
    finally:
        holder.rollback()  # stream 0's insert goes on
        importing.join()
        holder.close()
    assert committed_while_blocked == other_doses, "stream 1 did not commit while stream 0 was blocked"
    (report,) = outcome
    assert isinstance(report, ImportReport), report
    assert report.imported == 40
    _nothing_left_running()


def test_a_store_failing_in_one_stream_keeps_the_other_streams_part(
    pg_database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stream 1's part of batch 3 fails: the import raises it after batches 1-2 and stream 0's part of batch 3
    committed (waited for), nothing stored after, nothing running on; the re-run stores exactly the rest."""
    real_store = staging.store_batch
    calls = {0: 0, 1: 0}
    stream0_batch3 = 0

    def failing_store(conn: Any, rows: list[StagedRow], *more: Any) -> Any:
        nonlocal stream0_batch3
        stream = stream_of(rows[0][0], 2)
        calls[stream] += 1
        result = real_store(conn, rows, *more)
        if calls[stream] == 3:
            if stream == 1:
                raise ConnectionError("connection lost")
            stream0_batch3 = len(rows)
        return result

    monkeypatch.setattr(staging, "store_batch", failing_store)
    lines = Counted(2_000)
    with pytest.raises(ConnectionError, match="connection lost"):
        import_lines(pg_database, lines, format="csv", batch_size=20, writers=2)
    assert calls == {0: 3, 1: 3}
    assert stream0_batch3 > 0
    assert lines.taken < 200, lines.taken
    assert _count(pg_database, doses) == 40 + stream0_batch3
    _nothing_left_running()
    monkeypatch.setattr(staging, "store_batch", real_store)
    report = import_lines(pg_database, generated_rows(2_000), format="csv", batch_size=20, writers=2)
    assert (report.imported, report.duplicates) == (2_000 - 40 - stream0_batch3, 40 + stream0_batch3)


def test_a_failed_worker_lets_both_streams_commit_the_batch_being_stored(
    pg_database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A validation worker failing on batch 3: the import raises its failure after both streams committed
    batches 1 and 2, and stops its threads and workers."""
    real_validate = workers.validate_chunk

    def failing_on_batch_3(chunk: Any, **kwargs: Any) -> ChunkResult:
        if chunk.first_line >= 42:  # batch 3 starts at line 42 (header, then 20 rows a batch)
            raise ValueError("a bug")
        return real_validate(chunk, **kwargs)

    monkeypatch.setattr(workers, "validate_chunk", failing_on_batch_3)  # forked: the workers see it
    with pytest.raises(PipelineError) as raised:
        import_lines(pg_database, generated_rows(200), format="csv", batch_size=20, workers=2, writers=2)
    assert raised.value.code == IMPORT_WORKER_FAILED
    assert _count(pg_database, doses) == 40
    _nothing_left_running()


def test_progress_with_two_writers_comes_after_both_parts_in_order(pg_database: Database) -> None:
    """on_progress, in the calling thread, once per batch once both streams committed their parts, in order."""
    seen: list[tuple[int, int]] = []

    def on_progress(done: int) -> None:
        seen.append((done, threading.get_ident()))
        assert _count(pg_database, doses) == done

    import_lines(
        pg_database, generated_rows(50), format="csv", batch_size=20, on_progress=on_progress, writers=2
    )
    assert seen == [(20, threading.get_ident()), (40, threading.get_ident()), (50, threading.get_ident())]


def test_an_on_progress_that_raises_stops_both_streams_after_its_batch(pg_database: Database) -> None:
    """on_progress raising after the second batch: exactly two batches stored (both streams' parts), the
    third never handed over."""

    def crash(done: int) -> None:
        if done == 40:
            raise RuntimeError("simulated crash")

    with pytest.raises(RuntimeError, match="simulated crash"):
        import_lines(
            pg_database, generated_rows(200), format="csv", batch_size=20, on_progress=crash, writers=2
        )
    assert _count(pg_database, doses) == 40
    _nothing_left_running()


def test_import_file_stores_a_large_file_on_two_postgresql_connections(
    pg_database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """default_writers: two on PostgreSQL for a file validated in workers, one for a small file, one on SQLite;
    import_file opens that many store connections."""
    path = tmp_path / "doses.csv"
    path.write_text("".join(generated_rows(100)), encoding="utf-8")
    assert default_writers(pg_database, path) == 1  # small: validated here, one writer
    monkeypatch.setattr(importer, "PARALLEL_MIN_BYTES", 1)
    if importer.default_workers(path) == 0:
        pytest.skip("one core: no workers, one writer")
    assert default_writers(pg_database, path) == 2
    sqlite = open_database(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        assert default_writers(sqlite, path) == 1
    finally:
        sqlite.dispose()
    threads: set[int] = set()
    real_store = staging.store_batch

    def recording_store(conn: Any, rows: list[StagedRow], *more: Any) -> Any:
        assert threading.current_thread().name == STORE_THREAD
        threads.add(id(conn))
        return real_store(conn, rows, *more)

    monkeypatch.setattr(staging, "store_batch", recording_store)
    report = import_file(pg_database, path, batch_size=20, workers=0)
    assert report.imported == 100
    assert len(threads) == 2
