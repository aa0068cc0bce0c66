"""The registry-check stage on both backends: exact counts, history rows, re-runs, outages, concurrent changes."""

from __future__ import annotations

import collections
import datetime as dt
import json
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest
import sqlalchemy as sa

from vaxcred.pipeline.errors import REGISTRY_UNAVAILABLE, PipelineError
from vaxcred.pipeline.records.importer import import_lines
from vaxcred.pipeline.registry.check import (
    RegistryCheckReport,
    check_persons,
    registry_source,
    run_registry_check,
)
from vaxcred.pipeline.registry.lookup import RegistryEntry, TableRegistry, write_registry_csv
from vaxcred.pipeline.registry.parallel import WORKER_FAILED
from vaxcred.pipeline.synthetic import SyntheticPerson, generate_people
from vaxcred.storage import Database, open_database
from vaxcred.storage.schema import doses, persons, registry_checks

NOW = dt.datetime(2023, 1, 1, 9, 0, tzinfo=dt.UTC)
TODAY = NOW.date()
#: more not-found people than the seeds' 1.5 % so that a few hundred people hold several of them
MIX = {"mismatch": 0.20, "not_found": 0.05}
SITES = ("VN001-S01", "VN079-S01", "VN048-S01")
PEOPLE: tuple[SyntheticPerson, ...] = tuple(generate_people(300, seed=20220428, error_mix=MIX, sites=SITES))
#: persons stored without an import (the importer refuses them): an inconsistent CCCD, a malformed other ID
INVALID_PERSONS = (
    {
        "citizen_id": "002090012345",
        "id_type": "CCCD",
        "full_name": "Vàng A Páo",
        "dob": "1985",
        "gender": "M",
    },
    {"citizen_id": "AB1", "id_type": "OTHER", "full_name": "Nguyễn Văn An", "dob": "1970", "gender": "M"},
)


def expected_outcome(person: SyntheticPerson) -> tuple[str, tuple[str, ...]]:
    """The status and mismatch fields the generator injected, judged independently of vaxcred's matcher.

    Harmless variation (case, spacing, a year-only date of birth) verifies; anything else differs.
    """
    recorded, entry = person.rows[0].person, person.entry
    if entry is None:
        return "NOT_FOUND", ()
    fields = []
    if " ".join(recorded.full_name.split()).casefold() != " ".join(entry.full_name.split()).casefold():
        fields.append("name")
    if not entry.dob.startswith(recorded.dob.text):
        fields.append("dob")
    if recorded.gender is not entry.gender:
        fields.append("gender")
    return ("MISMATCH", tuple(fields)) if fields else ("VERIFIED", ())


def load_people(db: Database, people: Sequence[SyntheticPerson] = PEOPLE, *, invalid: bool = True) -> None:
    """Import the people's rows (JSON Lines) and, with ``invalid``, store the invalid-ID persons directly
    with one dose each at the first site."""
    lines = [json.dumps(row.to_fields(), ensure_ascii=False) + "\n" for p in people for row in p.rows]
    report = import_lines(db, lines, format="jsonl", today=TODAY)
    assert report.rejected == 0
    if invalid:
        with db.begin() as conn:
            for values in INVALID_PERSONS:
                person_id = conn.execute(
                    persons.insert().values(**values).returning(persons.c.id)
                ).scalar_one()
                conn.execute(
                    doses.insert().values(
                        person_id=person_id,
                        dose_number=1,
                        date=dt.date(2021, 9, 1),
                        site_id=SITES[0],
                        vaccine="Comirnaty",
                        lot="FK0001",
                    )
                )


def registry_for(people: Sequence[SyntheticPerson] = PEOPLE) -> TableRegistry:
    return TableRegistry(p.entry for p in people if p.entry is not None)


def expected_report(
    people: Sequence[SyntheticPerson] = PEOPLE, *, invalid: bool = True
) -> RegistryCheckReport:
    counts = collections.Counter(expected_outcome(p)[0] for p in people)
    invalid_count = len(INVALID_PERSONS) if invalid else 0
    return RegistryCheckReport(
        checked=len(people) + invalid_count,
        verified=counts["VERIFIED"],
        mismatch=counts["MISMATCH"],
        not_found=counts["NOT_FOUND"],
        invalid_id=invalid_count,
    )


def stored_statuses(db: Database) -> dict[str, tuple[str | None, dt.datetime | None]]:
    with db.connect() as conn:
        return {
            r.citizen_id: (r.registry_status, r.registry_checked_at)
            for r in conn.execute(
                sa.select(persons.c.citizen_id, persons.c.registry_status, persons.c.registry_checked_at)
            )
        }


def check_rows_per_person(db: Database) -> collections.Counter[int]:
    with db.connect() as conn:
        return collections.Counter(conn.execute(sa.select(registry_checks.c.person_id)).scalars())


class FailingRegistry:
    """A registry that is unavailable from its ``fail_on``-th lookup on."""

    def __init__(self, inner: TableRegistry, *, fail_on: int) -> None:
        self.inner, self.fail_on, self.calls = inner, fail_on, 0

    def lookup(self, citizen_ids: Sequence[str]) -> Mapping[str, RegistryEntry]:
        self.calls += 1
        if self.calls >= self.fail_on:
            raise PipelineError("registry unavailable (test)", code=REGISTRY_UNAVAILABLE)
        return self.inner.lookup(citizen_ids)


def test_counts_equal_the_injected_error_mix(database: Database) -> None:
    """Every person is checked once; the counts are exactly the generator's injected mix (+ invalid IDs)."""
    load_people(database)
    report = run_registry_check(database, registry_for(), now=NOW, batch_size=64)
    expected = expected_report()
    assert report == expected
    assert expected.mismatch > 40  # the sample exercises every outcome
    assert expected.not_found > 5

    statuses = stored_statuses(database)
    for p in PEOPLE:
        status, checked_at = statuses[p.rows[0].person.citizen_id]
        assert status == expected_outcome(p)[0]
        assert checked_at == NOW
    assert statuses["002090012345"][0] == statuses["AB1"][0] == "INVALID_ID"


def test_history_rows_hold_fields_name_difference_time_and_source(database: Database) -> None:
    """One registry_checks row per person: the mismatching fields, the kind of name difference, time, source."""
    load_people(database)
    run_registry_check(database, registry_for(), now=NOW)
    with database.connect() as conn:
        rows = {
            r.citizen_id: r
            for r in conn.execute(
                sa.select(registry_checks, persons.c.citizen_id).join(
                    persons, persons.c.id == registry_checks.c.person_id
                )
            )
        }
    assert len(rows) == len(PEOPLE) + len(INVALID_PERSONS)
    differences: collections.Counter[str] = collections.Counter()
    for p in PEOPLE:
        row = rows[p.rows[0].person.citizen_id]
        status, fields = expected_outcome(p)
        assert (row.status, row.mismatch_fields) == (status, ",".join(fields))
        assert row.checked_at == NOW
        assert row.source == "TableRegistry"
        if status == "MISMATCH" and fields == ("name",):
            differences[row.name_difference] += 1
    assert differences["tone_marks"] > 0  # the seeds' commonest error: a name typed without its marks
    assert rows["002090012345"].mismatch_fields == "dob"  # digits 4–6 say born in 1990, recorded 1985


def test_rerun_is_a_no_op(database: Database) -> None:
    """A second run finds nobody left to check and writes nothing."""
    load_people(database)
    registry = registry_for()
    run_registry_check(database, registry, now=NOW)
    before = check_rows_per_person(database)
    assert run_registry_check(database, registry, now=NOW + dt.timedelta(hours=1)) == RegistryCheckReport()
    assert check_rows_per_person(database) == before


def test_outage_commits_earlier_batches_and_a_rerun_finishes(database: Database) -> None:
    """The registry fails on the 3rd batch: two batches stay stored, the error propagates; a re-run finishes
    with every person checked exactly once."""
    load_people(database)
    progress: list[int] = []
    flaky = FailingRegistry(registry_for(), fail_on=3)
    with pytest.raises(PipelineError) as excinfo:
        run_registry_check(database, flaky, now=NOW, batch_size=50, on_progress=progress.append)
    assert excinfo.value.code == REGISTRY_UNAVAILABLE
    assert progress == [50, 100]
    assert sum(check_rows_per_person(database).values()) == 100
    assert sum(status is not None for status, _ in stored_statuses(database).values()) == 100

    report = run_registry_check(database, registry_for(), now=NOW, batch_size=50)
    expected = expected_report()
    assert report.checked == expected.checked - 100
    per_person = check_rows_per_person(database)
    assert len(per_person) == expected.checked
    assert set(per_person.values()) == {1}
    statuses = collections.Counter(status for status, _ in stored_statuses(database).values())
    assert statuses == {
        "VERIFIED": expected.verified,
        "MISMATCH": expected.mismatch,
        "NOT_FOUND": expected.not_found,
        "INVALID_ID": expected.invalid_id,
    }


def test_recheck_and_person_ids_add_history(database: Database) -> None:
    """``recheck`` checks everyone again, ``person_ids`` exactly those persons; the newest row wins."""
    load_people(database, invalid=False)
    registry = registry_for()
    run_registry_check(database, registry, now=NOW)
    later = NOW + dt.timedelta(days=1)
    again = run_registry_check(database, registry, now=later, recheck=True, batch_size=77)
    assert again == expected_report(invalid=False)
    assert set(check_rows_per_person(database).values()) == {2}

    with database.connect() as conn:
        ids = list(conn.execute(sa.select(persons.c.id).order_by(persons.c.id).limit(3)).scalars())
    latest = later + dt.timedelta(days=1)
    report = run_registry_check(database, registry, now=latest, person_ids=[ids[2], ids[0], ids[0], 10**9])
    assert report.checked == 2
    per_person = check_rows_per_person(database)
    assert (per_person[ids[0]], per_person[ids[1]], per_person[ids[2]]) == (3, 2, 3)
    with database.connect() as conn:
        times = dict(conn.execute(sa.select(persons.c.id, persons.c.registry_checked_at)).all())
    assert (times[ids[0]], times[ids[1]], times[ids[2]]) == (latest, later, latest)


class CorrectingRegistry:
    """A registry during whose every lookup a correction renames the first person (a committed change)."""

    def __init__(self, db: Database, inner: TableRegistry) -> None:
        self.db, self.inner = db, inner
        with db.connect() as conn:
            self.first_id: int = conn.execute(sa.select(sa.func.min(persons.c.id))).scalar_one()

    def lookup(self, citizen_ids: Sequence[str]) -> Mapping[str, RegistryEntry]:
        with self.db.begin() as conn:
            conn.execute(
                persons.update().where(persons.c.id == self.first_id).values(full_name="Nguyễn Văn Sửa")
            )
        return self.inner.lookup(citizen_ids)


def test_a_person_changed_during_the_lookup_is_not_stored(database: Database) -> None:
    """A correction landing while the registry answers: the stale result is dropped, the next run checks it."""
    load_people(database, invalid=False)
    inner = registry_for()
    correcting = CorrectingRegistry(database, inner)
    first_id = correcting.first_id

    report = run_registry_check(database, correcting, now=NOW, batch_size=100)
    assert report.skipped == 1
    assert report.checked == len(PEOPLE) - 1
    assert first_id not in check_rows_per_person(database)
    assert run_registry_check(database, inner, now=NOW).checked == 1
    assert check_rows_per_person(database)[first_id] == 1


def test_check_persons_inside_the_callers_transaction(database: Database) -> None:
    """The corrections flow re-checks one person in its own transaction; a rollback stores nothing."""
    load_people(database, invalid=False)
    with database.connect() as conn:
        person_id = conn.execute(sa.select(sa.func.min(persons.c.id))).scalar_one()

    def failing_correction() -> None:
        with database.begin() as conn:
            check_persons(conn, registry_for(), [person_id], now=NOW)
            raise RuntimeError("the correction failed")

    with pytest.raises(RuntimeError):
        failing_correction()
    assert check_rows_per_person(database) == {}
    with database.begin() as conn:
        report = check_persons(conn, registry_for(), [person_id], now=NOW, source="test registry")
    assert report.checked == 1
    with database.connect() as conn:
        assert conn.execute(sa.select(registry_checks.c.source)).scalar_one() == "test registry"


def test_registry_source_names_the_adapter() -> None:
    """The history's ``source``: a ``source`` attribute, else the class name (and URL of an HTTP registry)."""
    from vaxcred.pipeline.registry.http import HttpRegistry

    assert registry_source(registry_for()) == "TableRegistry"
    assert (
        registry_source(HttpRegistry("http://127.0.0.1:9/api"))
        == "HttpRegistry http://127.0.0.1:9/api/lookup"
    )


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"now": dt.datetime(2023, 1, 1)}, ValueError),
        ({"now": "2023-01-01"}, TypeError),
        ({"now": NOW, "batch_size": 0}, ValueError),
        ({"now": NOW, "workers": 0}, ValueError),
        ({"now": NOW, "workers": True}, ValueError),
    ],
)
def test_caller_mistakes_are_refused(
    database: Database, kwargs: dict[str, object], error: type[Exception]
) -> None:
    """A naive or missing time, a batch size or worker count below one: refused before anything is read."""
    with pytest.raises(error):
        run_registry_check(database, registry_for(), **kwargs)  # type: ignore[arg-type]


# --- worker processes (workers > 1): this process looks up, the workers match and store --------------------------


def history(db: Database) -> set[tuple[object, ...]]:
    """Every registry_checks row as (citizen ID, status, fields, name difference, time, source)."""
    with db.connect() as conn:
        return {
            tuple(r)
            for r in conn.execute(
                sa.select(
                    persons.c.citizen_id,
                    registry_checks.c.status,
                    registry_checks.c.mismatch_fields,
                    registry_checks.c.name_difference,
                    registry_checks.c.checked_at,
                    registry_checks.c.source,
                ).join(persons, persons.c.id == registry_checks.c.person_id)
            )
        }


def test_worker_processes_store_exactly_what_one_process_stores(
    database: Database, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Two worker processes: the same counts, history rows and person statuses as the in-process run (on a
    second database), every person once, progress reported per committed batch up to the total."""
    load_people(database)
    progress: list[int] = []

    report = run_registry_check(
        database, registry_for(), now=NOW, batch_size=40, workers=2, on_progress=progress.append
    )

    assert report == expected_report()
    assert set(check_rows_per_person(database).values()) == {1}
    assert progress == sorted(progress)
    assert (progress[-1], len(progress)) == (report.checked, 8)
    reference = open_database(f"sqlite:///{tmp_path_factory.mktemp('one-process')}/v.db")
    reference.migrate()
    try:
        load_people(reference)
        assert run_registry_check(reference, registry_for(), now=NOW, batch_size=40) == report
        assert history(database) == history(reference)
        assert stored_statuses(database) == stored_statuses(reference)
    finally:
        reference.dispose()


def test_worker_processes_outage_commits_the_batches_handed_out_and_a_rerun_finishes(
    database: Database,
) -> None:
    """The registry fails on the 3rd lookup: the two batches handed out are stored, the error propagates (not
    a worker failure); a re-run with workers finishes with every person checked exactly once."""
    load_people(database)
    flaky = FailingRegistry(registry_for(), fail_on=3)
    with pytest.raises(PipelineError) as excinfo:
        run_registry_check(database, flaky, now=NOW, batch_size=50, workers=2)
    assert excinfo.value.code == REGISTRY_UNAVAILABLE
    assert sum(check_rows_per_person(database).values()) == 100

    report = run_registry_check(database, registry_for(), now=NOW, batch_size=50, workers=2)
    assert report.checked == expected_report().checked - 100
    assert set(check_rows_per_person(database).values()) == {1}
    assert len(check_rows_per_person(database)) == expected_report().checked


def test_worker_processes_drop_a_result_whose_person_changed_during_the_lookup(database: Database) -> None:
    """The re-read in the worker's transaction sees a correction made after the batch was read: skipped."""
    load_people(database, invalid=False)
    correcting = CorrectingRegistry(database, registry_for())

    report = run_registry_check(database, correcting, now=NOW, batch_size=100, workers=2)
    assert (report.skipped, report.checked) == (1, len(PEOPLE) - 1)
    assert correcting.first_id not in check_rows_per_person(database)


def test_worker_processes_that_all_die_end_the_run_and_let_the_process_exit(
    database: Database, database_url: str, tmp_path: Path
) -> None:
    """Regression: when every worker process exits at start, the run raises ``pipeline.registry_check_worker_
    failed`` and the process then exits (it hung forever at exit: the task queue's feeder thread, joined by
    multiprocessing at exit, was blocked writing batches into a pipe no process read)."""
    people = generate_people(1200, seed=20230101, sites=SITES)  # batches of 400: more than a pipe holds
    load_people(database, people, invalid=False)
    registry_csv = tmp_path / "registry.csv"
    write_registry_csv(registry_csv, (p.entry for p in people if p.entry is not None))
    argv = [sys.executable, "-m", "tests.pipeline.registry_workers_child", database_url, str(registry_csv)]

    child = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)

    assert (child.returncode, child.stdout.strip()) == (0, WORKER_FAILED), child.stderr[-2000:]
    assert sum(check_rows_per_person(database).values()) == 0
