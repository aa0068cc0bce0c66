"""Business rules: CertLogic evaluation, static validation, EU gateway rules, rule sets, the verdict.

* :mod:`~vaxcred.rules.evaluator` — :func:`compile_expression`, :func:`evaluate` (bounded, CERTLOGIC.md §2–3);
* :mod:`~vaxcred.rules.validator` — :func:`expression_problems` (§4);
* :mod:`~vaxcred.rules.datetimes` — ``plusTime`` / ``dccDateOfBirth`` parsing and JS-compatible arithmetic;
* :mod:`~vaxcred.rules.gateway` — the EU gateway :class:`Rule`, :func:`rule_problems`, :func:`parse_rule` (§6);
* :mod:`~vaxcred.rules.ruleset` — :class:`RuleSet` (loading, selection; §7), :func:`vietnam_rules`;
* :mod:`~vaxcred.rules.verdict` — the external parameters (§1), :func:`judge` → :class:`RulesVerdict`.
"""

from __future__ import annotations

from vaxcred.rules.datetimes import DateTime
from vaxcred.rules.evaluator import (
    MAX_LAMBDA_NODES,
    MAX_REDUCE_ITEMS,
    CompiledExpression,
    compile_expression,
    evaluate,
    to_json_value,
    truthiness,
)
from vaxcred.rules.gateway import ENGINE_VERSION, RULE_VALUE_SETS, Rule, parse_rule, rule_problems
from vaxcred.rules.ruleset import RuleSet, parse_json, vietnam_rules
from vaxcred.rules.validator import MAX_DEPTH, MAX_NODES, Problem, check_expression, expression_problems
from vaxcred.rules.verdict import Outcome, RuleOutcome, RulesVerdict, external_parameters, judge

__all__ = [
    "ENGINE_VERSION",
    "MAX_DEPTH",
    "MAX_LAMBDA_NODES",
    "MAX_NODES",
    "MAX_REDUCE_ITEMS",
    "RULE_VALUE_SETS",
    "CompiledExpression",
    "DateTime",
    "Outcome",
    "Problem",
    "Rule",
    "RuleOutcome",
    "RuleSet",
    "RulesVerdict",
    "check_expression",
    "compile_expression",
    "evaluate",
    "expression_problems",
    "external_parameters",
    "judge",
    "parse_json",
    "parse_rule",
    "rule_problems",
    "to_json_value",
    "truthiness",
    "vietnam_rules",
]
