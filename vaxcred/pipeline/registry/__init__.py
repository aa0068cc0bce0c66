"""The population registry check: lookup adapters (table, CSV, HTTP), the matching rule, the check stage.

Public names of the modules below; import private helpers from their module.
"""

from __future__ import annotations

from vaxcred.pipeline.registry.check import (
    BATCH_SIZE,
    RegistryCheckReport,
    check_persons,
    registry_source,
    run_registry_check,
    unchecked_count,
)
from vaxcred.pipeline.registry.http import (
    HttpRegistry,
)
from vaxcred.pipeline.registry.lookup import (
    MISMATCH_FIELDS,
    REGISTRY_FIELDS,
    PopulationRegistry,
    RegistryEntry,
    RegistryResult,
    RegistryStatus,
    TableRegistry,
    dates_of_birth_match,
    match,
    write_registry_csv,
)

__all__ = [
    "BATCH_SIZE",
    "MISMATCH_FIELDS",
    "REGISTRY_FIELDS",
    "HttpRegistry",
    "PopulationRegistry",
    "RegistryCheckReport",
    "RegistryEntry",
    "RegistryResult",
    "RegistryStatus",
    "TableRegistry",
    "check_persons",
    "dates_of_birth_match",
    "match",
    "registry_source",
    "run_registry_check",
    "unchecked_count",
    "write_registry_csv",
]
