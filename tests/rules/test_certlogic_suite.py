"""The CertLogic conformance test suite: every assertion not marked skip passes.

Vendored from ehn-dcc-development/eu-dcc-business-rules (Apache-2.0, tests/data/certlogic/LICENSE and NOTICE;
commit in tests/data/certlogic/SOURCE_COMMIT.txt). The skips are the suite's own ``directive: skip``
marks (CERTLOGIC.md §5), each named below with its reason; a skipped assertion that starts passing is
reported, because it means vaxcred departed from the specification.
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from referencing import Registry, Resource

from vaxcred import errors
from vaxcred.rules import evaluate, expression_problems, to_json_value

from .suite import Assertion, read_suite, same_json

DATA = Path(__file__).resolve().parent.parent / "data" / "certlogic"
FILES = sorted((DATA / "testSuite").glob("*.json"))
ASSERTIONS = [a for path in FILES for a in read_suite(path)]

#: why the suite's skip directives hold for vaxcred: file or (file, case) -> reason
SKIP_REASONS = {
    "patched-reduce.json": "reduce with an outer `data` key: a possible extension, not CertLogic 1.3.3",
    ("ins-with-nulls.json", "null-safety"): "`in` over a null/missing array is a runtime error per the spec",
}


def test_the_vendored_suite_is_complete() -> None:
    """All 14 files and 232 assertions are vendored, 14 of them marked skip (CERTLOGIC.md §5)."""
    assert len(FILES) == 14
    assert len(ASSERTIONS) == 232
    assert sum(a.skipped for a in ASSERTIONS) == 14


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_suite_files_match_the_suite_schema(path: Path) -> None:
    """Each vendored file is valid against the suite's own JSON schema."""
    suite_schema = json.loads((DATA / "schemas" / "CertLogic-testSuite.json").read_text(encoding="utf-8"))
    expression_schema = json.loads(
        (DATA / "schemas" / "CertLogic-expression.json").read_text(encoding="utf-8")
    )
    registry = Registry().with_resource(expression_schema["$id"], Resource.from_contents(expression_schema))
    jsonschema.Draft7Validator(suite_schema, registry=registry).validate(
        json.loads(path.read_text(encoding="utf-8"))
    )


@pytest.mark.parametrize("assertion", [a for a in ASSERTIONS if not a.skipped], ids=lambda a: a.id)
def test_assertion(assertion: Assertion) -> None:
    """The expression validates, and its value over the data deep-equals the expectation, JSON types kept."""
    assert expression_problems(assertion.expression) == ()
    value = to_json_value(evaluate(assertion.expression, assertion.data))
    assert same_json(value, assertion.expected), (assertion.message, value)


@pytest.mark.parametrize("assertion", [a for a in ASSERTIONS if a.skipped], ids=lambda a: a.id)
def test_skipped_assertion_has_a_reason(assertion: Assertion) -> None:
    """Every skip is explained; an `in` over a null or missing array is the runtime error the spec names."""
    assert assertion.file in SKIP_REASONS or (assertion.file, assertion.case) in SKIP_REASONS
    if assertion.file == "ins-with-nulls.json":
        with pytest.raises(errors.EvaluationError, match="operand 2 of 'in' must be an array"):
            evaluate(assertion.expression, assertion.data)
