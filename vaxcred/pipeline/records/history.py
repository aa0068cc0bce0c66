"""Contradictory vaccination histories: records that cannot all be true.

A person's stored doses contradict each other when

* ``dose_repeated``: the same dose number is recorded twice — on two days, or at two sites (the natural key
  includes both, so the import stores both);
* ``out_of_order``: a higher dose number is dated on or before a lower one (dose 3 before dose 1).

Two records contradict each other (:func:`contradicts`) when they carry the same dose number, or when the one
with the higher number is dated on or before the other; a history is contradictory exactly when two of its
records do (checking neighbouring dose numbers is enough: an order that holds between neighbours holds
throughout).

Such a history is flagged in the data-quality report and **held from central issuance** (reason
``history.contradictory``): the passport would certify whichever record sorts last, so a person with three
recorded doses could receive "1 of 2". A correction lifts the hold: one that fixes the date or dose number, or
a ``duplicate`` correction that withdraws a record contradicting another (a withdrawn record is kept, never
deleted, and every reader ignores it — callers pass only the records in force).

Pure: no I/O, no clock.
"""

from __future__ import annotations

import datetime as dt
import enum
import itertools
from collections.abc import Iterable

__all__ = ["HistoryProblem", "contradicts", "history_problems"]


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


def contradicts(one: tuple[int, dt.date], other: tuple[int, dt.date]) -> bool:
    """Whether two ``(dose_number, date)`` records of one person cannot both be true: the same dose number, or
    the higher number dated on or before the lower. (A record compared with itself: pass another record.)"""
    (n1, d1), (n2, d2) = one, other
    if n1 == n2:
        return True
    return d2 <= d1 if n1 < n2 else d1 <= d2
