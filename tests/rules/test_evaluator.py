"""The CertLogic evaluator: truthiness, Python's traps, every operation's runtime errors, bounded evaluation."""

from __future__ import annotations

from typing import Any

import pytest

from vaxcred import errors
from vaxcred.rules import MAX_REDUCE_ITEMS, DateTime, compile_expression, evaluate, to_json_value, truthiness

DATE = {"plusTime": ["2021-06-01", 0, "day"]}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (False, False), (None, False), ("", False), (0, False), (0.0, False), ([], False), ({}, False),
        (True, True), ("0", True), ("false", True), (1, True), (-2, True), (0.5, True), ([0], True),
        ({"a": None}, True), (DateTime(0), None),
    ],
)  # fmt: skip
def test_truthiness_table(value: Any, expected: bool | None) -> None:
    """CERTLOGIC.md §2: [] and {} are falsy, "0" truthy, a date-time neither."""
    assert truthiness(value) is expected


@pytest.mark.parametrize(
    ("expr", "data", "expected"),
    [
        ({"===": [1, True]}, None, False),
        ({"===": [{"var": "x"}, 1]}, {"x": 1.0}, False),
        ({"===": [{"var": "x"}, {"var": "x"}]}, {"x": [1]}, False),
        ({"===": [{"var": "x"}, {"var": "x"}]}, {"x": {"a": 1}}, False),
        ({"===": [{"var": "x"}, {"var": "y"}]}, {}, True),
        ({"in": [1, [True, {"var": "f"}]]}, {"f": 1.0}, False),
        ({"in": [True, [1, True]]}, None, True),
        ({"in": [{"var": "x"}, [{"var": "y"}]]}, {"x": None}, True),
        ({"in": [[1], [[1]]]}, None, False),
        ({"and": [1, "a", [0]]}, None, [0]),
        ({"and": [1, 0, {"var": "boom"}]}, None, 0),
        ({"and": [0, DATE]}, None, 0),
        ({"if": [[], 1, 2]}, None, 2),
        ({"if": [{"var": "o"}, 1, 2]}, {"o": {}}, 2),
        ({"!": [[]]}, None, True),
        ({"+": [2, -3]}, None, -1),
        ({"<": [1, 2, 3]}, None, True),
        ({"<": [1, 3, 2]}, None, False),
        ({"<=": [2, 2]}, None, True),
        ({"var": "a.1.b"}, {"a": [{}, {"b": 7}]}, 7),
        ({"var": "a.01"}, {"a": [5, 6]}, 6),
        ({"var": "a.1"}, {"a": "xyz"}, None),
        ({"var": "a.1"}, {"a": {"1": "key"}}, "key"),
        ({"var": "a.b.c"}, {"a": None}, None),
        ({"var": "a.length"}, {"a": [1, 2]}, None),
        ({"var": ""}, 5, 5),
        (
            {"reduce": [{"var": "xs"}, {"+": [{"var": "accumulator"}, {"var": "current"}]}, 0]},
            {"xs": [1, 2, 3]},
            6,
        ),
        ({"reduce": [{"var": "xs"}, {"var": "data"}, 7]}, {"xs": None, "data": 1}, 7),
        ({"reduce": [{"var": "xs"}, {"var": "x"}, 7]}, {"xs": [1], "x": 1}, None),
        ({"extractFromUVCI": [{"var": "u"}, 3]}, {"u": "URN:UVCI:01:NL:187/37512422923"}, "37512422923"),
        ({"extractFromUVCI": [{"var": "u"}, 5]}, {"u": "a::c/#/f"}, "f"),
        ({"extractFromUVCI": [{"var": "u"}, 6]}, {"u": "a::c/#/f"}, None),
        ({"extractFromUVCI": [{"var": "u"}, -1]}, {"u": "a"}, None),
        ({"extractFromUVCI": [{"var": "u"}, 0]}, {"u": None}, None),
        ({"extractFromUVCI": [{"var": "u"}, 0]}, {"u": "urn:uvci:x"}, "urn"),
        ({"after": [DATE, {"plusTime": ["2021-05-31T23:59:59Z", 0, "day"]}]}, None, True),
        ({"not-before": [DATE, DATE, DATE]}, None, True),
        ({"before": [DATE, DATE]}, None, False),
    ],
)
def test_values(expr: Any, data: Any, expected: Any) -> None:
    """Each operation's value, with JSON types kept (1 is not true, 1.0 is not an integer)."""
    value = evaluate(expr, data)
    assert value == expected
    assert type(value) is type(expected)


@pytest.mark.parametrize(
    ("expr", "data"),
    [
        ({"if": [DATE, 1, 2]}, None),
        ({"and": [1, DATE]}, None),
        ({"!": [DATE]}, None),
        ({"<": [1, True]}, None),
        ({"<": [1, {"var": "f"}]}, {"f": 2.0}),
        ({">": [1, 2, "3"]}, None),
        ({"+": [1, "1"]}, None),
        ({"+": [{"var": "x"}, 1]}, {"x": 1.0}),
        ({"in": [1, {"var": "x"}]}, {}),
        ({"in": ["a", "abc"]}, None),
        ({"after": [DATE, "2021-06-01"]}, None),
        ({"plusTime": [{"var": "x"}, 1, "day"]}, {"x": 20210601}),
        ({"plusTime": [DATE, 1, "day"]}, None),
        ({"dccDateOfBirth": [{"var": "x"}]}, {"x": None}),
        ({"dccDateOfBirth": [""]}, None),
        ({"reduce": [{"var": "x"}, 1, 0]}, {"x": "abc"}),
        ({"extractFromUVCI": [{"var": "x"}, 0]}, {"x": 5}),
        ({"extractFromUVCI": [{"var": "x"}, -1]}, {"x": 5}),
    ],
)
def test_runtime_type_mismatches_are_typed_errors(expr: Any, data: Any) -> None:
    """A valid expression over the wrong data raises EvaluationError (rules.evaluation), nothing else."""
    with pytest.raises(errors.EvaluationError) as info:
        evaluate(expr, data)
    assert info.value.code == "rules.evaluation"


def test_invalid_expression_is_refused_before_evaluation() -> None:
    """An invalid expression raises InvalidExpressionError with every problem, even where data would not reach."""
    with pytest.raises(errors.InvalidExpressionError) as info:
        evaluate({"if": [True, 1, {"or": [1, 2]}], "x": 1}, None)
    assert info.value.code == "rules.invalid_expression"
    with pytest.raises(errors.InvalidExpressionError) as info:
        evaluate({"and": [True, {"or": [1, 2]}, {"var": 1}]}, None)
    assert [where for where, _ in info.value.problems] == ["/and/1/or", "/and/2/var"]


def test_reduce_over_too_many_items_is_a_limit_error() -> None:
    """reduce folds at most MAX_REDUCE_ITEMS items."""
    expr = {"reduce": [{"var": "xs"}, {"var": "current"}, 0]}
    assert evaluate(expr, {"xs": list(range(MAX_REDUCE_ITEMS))}) == MAX_REDUCE_ITEMS - 1
    with pytest.raises(errors.EvaluationError) as info:
        evaluate(expr, {"xs": list(range(MAX_REDUCE_ITEMS + 1))})
    assert info.value.code == "rules.limit"


def test_nested_reduce_is_bounded_by_the_lambda_budget() -> None:
    """Nested reduces over literal arrays (hostile: work grows as a power) stop at the budget, quickly."""
    items = list(range(100))
    inner: Any = {"var": "accumulator"}
    for _ in range(4):  # 100^4 lambda calls unbounded
        inner = {"reduce": [items, inner, {"var": "accumulator"}]}
    with pytest.raises(errors.EvaluationError) as info:
        evaluate({"reduce": [items, inner, 0]}, None)
    assert info.value.code == "rules.limit"


def test_integer_sums_stay_safe() -> None:
    """'+' beyond 2^53 - 1 (JavaScript's safe integers) is a limit error, never a silent difference."""
    assert evaluate({"+": [2**53 - 2, 1]}, None) == 2**53 - 1
    with pytest.raises(errors.EvaluationError):
        evaluate({"+": [2**53 - 1, 1]}, None)


def test_shared_values_are_bounded_when_converted() -> None:
    """[acc, acc] doubling in reduce shares sub-arrays; expanding the value to JSON is bounded."""
    doubling = {"reduce": [list(range(40)), [{"var": "accumulator"}, {"var": "accumulator"}], 0]}
    value = evaluate(doubling, None)
    with pytest.raises(errors.EvaluationError):
        to_json_value(value)


def test_date_times_convert_to_iso_strings() -> None:
    """Date-times in values print as YYYY-MM-DDThh:mm:ss.sssZ, also inside arrays."""
    assert to_json_value(evaluate([DATE, 1], None)) == ["2021-06-01T00:00:00.000Z", 1]


def test_compiled_expression_is_reusable() -> None:
    """One compiled expression evaluates many data contexts (a fresh budget each time)."""
    compiled = compile_expression({"reduce": [{"var": "xs"}, {"var": "current"}, 0]})
    for _ in range(3):
        assert compiled.evaluate({"xs": list(range(MAX_REDUCE_ITEMS))}) == MAX_REDUCE_ITEMS - 1
