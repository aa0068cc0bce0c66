"""Steps (8) time, (9) key_usage and (10) schema: once the signature holds, is the passport valid ``now``,
may its DSC sign its type, and is its payload a DCC? Each runs and reports (one result lists every problem)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from vaxcred import errors, schema
from vaxcred.result import Step
from vaxcred.trust import TrustedDsc
from vaxcred.verify.payload import payload_type
from vaxcred.verify.steps import PASS, Steps
from vaxcred.x509util import eku_allows

_OK_TIME = Step(name="time", result=PASS, code="time.ok", message="within iat/exp and the DSC's validity")


def time_problem(
    iat: datetime, exp: datetime, dsc: TrustedDsc, now: datetime, skew: timedelta
) -> tuple[str, str] | None:
    """(8) the shell model: DSC.notBefore <= iat <= now (+skew) <= exp <= DSC.notAfter."""
    info = dsc.info
    if exp < now:
        return "time.expired", f"expired at {exp.isoformat()}"
    if iat - now > skew:  # not `iat > now + skew`: that sum overflows near datetime.max
        return "time.not_yet_valid", f"issued in the future ({iat.isoformat()})"
    if iat < info.not_before:
        return "time.iat_before_dsc", "issued before its signing certificate became valid"
    if exp > info.not_after:
        return "time.exp_after_dsc", "valid beyond its signing certificate's notAfter"
    # DSC validity at `now` follows: notBefore <= iat <= now and now <= exp <= notAfter.
    if info.pkup is not None:
        start, end = info.pkup
        if (start is not None and iat < start) or (end is not None and iat > end):
            return "time.outside_key_usage_period", "issued outside the DSC's private key usage period"
    if iat > exp:
        return "time.iat_after_exp", "issued after it expires"
    return None


def check_time(
    steps: Steps, iat: datetime, exp: datetime, dsc: TrustedDsc, now: datetime, skew: timedelta
) -> None:
    """(8) time."""
    problem = time_problem(iat, exp, dsc, now, skew)
    if problem:
        steps.fail("time", *problem)
    else:
        steps.items.append(_OK_TIME)


def check_key_usage(steps: Steps, dsc: TrustedDsc, dcc: Mapping[str, Any]) -> None:
    """(9) key_usage: exactly one of v/t/r, allowed by the DSC's extended key usage."""
    kind = payload_type(dcc)
    if kind is None:
        steps.fail(
            "key_usage", "key_usage.not_one_type", "the payload must hold exactly one of v, t, r (non-empty)"
        )
    elif not eku_allows(dsc.info, kind):
        steps.fail("key_usage", "key_usage.not_allowed", f"the DSC may not sign type {kind!r}")
    else:
        steps.ok("key_usage", f"DSC allowed to sign type {kind!r}")


def check_schema(steps: Steps, dcc: Mapping[str, Any]) -> None:
    """(10) schema: the official JSON schema of the payload's own ``ver``, plus the DCC profile."""
    try:
        schema.validate_dcc(dcc)
    except errors.SchemaError as e:
        steps.error("schema", e)
    else:
        steps.ok("schema", f"valid against DCC schema {dcc.get('ver')}")
