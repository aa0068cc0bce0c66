"""Errors of the national pipeline: one class, :class:`PipelineError`, with stable ``pipeline.*`` codes.

::

    VaxcredError (vaxcred.errors)
    └── PipelineError               pipeline.*
          pipeline.invalid_id             a citizen ID that is not a well-formed CCCD / CMND / other number
          pipeline.bad_row                an import row with a missing or invalid field (``field`` names it)
          pipeline.bad_registry_data      a registry table (CSV / rows) with an invalid entry
          pipeline.registry_rejected      the HTTP registry refused a request (4xx, redirect): not retried
          pipeline.registry_bad_response  the HTTP registry answered with something that is not a valid answer
          pipeline.registry_unavailable   the HTTP registry could not be reached (5xx, timeouts) after retries
          pipeline.bad_import             a whole import file refused (unknown format, missing header column)
          pipeline.unreadable_row         an import row refused before parsing (undecodable bytes, too long)
          pipeline.bad_correction         a correction with an invalid field or proposed value (``field``)
          pipeline.unknown_record         a correction naming a dose or person that does not exist
          pipeline.correction_closed      resolving or rejecting a correction that is no longer open
          pipeline.correction_conflict    a correction whose change clashes with another record
          pipeline.dose_withdrawn         a correction (or a record export) naming a dose record a ``duplicate``
                                          correction withdrew
          pipeline.no_site_record         a record export finding no dose in force with a current site signature
          pipeline.bad_passport           a stored passport that cannot be decoded (revocation needs it)
          pipeline.issuance_worker_failed an issuance worker process died or raised
          pipeline.registry_check_worker_failed  a registry-check worker process died or raised
          pipeline.site_signing_worker_failed    the site-signing process (pipelined signing) died or raised
          sitesign.*                      site-signed dose records (vaxcred.pipeline.site_signing.record): wrong_purpose,
                                          not_own_record, cert_not_valid, unknown_vaccine, bad_record on the
                                          signing side; the verifying side raises the matching core classes
                                          (CoseError, KeyUsageError, TimeError, ...) with sitesign.* codes

Messages never contain a citizen ID, name or date of birth unmasked (:mod:`vaxcred.privacy`).  Codes are part of
the public contract: add new ones, never rename.
"""

from __future__ import annotations

from vaxcred.errors import VaxcredError

__all__ = [
    "BAD_REGISTRY_DATA",
    "BAD_ROW",
    "INVALID_ID",
    "REGISTRY_BAD_RESPONSE",
    "REGISTRY_REJECTED",
    "REGISTRY_UNAVAILABLE",
    "PipelineError",
]

INVALID_ID = "pipeline.invalid_id"
BAD_ROW = "pipeline.bad_row"
BAD_REGISTRY_DATA = "pipeline.bad_registry_data"
REGISTRY_REJECTED = "pipeline.registry_rejected"
REGISTRY_BAD_RESPONSE = "pipeline.registry_bad_response"
REGISTRY_UNAVAILABLE = "pipeline.registry_unavailable"


class PipelineError(VaxcredError):
    """A pipeline step refused its input or could not complete; ``field`` names the offending field, if any."""

    default_code = "pipeline.error"

    def __init__(self, message: str, *, code: str | None = None, field: str | None = None) -> None:
        super().__init__(message, code=code)
        self.field = field

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, field={self.field!r}, message={self.message!r})"
