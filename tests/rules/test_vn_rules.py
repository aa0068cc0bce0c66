"""The Viet Nam destination rule set (vaxcred/data/rules/VN) against its tests in the CertLogic test-suite format.

The suites in tests/rules/vn/ name a rule by the identifier that starts each case's name and carry no
expression of their own: the runner evaluates the shipped rule's ``Logic``, so the tests cannot drift from
the rules. ``external.valueSets`` is filled in from the vendored EU value sets, as verify does.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from referencing import Registry, Resource

from vaxcred.rules import RuleSet, rule_problems, to_json_value, vietnam_rules
from vaxcred.rules.verdict import value_set_codes

from .suite import Assertion, read_suite, same_json

HERE = Path(__file__).resolve().parent
RULE_FILES = sorted((HERE.parent.parent / "vaxcred" / "data" / "rules" / "VN").glob("*.json"))
SUITES = sorted((HERE / "vn").glob("*.json"))
CERTLOGIC = HERE.parent / "data" / "certlogic" / "schemas"
RULES = vietnam_rules()
BY_ID = {rule.identifier: rule for rule in RULES.rules}


def _logic_of(case_name: str) -> Any:
    return json.loads((RULE_FILES[0].parent / f"{case_name.split()[0]}.json").read_text(encoding="utf-8"))[
        "Logic"
    ]


ASSERTIONS = [a for path in SUITES for a in read_suite(path, default_expression=_logic_of)]


def test_the_rule_set_has_the_sketched_rules() -> None:
    """VR-VN-0001..0004 of CERTLOGIC.md §9 are there, with English and Vietnamese descriptions."""
    assert {"VR-VN-0001", "VR-VN-0002", "VR-VN-0003", "VR-VN-0004", "IR-VN-0001"} <= set(BY_ID)
    assert all(set(rule.descriptions) == {"en", "vi"} for rule in RULES.rules)
    assert [r.hash for r in RuleSet.from_path(RULE_FILES[0].parent).rules] == [r.hash for r in RULES.rules]


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.name)
def test_each_rule_passes_every_check(path: Path) -> None:
    """Each shipped rule passes the gateway schema, the gateway checks and the linting, and is named after
    its identifier."""
    document = json.loads(path.read_text(encoding="utf-8"))
    assert rule_problems(document) == ()
    assert path.stem == document["Identifier"]


@pytest.mark.parametrize("path", SUITES, ids=lambda p: p.name)
def test_suite_files_match_the_suite_schema(path: Path) -> None:
    """The tests are in the CertLogic test-suite format (its JSON schema holds)."""
    suite_schema = json.loads((CERTLOGIC / "CertLogic-testSuite.json").read_text(encoding="utf-8"))
    expression_schema = json.loads((CERTLOGIC / "CertLogic-expression.json").read_text(encoding="utf-8"))
    registry = Registry().with_resource(expression_schema["$id"], Resource.from_contents(expression_schema))
    jsonschema.Draft7Validator(suite_schema, registry=registry).validate(
        json.loads(path.read_text(encoding="utf-8"))
    )


def test_every_rule_is_tested_both_ways() -> None:
    """Each rule has assertions expecting true and false, and every case names a shipped rule."""
    outcomes: dict[str, set[bool]] = {}
    for assertion in ASSERTIONS:
        identifier = assertion.case.split()[0]
        assert identifier in BY_ID, assertion.case
        outcomes.setdefault(identifier, set()).add(assertion.expected)
    assert outcomes == {identifier: {True, False} for identifier in BY_ID}


@pytest.mark.parametrize("assertion", ASSERTIONS, ids=lambda a: a.id)
def test_assertion(assertion: Assertion) -> None:
    """The shipped rule's compiled Logic gives the expected value over the payload and external parameters."""
    rule = BY_ID[assertion.case.split()[0]]
    assert rule.logic is not None
    data = dict(assertion.data)
    data["external"] = {**data["external"], "valueSets": value_set_codes()}
    value = to_json_value(rule.logic.evaluate(data))
    assert same_json(value, assertion.expected), assertion.message
