"""A :class:`~vaxcred.result.VerificationResult` as the service's response: reasons in plain words (vi/en).

The plain-language texts live in ``static/i18n.json`` (one file for the page and the service): a code's own
text, else its step's, else a generic one.
"""

from __future__ import annotations

import functools
import json
from datetime import datetime
from importlib import resources
from typing import Any

from vaxcred.result import Status, Step, StepResult, VerificationResult
from vaxcred.service.context import VerifierContext
from vaxcred.service.models import (
    Details,
    HolderOut,
    Messages,
    Reason,
    StepOut,
    TrustSummary,
    VerifyResponse,
)

__all__ = ["LANGUAGES", "build_response", "load_i18n", "reason_for", "trust_summary"]

LANGUAGES = ("en", "vi")
#: skip codes that say nothing beyond "an earlier step failed"
_SILENT_SKIPS = frozenset({"skipped.earlier_failure"})


@functools.cache
def load_i18n() -> dict[str, Any]:
    """The page's strings and the reasons' plain words, by language (package data, read once)."""
    text = resources.files("vaxcred.service").joinpath("static/i18n.json").read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


@functools.lru_cache(maxsize=512)
def _messages(code: str, step: str) -> Messages:
    texts = {}
    for lang in LANGUAGES:
        reasons = load_i18n()[lang]["reasons"]
        texts[lang] = reasons.get(code) or reasons.get(f"step.{step}") or reasons["generic"]
    return Messages(**texts)


def reason_for(code: str, step: str) -> Reason:
    """The reason for ``code`` from ``step``, with its plain words in every language."""
    return Reason(code=code, step=step, message=_messages(code, step))


def _step_reason(step: Step) -> Reason:
    return reason_for(step.code, step.name)


#: longest rule description shown (rule files are hostile input; the page writes it with textContent)
_MAX_RULE_TEXT = 300


def _rule_reasons(result: VerificationResult) -> list[Reason]:
    """One reason per business rule that did not pass, in the rule's own words (its identifier first): the
    generic ``rules.failed`` does not tell the officer which entry condition to look at."""
    reasons = []
    for outcome in result.rules:
        if outcome.outcome.value == "passed":
            continue
        texts = {
            lang: f"{outcome.identifier}: {outcome.description(lang)}"[:_MAX_RULE_TEXT] for lang in LANGUAGES
        }
        reasons.append(Reason(code=outcome.code, step="rules", message=Messages(**texts)))
    return reasons


def trust_summary(context: VerifierContext, now: datetime) -> TrustSummary:
    trust = context.trust
    updated = context.trust_updated_at
    return TrustSummary(
        mode=trust.mode.value,
        environment=trust.environment.value,
        updated_at=updated,
        age_seconds=round((now - updated).total_seconds(), 3),
        fresh=context.trust_is_fresh(now),
    )


def _details(result: VerificationResult) -> Details:
    return Details(
        steps=[
            StepOut(name=s.name, result=s.result.value, code=s.code, message=s.message) for s in result.steps
        ],
        issuer_country=result.issuer_country,
        iat=result.iat,
        exp=result.exp,
        kid=result.kid.hex() if result.kid else None,
    )


def build_response(
    result: VerificationResult, context: VerifierContext, *, now: datetime, minimal: bool
) -> VerifyResponse:
    """The response for ``result``; ``minimal`` leaves out every step detail (status, reasons, holder)."""
    reasons = [_step_reason(s) for s in result.steps if s.result is StepResult.FAIL]
    reasons += _rule_reasons(result)
    notes = [
        _step_reason(s)
        for s in result.steps
        if s.result is StepResult.SKIP and s.code not in _SILENT_SKIPS and not reasons
    ]
    summary = trust_summary(context, now)
    if result.status is Status.NEEDS_CHECK and not reasons:
        # NEEDS_CHECK without a failed step: stale data. Say which, if the service can tell.
        reasons.append(reason_for("trust.stale" if not summary.fresh else "verify.needs_check", "trust"))
    holder = result.holder
    return VerifyResponse(
        status=result.status.value,
        reasons=reasons,
        notes=notes,
        holder=(
            HolderOut(fn=holder.fn, gn=holder.gn, fnt=holder.fnt, gnt=holder.gnt, dob=holder.dob)
            if holder is not None
            else None
        ),
        verified_at=now,
        trust=summary,
        details=None if minimal else _details(result),
    )
