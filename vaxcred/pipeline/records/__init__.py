"""Dose records as sites enter them: citizen IDs (CCCD/CMND), Vietnamese names, row parsing, bulk import.

Public names of the modules below; import private helpers from their module.
"""

from __future__ import annotations

from vaxcred.pipeline.records.calendar import VIETNAM_TIME, local_text, vietnam_date
from vaxcred.pipeline.records.cccd import (
    PROVINCES,
    CitizenId,
    Gender,
    IdType,
    build_cccd,
    check_consistency,
    parse_citizen_id,
)
from vaxcred.pipeline.records.history import HistoryProblem, history_problems
from vaxcred.pipeline.records.importer import (
    BAD_IMPORT,
    BATCH_SIZE,
    MAX_LINE_CHARS,
    MAX_RAW_CHARS,
    REJECTS_HEADER,
    Format,
    ImportReport,
    import_file,
    import_lines,
    neutralise_cell,
)
from vaxcred.pipeline.records.model import (
    EARLIEST_DOSE_DATE,
    FORMULA_PREFIXES,
    MAX_DOSE_NUMBER,
    MAX_LOT_LENGTH,
    OPTIONAL_FIELDS,
    ROW_FIELDS,
    SITE_ID_PATTERN,
    VACCINE_ALIASES,
    DoseRecord,
    ImportRow,
    Person,
    parse_gender,
    parse_row,
    resolve_vaccine,
    vaccine_codes,
)
from vaxcred.pipeline.records.names import (
    MATCHING_DIFFERENCES,
    NameDifference,
    compare_names,
    fold_diacritics,
    names_match,
    normalize_name,
)

__all__ = [
    "BAD_IMPORT",
    "BATCH_SIZE",
    "EARLIEST_DOSE_DATE",
    "FORMULA_PREFIXES",
    "MATCHING_DIFFERENCES",
    "MAX_DOSE_NUMBER",
    "MAX_LINE_CHARS",
    "MAX_LOT_LENGTH",
    "MAX_RAW_CHARS",
    "OPTIONAL_FIELDS",
    "PROVINCES",
    "REJECTS_HEADER",
    "ROW_FIELDS",
    "SITE_ID_PATTERN",
    "VACCINE_ALIASES",
    "VIETNAM_TIME",
    "CitizenId",
    "DoseRecord",
    "Format",
    "Gender",
    "HistoryProblem",
    "IdType",
    "ImportReport",
    "ImportRow",
    "NameDifference",
    "Person",
    "build_cccd",
    "check_consistency",
    "compare_names",
    "fold_diacritics",
    "history_problems",
    "import_file",
    "import_lines",
    "local_text",
    "names_match",
    "neutralise_cell",
    "normalize_name",
    "parse_citizen_id",
    "parse_gender",
    "parse_row",
    "resolve_vaccine",
    "vaccine_codes",
    "vietnam_date",
]
