"""Business rules: CertLogic evaluation, static validation, EU gateway rules, rule sets, the verdict.

* :mod:`vaxcred.rules.evaluator` — :func:`compile_expression`, :func:`evaluate` (bounded);
* :mod:`vaxcred.rules.validator` — :func:`expression_problems` (CERTLOGIC.md §4);
* :mod:`vaxcred.rules.datetimes` — ``plusTime`` / ``dccDateOfBirth`` parsing and JS-compatible arithmetic;
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
from vaxcred.rules.validator import MAX_DEPTH, MAX_NODES, Problem, check_expression, expression_problems

__all__ = [
    "MAX_DEPTH",
    "MAX_LAMBDA_NODES",
    "MAX_NODES",
    "MAX_REDUCE_ITEMS",
    "CompiledExpression",
    "DateTime",
    "Problem",
    "check_expression",
    "compile_expression",
    "evaluate",
    "expression_problems",
    "to_json_value",
    "truthiness",
]
