"""The CertLogic evaluator (CERTLOGIC.md §2–§3): a valid expression is compiled once into closures.

:func:`compile_expression` validates the tree (:mod:`vaxcred.rules.validator`; an invalid one raises
:class:`~vaxcred.errors.InvalidExpressionError`) and turns it into nested Python closures, so that a rule
loaded once is evaluated per passport without walking dictionaries again. :func:`evaluate` does both for a
one-off expression. A runtime type mismatch raises :class:`~vaxcred.errors.EvaluationError`
(``rules.evaluation``); nothing else escapes.

Semantics kept from the specification and the JS reference, with Python's traps avoided:

* truthiness: ``false``, ``null``, ``""``, ``0``, ``[]``, ``{}`` falsy; ``true``, non-empty strings, non-zero
  numbers, non-empty arrays/objects truthy; a date-time is *neither* (an error where a truth value is needed);
* integers are ``type(x) is int`` (``True`` is not ``1``; JSON ``1.0`` is a float, never an integer);
* ``===`` (and ``in``) compare strings, numbers, booleans and ``null`` by type and value; arrays, objects and
  date-times are never ``===`` (JS compares identity, Kotlin contents: vaxcred says ``false``);
* only ``if`` and ``and`` are lazy; every other operation evaluates all its operands, left to right, first;
* ``var`` indexes lists by digits-only fragments, objects by key, never strings; anything missing is ``null``.

Bounded evaluation (the expression may come from a hostile file): the validator bounds depth and size;
``reduce`` folds at most :data:`MAX_REDUCE_ITEMS` items, and all the ``reduce`` lambdas of one evaluation
together evaluate at most :data:`MAX_LAMBDA_NODES` nodes; ``+`` stays within JavaScript's safe integers.
Exceeding a bound raises :class:`EvaluationError` with code ``rules.limit``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from vaxcred.errors import EvaluationError
from vaxcred.rules.datetimes import DateTime, dcc_date_of_birth, parse_date_time, plus_time
from vaxcred.rules.validator import check_expression

__all__ = [
    "MAX_LAMBDA_NODES",
    "MAX_REDUCE_ITEMS",
    "CompiledExpression",
    "compile_expression",
    "evaluate",
    "to_json_value",
    "truthiness",
]

#: most items one ``reduce`` folds
MAX_REDUCE_ITEMS = 1_000
#: most expression nodes all ``reduce`` lambdas of one evaluation may evaluate together
MAX_LAMBDA_NODES = 1_000_000
_MAX_SAFE_INTEGER = 2**53 - 1
_MAX_VALUE_DEPTH = 200
_UVCI_PREFIX = "URN:UVCI:"
_UVCI_SPLIT = re.compile("[/#:]").split

#: a compiled node: (data context, remaining lambda budget in a one-item list) -> value
_Fn = Callable[[Any, list[int]], Any]
_SCALARS = (str, int, float, bool, type(None))


def truthiness(value: Any) -> bool | None:
    """CertLogic truthiness: ``True`` truthy, ``False`` falsy, ``None`` neither (a date-time)."""
    if value is True:
        return True
    if value is False or value is None:
        return False
    if isinstance(value, str | list | dict):
        return len(value) > 0
    if isinstance(value, int | float):
        return value != 0
    return None


def _truth(value: Any, what: str) -> bool:
    result = truthiness(value)
    if result is None:
        raise EvaluationError(f"{what} is neither truthy nor falsy (a date-time)")
    return result


def _strict_equal(left: Any, right: Any) -> bool:
    kind = type(left)
    return kind is type(right) and kind in _SCALARS and left == right


def _type_name(value: Any) -> str:
    if isinstance(value, DateTime):
        return "date-time"
    if value is None:
        return "null"
    return {bool: "boolean", int: "integer", float: "number", str: "string", list: "array"}.get(
        type(value), "object"
    )


class _Compiler:
    """Turns a *validated* expression into closures; counts nodes so that ``reduce`` can charge its lambda."""

    def __init__(self) -> None:
        self.nodes = 0

    def compile(self, expr: Any) -> _Fn:
        self.nodes += 1
        if isinstance(expr, list):
            items = tuple(self.compile(item) for item in expr)
            return lambda data, budget: [item(data, budget) for item in items]
        if not isinstance(expr, dict):
            return lambda data, budget: expr  # a literal: string, integer, boolean
        ((op, operands),) = expr.items()
        if op == "var":
            return _var(operands)
        if op == "plusTime":
            return _plus_time(self.compile(operands[0]), operands[1], operands[2])
        if op == "extractFromUVCI":
            return _extract_from_uvci(self.compile(operands[0]), operands[1])
        if op == "reduce":
            operand, initial = self.compile(operands[0]), self.compile(operands[2])
            before = self.nodes
            lambda_ = self.compile(operands[1])
            return _reduce(operand, lambda_, initial, self.nodes - before)
        compiled = tuple(self.compile(operand) for operand in operands)
        return _BUILDERS[op](op, compiled)


def _var(path: str) -> _Fn:
    if path == "":
        return lambda data, budget: data
    steps = tuple(
        (part, int(part) if part.isascii() and part.isdigit() else None) for part in path.split(".")
    )

    def var(data: Any, budget: list[int]) -> Any:
        for key, index in steps:
            if isinstance(data, dict):
                data = data.get(key)
            elif isinstance(data, list):
                data = data[index] if index is not None and index < len(data) else None
            else:
                return None
            if data is None:
                return None
        return data

    return var


def _if(op: str, operands: tuple[_Fn, ...]) -> _Fn:
    guard, then, else_ = operands

    def if_(data: Any, budget: list[int]) -> Any:
        if _truth(guard(data, budget), "the guard of 'if'"):
            return then(data, budget)
        return else_(data, budget)

    return if_


def _and(op: str, operands: tuple[_Fn, ...]) -> _Fn:
    def and_(data: Any, budget: list[int]) -> Any:
        value = None
        for operand in operands:
            value = operand(data, budget)
            if not _truth(value, "an operand of 'and'"):
                return value
        return value

    return and_


def _equal(op: str, operands: tuple[_Fn, ...]) -> _Fn:
    left, right = operands
    return lambda data, budget: _strict_equal(left(data, budget), right(data, budget))


def _in(op: str, operands: tuple[_Fn, ...]) -> _Fn:
    needle_fn, haystack_fn = operands

    def in_(data: Any, budget: list[int]) -> bool:
        needle, haystack = needle_fn(data, budget), haystack_fn(data, budget)
        if not isinstance(haystack, list):
            raise EvaluationError(f"operand 2 of 'in' must be an array, not {_type_name(haystack)}")
        kind = type(needle)
        if kind not in _SCALARS:
            return False
        return any(type(item) is kind and item == needle for item in haystack)

    return in_


def _plus(op: str, operands: tuple[_Fn, ...]) -> _Fn:
    left_fn, right_fn = operands

    def plus(data: Any, budget: list[int]) -> int:
        left, right = left_fn(data, budget), right_fn(data, budget)
        if type(left) is not int or type(right) is not int:
            raise EvaluationError(
                f"the operands of '+' must be integers, not {_type_name(left)} and {_type_name(right)}"
            )
        total = left + right
        if abs(total) > _MAX_SAFE_INTEGER:
            raise EvaluationError("'+' left the safe integer range (2^53 - 1)", code="rules.limit")
        return total

    return plus


def _not(op: str, operands: tuple[_Fn, ...]) -> _Fn:
    (operand,) = operands
    return lambda data, budget: not _truth(operand(data, budget), "the operand of '!'")


_INT_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "<": lambda a, b: a < b,
    ">": lambda a, b: a > b,
    "<=": lambda a, b: a <= b,
    ">=": lambda a, b: a >= b,
}
_DATE_COMPARE = {"before": "<", "after": ">", "not-after": "<=", "not-before": ">="}


def _compare(op: str, operands: tuple[_Fn, ...]) -> _Fn:
    dates = op in _DATE_COMPARE
    test = _INT_COMPARE[_DATE_COMPARE.get(op, op)]

    def compare(data: Any, budget: list[int]) -> bool:
        values = [operand(data, budget) for operand in operands]
        if dates:
            if not all(isinstance(v, DateTime) for v in values):
                found = ", ".join(_type_name(v) for v in values)
                raise EvaluationError(f"the operands of {op!r} must be date-times, not {found}")
            values = [v.ms for v in values]
        elif not all(type(v) is int for v in values):
            found = ", ".join(_type_name(v) for v in values)
            raise EvaluationError(f"the operands of {op!r} must be integers, not {found}")
        if len(values) == 2:
            return test(values[0], values[1])
        return test(values[0], values[1]) and test(values[1], values[2])

    return compare


def _date_of_birth(op: str, operands: tuple[_Fn, ...]) -> _Fn:
    (operand,) = operands

    def date_of_birth(data: Any, budget: list[int]) -> DateTime:
        value = operand(data, budget)
        if not isinstance(value, str):
            raise EvaluationError(
                f"the operand of 'dccDateOfBirth' must be a string, not {_type_name(value)}"
            )
        return dcc_date_of_birth(value)

    return date_of_birth


def _plus_time(operand: _Fn, amount: int, unit: str) -> _Fn:
    def plus_time_(data: Any, budget: list[int]) -> DateTime:
        value = operand(data, budget)
        if not isinstance(value, str):
            raise EvaluationError(f"operand 1 of 'plusTime' must be a string, not {_type_name(value)}")
        return plus_time(parse_date_time(value), amount, unit)

    return plus_time_


def _extract_from_uvci(operand: _Fn, index: int) -> _Fn:
    def extract(data: Any, budget: list[int]) -> str | None:
        value = operand(data, budget)
        if value is None or (index < 0 and isinstance(value, str)):
            return None
        if not isinstance(value, str):
            raise EvaluationError(
                f"operand 1 of 'extractFromUVCI' must be a string or null, not {_type_name(value)}"
            )
        fragments = _UVCI_SPLIT(value.removeprefix(_UVCI_PREFIX))
        return fragments[index] if index < len(fragments) else None

    return extract


def _reduce(operand: _Fn, lambda_: _Fn, initial: _Fn, lambda_nodes: int) -> _Fn:
    def reduce(data: Any, budget: list[int]) -> Any:
        items = operand(data, budget)
        if items is None:
            return initial(data, budget)
        if not isinstance(items, list):
            raise EvaluationError(f"operand 1 of 'reduce' must be an array or null, not {_type_name(items)}")
        if len(items) > MAX_REDUCE_ITEMS:
            raise EvaluationError(f"'reduce' over more than {MAX_REDUCE_ITEMS} items", code="rules.limit")
        budget[0] -= len(items) * lambda_nodes
        if budget[0] < 0:
            raise EvaluationError("the 'reduce' lambdas exceed the evaluation budget", code="rules.limit")
        accumulator = initial(data, budget)
        for current in items:
            accumulator = lambda_({"accumulator": accumulator, "current": current}, budget)
        return accumulator

    return reduce


_BUILDERS: dict[str, Callable[[str, tuple[_Fn, ...]], _Fn]] = {
    "if": _if,
    "and": _and,
    "===": _equal,
    "in": _in,
    "+": _plus,
    "!": _not,
    "dccDateOfBirth": _date_of_birth,
    **dict.fromkeys(("<", ">", "<=", ">=", "after", "before", "not-after", "not-before"), _compare),
}


class CompiledExpression:
    """A validated CertLogic expression, compiled; :meth:`evaluate` is safe to call from several threads."""

    __slots__ = ("_fn", "nodes")

    def __init__(self, fn: _Fn, nodes: int) -> None:
        self._fn = fn
        self.nodes = nodes

    def evaluate(self, data: Any) -> Any:
        """The value of the expression over ``data`` (JSON values; date-times as
        :class:`~vaxcred.rules.DateTime`). Raises :class:`EvaluationError` only."""
        try:
            return self._fn(data, [MAX_LAMBDA_NODES])
        except RecursionError as e:  # pragma: no cover - the validator bounds depth far below the limit
            raise EvaluationError("expression nested too deeply", code="rules.limit") from e


def compile_expression(expr: Any) -> CompiledExpression:
    """Validate ``expr`` (raising :class:`~vaxcred.errors.InvalidExpressionError` with every problem) and
    compile it."""
    check_expression(expr)
    compiler = _Compiler()
    return CompiledExpression(compiler.compile(expr), compiler.nodes)


def evaluate(expr: Any, data: Any) -> Any:
    """Validate, compile and evaluate ``expr`` over ``data`` once."""
    return compile_expression(expr).evaluate(data)


def to_json_value(value: Any, *, max_nodes: int = 100_000) -> Any:
    """``value`` as plain JSON: date-times become ``YYYY-MM-DDThh:mm:ss.sssZ`` strings. A result may share
    sub-arrays (``reduce`` with ``[acc, acc]`` doubles it per item), so its expansion is bounded by
    ``max_nodes`` (:class:`EvaluationError` ``rules.limit``)."""
    count = [0]

    def convert(item: Any, depth: int) -> Any:
        count[0] += 1
        if count[0] > max_nodes or depth > _MAX_VALUE_DEPTH:
            raise EvaluationError(
                f"the value has more than {max_nodes} nodes or {_MAX_VALUE_DEPTH} levels", code="rules.limit"
            )
        if isinstance(item, DateTime):
            return item.isoformat()
        if isinstance(item, list):
            return [convert(x, depth + 1) for x in item]
        if isinstance(item, dict):
            return {k: convert(v, depth + 1) for k, v in item.items()}
        return item

    return convert(value, 0)
