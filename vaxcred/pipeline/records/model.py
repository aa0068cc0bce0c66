"""The import row's model in one place: the columns and their limits (:mod:`.fields`), vaccines
(:mod:`.vaccines`), the dose, person and row dataclasses (:mod:`.row`) and the row parser (:mod:`.parsing`).

This module defines nothing: it names the public parts of the four modules it was split into, so that
``from vaxcred.pipeline.records.model import DoseRecord`` (and every other name it used to hold) keeps working.
New code imports from :mod:`vaxcred.pipeline.records` (or the module that defines the name).
"""

from __future__ import annotations

from vaxcred.pipeline.records.fields import (
    EARLIEST_DOSE_DATE,
    FORMULA_PREFIXES,
    MAX_DOSE_NUMBER,
    MAX_LOT_LENGTH,
    OPTIONAL_FIELDS,
    ROW_FIELDS,
    SITE_ID_PATTERN,
)
from vaxcred.pipeline.records.parsing import parse_gender, parse_row
from vaxcred.pipeline.records.row import DoseRecord, ImportRow, Person
from vaxcred.pipeline.records.vaccines import VACCINE_ALIASES, resolve_vaccine, vaccine_codes

__all__ = [
    "EARLIEST_DOSE_DATE",
    "FORMULA_PREFIXES",
    "MAX_DOSE_NUMBER",
    "MAX_LOT_LENGTH",
    "OPTIONAL_FIELDS",
    "ROW_FIELDS",
    "SITE_ID_PATTERN",
    "VACCINE_ALIASES",
    "DoseRecord",
    "ImportRow",
    "Person",
    "parse_gender",
    "parse_row",
    "resolve_vaccine",
    "vaccine_codes",
]
