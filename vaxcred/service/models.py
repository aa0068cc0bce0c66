"""The service's wire format: pydantic models, the source of the published OpenAPI schema.

Every response body the service sends is one of these models (tests validate live responses against
them, schemathesis against the published schema). Names and dates of birth appear only in
:class:`HolderOut`; nothing else carries personal data.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

__all__ = [
    "MAX_QR_TEXT",
    "DataSetOut",
    "Details",
    "ErrorBody",
    "ErrorResponse",
    "Health",
    "HolderOut",
    "Messages",
    "Reason",
    "StepOut",
    "TrustOut",
    "TrustSummary",
    "VerifyRequest",
    "VerifyResponse",
]

#: Longest ``qr`` text accepted by the JSON body (the verify prefix step refuses anything over 4,296
#: characters, the QR alphanumeric maximum, with its own reason; beyond this the request is refused).
MAX_QR_TEXT = 16_384


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class VerifyRequest(_Model):
    """``POST /verify`` as JSON. (Images go as ``multipart/form-data`` field ``image``, or as a raw
    ``image/png`` / ``image/jpeg`` body.)"""

    qr: str = Field(
        min_length=1,
        max_length=MAX_QR_TEXT,
        description="The QR code's text: HC1:… (leading and trailing white space is ignored).",
    )
    country: str | None = Field(
        default=None,
        pattern=r"^[A-Z]{2}$",
        description="Destination country (ISO 3166-1 alpha-2) whose entry rules apply, when rules are loaded.",
    )
    at: AwareDatetime | None = Field(
        default=None,
        description="Verify as of this time. Refused (422 request.at_not_allowed) unless the service was "
        "started with --testing-allow-at: a border service uses its own clock.",
    )


class Messages(_Model):
    """One text in each language of the officer page."""

    en: str
    vi: str


class Reason(_Model):
    """Why a result is not VALID (or a note about how it was reached): a stable code and plain words."""

    code: str = Field(description="Stable dotted code, e.g. time.expired, signature.invalid, trust.stale")
    step: str = Field(description="The verify step that produced it (prefix … schema, or trust)")
    message: Messages


class HolderOut(_Model):
    """Name and date of birth, to compare with the photo ID (as encoded; the date may be partial)."""

    fn: str | None = Field(description="Family name(s)")
    gn: str | None = Field(description="Given name(s)")
    fnt: str | None = Field(description="Family name(s), ICAO 9303 transliteration")
    gnt: str | None = Field(description="Given name(s), ICAO 9303 transliteration")
    dob: str = Field(description="Date of birth as encoded: YYYY-MM-DD, YYYY-MM, YYYY or empty")


class TrustSummary(_Model):
    """How fresh the trust behind this verdict is."""

    mode: str = Field(description="dsc, gateway or signed_list")
    environment: str = Field(description="PROD, ACC or TST")
    updated_at: datetime = Field(description="Signed issue time of the trust list, else when it was loaded")
    age_seconds: float
    fresh: bool


class StepOut(_Model):
    name: str
    result: Literal["pass", "fail", "skip"]
    code: str
    message: str


class Details(_Model):
    """Every step and the signer; absent in minimal-disclosure mode. Never the vaccination itself."""

    steps: list[StepOut]
    issuer_country: str | None
    iat: datetime | None
    exp: datetime | None
    kid: str | None = Field(description="Key id, hex")


class VerifyResponse(_Model):
    status: Literal["VALID", "INVALID", "NEEDS_CHECK"]
    reasons: list[Reason] = Field(description="Why the status is not VALID; empty when VALID")
    notes: list[Reason] = Field(description="How the verdict was reached, e.g. chain.not_checked")
    holder: HolderOut | None = Field(description="Present once the signature holds")
    verified_at: datetime
    trust: TrustSummary
    details: Details | None = Field(description="Absent (null) in minimal-disclosure mode")


class DataSetOut(_Model):
    name: str
    source: str
    updated_at: datetime | None
    age_seconds: float | None
    max_age_seconds: float | None
    fresh: bool | None
    count: int | None


class TrustOut(_Model):
    """``GET /trust``: trust mode and freshness, and every other data set the verdicts depend on."""

    now: datetime
    mode: str
    environment: str
    updated_at: datetime
    signed_issue_time: bool = Field(description="Whether updated_at is the list's own signed time")
    loaded_at: datetime
    age_seconds: float
    stale_after: datetime | None
    fresh: bool
    sequence: int | None
    dscs: int
    cscas: int
    countries: list[str]
    datasets: list[DataSetOut]
    minimal_disclosure: bool
    rules_supported: bool = Field(description="Whether the country field selects entry rules")


class Health(_Model):
    status: Literal["ok"]
    version: str


class ErrorBody(_Model):
    code: str = Field(description="Stable code: request.too_large, request.unsupported_media_type, …")
    message: str


class ErrorResponse(_Model):
    error: ErrorBody
