"""Steps (11) revocation and (12) rules: the checks that depend on the verifier's own data besides trust
(a revocation list, a business rule set). Missing, stale or incomplete data never yields a plain VALID."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from vaxcred.codec import cose
from vaxcred.result import Step, StepResult
from vaxcred.revocation import RevocationList
from vaxcred.rules import RuleOutcome, RuleSet, judge
from vaxcred.verify.payload import revocation_inputs
from vaxcred.verify.steps import FAIL, PASS, SKIP, Steps

#: revocation codes that leave the passport unchecked against (part of) the list: NEEDS_CHECK at best
_UNCHECKED = frozenset({"revocation.stale", "revocation.incomplete", "revocation.not_checked"})


def revocation_outcome(
    revocation: RevocationList | None,
    msg: cose.Sign1Message,
    dcc: Mapping[str, Any],
    iss: str | None,
    now: datetime,
) -> tuple[StepResult, str, str]:
    """(11) revocation: the step's result, code and message."""
    if revocation is None:
        return SKIP, "revocation.not_configured", "no revocation list given: not checked"
    uvci, country = revocation_inputs(dcc)
    assert msg.alg is not None  # the signature step held
    try:
        listed = revocation.check(
            kid=msg.kid, uvci=uvci, country=country, signature=msg.signature, alg=msg.alg, iss=iss
        )
    except (ValueError, TypeError):  # unreachable once the signature held; fail closed all the same
        return SKIP, "revocation.not_checked", "the passport's revocation hashes cannot be computed"
    if listed is not None:
        return FAIL, "revocation.revoked", f"revoked: listed by its {listed.value} hash"
    if not revocation.complete:
        return (
            SKIP,
            "revocation.incomplete",
            "part of the revocation data could not be loaded: not listed in the rest",
        )
    if not revocation.is_fresh(now):
        since = revocation.stale_after.isoformat() if revocation.stale_after else "?"
        return (
            SKIP,
            "revocation.stale",
            f"revocation data past its maximum age since {since}: not listed there",
        )
    return PASS, "revocation.ok", "not on the revocation list"


def check_revocation(
    steps: Steps,
    revocation: RevocationList | None,
    msg: cose.Sign1Message,
    dcc: Mapping[str, Any],
    iss: str | None,
    now: datetime,
) -> bool:
    """(11) revocation, recorded; true when the passport could not be checked against the whole list."""
    outcome, code, message = revocation_outcome(revocation, msg, dcc, iss, now)
    if outcome is PASS:
        steps.ok("revocation", message)
    elif outcome is FAIL:
        steps.fail("revocation", code, message)
    else:
        steps.skip("revocation", code, message)
    return code in _UNCHECKED


def check_rules(
    steps: Steps,
    rules: RuleSet | None,
    dcc: Mapping[str, Any],
    *,
    now: datetime,
    stale_after: datetime | None,
    country: str | None,
    region: str | None,
    issuer_country: str | None,
    iat: datetime,
    exp: datetime,
    kid: bytes | None,
) -> tuple[bool, tuple[RuleOutcome, ...] | None]:
    """(12) rules, recorded: whether the outcome is open (a check is needed), and the rules' outcomes (``None``
    without rules). A rule that cannot be run fails the step but only asks for a check (NEEDS_CHECK)."""
    if rules is None:
        steps.skip("rules", "rules.not_configured", "no business rules given")
        return False, None
    verdict = judge(
        rules,
        dcc,
        at=now,
        country=country,
        region=region,
        issuer_country=issuer_country,
        iat=iat,
        exp=exp,
        kid=kid,
    )
    rules_open = False
    if verdict.result in ("pass", "skip") and not rules.complete:
        # rule or value-set files left out (vaxcred.sync.load_folder): a rule missing here might have failed
        rules_open = True
        steps.skip(
            "rules", "rules.incomplete", "part of the rule data could not be loaded: a check is needed"
        )
    elif verdict.result == "pass" and stale_after is not None and now > stale_after:
        # rules and value sets past their maximum age (vaxcred.sync.DataFreshnessPolicy): a pass asks for a check
        rules_open = True
        stale = f"the rules passed, but the rule data is past its maximum age since {stale_after.isoformat()}"
        steps.skip("rules", "rules.stale", stale)
    elif verdict.result == "pass":
        steps.ok("rules", verdict.message)
    elif verdict.result == "skip":
        steps.skip("rules", verdict.code, verdict.message)
    elif verdict.needs_check:
        rules_open = True
        steps.items.append(Step(name="rules", result=FAIL, code=verdict.code, message=verdict.message))
    else:
        steps.fail("rules", verdict.code, verdict.message)
    return rules_open, verdict.outcomes
