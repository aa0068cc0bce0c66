"""CertLogic date-times: parsing (``plusTime``, ``dccDateOfBirth``), JS-compatible arithmetic, formatting.

A date-time is a UTC instant in whole milliseconds (:class:`DateTime`), as a JavaScript ``Date`` is. The
calendar is computed here on integer days (proleptic Gregorian, H. Hinnant's ``days_from_civil``), not with
:mod:`datetime`, so that the JS field arithmetic of certlogic-js can be followed exactly (CERTLOGIC.md §3):

* ``hour`` / ``day`` add exactly 3,600 s / 86,400 s to the instant (no daylight-saving time, no calendar);
* ``month`` / ``year`` change that field and let the day overflow, as ``Date.setUTCMonth`` /
  ``setUTCFullYear`` do: 2020-02-29 + 1 year → 2021-03-01, 2021-01-31 + 1 month → 2021-03-03.

Accepted strings (everything else is an error, including impossible dates such as ``2021-02-30``, on which
JavaScript silently rolls over): ``YYYY`` and ``YYYY-MM`` (the last day of that year / month),
``YYYY-MM-DD`` (midnight UTC), ``YYYY-MM-DDThh:mm:ss`` with an optional fraction of any length (cut to
milliseconds) and an optional zone ``Z``, ``±h``, ``±hh``, ``±hmm``, ``±hhmm``, ``±h:mm`` or ``±hh:mm`` (none
means UTC). Results are kept within the years 0000–9999 (JavaScript goes on to ±275,760; vaxcred raises).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from vaxcred.errors import EvaluationError

__all__ = ["TIME_UNITS", "DateTime", "dcc_date_of_birth", "parse_date_time", "plus_time"]

TIME_UNITS = ("year", "month", "day", "hour")

_MS_PER_DAY = 86_400_000
_MS_PER_HOUR = 3_600_000
_YEAR = re.compile(r"([0-9]{4})\Z", re.ASCII)
_YEAR_MONTH = re.compile(r"([0-9]{4})-([0-9]{2})\Z", re.ASCII)
_DATE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})\Z", re.ASCII)
_DATE_TIME = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]+))?"
    r"(Z|([+-])([0-9]{1,2}):?([0-9]{2})?)?\Z",
    re.ASCII,
)
#: the first and last instant vaxcred represents: 0000-01-01T00:00:00.000Z .. 9999-12-31T23:59:59.999Z
_MIN_MS = -62_167_219_200_000
_MAX_MS = 253_402_300_799_999


@dataclass(frozen=True, slots=True)
class DateTime:
    """A CertLogic date-time: milliseconds since 1970-01-01T00:00:00Z (a JavaScript ``Date``'s value)."""

    ms: int

    def isoformat(self) -> str:
        """``YYYY-MM-DDThh:mm:ss.sssZ``, as JavaScript's ``toISOString``."""
        days, rest = divmod(self.ms, _MS_PER_DAY)
        year, month, day = _civil_from_days(days)
        seconds, millis = divmod(rest, 1000)
        minutes, second = divmod(seconds, 60)
        hour, minute = divmod(minutes, 60)
        return f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}.{millis:03d}Z"

    def __repr__(self) -> str:
        return f"DateTime({self.isoformat()})"


def _days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date; ``day`` may overflow the month (JS ``Date``)."""
    y = year - (month <= 2)
    era = y // 400
    yoe = y - era * 400
    mp = (month + 9) % 12
    doy = (153 * mp + 2) // 5
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146_097 + doe - 719_468 + (day - 1)


def _civil_from_days(days: int) -> tuple[int, int, int]:
    z = days + 719_468
    era = z // 146_097
    doe = z - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    return yoe + era * 400 + (month <= 2), month, day


def _days_in_month(year: int, month: int) -> int:
    return _days_from_civil(year + (month == 12), month % 12 + 1, 1) - _days_from_civil(year, month, 1)


def _checked(ms: int) -> DateTime:
    if not _MIN_MS <= ms <= _MAX_MS:
        raise EvaluationError("date-time out of the years 0000-9999")
    return DateTime(ms)


def _date(year: int, month: int, day: int) -> int:
    if not 1 <= month <= 12 or not 1 <= day <= _days_in_month(year, month):
        raise EvaluationError("not a calendar date")
    return _days_from_civil(year, month, day) * _MS_PER_DAY


def _partial(text: str) -> DateTime | None:
    """``YYYY`` / ``YYYY-MM``: midnight UTC of the last day of that year / month; else ``None``."""
    m = _YEAR.match(text)
    if m:
        return DateTime(_days_from_civil(int(m[1]), 12, 31) * _MS_PER_DAY)
    m = _YEAR_MONTH.match(text)
    if m:
        year, month = int(m[1]), int(m[2])
        if not 1 <= month <= 12:
            raise EvaluationError("not a calendar month")
        return DateTime(_days_from_civil(year, month, _days_in_month(year, month)) * _MS_PER_DAY)
    return None


@functools.lru_cache(maxsize=4096)
def parse_date_time(text: str) -> DateTime:
    """Parse the first operand of ``plusTime`` (see the module docstring); :class:`EvaluationError` if it
    is in no accepted format or names an impossible date or time. Cached: rules parse the same clock and
    dates again and again."""
    partial = _partial(text)
    if partial is not None:
        return partial
    m = _DATE.match(text)
    if m:
        return DateTime(_date(int(m[1]), int(m[2]), int(m[3])))
    m = _DATE_TIME.match(text)
    if not m:
        raise EvaluationError("not a date or date-time in an accepted format")
    hour, minute, second = int(m[4]), int(m[5]), int(m[6])
    if hour > 23 or minute > 59 or second > 59:
        raise EvaluationError("not a time of day")
    ms = _date(int(m[1]), int(m[2]), int(m[3]))
    ms += ((hour * 60 + minute) * 60 + second) * 1000 + int((m[7] or "0")[:3].ljust(3, "0"))
    if m[9]:
        offset_hours, offset_minutes = int(m[10]), int(m[11] or "0")
        if offset_hours > 23 or offset_minutes > 59:
            raise EvaluationError("not a time-zone offset")
        offset = (offset_hours * 60 + offset_minutes) * 60_000
        ms += -offset if m[9] == "+" else offset
    return _checked(ms)


def dcc_date_of_birth(text: str) -> DateTime:
    """``dccDateOfBirth``: ``YYYY``, ``YYYY-MM`` (the latest day consistent with them) or ``YYYY-MM-DD``."""
    partial = _partial(text)
    if partial is not None:
        return partial
    m = _DATE.match(text)
    if not m:
        raise EvaluationError("not a DCC date of birth (YYYY[-MM[-DD]])")
    return DateTime(_date(int(m[1]), int(m[2]), int(m[3])))


def plus_time(value: DateTime, amount: int, unit: str) -> DateTime:
    """``value`` plus ``amount`` units, by JavaScript's ``setUTC*`` rules (module docstring)."""
    if amount == 0:
        return value
    if unit == "hour":
        return _checked(value.ms + amount * _MS_PER_HOUR)
    if unit == "day":
        return _checked(value.ms + amount * _MS_PER_DAY)
    days, rest = divmod(value.ms, _MS_PER_DAY)
    year, month, day = _civil_from_days(days)
    if unit == "month":
        year, month0 = divmod(year * 12 + month - 1 + amount, 12)
        month = month0 + 1
    elif unit == "year":
        year += amount
    else:
        raise ValueError(f"unknown time unit {unit!r}")
    if not 0 <= year <= 9999:
        raise EvaluationError("date-time out of the years 0000-9999")
    return _checked(_days_from_civil(year, month, day) * _MS_PER_DAY + rest)
