"""Viet Nam's calendar day: what "today" and "not in the future" mean for dose records.

A dose given in Hà Nội at 06:30 on 12 September is dated 2021-09-12 — 23:30 UTC on the 11th. Checks that
compare a recorded day with "now" (an import's or a correction's "not in the future", a site signature's "not
dated after the signing time") therefore use the calendar day in Viet Nam, not the UTC date.

**A fixed UTC+07:00 offset** (:data:`VIETNAM_TIME`), not the IANA zone ``Asia/Ho_Chi_Minh``: Viet Nam has kept
UTC+7 without daylight saving since 1975, every dose record is from 2020 on, and a fixed offset needs no zone
database (tzdata is not a dependency, and a minimal container may lack ``/usr/share/zoneinfo``). Should the law
ever change, this is the one place to swap in ``zoneinfo.ZoneInfo("Asia/Ho_Chi_Minh")``.

Pure: time is a parameter.
"""

from __future__ import annotations

import datetime as dt
from typing import Final

__all__ = ["VIETNAM_TIME", "local_text", "vietnam_date"]

#: Indochina Time, UTC+07:00 (Viet Nam since 1975)
VIETNAM_TIME: Final = dt.timezone(dt.timedelta(hours=7), "ICT")


def _aware(moment: dt.datetime) -> dt.datetime:
    if not isinstance(moment, dt.datetime):
        raise TypeError("moment must be a datetime")
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("moment must be timezone-aware")
    return moment


def vietnam_date(moment: dt.datetime) -> dt.date:
    """The calendar day in Viet Nam at the aware ``moment``."""
    return _aware(moment).astimezone(VIETNAM_TIME).date()


def local_text(moment: dt.datetime) -> str:
    """``2022-04-15 14:30 ICT (07:30 UTC)``: a deadline as an operator in Viet Nam reads it, UTC beside."""
    aware = _aware(moment)
    local = aware.astimezone(VIETNAM_TIME)
    utc = aware.astimezone(dt.UTC)
    day = "" if utc.date() == local.date() else f"{utc:%Y-%m-%d} "
    return f"{local:%Y-%m-%d %H:%M} ICT ({day}{utc:%H:%M} UTC)"
