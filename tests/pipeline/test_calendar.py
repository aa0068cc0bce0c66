"""Viet Nam's calendar day (UTC+7) for "today" and deadlines."""

from __future__ import annotations

import datetime as dt

import pytest

from vaxcred.pipeline.records.calendar import VIETNAM_TIME, local_text, vietnam_date


def test_vietnam_date_is_the_next_day_from_17_00_utc() -> None:
    """23:30 UTC on the 11th is 06:30 on the 12th in Hà Nội: the 12th is today there."""
    assert vietnam_date(dt.datetime(2021, 9, 11, 16, 59, tzinfo=dt.UTC)) == dt.date(2021, 9, 11)
    assert vietnam_date(dt.datetime(2021, 9, 11, 17, 0, tzinfo=dt.UTC)) == dt.date(2021, 9, 12)


def test_vietnam_time_matches_the_zone_database_when_present() -> None:
    """The fixed offset agrees with Asia/Ho_Chi_Minh for the campaign years (where tzdata is installed)."""
    zoneinfo = pytest.importorskip("zoneinfo")
    try:
        zone = zoneinfo.ZoneInfo("Asia/Ho_Chi_Minh")
    except zoneinfo.ZoneInfoNotFoundError:
        pytest.skip("no zone database on this machine")
    for year in (2020, 2021, 2022, 2026):
        moment = dt.datetime(year, 6, 1, 12, tzinfo=dt.UTC)
        assert moment.astimezone(zone).utcoffset() == moment.astimezone(VIETNAM_TIME).utcoffset()


def test_local_text_shows_the_deadline_in_viet_nam_and_utc() -> None:
    """A deadline reads as local time first, UTC beside (with its date when that differs)."""
    assert local_text(dt.datetime(2022, 4, 15, 7, 30, tzinfo=dt.UTC)) == "2022-04-15 14:30 ICT (07:30 UTC)"
    assert (
        local_text(dt.datetime(2022, 4, 15, 20, 0, tzinfo=dt.UTC))
        == "2022-04-16 03:00 ICT (2022-04-15 20:00 UTC)"
    )


def test_naive_moments_are_refused() -> None:
    """A naive datetime is a caller mistake."""
    with pytest.raises(ValueError, match="aware"):
        vietnam_date(dt.datetime(2022, 1, 1))
