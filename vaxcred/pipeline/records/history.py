"""Contradictory vaccination histories: records that cannot all be true.

A person's stored doses contradict each other when

* ``dose_repeated``: the same dose number is recorded twice — on two days, or at two sites (the natural key
  includes both, so the import stores both);
* ``out_of_order``: a higher dose number is dated on or before a lower one (dose 3 before dose 1).

Such a history is flagged in the data-quality report and **held from central issuance** (reason
``history.contradictory``): the passport would certify whichever record sorts last, so a person with three
recorded doses could receive "1 of 2". A correction that fixes the date or dose number lifts the hold.

Pure: no I/O, no clock.
"""

from __future__ import annotations

import datetime as dt
import enum
import itertools
from collections.abc import Iterable

__all__ = ["HistoryProblem", "history_problems"]


class HistoryProblem(enum.StrEnum):
    """Why a history is contradictory (see the module docstring)."""

    DOSE_REPEATED = "dose_repeated"
    OUT_OF_ORDER = "out_of_order"


def history_problems(records: Iterable[tuple[int, dt.date]]) -> tuple[HistoryProblem, ...]:
    """The problems of a person's dose records, given as ``(dose_number, date)`` pairs (one per stored record);
    ``()`` for a consistent history."""
    by_number: dict[int, list[dt.date]] = {}
    for number, date in records:
        by_number.setdefault(number, []).append(date)
    problems: list[HistoryProblem] = []
    if any(len(dates) > 1 for dates in by_number.values()):
        problems.append(HistoryProblem.DOSE_REPEATED)
    numbers = sorted(by_number)
    for lower, higher in itertools.pairwise(numbers):
        if min(by_number[higher]) <= max(by_number[lower]):
            problems.append(HistoryProblem.OUT_OF_ORDER)
            break
    return tuple(problems)
