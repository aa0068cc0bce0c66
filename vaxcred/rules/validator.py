"""Static validation of CertLogic expressions (CERTLOGIC.md §4), before any evaluation.

:func:`expression_problems` walks the whole tree, ignores the data's shape, and reports **every** problem as
a :class:`Problem` (JSON pointer into the expression, message): unknown operations (JsonLogic operations left
out of CertLogic are named as such), wrong operand counts, wrong literal types. Operands are checked
recursively up to the operation's maximum arity. Types known only after evaluation are not checked (the
evaluator's runtime checks stay).

An expression read from a file is hostile input, so the walk is bounded too: nesting deeper than
:data:`MAX_DEPTH` or more than :data:`MAX_NODES` nodes is a problem (and the walk stops there).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vaxcred.errors import InvalidExpressionError
from vaxcred.rules.datetimes import TIME_UNITS

__all__ = [
    "MAX_DEPTH",
    "MAX_NODES",
    "OPERATIONS",
    "Problem",
    "check_expression",
    "expression_problems",
    "pointer",
]

#: deepest nesting of expressions (objects and arrays) accepted
MAX_DEPTH = 64
#: most nodes (objects, arrays, literals) in one expression
MAX_NODES = 10_000

#: operation -> (fewest, most) operands; ``var`` takes a string, not an array
OPERATIONS: dict[str, tuple[int, int]] = {
    "if": (3, 3),
    "===": (2, 2),
    "and": (2, 1_000_000),
    "<": (2, 3),
    ">": (2, 3),
    "<=": (2, 3),
    ">=": (2, 3),
    "after": (2, 3),
    "before": (2, 3),
    "not-after": (2, 3),
    "not-before": (2, 3),
    "in": (2, 2),
    "+": (2, 2),
    "!": (1, 1),
    "plusTime": (3, 3),
    "dccDateOfBirth": (1, 1),
    "reduce": (3, 3),
    "extractFromUVCI": (2, 2),
}
#: JsonLogic operations that CertLogic leaves out, with what to use instead
_EXCLUDED = {
    "not": "use '!'",
    "==": "use '==='",
    "!=": "use '!' over '==='",
    "!==": "use '!' over '==='",
    "!!": "use '!' twice",
    "or": "use '!' and 'and', or 'if'",
    "?:": "use 'if'",
    **dict.fromkeys(
        ("-", "*", "/", "%", "min", "max", "cat", "substr", "merge", "missing", "missing_some", "map"),
        "not in CertLogic",
    ),
    **dict.fromkeys(("filter", "all", "none", "some", "log", "method"), "not in CertLogic"),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Problem:
    """One problem: where (an RFC 6901 JSON pointer, ``""`` the whole document) and what."""

    pointer: str
    message: str

    def __str__(self) -> str:
        return f"{self.pointer}: {self.message}"


def pointer(*tokens: str | int) -> str:
    """The JSON pointer of ``tokens`` (``~`` and ``/`` escaped)."""
    return "".join(map(_escape, tokens))


def _escape(token: str | int) -> str:
    return "/" + str(token).replace("~", "~0").replace("/", "~1")


class _Walk:
    __slots__ = ("nodes", "problems")

    def __init__(self) -> None:
        self.nodes = 0
        self.problems: list[Problem] = []

    def add(self, where: str, message: str) -> None:
        self.problems.append(Problem(pointer=where, message=message))

    def expression(self, expr: Any, where: str, depth: int) -> None:
        self.nodes += 1
        if self.nodes == MAX_NODES + 1:
            self.add(where, f"the expression has more than {MAX_NODES} nodes")
        if self.nodes > MAX_NODES:
            return
        if depth > MAX_DEPTH:
            self.add(where, f"nested deeper than {MAX_DEPTH} levels")
            return
        if expr is None:
            self.add(where, "null is not a CertLogic literal")
        elif isinstance(expr, bool | str | int):
            pass
        elif isinstance(expr, float):
            self.add(where, "a non-integer number is not a CertLogic literal")
        elif isinstance(expr, list):
            for i, item in enumerate(expr):
                self.expression(item, where + _escape(i), depth + 1)
        elif isinstance(expr, dict):
            self.operation(expr, where, depth)
        else:
            self.add(where, f"{type(expr).__name__} is not a JSON value")

    def operation(self, expr: dict[Any, Any], where: str, depth: int) -> None:
        if len(expr) != 1:
            self.add(where, f"an operation object must have exactly one key, not {len(expr)}")
            return
        ((op, operands),) = expr.items()
        at = where + _escape(op)
        if op == "var":
            self.var(operands, at)
            return
        if op not in OPERATIONS:
            hint = _EXCLUDED.get(op)
            label = str(op)[:40]
            self.add(
                at,
                f"{label!r} is not a CertLogic operation ({hint})"
                if hint
                else f"unknown operation {label!r}",
            )
            return
        if not isinstance(operands, list):
            self.add(at, f"the operands of {op!r} must be an array")
            return
        fewest, most = OPERATIONS[op]
        if not fewest <= len(operands) <= most:
            if fewest == most:
                wanted = f"exactly {fewest}"
            elif most > 3:
                wanted = f"at least {fewest}"
            else:
                wanted = f"{fewest} or {most}"
            self.add(at, f"{op!r} takes {wanted} operand(s), not {len(operands)}")
        if op == "plusTime":
            self.literal_operand(operands, 1, at, "an integer literal", _is_int)
            self.literal_operand(
                operands, 2, at, "one of the literals " + ", ".join(map(repr, TIME_UNITS)), _is_unit
            )
            self.operands(operands[:1], at, depth)
        elif op == "extractFromUVCI":
            self.literal_operand(operands, 1, at, "an integer literal", _is_int)
            self.operands(operands[:1], at, depth)
        else:
            self.operands(operands[:most], at, depth)

    def operands(self, operands: list[Any], at: str, depth: int) -> None:
        for i, operand in enumerate(operands):
            self.expression(operand, at + _escape(i), depth + 1)

    def literal_operand(self, operands: list[Any], index: int, at: str, wanted: str, test: Any) -> None:
        if index < len(operands) and not test(operands[index]):
            self.add(at + _escape(index), f"must be {wanted}")

    def var(self, path: Any, at: str) -> None:
        if not isinstance(path, str):
            self.add(at, "the path of 'var' must be a string (no defaults, no numbers)")
        elif path and not all(path.split(".")):
            self.add(at, "the path of 'var' must be '' or dot-separated non-empty fragments")


def _is_int(value: Any) -> bool:
    return type(value) is int


def _is_unit(value: Any) -> bool:
    return isinstance(value, str) and value in TIME_UNITS


def expression_problems(expr: Any, *, at: str = "") -> tuple[Problem, ...]:
    """Every problem of ``expr`` as a CertLogic expression (empty: valid). ``at`` prefixes the pointers."""
    walk = _Walk()
    walk.expression(expr, at, 0)
    return tuple(walk.problems)


def check_expression(expr: Any) -> None:
    """Raise :class:`~vaxcred.errors.InvalidExpressionError` (with every problem) unless ``expr`` is valid."""
    problems = expression_problems(expr)
    if problems:
        raise InvalidExpressionError(
            f"invalid CertLogic expression: {problems[0]}"
            + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""),
            problems=tuple((p.pointer, p.message) for p in problems),
        )
