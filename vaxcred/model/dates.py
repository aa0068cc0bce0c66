"""Date of birth: full or partial (``YYYY-MM-DD``, ``YYYY-MM``, ``YYYY``, or ``""``), years 1900–2099.

The schema pattern ``^((19|20)\\d\\d(-\\d\\d){0,2}){0,1}$`` does not check month and day ranges; this model
does (``2000-02-30`` is refused).  Dates stay text on the wire (DCC.md §2): the model keeps the text it was
given.
"""

from __future__ import annotations

import calendar
import enum
import re
from dataclasses import dataclass

from vaxcred.errors import ModelError
from vaxcred.privacy import mask_dob

__all__ = ["DateOfBirth", "DatePrecision"]

_DOB_RE = re.compile(r"(?:([0-9]{4})(?:-([0-9]{2})(?:-([0-9]{2}))?)?)?\Z", re.ASCII)
# Seen in production (BG, DCC.md §9): a full date followed by a time part.  Accepted only when decoding.
_DATETIME_RE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})[T ][0-9:.+\-Z]*\Z", re.ASCII)

MIN_YEAR = 1900
MAX_YEAR = 2099


class DatePrecision(enum.Enum):
    """How much of a date of birth is known."""

    NONE = 0  # "" (unknown)
    YEAR = 1
    MONTH = 2
    DAY = 3


@dataclass(frozen=True, slots=True, kw_only=True)
class DateOfBirth:
    """A possibly partial date of birth; build with :meth:`from_text` or the components.

    ``text`` is the wire form.  ``DateOfBirth(year=1985, month=3)`` gives ``text == "1985-03"``.
    """

    year: int | None = None
    month: int | None = None
    day: int | None = None
    text: str = ""

    def __repr__(self) -> str:  # personal data: only the year (vaxcred.privacy)
        return f"DateOfBirth({mask_dob(self.text)!r}…)"

    def __post_init__(self) -> None:
        year, month, day = self.year, self.month, self.day
        for label, value in (("year", year), ("month", month), ("day", day)):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
                raise ModelError(f"dob {label} must be an integer", code="model.bad_date")
        if (month is not None and year is None) or (day is not None and month is None):
            raise ModelError("dob: a month needs a year, a day needs a month", code="model.bad_date")
        if year is not None and not MIN_YEAR <= year <= MAX_YEAR:
            raise ModelError(f"dob year must be within {MIN_YEAR}–{MAX_YEAR}", code="model.bad_date")
        if year is not None and month is not None:
            if not 1 <= month <= 12:
                raise ModelError("dob month must be within 01–12", code="model.bad_date")
            if day is not None and not 1 <= day <= calendar.monthrange(year, month)[1]:
                raise ModelError("dob day does not exist in that month", code="model.bad_date")
        canonical = _format(year, month, day)
        if not self.text:
            object.__setattr__(self, "text", canonical)
        elif not isinstance(self.text, str) or not (
            self.text == canonical
            or (day is not None and _DATETIME_RE.match(self.text) and self.text[:10] == canonical)
        ):
            raise ModelError("dob text does not match its components", code="model.bad_date")

    @property
    def precision(self) -> DatePrecision:
        """``NONE`` for ``""``, else ``YEAR``, ``MONTH`` or ``DAY``."""
        if self.year is None:
            return DatePrecision.NONE
        if self.month is None:
            return DatePrecision.YEAR
        if self.day is None:
            return DatePrecision.MONTH
        return DatePrecision.DAY

    @classmethod
    def from_text(cls, text: str, *, lenient: bool = False) -> DateOfBirth:
        """Parse ``YYYY-MM-DD``, ``YYYY-MM``, ``YYYY`` or ``""`` (ASCII digits only, real calendar dates).

        ``lenient=True`` (decoding other issuers' certificates) also accepts a full date followed by a time
        part (``1978-01-26T00:00:00``), keeping the text as received with ``DAY`` precision.
        """
        if not isinstance(text, str):
            raise ModelError("dob must be a string", code="model.bad_date")
        m = _DOB_RE.match(text)
        if m is None and lenient:
            m = _DATETIME_RE.match(text)
        if m is None:
            raise ModelError("dob must be YYYY-MM-DD, YYYY-MM, YYYY or empty", code="model.bad_date")
        year, month, day = (int(g) if g is not None else None for g in m.groups())
        return cls(year=year, month=month, day=day, text=text)


def _format(year: int | None, month: int | None, day: int | None) -> str:
    if year is None:
        return ""
    if month is None:
        return f"{year:04d}"
    if day is None:
        return f"{year:04d}-{month:02d}"
    return f"{year:04d}-{month:02d}-{day:02d}"
