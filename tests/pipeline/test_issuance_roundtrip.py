"""Central issuance on PostgreSQL stores a batch and claims the next in one round trip
(vaxcred.pipeline.issuance.roundtrip), counted at the protocol level; and its server-side re-check refuses what
changed while the batch was being signed, on both backends."""

from __future__ import annotations

import contextlib
import datetime as dt
import re
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from psycopg import pq

from tests.pipeline.issuance_child import NOW
from tests.pipeline.pg import PostgresCluster
from tests.pipeline.test_issuance import (
    Chain,
    _MeddlingIssuer,
    _person_id,
    active_passports,
    assert_exactly_one_each,
    chain,  # noqa: F401 - fixture
    issue,
    plan,
    populate,
)
from vaxcred.pipeline import log
from vaxcred.pipeline.issuance import Reason, run_issuance
from vaxcred.pipeline.issuance.roundtrip_sql import CALL, FUNCTION
from vaxcred.pipeline.issuance.stage import IssuanceReport
from vaxcred.storage import Database, open_database
from vaxcred.storage.database import driver_errors
from vaxcred.storage.schema import doses, issuance_log, registry_checks

#: a round trip is one exchange the client ends and waits on: a simple Query, or an extended-protocol Sync
_ROUND_TRIP = re.compile(r"^F\t\d+\t(Query|Sync)\b", re.MULTILINE)


def _traced_run(url: str, keys: Chain, folder: Path, **options: Any) -> tuple[int, IssuanceReport]:
    """Run issuance on ``url`` with libpq tracing every connection the run opens, each into a file of its own
    (psycopg's automatic prepared statements off: a statement's first PREPARE is one extra exchange, once per
    connection); (round trips, report)."""
    folder.mkdir()
    db = open_database(url, connect_args={"prepare_threshold": None})
    with contextlib.ExitStack() as files:

        @sa.event.listens_for(db.engine, "connect")
        def _trace(dbapi_connection: Any, _record: Any) -> None:
            out = files.enter_context((folder / f"{len(list(folder.iterdir()))}.trace").open("w"))
            dbapi_connection.pgconn.trace(out.fileno())
            dbapi_connection.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS)

        try:
            report = issue(db, keys, **options)
        finally:
            db.dispose()  # closes the connections: their traces are complete
    trips = sum(len(_ROUND_TRIP.findall(path.read_text())) for path in folder.iterdir())
    return trips, report


def test_each_batch_costs_one_round_trip_on_postgresql(
    pg_cluster: PostgresCluster,
    chain: Chain,  # noqa: F811
    tmp_path: Path,
) -> None:
    """The same eight people issued in one batch and in eight batches: the seven extra batches cost exactly
    seven more round trips (each call stores a batch and claims the next), and both runs issue everyone."""
    people = [plan(4 * k) for k in range(8)]  # one site: its certificate is read once in either run
    counts = {}
    for batch_size in (8, 1):
        url = pg_cluster.create_database()
        try:
            db = open_database(url)
            db.migrate()
            populate(db, chain, people)
            db.dispose()
            counts[batch_size], report = _traced_run(
                url, chain, tmp_path / f"{batch_size}.trace", batch_size=batch_size
            )
        finally:
            pg_cluster.drop_database(url)
        assert report.issued == 8
    assert counts[1] - counts[8] == 7, counts


def passport_entries_as_stored(db: Database) -> int:
    """Assert that every passport's log entry is the one its stored rows give and that the log has no gap;
    returns the number of passport entries."""
    with db.connect() as conn:
        logged = dict(
            conn.execute(
                sa.select(issuance_log.c.object_id, issuance_log.c.entry).where(
                    issuance_log.c.kind == log.Kind.PASSPORT.value
                )
            ).all()
        )
        assert logged == log.build_entries(conn, log.Kind.PASSPORT, list(logged))
        assert sorted(conn.execute(sa.select(issuance_log.c.seq)).scalars()) == list(
            range(log.log_size(conn))
        )
    return len(logged)


def _withdraw_a_dose(db: Database, person_id: int) -> Any:
    def withdraw(now: dt.datetime) -> None:
        with db.begin() as conn:
            dose = conn.execute(sa.select(sa.func.min(doses.c.id)).where(doses.c.person_id == person_id))
            conn.execute(doses.update().where(doses.c.id == dose.scalar_one()).values(withdrawn_at=now))

    return withdraw


def _check_again(db: Database, person_id: int) -> Any:
    def check(now: dt.datetime) -> None:
        with db.begin() as conn:
            conn.execute(
                registry_checks.insert().values(
                    person_id=person_id, checked_at=now, status="VERIFIED", source="a newer check"
                )
            )

    return check


@pytest.mark.parametrize("meddle", [_withdraw_a_dose, _check_again], ids=["dose-withdrawn", "newer-check"])
def test_a_record_changed_while_signing_is_not_issued(
    database: Database,
    chain: Chain,  # noqa: F811
    meddle: Any,
) -> None:
    """A dose withdrawn, or a newer registry check stored, while the batch is being signed: that person gets no
    passport (record.changed), nor a log entry; the others of the batch do, each with its entry."""
    people = [plan(i) for i in range(5)]
    populate(database, chain, people)
    victim = _person_id(database, people[1])

    report = run_issuance(
        database,
        lambda: _MeddlingIssuer(chain, meddle(database, victim)),
        now=NOW,
        site_ca=chain.site_ca.certificate,
    )

    assert (report.issued, dict(report.reasons)) == (4, {Reason.RECORD_CHANGED: 1})
    assert people[1].citizen_id not in active_passports(database)
    assert passport_entries_as_stored(database) == 4
    assert_exactly_one_each(database, [p for p in people if p is not people[1]])


_ARRAY_SAMPLES: dict[str, list[list[Any]]] = {
    "bigint[]": [[], [None], [None, None], [1, None, 2**62], [7], list(range(40_000, 40_003))],
    "text[]": [
        [],
        [None],
        ['HC1:6BF "quoted" \\ back, {braces} ', "Nguyễn Văn An", ""],
        ["URN:UVCI:01:VN:BYT/A#1"],
    ],
    "bytea[]": [[], [None], [b'\x00\\"{,} NULL', b"", bytes(range(256))]],
    "timestamptz[]": [
        [],
        [None],
        [
            dt.datetime(2022, 1, 1, tzinfo=dt.UTC),
            dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC),
        ],
        [dt.datetime(1970, 1, 1, 7, 0, 0, 1, tzinfo=dt.timezone(dt.timedelta(hours=7)))],
    ],
}


def test_the_batch_calls_binary_array_parameters_arrive_unchanged(pg_cluster: PostgresCluster) -> None:
    """Every array parameter of the batch call, sent in binary with its cast as CALL sends it, arrives as the
    values given: empty, NULLs only, quotes, backslashes, braces, non-ASCII, NUL bytes, large ids, offsets."""
    casts = re.findall(r"%b::(\w+\[\])", CALL)
    assert len(casts) == 16, CALL
    assert "%s::" not in CALL
    url = pg_cluster.create_database()
    try:
        db = open_database(url)
        try:
            with db.engine.connect() as conn, driver_errors(conn) as raw:
                for cast in sorted(set(casts)):
                    for values in _ARRAY_SAMPLES[cast]:
                        got = raw.execute(f"SELECT %b::{cast}", (values,)).fetchone()  # type: ignore[call-overload]
                        assert got is not None
                        assert got[0] == values, (cast, values, got)
        finally:
            db.dispose()
    finally:
        pg_cluster.drop_database(url)


_ROW_SAMPLES: dict[str, list[str]] = {
    "text": ["NULL", "'Nguyễn Văn An'", "''"],
    "bigint": ["NULL", "9223372036854775807", "1"],
    "integer": ["NULL", "2147483647", "0"],
    "date": ["NULL", "'2021-08-01'", "'0001-01-01'", "'9999-12-31'"],
    "bytea": ["NULL", "'\\x00ff5c22'::bytea", "''::bytea", "decode(repeat('ab', 700), 'hex')"],
}


def test_the_batch_calls_binary_rows_read_as_text_rows_do(pg_cluster: PostgresCluster) -> None:
    """Every column type the batch function returns reads the same in binary (as step() reads it) as in text:
    same Python values and types (bytes, not memoryview), NULLs included."""
    table = re.search(r"RETURNS TABLE \((.*?)\) LANGUAGE", FUNCTION, re.DOTALL)
    assert table is not None
    returned = set(re.findall(r"\br_\w+ (\w+)", table.group(1)))
    assert returned == set(_ROW_SAMPLES), returned
    url = pg_cluster.create_database()
    try:
        db = open_database(url)
        try:
            with db.engine.connect() as conn, driver_errors(conn) as raw:
                for sql_type, samples in _ROW_SAMPLES.items():
                    for sample in samples:
                        query = f"SELECT ({sample})::{sql_type}"
                        as_text = raw.execute(query).fetchone()  # type: ignore[call-overload]
                        as_binary = raw.execute(query, binary=True).fetchone()  # type: ignore[call-overload]
                        assert as_binary == as_text, query
                        assert type(as_binary[0]) is type(as_text[0]), query
        finally:
            db.dispose()
    finally:
        pg_cluster.drop_database(url)
