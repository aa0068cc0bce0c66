"""Contradictory vaccination histories: the pure rule, and the data-quality report's count."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vaxcred.pipeline.records.history import HistoryProblem, contradicts, history_problems
from vaxcred.pipeline.records.importer import import_lines
from vaxcred.pipeline.reports.quality import build_quality_report
from vaxcred.storage import Database

D = dt.date.fromisoformat
HEADER = "citizen_id,full_name,dob,gender,vaccine,lot,date,dose_number,site_id\n"


@pytest.mark.parametrize(
    ("records", "expected"),
    [
        ([(1, D("2021-08-01")), (2, D("2021-09-01")), (3, D("2022-02-01"))], ()),
        ([(2, D("2021-09-01")), (1, D("2021-08-01"))], ()),  # seed 004: any arrival order
        ([(1, D("2021-08-01")), (3, D("2022-02-01"))], ()),  # a gap is not a contradiction
        (
            [(1, D("2021-08-01")), (3, D("2021-07-01"))],
            (HistoryProblem.OUT_OF_ORDER,),
        ),  # dose 3 before dose 1
        ([(1, D("2021-08-01")), (2, D("2021-08-01"))], (HistoryProblem.OUT_OF_ORDER,)),  # two doses, one day
        ([(1, D("2021-08-01")), (1, D("2021-08-15"))], (HistoryProblem.DOSE_REPEATED,)),  # dose 1 on two days
        ([(2, D("2021-09-01")), (2, D("2021-09-01"))], (HistoryProblem.DOSE_REPEATED,)),  # at two sites
        (
            [(1, D("2021-08-01")), (2, D("2021-09-01")), (3, D("2021-08-15"))],
            (HistoryProblem.OUT_OF_ORDER,),
        ),
        (
            [(1, D("2021-08-01")), (1, D("2021-10-01")), (2, D("2021-09-01"))],
            (HistoryProblem.DOSE_REPEATED, HistoryProblem.OUT_OF_ORDER),
        ),
    ],
)
def test_history_problems(records: list[tuple[int, dt.date]], expected: tuple[HistoryProblem, ...]) -> None:
    """Repeated dose numbers and doses dated out of order are found; gaps and arrival order are not problems."""
    assert history_problems(records) == expected


def test_the_quality_report_counts_doses_in_contradictory_histories(database: Database) -> None:
    """Dose 3 before dose 1, dose 1 twice, the same dose at two sites: their doses are flagged; a clean
    history is not."""
    rows = [
        # clean: 2 doses
        "001090000001,Nguyễn Văn An,1990,M,Comirnaty,A1,2021-08-01,1,HN-001",
        "001090000001,Nguyễn Văn An,1990,M,Comirnaty,A2,2021-09-01,2,HN-001",
        # dose 3 before dose 1: 2 doses flagged
        "001090000002,Nguyễn Văn Bình,1990,M,Comirnaty,B1,2021-08-01,1,HN-001",
        "001090000002,Nguyễn Văn Bình,1990,M,Comirnaty,B3,2021-07-01,3,HN-001",
        # dose 1 on two days: 2 flagged
        "001090000003,Nguyễn Văn Cường,1990,M,Comirnaty,C1,2021-08-01,1,HN-001",
        "001090000003,Nguyễn Văn Cường,1990,M,Comirnaty,C1,2021-08-09,1,HN-001",
        # the same dose at two sites: 2 flagged
        "001090000004,Nguyễn Văn Dũng,1990,M,Comirnaty,D1,2021-08-01,1,HN-001",
        "001090000004,Nguyễn Văn Dũng,1990,M,Comirnaty,D1,2021-08-01,1,HCM-017",
    ]
    report = import_lines(database, [HEADER, *(r + "\n" for r in rows)], format="csv")
    assert report.imported == 8
    quality = build_quality_report(database, now=dt.datetime(2022, 1, 1, tzinfo=dt.UTC))
    assert quality.national.contradictory == 6
    assert quality.site("HCM-017").contradictory == 1
    assert quality.to_rows()[0]["contradictory"] == 6


@pytest.mark.parametrize(
    ("one", "other", "expected"),
    [
        ((1, D("2021-08-01")), (1, D("2021-08-09")), True),  # dose 1 twice, two days
        ((2, D("2021-09-01")), (2, D("2021-09-01")), True),  # the same dose at two sites
        ((1, D("2021-08-01")), (3, D("2021-07-01")), True),  # dose 3 before dose 1
        ((3, D("2021-07-01")), (1, D("2021-08-01")), True),  # either way round
        ((1, D("2021-08-01")), (2, D("2021-08-01")), True),  # two doses on one day
        ((1, D("2021-08-01")), (2, D("2021-09-01")), False),
        ((2, D("2021-09-01")), (1, D("2021-08-01")), False),
    ],
)
def test_contradicts(one: tuple[int, dt.date], other: tuple[int, dt.date], expected: bool) -> None:
    """Two records contradict each other on the same dose number, or when the higher is dated on/before the lower."""
    assert contradicts(one, other) is expected
    assert contradicts(other, one) is expected


_records = st.lists(
    st.tuples(st.integers(1, 4), st.dates(dt.date(2021, 1, 1), dt.date(2021, 3, 1))), max_size=6
)


@given(_records)
def test_a_history_is_contradictory_exactly_when_two_of_its_records_contradict(
    records: list[tuple[int, dt.date]],
) -> None:
    """history_problems (neighbouring dose numbers) agrees with the pairwise rule the duplicate correction uses."""
    pairwise = any(contradicts(a, b) for a, b in itertools.combinations(records, 2))
    assert bool(history_problems(records)) is pairwise
