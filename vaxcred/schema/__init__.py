"""DCC schema validation: every published schema version compiled once into closures.

* :mod:`vaxcred.schema.validation` — :func:`validate_dcc`, version selection, the checks JSON Schema cannot say;
* :mod:`vaxcred.schema.compiler` — the draft 2020-12 subset compiler (jsonschema is its test oracle).
"""

from __future__ import annotations

from vaxcred.schema.validation import (
    NEWEST_SCHEMA_VERSION,
    SCHEMA_VERSIONS,
    schema_version_for,
    validate_dcc,
)

__all__ = ["NEWEST_SCHEMA_VERSION", "SCHEMA_VERSIONS", "schema_version_for", "validate_dcc"]
