"""Hostile expressions and data: validation and evaluation raise only vaxcred's typed errors, and stay bounded."""

from __future__ import annotations

import time
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vaxcred import errors
from vaxcred.rules import compile_expression, evaluate, expression_problems, to_json_value
from vaxcred.rules.validator import OPERATIONS

json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=12),
    st.sampled_from(["2021-06-01", "2021", "2021-02", "2021-06-01T10:00:00+02:00", "URN:UVCI:01:VN:X/Y#Z"]),
)  # fmt: skip
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=20,
)
names = st.sampled_from([*OPERATIONS, "var", "or", "not", "map"])
expressions = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.builds(lambda op, args: {op: args}, names, st.one_of(st.lists(inner, max_size=4), inner)),
        st.builds(
            lambda path: {"var": path}, st.sampled_from(["", "a", "a.0", "a.b", "accumulator", "current"])
        ),
        st.dictionaries(st.text(max_size=3), inner, max_size=2),
    ),
    max_leaves=25,
)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(expressions, json_values)
def test_arbitrary_input_raises_only_typed_errors(expr: Any, data: Any) -> None:
    """Any JSON as expression and data: a value, InvalidExpressionError or EvaluationError — nothing else."""
    problems = expression_problems(expr)
    outcome: Any
    try:
        outcome = evaluate(expr, {"a": data, "payload": data})
    except errors.RulesError as e:
        outcome = e
    if problems:
        assert isinstance(outcome, errors.InvalidExpressionError)
        assert [p.pointer for p in problems] == [where for where, _ in outcome.problems]
        return
    assert not isinstance(outcome, errors.InvalidExpressionError)
    if isinstance(outcome, errors.RulesError):
        assert isinstance(outcome, errors.EvaluationError)
        return
    try:
        to_json_value(outcome)
    except errors.EvaluationError as e:
        outcome = e
    assert not isinstance(outcome, errors.EvaluationError) or outcome.code == "rules.limit"


def test_a_wide_and_deep_hostile_expression_is_refused_quickly() -> None:
    """A 10 MB-ish expression tree is refused by the size bound without walking all of it."""
    expr: Any = {"and": [{"!": [{"var": "a"}]}] * 200_000}
    start = time.perf_counter()
    problems = expression_problems(expr)
    assert time.perf_counter() - start < 1.0
    assert len(problems) == 1


def test_worst_case_reduce_stays_bounded_in_time() -> None:
    """The largest fold allowed, with the largest lambda budget spent, ends within a couple of seconds."""
    lambda_: Any = {"+": [{"var": "accumulator"}, 1]}
    compiled = compile_expression({"reduce": [{"var": "xs"}, lambda_, 0]})
    start = time.perf_counter()
    for _ in range(20):
        compiled.evaluate({"xs": list(range(1000))})
    assert time.perf_counter() - start < 5.0
