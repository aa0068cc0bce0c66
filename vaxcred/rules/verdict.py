"""Running the selected rules over a passport, and the ``rules`` step's verdict (CERTLOGIC.md §1, §7).

The data context is ``{"payload": <DCC>, "external": {...}}`` with the external parameters of §1:
``validationClock`` (verify's ``now``, UTC, ms, ``Z``), ``valueSets`` (id → codes of the vendored EU value
sets), ``countryCode`` (arrival, upper case), ``issuerCountryCode`` (the DSC's country), ``exp``/``iat``
(UTC date-times), ``kid`` (base64 of the 8 bytes) and ``region`` (``""`` unless given).

A rule is **open** without evaluation when its engine is not CertLogic ≤ 1.3.3 or its ``SchemaVersion``
has another major than the payload's ``ver`` or exceeds it. Otherwise ``true`` → **passed**, ``false`` →
**failed**; an evaluation error, an invalid ``Logic`` or a non-boolean value leave it **open** by error.
Invalidation rules read alike (``true``: not invalidated), as the EU apps do.

=========================================  ======================  ===========
situation                                  ``rules`` step          status
=========================================  ======================  ===========
all passed                                 pass ``rules.ok``       unchanged
any failed, or open by error               fail ``rules.failed``   INVALID
open only by engine / schema version       fail ``rules.incompatible``  NEEDS_CHECK
no rule selected                           skip ``rules.none``     unchanged
=========================================  ======================  ===========
"""

from __future__ import annotations

import base64
import enum
import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from vaxcred.errors import EvaluationError
from vaxcred.privacy import mask_dob, mask_id, mask_name
from vaxcred.rules.evaluator import MAX_REDUCE_ITEMS
from vaxcred.rules.gateway import Rule, parse_version
from vaxcred.rules.ruleset import RuleSet
from vaxcred.valuesets import load_value_sets

__all__ = ["Outcome", "RuleOutcome", "RulesVerdict", "external_parameters", "judge", "value_set_codes"]


class Outcome(enum.StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    OPEN = "open"


@dataclass(frozen=True, slots=True, kw_only=True)
class RuleOutcome:
    """One rule's outcome: ``code`` says why (``rules.passed``, ``rules.failed``, ``rules.error``,
    ``rules.not_boolean``, ``rules.invalid_logic``, ``rules.incompatible_engine``,
    ``rules.incompatible_schema``); ``affected`` pairs each affected field with its value, masked where
    it is personal data."""

    identifier: str
    version: str
    type: str
    certificate_type: str
    country: str
    outcome: Outcome
    code: str
    detail: str
    descriptions: Mapping[str, str]
    affected: tuple[tuple[str, str], ...]

    def description(self, lang: str = "en") -> str:
        """The description in the officer's language ``lang``, else English."""
        return self.descriptions.get(lang) or self.descriptions.get("en") or ""

    def to_json(self) -> dict[str, Any]:
        return {
            "identifier": self.identifier,
            "version": self.version,
            "type": self.type,
            "certificate_type": self.certificate_type,
            "country": self.country,
            "outcome": self.outcome.value,
            "code": self.code,
            "detail": self.detail,
            "descriptions": dict(self.descriptions),
            "affected": dict(self.affected),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class RulesVerdict:
    """The ``rules`` step: ``result`` is ``pass``/``fail``/``skip``; ``needs_check`` when the only problem
    is a rule vaxcred cannot run (the status becomes NEEDS_CHECK, never VALID)."""

    result: str
    code: str
    message: str
    needs_check: bool
    outcomes: tuple[RuleOutcome, ...]


_VERSION_OPEN = frozenset({"rules.incompatible_engine", "rules.incompatible_schema"})
_CERTIFICATE_TYPES = (("r", "Recovery"), ("v", "Vaccination"), ("t", "Test"))


@functools.cache
def value_set_codes() -> Mapping[str, list[str]]:
    """``external.valueSets``: value-set id → the codes of each vendored EU value set (built once and shared:
    a plain ``dict``, as the evaluator indexes only ``dict``/``list``; nothing may mutate it)."""
    sets = load_value_sets().sets.values()
    return {vs.id: list(vs.entries) for vs in sets}


def _instant(moment: datetime) -> str:
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def external_parameters(
    *,
    at: datetime,
    country: str | None,
    issuer_country: str | None,
    iat: datetime | None = None,
    exp: datetime | None = None,
    kid: bytes | None = None,
    region: str | None = None,
) -> dict[str, Any]:
    """The ``external`` object of the data context (module docstring)."""
    return {
        "validationClock": _instant(at),
        "valueSets": value_set_codes(),
        "countryCode": (country or "").upper(),
        "issuerCountryCode": (issuer_country or "").upper(),
        "exp": _instant(exp) if exp else None,
        "iat": _instant(iat) if iat else None,
        "kid": base64.b64encode(kid).decode("ascii") if kid else None,
        "region": region or "",
    }


def _certificate_type(payload: Mapping[str, Any]) -> str | None:
    for key, name in _CERTIFICATE_TYPES:
        if key in payload:
            return name
    return None


def _lookup(payload: Any, path: str) -> Any:
    for part in path.split("."):
        if isinstance(payload, Mapping):
            payload = payload.get(part)
        elif isinstance(payload, list) and part.isascii() and part.isdigit() and int(part) < len(payload):
            payload = payload[int(part)]
        else:
            return None
    return payload


def _masked(path: str, value: Any) -> str:
    """An affected value for the officer: personal data masked (name, date of birth, certificate id)."""
    if isinstance(value, dict | list):
        return "…"
    text = value if isinstance(value, str) else json.dumps(value)
    last = path.rsplit(".", 1)[-1]
    if path == "dob":
        return mask_dob(text)
    if path.startswith("nam"):
        return mask_name(text)
    if last == "ci":
        return mask_id(text)
    return text[:40]


def _schema_compatible(rule: Rule, ver: Any) -> bool:
    payload_version = parse_version(ver) if isinstance(ver, str) else None
    if payload_version is None:
        return False
    return rule.schema_version[0] == payload_version[0] and rule.schema_version <= payload_version


def _run(rule: Rule, data: Mapping[str, Any]) -> tuple[Outcome, str, str]:
    payload = data["payload"]
    if not rule.engine_supported:
        return (
            Outcome.OPEN,
            "rules.incompatible_engine",
            f"engine {rule.engine} {rule.engine_version} not supported",
        )
    if not _schema_compatible(rule, payload.get("ver")):
        return Outcome.OPEN, "rules.incompatible_schema", "written for another DCC schema version"
    if rule.logic is None:
        return Outcome.OPEN, "rules.invalid_logic", str(rule.logic_problems[0]) if rule.logic_problems else ""
    try:
        value = rule.logic.evaluate(data)
    except EvaluationError as e:
        return Outcome.OPEN, "rules.error", e.message
    if value is True:
        return Outcome.PASSED, "rules.passed", ""
    if value is False:
        return Outcome.FAILED, "rules.failed", ""
    return Outcome.OPEN, "rules.not_boolean", "the rule's value is not a boolean"


def judge(
    rules: RuleSet,
    payload: Mapping[str, Any],
    *,
    at: datetime,
    country: str | None,
    issuer_country: str | None,
    iat: datetime | None = None,
    exp: datetime | None = None,
    kid: bytes | None = None,
    region: str | None = None,
) -> RulesVerdict:
    """Select the rules for this passport and arrival ``country`` at ``at``, run them, and give the verdict.

    ``payload`` is the DCC as JSON (``hcert[1]``). Nothing here raises for any payload.
    """
    selected = rules.select(
        arrival=country,
        issuer=issuer_country,
        certificate_type=_certificate_type(payload),
        at=at,
        region=region,
    )
    if not selected:
        return RulesVerdict(
            result="skip",
            code="rules.none",
            message="no business rule applies",
            needs_check=False,
            outcomes=(),
        )
    external = external_parameters(
        at=at, country=country, issuer_country=issuer_country, iat=iat, exp=exp, kid=kid, region=region
    )
    data = {"payload": payload, "external": external}
    outcomes = []
    for rule in selected:
        outcome, code, detail = _run(rule, data)
        outcomes.append(
            RuleOutcome(
                identifier=rule.identifier,
                version=rule.version_text,
                type=rule.type,
                certificate_type=rule.certificate_type,
                country=rule.country,
                outcome=outcome,
                code=code,
                detail=detail,
                descriptions=rule.descriptions,
                affected=tuple(
                    (f, _masked(f, _lookup(payload, f))) for f in rule.affected_fields[:MAX_REDUCE_ITEMS]
                ),
            )
        )
    return _verdict(tuple(outcomes))


def _verdict(outcomes: tuple[RuleOutcome, ...]) -> RulesVerdict:
    failed = [o.identifier for o in outcomes if o.outcome is Outcome.FAILED]
    errors = [o.identifier for o in outcomes if o.outcome is Outcome.OPEN and o.code not in _VERSION_OPEN]
    versions = [o.identifier for o in outcomes if o.code in _VERSION_OPEN]
    if failed or errors:
        parts = []
        if failed:
            parts.append(f"failed: {', '.join(failed)}")
        if errors:
            parts.append(f"could not be evaluated: {', '.join(errors)}")
        return RulesVerdict(
            result="fail", code="rules.failed", message="; ".join(parts), needs_check=False, outcomes=outcomes
        )
    if versions:
        return RulesVerdict(
            result="fail",
            code="rules.incompatible",
            message=f"not run (engine or schema version): {', '.join(versions)}",
            needs_check=True,
            outcomes=outcomes,
        )
    return RulesVerdict(
        result="pass",
        code="rules.ok",
        message=f"{len(outcomes)} business rule(s) passed",
        needs_check=False,
        outcomes=outcomes,
    )
