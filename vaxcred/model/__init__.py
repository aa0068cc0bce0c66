"""The DCC data model: holder name and ICAO transliteration, date of birth, UVCI, the typed payload.

Pure: no I/O, no clock.  Everything is a frozen dataclass validated when built; invalid issuing-side input
raises :class:`~vaxcred.errors.ModelError` (codes ``model.bad_name``, ``model.bad_date``, ``model.bad_uvci``,
``model.bad_field``, ``model.bad_payload``, ``model.entry_count``).
"""

from __future__ import annotations

from vaxcred.model.dates import DateOfBirth, DatePrecision
from vaxcred.model.dcc import DCC, DCC_VERSION, Entry, PayloadType, Recovery, Test, Vaccination
from vaxcred.model.names import MAX_NAME_LENGTH, Name, transliterate
from vaxcred.model.uvci import (
    UVCI_ALPHABET,
    UVCI_RANDOM_LENGTH,
    generate_uvci,
    uvci_checksum,
    uvci_is_valid_checksum,
)

__all__ = [
    "DCC",
    "DCC_VERSION",
    "MAX_NAME_LENGTH",
    "UVCI_ALPHABET",
    "UVCI_RANDOM_LENGTH",
    "DateOfBirth",
    "DatePrecision",
    "Entry",
    "Name",
    "PayloadType",
    "Recovery",
    "Test",
    "Vaccination",
    "generate_uvci",
    "transliterate",
    "uvci_checksum",
    "uvci_is_valid_checksum",
]
