"""The import row's columns and the limits on their values (what :func:`~vaxcred.pipeline.records.parsing.parse_row`
and :class:`~vaxcred.pipeline.records.row.DoseRecord` enforce); pure constants and patterns."""

from __future__ import annotations

import datetime as dt
import re

__all__ = [
    "DATE_RE",
    "DOSE_NUMBER_RE",
    "EARLIEST_DOSE_DATE",
    "FORMULA_PREFIXES",
    "MAX_DOSE_NUMBER",
    "MAX_LOT_LENGTH",
    "OPTIONAL_FIELDS",
    "ROW_FIELDS",
    "SITE_ID_PATTERN",
    "SITE_RE",
    "echo_code",
]

#: The columns of an import row, in order (CSV header / JSON Lines keys).
ROW_FIELDS = ("citizen_id", "full_name", "dob", "gender", "vaccine", "lot", "date", "dose_number", "site_id")
#: Columns read when present.
OPTIONAL_FIELDS = ("id_type",)
#: A vaccination site's identifier: ASCII letters, digits, ``.``, ``_``, ``-``; 1–64 characters.
SITE_ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"
MAX_LOT_LENGTH = 64
#: A cell starting with one of these is a formula to a spreadsheet (CSV injection): refused in lots, neutralised
#: in the rejects file.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
#: The EU DCC schema up to 1.2.1 capped ``dn`` at 9; no one in Viet Nam's campaign received more.
MAX_DOSE_NUMBER = 9
#: No COVID-19 vaccine dose was given before 2020 (Viet Nam's campaign began on 2021-03-08).
EARLIEST_DOSE_DATE = dt.date(2020, 1, 1)

#: a whole :data:`SITE_ID_PATTERN`
SITE_RE = re.compile(SITE_ID_PATTERN + r"\Z", re.ASCII)
#: the shape of a dose date (``YYYY-MM-DD``; whether it is a calendar date is checked apart)
DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}\Z", re.ASCII)
#: a dose number given as text
DOSE_NUMBER_RE = re.compile(r"[0-9]{1,3}\Z", re.ASCII)

_ECHO_RE = re.compile(r"[A-Za-z0-9./_-]{1,40}\Z", re.ASCII)


def echo_code(value: str) -> str:
    """Quote a refused value in an error only when it looks like a code (``'Sputnk'``): a value with spaces or
    non-ASCII letters may be a name that slipped into the wrong column, and errors carry no personal data."""
    return repr(value) if _ECHO_RE.match(value) else "(value not shown)"
