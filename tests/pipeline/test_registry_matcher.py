"""The registry check's speed mechanisms on both backends: the forked matcher process, the raw-driver store, and
the queue read's plan on PostgreSQL."""

from __future__ import annotations

import collections
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
import sqlalchemy as sa

from tests.pipeline.test_registry_check import (
    INVALID_PERSONS,
    NOW,
    PEOPLE,
    check_rows_per_person,
    expected_report,
    history,
    load_people,
    registry_for,
    stored_statuses,
)
from vaxcred.errors import VaxcredError
from vaxcred.pipeline.errors import PipelineError
from vaxcred.pipeline.registry.batch import (
    COLUMNS,
    PersonRow,
    lookup_batch,
    match_batch,
    match_outcomes,
    match_plain_outcomes,
    outcomes,
    person_rows,
    plain_entries,
    read_person_rows,
)
from vaxcred.pipeline.registry.check import _PG_QUEUE_PLAN, _batch_query, run_registry_check
from vaxcred.pipeline.registry.lookup import RegistryEntry, TableRegistry
from vaxcred.pipeline.registry.matcher import MATCHER_FAILED, can_fork
from vaxcred.storage import Database, open_database
from vaxcred.storage.schema import persons, registry_checks

needs_fork = pytest.mark.skipif(not can_fork(), reason="the matcher process is forked (Linux, BSD)")


class ForeignEntryRegistry:
    """A registry whose ``bad_call``-th lookup answers the batch's first ID with another person's entry (a
    broken adapter): :func:`~vaxcred.pipeline.registry.lookup.match` refuses it with ``ValueError``."""

    def __init__(self, inner: TableRegistry, *, bad_call: int) -> None:
        self.inner, self.bad_call, self.calls = inner, bad_call, 0

    def lookup(self, citizen_ids: Sequence[str]) -> Mapping[str, RegistryEntry]:
        self.calls += 1
        found = dict(self.inner.lookup(citizen_ids))
        if self.calls == self.bad_call:
            other = next(entry for cid, entry in found.items() if cid != citizen_ids[0])
            found[citizen_ids[0]] = other
        return found


@needs_fork
def test_the_matcher_process_stores_exactly_what_this_process_stores(
    database: Database, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A forked matcher: the same counts, history rows and person statuses as matching here (on a second
    database), every person once, progress after each committed batch in order."""
    load_people(database)
    progress: list[int] = []

    report = run_registry_check(
        database, registry_for(), now=NOW, batch_size=40, match_process=True, on_progress=progress.append
    )

    assert report == expected_report()
    assert set(check_rows_per_person(database).values()) == {1}
    assert progress == [min(40 * n, report.checked) for n in range(1, 9)]
    reference = open_database(f"sqlite:///{tmp_path_factory.mktemp('in-process')}/v.db")
    reference.migrate()
    try:
        load_people(reference)
        assert (
            run_registry_check(reference, registry_for(), now=NOW, batch_size=40, match_process=False)
            == report
        )
        assert history(database) == history(reference)
        assert stored_statuses(database) == stored_statuses(reference)
    finally:
        reference.dispose()


@needs_fork
def test_a_failing_matcher_is_a_typed_error_after_the_batches_before_it(database: Database) -> None:
    """The matcher fails on the 4th batch: the three before it are stored (the 1st matched here, the 2nd and
    3rd by the matcher), the run stops with ``pipeline.registry_check_worker_failed``; a re-run finishes with
    every person checked exactly once."""
    load_people(database, invalid=False)
    broken = ForeignEntryRegistry(registry_for(), bad_call=4)

    with pytest.raises(PipelineError) as excinfo:
        run_registry_check(database, broken, now=NOW, batch_size=50, match_process=True)

    assert excinfo.value.code == MATCHER_FAILED
    assert "ValueError" in excinfo.value.message
    assert sum(check_rows_per_person(database).values()) == 150
    report = run_registry_check(database, registry_for(), now=NOW, batch_size=50, match_process=True)
    assert report.checked == expected_report(invalid=False).checked - 150
    assert set(check_rows_per_person(database).values()) == {1}


def test_the_matcher_off_matches_here_and_reports_the_adapters_error(database: Database) -> None:
    """``match_process=False``: no process; the broken adapter's ``ValueError`` comes out as it is, after the
    batches before it."""
    load_people(database, invalid=False)

    with pytest.raises(ValueError, match="another citizen ID"):
        run_registry_check(
            database,
            ForeignEntryRegistry(registry_for(), bad_call=2),
            now=NOW,
            batch_size=50,
            match_process=False,
        )
    assert sum(check_rows_per_person(database).values()) == 50


@pytest.mark.parametrize("match_process", [False, True])
def test_stored_times_are_what_sqlalchemy_binds(database: Database, match_process: bool) -> None:
    """The store writes through the driver: its times equal SQLAlchemy's binding of ``now`` (SQLite keeps text:
    ``2023-01-01 09:00:00.000000``, not the driver's ``2023-01-01 09:00:00``), so queries by time find them."""
    if match_process and not can_fork():
        pytest.skip("the matcher process is forked")
    load_people(database)

    report = run_registry_check(database, registry_for(), now=NOW, batch_size=60, match_process=match_process)

    with database.connect() as conn:
        by_time = conn.execute(
            sa.select(sa.func.count()).select_from(registry_checks).where(registry_checks.c.checked_at == NOW)
        ).scalar_one()
        persons_by_time = conn.execute(
            sa.select(sa.func.count()).select_from(persons).where(persons.c.registry_checked_at == NOW)
        ).scalar_one()
        sources = set(conn.execute(sa.select(registry_checks.c.source)).scalars())
        if database.backend == "sqlite":
            raw = set(conn.exec_driver_sql("SELECT checked_at FROM registry_checks").scalars())
            assert raw == {"2023-01-01 09:00:00.000000"}
    assert by_time == persons_by_time == report.checked
    assert sources == {"TableRegistry"}
    statuses = collections.Counter(status for status, _ in stored_statuses(database).values())
    assert statuses["VERIFIED"] == report.verified


def test_the_queue_read_walks_its_index_before_any_statistics(database: Database) -> None:
    """PostgreSQL, a freshly imported ``persons`` with no statistics: the batch read is one ordered range scan
    of the primary key (the status is not indexed since 0013), neither a bitmap scan of every unchecked person
    nor a sort of them (measured 7–15 ms a batch at 100,000 persons, quadratic in a run)."""
    if database.backend != "postgresql":
        pytest.skip("a PostgreSQL plan")
    with database.begin() as conn:  # a national-sized queue in miniature, inserted after the last ANALYZE
        conn.exec_driver_sql(
            "INSERT INTO persons (citizen_id, id_type, full_name, dob, gender) "
            "SELECT 'X' || n, 'OTHER', 'Nguyễn Văn An', '1970', 'M' FROM generate_series(1, 20000) AS n"
        )
    query = _batch_query(last_id=0, batch_size=50, recheck=False)
    sql = str(query.compile(dialect=database.engine.dialect, compile_kwargs={"literal_binds": True}))

    with database.for_batches().connect() as conn:
        conn.exec_driver_sql(_PG_QUEUE_PLAN)
        plan = "\n".join(conn.exec_driver_sql("EXPLAIN " + sql).scalars())

    assert "Index Scan using pk_persons" in plan
    assert "Sort" not in plan
    assert "Bitmap" not in plan


def person_rows_of_people() -> list[PersonRow]:
    """The synthetic people and the invalid-ID persons as the check reads them."""
    recorded = [
        {
            "citizen_id": p.rows[0].person.citizen_id,
            "id_type": p.rows[0].person.id_type.value,
            "full_name": p.rows[0].person.full_name,
            "dob": p.rows[0].person.dob.text,
            "gender": p.rows[0].person.gender.value,
        }
        for p in PEOPLE
    ]
    return [
        PersonRow(id=n, **values, registry_status=None, registry_checked_at=None)
        for n, values in enumerate([*recorded, *INVALID_PERSONS], start=1)
    ]


def test_outcomes_without_results_and_from_plain_entries_are_what_match_decides() -> None:
    """:func:`match_outcomes` (no ``RegistryResult`` built) and :func:`match_plain_outcomes` (the matcher's
    plain entries) store exactly what :func:`match` decides, person by person, every status present."""
    rows = person_rows_of_people()
    found = lookup_batch(registry_for(), rows)

    expected = outcomes(match_batch(rows, found, NOW))

    assert match_outcomes(rows, found) == expected
    assert match_plain_outcomes(rows, plain_entries(found)) == expected
    assert {status for status, _, _ in expected} == {"VERIFIED", "MISMATCH", "NOT_FOUND", "INVALID_ID"}


def test_an_entry_for_another_id_is_refused_from_plain_entries_too() -> None:
    """A broken adapter's entry for another citizen ID: ``ValueError`` on every path, as :func:`match`."""
    rows = person_rows_of_people()[:3]
    found = lookup_batch(registry_for(), rows)
    found[rows[0].citizen_id] = found[rows[1].citizen_id]

    for matching in (
        lambda: match_batch(rows, found, NOW),
        lambda: match_outcomes(rows, found),
        lambda: match_plain_outcomes(rows, plain_entries(found)),
    ):
        with pytest.raises(ValueError, match="another citizen ID"):
            matching()


def test_an_answer_that_is_not_a_registry_entry_is_a_type_error_on_every_path() -> None:
    """A broken adapter answering with something else than a ``RegistryEntry``: ``TypeError``, not an
    ``AttributeError`` from deep inside, in process and before anything is sent to a matcher."""
    rows = person_rows_of_people()[:2]
    found: dict[str, Any] = dict(lookup_batch(registry_for(), rows))
    found[rows[0].citizen_id] = ("not", "an", "entry")

    for matching in (lambda: match_outcomes(rows, found), lambda: plain_entries(found)):
        with pytest.raises(TypeError, match="RegistryEntry"):
            matching()


@pytest.mark.parametrize(
    ("column", "value", "error"),
    [
        ("id_type", "cccd", ValueError),  # not an IdType value
        ("gender", "m", ValueError),  # not a Gender value
        ("full_name", "  ", ValueError),  # blank
        ("full_name", "Nguye\u0302\u0303n Va\u0306n A", ValueError),  # not NFC
        ("dob", "1985-13", VaxcredError),  # not a date
        ("citizen_id", "", ValueError),  # empty
    ],
)
def test_a_stored_row_the_person_model_refuses_is_refused_by_the_matcher_alike(
    column: str, value: str, error: type[Exception]
) -> None:
    """A stored row that :class:`Person` refuses (written by hand past the import's checks) raises the same
    error from the matcher's path, which judges rows without building a ``Person``, as from :func:`match`'s."""
    rows = person_rows_of_people()[:3]
    found = lookup_batch(registry_for(), rows)
    bad = [rows[0], rows[1]._replace(**{column: value}), rows[2]]

    with pytest.raises(error) as via_match:
        match_batch(bad, found, NOW)
    with pytest.raises(error) as via_matcher:
        match_plain_outcomes(bad, plain_entries(found))
    assert str(via_matcher.value) == str(via_match.value)


def test_the_driver_read_gives_what_sqlalchemy_reads(database: Database) -> None:
    """:func:`read_person_rows` (the driver's cursor; the check's reads and SQLite's re-read in the store) gives
    the rows SQLAlchemy's typed read gives, value for value and type for type, checked and unchecked persons,
    an ``IN`` list and a ``LIMIT`` bound alike: the store's comparison of read and re-read rows is unchanged."""
    load_people(database)
    run_registry_check(database, registry_for(), now=NOW, batch_size=60, person_ids=range(1, 40))

    with database.connect() as conn:
        for query in (
            sa.select(*COLUMNS).order_by(persons.c.id),
            sa.select(*COLUMNS).where(persons.c.id.in_([3, 5, 77])).order_by(persons.c.id),
            sa.select(*COLUMNS).where(persons.c.id > 30).order_by(persons.c.id).limit(20),
        ):
            fast, typed = read_person_rows(conn, query), person_rows(conn.execute(query))
            assert fast == typed
            assert [tuple(map(type, row)) for row in fast] == [tuple(map(type, row)) for row in typed]
    with database.connect() as conn:
        everyone = read_person_rows(conn, sa.select(*COLUMNS).order_by(persons.c.id))
    assert {row.registry_checked_at for row in everyone} == {None, NOW}
