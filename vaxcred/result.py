"""The verification result: status, one entry per named step, minimal holder data.

A border officer needs the reason and the holder's name and date of birth (to compare with a photo ID),
nothing more; the decoded certificate is there for apps that show a detail view to authorised roles.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from vaxcred import errors
from vaxcred.text import json_compatible

if TYPE_CHECKING:
    from vaxcred.rules import RuleOutcome

__all__ = [
    "STEP_NAMES",
    "Holder",
    "Notice",
    "Status",
    "Step",
    "StepResult",
    "VerificationResult",
]

#: The verify steps, in order. Later issues append ``revocation`` and ``rules``.
STEP_NAMES: tuple[str, ...] = (
    "prefix",
    "base45",
    "zlib",
    "cose",
    "kid",
    "signature",
    "chain",
    "time",
    "key_usage",
    "schema",
    "revocation",
    "rules",
)


class Status(enum.StrEnum):
    VALID = "VALID"
    INVALID = "INVALID"
    NEEDS_CHECK = "NEEDS_CHECK"


class StepResult(enum.StrEnum):
    PASS = "pass"  # noqa: S105 - not a password
    FAIL = "fail"
    SKIP = "skip"


#: step name -> the error class ``raise_for_status`` raises when that step failed
_STEP_ERRORS: dict[str, type[errors.VaxcredError]] = {
    "prefix": errors.PrefixError,
    "base45": errors.Base45Error,
    "zlib": errors.ZlibError,
    "cose": errors.CoseError,
    "kid": errors.KidError,
    "signature": errors.SignatureError,
    "chain": errors.ChainError,
    "time": errors.TimeError,
    "key_usage": errors.KeyUsageError,
    "schema": errors.SchemaError,
    "revocation": errors.RevokedError,
    "rules": errors.RulesError,
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Step:
    """One verification step: ``result`` is pass, fail or skip; ``code`` is stable, ``message`` human."""

    name: str
    result: StepResult
    code: str
    message: str

    def to_json(self) -> dict[str, str]:
        return {"result": self.result.value, "code": self.code, "message": self.message}


@dataclass(frozen=True, slots=True, kw_only=True)
class Notice:
    """Something the reader must know that is not a failed step (stable ``code``, human ``message``):
    ``trust.unauthenticated``, ``trust.stale``, ``trust.age_unknown``, ``iss.mismatch``."""

    code: str
    message: str

    def to_json(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


@dataclass(frozen=True, slots=True, kw_only=True)
class Holder:
    """What a border officer compares with a photo ID: the name as written and as transliterated, and the DOB."""

    fn: str | None
    gn: str | None
    fnt: str | None
    gnt: str | None
    dob: str

    def to_json(self) -> dict[str, str | None]:
        return {"fn": self.fn, "gn": self.gn, "fnt": self.fnt, "gnt": self.gnt, "dob": self.dob}


@dataclass(frozen=True, slots=True, kw_only=True)
class VerificationResult:
    """Outcome of :func:`vaxcred.verify`; never raised, inspect it or call :meth:`raise_for_status`."""

    status: Status
    steps: tuple[Step, ...]
    holder: Holder | None = None
    #: the decoded DCC (``hcert[1]``), present only once the signature verified
    certificate: Mapping[str, Any] | None = None
    issuer_country: str | None = None
    iat: datetime | None = None
    exp: datetime | None = None
    kid: bytes | None = None
    #: where trust came from (a :class:`vaxcred.trust.TrustMode` value): ``"signed_list"`` (authenticated
    #: national list), ``"gateway"`` (authenticated EU gateway JSON), ``"unauthenticated"`` (the unsafe
    #: opt-in: never VALID) or ``"dsc"`` (bare certificates handed over, chain not checked)
    trust_mode: str = "signed_list"
    environment: str | None = None
    #: each business rule's outcome (the ``rules`` step), in identifier order
    rules: tuple[RuleOutcome, ...] = ()
    #: the last trust update (signed issue time, or vouched retrieval time); ``None`` = unknown / bare DSCs
    trust_updated_at: datetime | None = None
    #: the trust list's age at ``now`` and the bound it was held to (``None`` for bare DSCs)
    trust_age: timedelta | None = None
    trust_max_age: timedelta | None = None
    #: the CWT ``iss`` claim as the passport states it (informational; a mismatch is a notice)
    iss: str | None = None
    #: what the reader must know beyond the steps (why NEEDS_CHECK; an ``iss`` mismatch)
    notices: tuple[Notice, ...] = ()
    _by_name: Mapping[str, Step] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {s.name: s for s in self.steps})

    @property
    def ok(self) -> bool:
        return self.status is Status.VALID

    def step(self, name: str) -> Step:
        """The step called ``name`` (KeyError if this result has no such step)."""
        return self._by_name[name]

    @property
    def failures(self) -> tuple[Step, ...]:
        return tuple(s for s in self.steps if s.result is StepResult.FAIL)

    def raise_for_status(self) -> VerificationResult:
        """Raise the typed error of the first failed step; return ``self`` when VALID."""
        for step in self.steps:
            if step.result is StepResult.FAIL:
                raise _STEP_ERRORS.get(step.name, errors.VerificationError)(step.message, code=step.code)
        if self.status is Status.NEEDS_CHECK:
            raise errors.VerificationError("result needs a manual check", code="verify.needs_check")
        return self

    def to_json(self, *, include_certificate: bool = True) -> dict[str, Any]:
        """The CLI's ``--json`` object: status, steps by name, holder, certificate."""
        return {
            "status": self.status.value,
            "steps": {s.name: s.to_json() for s in self.steps},
            "holder": self.holder.to_json() if self.holder else None,
            # strict JSON: a signed DCC may hold NaN or infinities (CBOR floats), shown as strings
            "certificate": json_compatible(dict(self.certificate))
            if (include_certificate and self.certificate)
            else None,
            "issuer_country": self.issuer_country,
            "iat": self.iat.isoformat() if self.iat else None,
            "exp": self.exp.isoformat() if self.exp else None,
            "kid": self.kid.hex() if self.kid else None,
            "trust_mode": self.trust_mode,
            "environment": self.environment,
            "rules": [outcome.to_json() for outcome in self.rules],
            "trust_updated_at": self.trust_updated_at.isoformat() if self.trust_updated_at else None,
            "trust_age_seconds": _seconds(self.trust_age),
            "trust_max_age_seconds": _seconds(self.trust_max_age),
            "iss": self.iss,
            "notices": [n.to_json() for n in self.notices],
        }


def _seconds(value: timedelta | None) -> int | None:
    return None if value is None else int(value.total_seconds())
