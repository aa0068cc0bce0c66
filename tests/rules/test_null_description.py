"""A rule whose Description is null (found by the merged-product QA pass's full run: the hand-written schema
layer took null for "missing, reported elsewhere", and verify then crashed iterating it)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import vaxcred
from vaxcred.errors import RulesError
from vaxcred.rules import RuleSet
from vaxcred.rules.gateway import schema_problems

RULE = Path(vaxcred.__file__).parent / "data" / "rules" / "VN" / "VR-VN-0002.json"


def test_a_null_description_is_a_schema_problem_and_the_rule_is_refused() -> None:
    """Description null is "must be an array", as jsonschema says; loading refuses the rule (no TypeError)."""
    rule = json.loads(RULE.read_text(encoding="utf-8"))
    rule["Description"] = None
    assert [p.pointer for p in schema_problems(rule)] == ["/Description"]
    with pytest.raises(RulesError) as caught:
        RuleSet.from_json(json.dumps(rule))
    assert caught.value.code == "rules.invalid_rule"
