"""Reading CertLogic test-suite files (CERTLOGIC.md §5): files, cases, assertions, directives."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True, slots=True, kw_only=True)
class Assertion:
    """One assertion with its effective expression (its own wins over its case's) and directive."""

    file: str
    case: str
    index: int
    expression: Any
    data: Any
    expected: Any
    skipped: bool
    message: str

    @property
    def id(self) -> str:
        return f"{self.file}::{self.case}::{self.index}"


def read_suite(path: Path, default_expression: Any = None) -> Iterator[Assertion]:
    """Every assertion of one suite file; ``only`` on a file or case runs only those (none use it upstream)."""
    suite = json.loads(path.read_text(encoding="utf-8"))
    file_skipped = suite.get("directive") == "skip"
    cases = suite["cases"]
    if any(case.get("directive") == "only" for case in cases):
        cases = [case for case in cases if case.get("directive") == "only"]
    for case in cases:
        case_skipped = file_skipped or case.get("directive") == "skip"
        for i, assertion in enumerate(case["assertions"]):
            expression = assertion.get("certLogicExpression", case.get("certLogicExpression"))
            yield Assertion(
                file=path.name,
                case=case["name"],
                index=i,
                expression=default_expression(case["name"]) if expression is None else expression,
                data=assertion["data"],
                expected=assertion["expected"],
                skipped=case_skipped or assertion.get("directive") == "skip",
                message=assertion.get("message", ""),
            )


def same_json(a: Any, b: Any) -> bool:
    """Deep equality with JSON types kept (``0`` is not ``false``, ``1`` is not ``1.0``)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same_json(a[k], b[k]) for k in a)
    return bool(a == b)
