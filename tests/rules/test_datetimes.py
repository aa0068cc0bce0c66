"""plusTime / dccDateOfBirth: accepted formats, JavaScript's field arithmetic (leap days, month ends), errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vaxcred import errors
from vaxcred.rules.datetimes import DateTime, dcc_date_of_birth, parse_date_time, plus_time


def _iso(text: str, amount: int = 0, unit: str = "day") -> str:
    return plus_time(parse_date_time(text), amount, unit).isoformat()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2021", "2021-12-31T00:00:00.000Z"),
        ("2020-02", "2020-02-29T00:00:00.000Z"),
        ("2021-02", "2021-02-28T00:00:00.000Z"),
        ("2021-06-01", "2021-06-01T00:00:00.000Z"),
        ("2021-06-01T10:20:30", "2021-06-01T10:20:30.000Z"),
        ("2021-06-01T10:20:30Z", "2021-06-01T10:20:30.000Z"),
        ("2021-06-01T10:20:30.1Z", "2021-06-01T10:20:30.100Z"),
        ("2021-06-01T10:20:30.123999999Z", "2021-06-01T10:20:30.123Z"),
        ("2021-06-01T10:20:30+2", "2021-06-01T08:20:30.000Z"),
        ("2021-06-01T10:20:30+02", "2021-06-01T08:20:30.000Z"),
        ("2021-06-01T10:20:30+230", "2021-06-01T07:50:30.000Z"),
        ("2021-06-01T10:20:30-0130", "2021-06-01T11:50:30.000Z"),
        ("2021-06-01T10:20:30+2:30", "2021-06-01T07:50:30.000Z"),
        ("2021-06-01T00:20:30+02:30", "2021-05-31T21:50:30.000Z"),
        ("0000-01-01", "0000-01-01T00:00:00.000Z"),
    ],
)
def test_accepted_forms(text: str, expected: str) -> None:
    """Every form of CERTLOGIC.md §3 parses to the UTC instant JavaScript gives (fractions cut to ms)."""
    assert _iso(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "2021-06-01t10:20:30Z",
        "2021-06-01T10:20:30z",
        "2021-06-01 10:20:30Z",
        "2021-6-01",
        "21-06-01",
        "2021-06-01T10:20",
        "2021-06-01T10:20:30+1:3",
        "2021-02-30",
        "2021-13",
        "2021-00-10",
        "2021-06-01T24:00:00Z",
        "2021-06-01T10:60:00Z",
        "2021-06-01T10:20:30+24:00",
        "２０２１-06-01",
        "2021-06-01\n",
        "",
    ],
)
def test_other_forms_are_errors(text: str) -> None:
    """Anything else, impossible dates included (JS rolls over), is a typed evaluation error."""
    with pytest.raises(errors.EvaluationError):
        parse_date_time(text)


@pytest.mark.parametrize(
    ("text", "amount", "unit", "expected"),
    [
        ("2020-02-29", 1, "year", "2021-03-01T00:00:00.000Z"),
        ("2020-02-29", 4, "year", "2024-02-29T00:00:00.000Z"),
        ("2020-02-29", -1, "year", "2019-03-01T00:00:00.000Z"),
        ("2021-01-31", 1, "month", "2021-03-03T00:00:00.000Z"),
        ("2021-03-31", -1, "month", "2021-03-03T00:00:00.000Z"),
        ("2020-01-31", 1, "month", "2020-03-02T00:00:00.000Z"),
        ("2021-11-15T10:00:00Z", 3, "month", "2022-02-15T10:00:00.000Z"),
        ("2021-01-15", -13, "month", "2019-12-15T00:00:00.000Z"),
        ("2021-03-27T12:00:00+01:00", 1, "day", "2021-03-28T11:00:00.000Z"),
        ("2021-06-01T00:00:00Z", 40, "hour", "2021-06-02T16:00:00.000Z"),
        ("2021-06-01T00:00:00Z", -1, "hour", "2021-05-31T23:00:00.000Z"),
        ("2021", 0, "month", "2021-12-31T00:00:00.000Z"),
    ],
)
def test_arithmetic_follows_javascript(text: str, amount: int, unit: str, expected: str) -> None:
    """month/year change the field and let the day overflow (setUTCMonth/setUTCFullYear); day/hour are exact."""
    assert _iso(text, amount, unit) == expected


def test_results_outside_0000_to_9999_are_errors() -> None:
    """A result JavaScript could still represent but vaxcred does not is an error, never a wrong date."""
    with pytest.raises(errors.EvaluationError):
        _iso("9999-12-31", 1, "day")
    with pytest.raises(errors.EvaluationError):
        _iso("2021-01-01", 10**12, "year")
    with pytest.raises(errors.EvaluationError):
        _iso("0000-01-01", -1, "month")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1964", "1964-12-31T00:00:00.000Z"),
        ("1964-02", "1964-02-29T00:00:00.000Z"),
        ("1964-08-12", "1964-08-12T00:00:00.000Z"),
    ],
)
def test_dcc_date_of_birth(text: str, expected: str) -> None:
    """The latest day consistent with a (partial) date of birth."""
    assert dcc_date_of_birth(text).isoformat() == expected


@pytest.mark.parametrize("text", ["", "1964-08-12T00:00:00Z", "1964-02-30", "XXXX", "1964-13"])
def test_dcc_date_of_birth_errors(text: str) -> None:
    """Only YYYY[-MM[-DD]] naming a real date is a date of birth."""
    with pytest.raises(errors.EvaluationError):
        dcc_date_of_birth(text)


moments = st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9998, 12, 31)).map(
    lambda d: d.replace(microsecond=d.microsecond // 1000 * 1000)
)


def _text(moment: datetime) -> str:
    return f"{moment.year:04d}-" + moment.strftime("%m-%dT%H:%M:%S")


@given(moments)
def test_parse_and_format_agree_with_datetime(moment: datetime) -> None:
    """Own calendar code and Python's datetime agree on every instant of the years 1-9998."""
    text = _text(moment) + f".{moment.microsecond // 1000:03d}Z"
    parsed = parse_date_time(text)
    assert parsed.isoformat() == text
    assert parsed.ms == (moment.replace(tzinfo=UTC) - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(
        milliseconds=1
    )


@given(moments, st.integers(min_value=-5000, max_value=5000))
def test_days_and_hours_are_exact(moment: datetime, amount: int) -> None:
    """Adding days/hours moves the instant by exactly 86,400 s / 3,600 s."""
    start = DateTime(parse_date_time(_text(moment) + "Z").ms)
    assert plus_time(start, amount, "day").ms - start.ms == amount * 86_400_000
    assert plus_time(start, amount, "hour").ms - start.ms == amount * 3_600_000
