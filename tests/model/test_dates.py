"""Partial dates of birth (DCC.md §2)."""

from __future__ import annotations

import pytest

from vaxcred.errors import ModelError
from vaxcred.model import DateOfBirth, DatePrecision


@pytest.mark.parametrize(
    ("text", "precision", "parts"),
    [
        ("1985-03-07", DatePrecision.DAY, (1985, 3, 7)),
        ("1985-03", DatePrecision.MONTH, (1985, 3, None)),
        ("1985", DatePrecision.YEAR, (1985, None, None)),
        ("", DatePrecision.NONE, (None, None, None)),
        ("2000-02-29", DatePrecision.DAY, (2000, 2, 29)),
        ("1900-01-01", DatePrecision.DAY, (1900, 1, 1)),
        ("2099-12-31", DatePrecision.DAY, (2099, 12, 31)),
    ],
)
def test_from_text_accepts_full_and_partial_dates(
    text: str, precision: DatePrecision, parts: tuple[int | None, ...]
) -> None:
    """The four wire forms parse, keep their text and report their precision."""
    dob = DateOfBirth.from_text(text)
    assert dob.text == text
    assert dob.precision is precision
    assert (dob.year, dob.month, dob.day) == parts


@pytest.mark.parametrize(
    "text",
    [
        "1900-02-29",  # 1900 is not a leap year
        "2001-02-29",
        "2000-02-30",
        "2000-04-31",
        "2000-13",
        "2000-00",
        "2000-01-00",
        "1899",
        "2100-01-01",
        "85-03-07",
        "1985-3-7",
        "1985/03/07",
        "1985-03-07\n",
        "１９８５",  # full-width digits
        "١٩٨٥",  # Arabic-Indic digits
        " 1985",
        "1985-03-07T00:00:00",  # only with lenient=True
    ],
)
def test_from_text_rejects_invalid_dates(text: str) -> None:
    """Impossible days, out-of-range years and other forms raise model.bad_date."""
    with pytest.raises(ModelError) as exc:
        DateOfBirth.from_text(text)
    assert exc.value.code == "model.bad_date"


def test_lenient_accepts_date_time_and_keeps_text() -> None:
    """Decoding tolerates a date-time (BG vectors) and keeps the text as received."""
    dob = DateOfBirth.from_text("1978-01-26T00:00:00", lenient=True)
    assert (dob.year, dob.month, dob.day, dob.precision) == (1978, 1, 26, DatePrecision.DAY)
    assert dob.text == "1978-01-26T00:00:00"
    with pytest.raises(ModelError):
        DateOfBirth.from_text("1978-02-30T00:00:00", lenient=True)


def test_components_build_the_text() -> None:
    """DateOfBirth(year=…, month=…) formats its own text."""
    assert DateOfBirth(year=1985, month=3).text == "1985-03"
    assert DateOfBirth().text == ""
    with pytest.raises(ModelError):
        DateOfBirth(year=1985, day=3)
    with pytest.raises(ModelError):
        DateOfBirth(year=1985, month=3, text="1985-03-01")
