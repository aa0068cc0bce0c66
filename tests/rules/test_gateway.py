"""EU gateway rules: the schema checks against jsonschema (the oracle), the gateway's content checks, linting."""

from __future__ import annotations

import copy
import json
from importlib import resources
from typing import Any

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vaxcred import errors
from vaxcred.rules import parse_rule, rule_problems
from vaxcred.rules.gateway import schema_problems

SCHEMA = json.loads(
    resources.files("vaxcred")
    .joinpath("data", "rules", "validation-rule.schema.json")
    .read_text(encoding="utf-8")
)
ORACLE = jsonschema.Draft202012Validator(SCHEMA)

RULE: dict[str, Any] = {
    "Identifier": "VR-VN-0001",
    "Type": "Acceptance",
    "Country": "VN",
    "Version": "1.0.0",
    "SchemaVersion": "1.0.0",
    "Engine": "CERTLOGIC",
    "EngineVersion": "1.0.0",
    "CertificateType": "Vaccination",
    "Description": [
        {"lang": "en", "desc": "The vaccine product must be an accepted COVID-19 vaccine."},
        {"lang": "vi", "desc": "Vắc xin phải thuộc danh mục được chấp nhận."},
    ],
    "ValidFrom": "2022-06-01T00:00:00Z",
    "ValidTo": "2030-06-01T00:00:00Z",
    "AffectedFields": ["v.0", "v.0.mp"],
    "Logic": {
        "if": [
            {"var": "payload.v.0"},
            {"in": [{"var": "payload.v.0.mp"}, {"var": "external.valueSets.vaccines-covid-19-names"}]},
            True,
        ]
    },
}


def _with(**changes: Any) -> dict[str, Any]:
    rule = copy.deepcopy(RULE)
    for key, value in changes.items():
        if value is None:
            del rule[key]
        else:
            rule[key] = value
    return rule


def _schema_problems(rule: Any) -> list[str]:
    return [p.pointer for p in rule_problems(rule, lint=False)]


def test_the_sketch_rule_is_valid() -> None:
    """The CERTLOGIC.md §9 rule passes every layer and parses."""
    assert rule_problems(RULE) == ()
    assert ORACLE.is_valid(RULE)
    parsed = parse_rule(RULE)
    assert parsed.version == (1, 0, 0)
    assert parsed.description("vi").startswith("Vắc xin")
    assert parsed.description("fr").startswith("The vaccine")
    assert parsed.logic is not None


@pytest.mark.parametrize(
    ("changes", "pointers"),
    [
        ({"Identifier": None}, ["/Identifier"]),
        ({"Extra": 1}, ["/Extra"]),
        ({"Identifier": "VR-VN-001"}, ["/Identifier"]),
        ({"Identifier": "XR-VN-0001"}, ["/Identifier"]),
        ({"Type": "acceptance"}, ["/Type"]),
        ({"Country": "vn"}, ["/Country"]),
        ({"Region": "ABCDEF"}, ["/Region"]),
        ({"Version": "1.0"}, ["/Version"]),
        ({"SchemaVersion": 1}, ["/SchemaVersion"]),
        ({"Engine": 5}, ["/Engine"]),
        ({"CertificateType": "Vaccine"}, ["/CertificateType"]),
        ({"Description": []}, ["/Description"]),
        (
            {"Description": [{"lang": "vi", "desc": "Vắc xin phải thuộc danh mục được chấp nhận."}]},
            ["/Description"],
        ),
        ({"Description": [{"lang": "en", "desc": "too short"}]}, ["/Description/0/desc", "/Description"]),
        ({"Description": [{"lang": "EN", "desc": "x" * 20}]}, ["/Description/0/lang", "/Description"]),
        ({"ValidFrom": "2022-06-01T00:00:00"}, ["/ValidFrom"]),
        ({"ValidTo": "2022-06-01T00:00:00.000Z"}, ["/ValidTo"]),
        ({"AffectedFields": []}, ["/AffectedFields"]),
        ({"AffectedFields": [1]}, ["/AffectedFields/0"]),
        ({"Logic": {}}, ["/Logic"]),
        ({"Logic": [1]}, ["/Logic"]),
    ],
)
def test_schema_problems(changes: dict[str, Any], pointers: list[str]) -> None:
    """Each schema violation is reported at its pointer, and jsonschema agrees that the rule is invalid."""
    rule = _with(**changes)
    assert _schema_problems(rule) == pointers
    assert not ORACLE.is_valid(rule)


@pytest.mark.parametrize(
    ("changes", "pointers"),
    [
        ({"Type": "Invalidation"}, ["/Identifier"]),
        ({"Identifier": "IR-VN-0001"}, ["/Identifier"]),
        ({"Identifier": "TR-VN-0001"}, ["/CertificateType"]),
        ({"Identifier": "VR-DE-0001"}, ["/Identifier"]),
        ({"ValidFrom": "2021-02-30T00:00:00Z"}, ["/ValidFrom"]),
        ({"ValidTo": "2022-06-03T23:59:59Z"}, ["/ValidTo"]),
        ({"ValidTo": "2022-06-04T01:00:00+02:00"}, ["/ValidTo"]),
    ],
)
def test_gateway_content_checks(changes: dict[str, Any], pointers: list[str]) -> None:
    """Prefix and type, identifier country, real timestamps, 72 h of validity: valid for the schema, not the gateway."""
    rule = _with(**changes)
    assert ORACLE.is_valid(rule)
    assert _schema_problems(rule) == pointers
    with pytest.raises(errors.RulesError) as info:
        parse_rule(rule)
    assert info.value.code == "rules.invalid_rule"


@pytest.mark.parametrize(
    ("changes", "messages"),
    [
        ({"Engine": "OTHER"}, ["/Engine: vaxcred runs only CERTLOGIC"]),
        (
            {"EngineVersion": "2.0.0"},
            ["/EngineVersion: must be from 0.7.5 to 1.3.3 (the CertLogic versions vaxcred runs)"],
        ),
        ({"AffectedFields": ["v.0"]}, ["/AffectedFields: misses 'v.0.mp', read by Logic"]),
        (
            {"AffectedFields": ["v.0", "v.0.mp", "v.0.ma"]},
            ["/AffectedFields/2: 'v.0.ma' is not read by Logic"],
        ),
        (
            {"Logic": {"or": [1, 2]}},
            ["/Logic/or: 'or' is not a CertLogic operation (use '!' and 'and', or 'if')"],
        ),
        (
            {
                "Logic": {"in": [{"var": "payload.v.0.mp"}, {"var": "external.valueSets.my-set"}]},
                "AffectedFields": ["v.0.mp"],
            },
            ["/Logic: unknown value set 'my-set'"],
        ),
        (
            {"Logic": {"===": [{"var": "payload.nam.fn"}, "X"]}, "AffectedFields": ["nam.fn"]},
            ["/Logic: a Vaccination rule reads 'nam.fn'"],
        ),
        (
            {
                "Logic": {"===": [{"extractFromUVCI": [{"var": "payload.v.0.ci"}, 1]}, "VN"]},
                "AffectedFields": ["v.0.ci"],
            },
            ["/EngineVersion: 'extractFromUVCI' needs CertLogic 1.2.0 or later"],
        ),
    ],
)
def test_lint(changes: dict[str, Any], messages: list[str]) -> None:
    """`vaxcred rules validate` adds engine, Logic, affected fields, value sets and entry checks."""
    rule = _with(**changes)
    assert rule_problems(rule, lint=False) == ()
    assert [str(p) for p in rule_problems(rule)] == messages


def test_reduce_lambda_vars_are_not_payload_fields() -> None:
    """Paths read inside a reduce lambda are not affected fields; plusTime's literals are not walked."""
    logic = {
        "reduce": [
            {"var": "payload.v"},
            {"and": [{"var": "accumulator"}, {"var": "current.payload.x"}]},
            {"after": [{"plusTime": [{"var": "payload.dob"}, 18, "year"]}, {"plusTime": ["2021", 0, "day"]}]},
        ]
    }
    rule = _with(Logic=logic, AffectedFields=["v", "dob"], EngineVersion="1.1.0")
    assert rule_problems(rule) == ()


def test_unsupported_engine_parses_without_logic() -> None:
    """A rule for a newer engine loads (judged open later) but its Logic is never compiled."""
    rule = parse_rule(_with(EngineVersion="2.0.0", Logic={"future": [1]}))
    assert rule.logic is None
    assert not rule.engine_supported
    assert rule.logic_problems == ()


def test_invalid_logic_is_kept_as_problems() -> None:
    """A supported rule with invalid Logic loads with its problems (it will be open by error, never passed)."""
    rule = parse_rule(_with(Logic={"or": [1, 2]}))
    assert rule.logic is None
    assert [p.pointer for p in rule.logic_problems] == ["/Logic/or"]


# --- jsonschema as the oracle of layer 1, on generated rules ---------------------------------------------

_TEXT = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=12)
_KEYS = [*RULE, "Region", "Extra"]
_VALUES = st.one_of(
    _TEXT,
    st.sampled_from(
        ["VR-VN-0001", "IR-VN-0002", "Acceptance", "Invalidation", "VN", "A1", "1.2.3", "CERTLOGIC", "General",
         "2021-01-01T00:00:00Z", "2021-01-01T00:00:00+01:00", "2021-13-01T00:00:00Z"]
    ),
    st.integers(),
    st.none(),
    st.booleans(),
    st.lists(_TEXT, max_size=2),
    st.lists(st.fixed_dictionaries({}, optional={"lang": st.sampled_from(["en", "vi", "en-gb", "EN", 1]), "desc": st.one_of(_TEXT, st.just("x" * 25))}), max_size=2),
    st.dictionaries(_TEXT, st.integers(), max_size=2),
)  # fmt: skip


@st.composite
def mutated_rules(draw: st.DrawFn) -> Any:
    rule = copy.deepcopy(RULE)
    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        key = draw(st.sampled_from(_KEYS))
        if draw(st.booleans()) and key in rule:
            del rule[key]
        else:
            rule[key] = draw(_VALUES)
    return rule


@settings(max_examples=300)
@given(st.one_of(mutated_rules(), _VALUES))
def test_schema_layer_agrees_with_jsonschema(rule: Any) -> None:
    """The hand-written schema checks accept exactly what jsonschema accepts (ASCII text, no final newline)."""
    assert (schema_problems(rule) == ()) is ORACLE.is_valid(rule)
