"""Static validation of CertLogic expressions (CERTLOGIC.md §4): every problem, with its JSON pointer."""

from __future__ import annotations

from typing import Any

import pytest

from vaxcred.rules import MAX_DEPTH, MAX_NODES, expression_problems


def _where(expr: Any) -> list[str]:
    return [p.pointer for p in expression_problems(expr)]


@pytest.mark.parametrize(
    ("expr", "pointers"),
    [
        (None, [""]),
        (1.5, [""]),
        ([1, None, 2.5], ["/1", "/2"]),
        ({}, [""]),
        ({"var": "a", "if": []}, [""]),
        ({"not": [True]}, ["/not"]),
        ({"or": [True, False]}, ["/or"]),
        ({"==": [1, 1]}, ["/=="]),
        ({"unknown": []}, ["/unknown"]),
        ({"var": 0}, ["/var"]),
        ({"var": ["a", 1]}, ["/var"]),
        ({"var": "a..b"}, ["/var"]),
        ({"var": ".a"}, ["/var"]),
        ({"var": "a."}, ["/var"]),
        ({"if": {"a": 1}}, ["/if"]),
        ({"if": [True, 1]}, ["/if"]),
        ({"if": [True, 1, 2, 3]}, ["/if"]),
        ({"===": [1]}, ["/==="]),
        ({"in": [1, [], 2]}, ["/in"]),
        ({"+": [1]}, ["/+"]),
        ({"and": [True]}, ["/and"]),
        ({"!": [True, False]}, ["/!"]),
        ({"<": [1]}, ["/<"]),
        ({"after": [1, 2, 3, 4]}, ["/after"]),
        ({"dccDateOfBirth": []}, ["/dccDateOfBirth"]),
        ({"reduce": [1, 2]}, ["/reduce"]),
        ({"extractFromUVCI": [{"var": "x"}, {"var": "i"}]}, ["/extractFromUVCI/1"]),
        ({"extractFromUVCI": [{"var": "x"}, True]}, ["/extractFromUVCI/1"]),
        ({"plusTime": ["2021", 1.0, "day"]}, ["/plusTime/1"]),
        ({"plusTime": ["2021", 1, "days"]}, ["/plusTime/2"]),
        ({"plusTime": ["2021", 1, {"var": "u"}]}, ["/plusTime/2"]),
        ({"plusTime": [None, 1, "minute"]}, ["/plusTime/2", "/plusTime/0"]),
        ({"a/b~c": []}, ["/a~1b~0c"]),
    ],
)
def test_problems_and_their_pointers(expr: Any, pointers: list[str]) -> None:
    """Each construct of the §4 table is reported at its JSON pointer."""
    assert _where(expr) == pointers


def test_every_problem_is_reported() -> None:
    """The walk does not stop at the first problem: operands are checked up to the maximum arity."""
    expr = {"if": [{"var": 1}, {"or": []}, {"!": [None]}, {"var": 2}]}
    assert _where(expr) == ["/if", "/if/0/var", "/if/1/or", "/if/2/!/0"]


@pytest.mark.parametrize(
    "expr",
    [
        {"var": ""},
        {"var": "payload.v.0.mp"},
        {"and": [1, 2, 3, 4, 5]},
        {"reduce": [{"var": "x"}, {"+": [{"var": "accumulator"}, 1]}, 0]},
        {"plusTime": [{"var": "x"}, -3, "month"]},
        [True, "a", 1, [2]],
    ],
)
def test_valid_expressions_have_no_problems(expr: Any) -> None:
    """Well-formed expressions pass (the data's shape is never checked)."""
    assert expression_problems(expr) == ()


def test_depth_is_bounded() -> None:
    """An expression nested deeper than MAX_DEPTH is one problem, found without recursing further."""
    expr: Any = True
    for _ in range(MAX_DEPTH * 10):
        expr = {"!": [expr]}
    problems = expression_problems(expr)
    assert len(problems) == 1
    assert "deeper" in problems[0].message


def test_size_is_bounded() -> None:
    """An expression with more than MAX_NODES nodes is reported once, and the walk stops."""
    problems = expression_problems({"and": [True] * (MAX_NODES + 100)})
    assert [p.message for p in problems] == [f"the expression has more than {MAX_NODES} nodes"]


def test_problem_prints_as_pointer_colon_message() -> None:
    """The CLI's line format: `JSON-pointer: message`."""
    (problem,) = expression_problems({"var": 0})
    assert str(problem).startswith("/var: ")
