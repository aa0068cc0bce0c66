"""EU gateway business rules (CERTLOGIC.md §6): the :class:`Rule` model and its checks.

:func:`rule_problems` reports every problem of a rule document as a :class:`~vaxcred.rules.Problem`, in
three layers:

1. the gateway's JSON schema (``vaxcred/data/rules/validation-rule.schema.json``, draft 2020-12, vendored
   from dgc-gateway), checked by the code below — jsonschema is the test oracle. vaxcred is stricter in
   two places the schema's regular expressions leave open: ASCII digits only, and no final newline
   (``$`` in Python and Java matches before one);
2. the gateway's content checks that need no clock: identifier prefix ↔ ``Type`` / ``CertificateType``,
   identifier country = ``Country``, real timestamps, ``ValidFrom`` before ``ValidTo`` and at least 72 h of
   validity (the checks relative to the upload time — ``ValidFrom`` ahead, rising versions — belong to the
   gateway and are not repeated here);
3. with ``lint=True`` (``vaxcred rules validate``): the engine (``CERTLOGIC`` 0.7.5 … 1.3.3, and at least the
   version that introduced each operation used), ``Logic`` valid CertLogic (§4), ``AffectedFields`` equal to
   the ``payload.`` paths read, only the eight value sets, and non-General rules reading only ``dob`` and
   their own ``v``/``t``/``r`` entries.

:func:`parse_rule` builds a :class:`Rule` from a document that passes layers 1 and 2; its ``Logic`` is
compiled when the engine is supported, and a rule whose ``Logic`` is invalid keeps its problems (it is
then judged *open* by error, never passed).

The checks of the three layers are in :mod:`~vaxcred.rules.gateway_checks` (names re-exported here).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Any

from vaxcred.errors import RulesError
from vaxcred.rules.evaluator import CompiledExpression, compile_expression
from vaxcred.rules.gateway_checks import (
    CERTIFICATE_TYPES,
    ENGINE,
    ENGINE_VERSION,
    RULE_VALUE_SETS,
    parse_timestamp,
    parse_version,
    rule_problems,
    schema_problems,
)
from vaxcred.rules.validator import Problem, expression_problems

__all__ = [
    "CERTIFICATE_TYPES",
    "ENGINE",
    "ENGINE_VERSION",
    "RULE_VALUE_SETS",
    "Rule",
    "parse_rule",
    "parse_version",
    "rule_problems",
    "schema_problems",
]


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class Rule:
    """One business rule, as distributed by the EU gateway; ``logic`` is compiled once (``None`` when the
    engine is not supported or ``Logic`` is invalid, see :attr:`logic_problems`). Compared and hashed by
    identity (the same document loaded twice gives equal :attr:`hash` values)."""

    identifier: str
    type: str
    country: str
    region: str | None
    version: tuple[int, int, int]
    version_text: str
    schema_version: tuple[int, int, int]
    engine: str
    engine_version: tuple[int, int, int]
    certificate_type: str
    descriptions: Mapping[str, str]
    valid_from: datetime
    valid_to: datetime
    affected_fields: tuple[str, ...]
    logic: CompiledExpression | None
    logic_problems: tuple[Problem, ...]
    #: hex SHA-256 of the canonical JSON of the rule document (the distribution service hashes raw bytes)
    hash: str

    @property
    def engine_supported(self) -> bool:
        return self.engine == ENGINE and self.engine_version <= ENGINE_VERSION

    def description(self, lang: str = "en") -> str:
        """The description in ``lang``, else English (always present)."""
        return (
            self.descriptions.get(lang)
            or self.descriptions.get(lang.split("-")[0])
            or self.descriptions["en"]
        )

    def __repr__(self) -> str:
        return f"Rule({self.identifier} {self.version_text} {self.type} {self.country})"


def parse_rule(rule: Any) -> Rule:
    """A :class:`Rule` from a parsed rule document; :class:`~vaxcred.errors.RulesError`
    (``rules.invalid_rule``) listing the problems if it fails the gateway's schema or content checks."""
    problems = rule_problems(rule, lint=False)
    if problems:
        name = rule.get("Identifier") if isinstance(rule, dict) else None
        label = name if isinstance(name, str) else "rule"
        raise RulesError(
            f"{label[:20]}: " + "; ".join(str(p) for p in problems[:5]), code="rules.invalid_rule"
        )
    engine_version = parse_version(rule["EngineVersion"])
    version = parse_version(rule["Version"])
    schema_version = parse_version(rule["SchemaVersion"])
    valid_from, valid_to = parse_timestamp(rule["ValidFrom"]), parse_timestamp(rule["ValidTo"])
    if (
        engine_version is None
        or version is None
        or schema_version is None
        or valid_from is None
        or valid_to is None
    ):
        raise AssertionError("checked by rule_problems")  # pragma: no cover
    logic: CompiledExpression | None = None
    logic_problems: tuple[Problem, ...] = ()
    if rule["Engine"] == ENGINE and engine_version <= ENGINE_VERSION:
        logic_problems = expression_problems(rule["Logic"], at="/Logic")
        if not logic_problems:
            logic = compile_expression(rule["Logic"])
    descriptions: dict[str, str] = {}
    for item in rule["Description"]:
        descriptions.setdefault(item["lang"], item["desc"])
    canonical = json.dumps(rule, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return Rule(
        identifier=rule["Identifier"],
        type=rule["Type"],
        country=rule["Country"],
        region=rule.get("Region") or None,
        version=version,
        version_text=rule["Version"],
        schema_version=schema_version,
        engine=rule["Engine"],
        engine_version=engine_version,
        certificate_type=rule["CertificateType"],
        descriptions=MappingProxyType(descriptions),
        valid_from=valid_from,
        valid_to=valid_to,
        affected_fields=tuple(rule["AffectedFields"]),
        logic=logic,
        logic_problems=logic_problems,
        hash=hashlib.sha256(canonical.encode("utf-8")).hexdigest(),
    )
