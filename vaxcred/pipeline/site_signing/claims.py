"""The claims a verified dose record yields (:class:`DoseClaims`), the salted citizen hash and the record format's
constants (content type, versions, lengths).  Pure: no keys, no clock, no I/O.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

__all__ = [
    "BATCH_VERSION",
    "CITIZEN_HASH_LENGTH",
    "CONTENT_TYPE",
    "RECORD_VERSION",
    "SALT_LENGTH",
    "DoseClaims",
    "citizen_hash",
]

#: the COSE content type (header 3) of a site-signed dose record
CONTENT_TYPE: Final = "application/vnd.vaxcred.dose-record+cbor"
RECORD_VERSION: Final = 1
#: the version of a batch head and of its members' payloads (:mod:`vaxcred.pipeline.site_signing.batch`)
BATCH_VERSION: Final = 2
SALT_LENGTH: Final = 16
CITIZEN_HASH_LENGTH: Final = 32


@dataclass(frozen=True, slots=True, kw_only=True)
class DoseClaims:
    """The verified content of a site-signed dose record.  ``repr`` hides the citizen hash and salt."""

    site_id: str
    citizen_hash: bytes = field(repr=False)
    salt: bytes = field(repr=False)
    mp: str
    ma: str
    vp: str
    lot: str
    date: str
    dose_number: int
    signed_at: datetime
    kid: bytes

    def matches_citizen(self, citizen_id: str) -> bool:
        """Whether the record was signed for ``citizen_id`` (constant-time comparison)."""
        return hmac.compare_digest(citizen_hash(citizen_id, self.salt), self.citizen_hash)


def citizen_hash(citizen_id: str, salt: bytes) -> bytes:
    """SHA-256(salt ‖ UTF-8(citizen_id)); the salt is exactly :data:`SALT_LENGTH` bytes."""
    if not isinstance(citizen_id, str) or not isinstance(salt, bytes):
        raise TypeError("citizen_id must be str and salt bytes")
    if len(salt) != SALT_LENGTH:
        raise ValueError(f"salt must be {SALT_LENGTH} bytes")
    return hashlib.sha256(salt + citizen_id.encode("utf-8")).digest()
