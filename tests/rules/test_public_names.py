"""The public surface of vaxcred.rules is deliberate: its `__all__` is pinned."""

from __future__ import annotations

import vaxcred.rules

EXPECTED = {
    "ENGINE_VERSION", "MAX_DEPTH", "MAX_LAMBDA_NODES", "MAX_NODES", "MAX_REDUCE_ITEMS", "RULE_VALUE_SETS",
    "CompiledExpression", "DateTime", "Outcome", "Problem", "Rule", "RuleOutcome", "RuleSet", "RulesVerdict",
    "check_expression", "compile_expression", "evaluate", "expression_problems", "external_parameters", "judge",
    "parse_json", "parse_rule", "rule_problems", "to_json_value", "truthiness", "vietnam_rules",
}  # fmt: skip


def test_all_is_pinned() -> None:
    """Adding or removing a public name of vaxcred.rules is a conscious change to this list."""
    assert set(vaxcred.rules.__all__) == EXPECTED
    assert all(hasattr(vaxcred.rules, name) for name in EXPECTED)
