"""The compiled DCC schema validator, with jsonschema as the oracle (SECURITY.md pitfall 18).

jsonschema runs ``pattern`` through Python's ``re``; JSON Schema means ECMA-262.  The oracle therefore gets
an ECMA ``pattern`` keyword (:func:`vaxcred.schema.ecma.compile_pattern`, itself checked against Node.js's
``RegExp`` in tests/adversarial/test_schema_semantics.py); every other keyword is jsonschema's own.
"""

from __future__ import annotations

import copy
import filecmp
import json
import re
import timeit
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import referencing
from hypothesis import given, settings
from hypothesis import strategies as st
from referencing.jsonschema import DRAFT202012

from vaxcred.errors import SchemaError
from vaxcred.schema import (
    NEWEST_SCHEMA_VERSION,
    SCHEMA_VERSIONS,
    schema_version_for,
    validate_dcc,
    validation,
)
from vaxcred.schema.ecma import compile_pattern

ROOT = Path(__file__).resolve().parents[1]
VENDORED = ROOT / "schemas"
PACKAGED = ROOT / "vaxcred" / "data" / "schemas"
SCHEMA_DIR = VENDORED / "eu-dcc-schema"
UPSTREAM_CASES = sorted(SCHEMA_DIR.glob("examples/*/*.json")) + sorted(SCHEMA_DIR.glob("test/*/*.json"))
_DGC_DIRS = [ROOT / "tests" / "data" / "dgc-testdata", ROOT.parent / "shared" / "data" / "dgc-testdata"]
DGC_DIR = next((d for d in _DGC_DIRS if d.is_dir()), None)
DGC_FILES = sorted(DGC_DIR.glob("*/2DCode/*/*.json")) if DGC_DIR else []
needs_dgc = pytest.mark.skipif(not DGC_FILES, reason="dgc-testdata not available")


def _ecma_pattern(
    validator: Any, pattern: str, instance: Any, schema: Any
) -> Iterator[jsonschema.ValidationError]:
    if validator.is_type(instance, "string") and compile_pattern(pattern).search(instance) is None:
        yield jsonschema.ValidationError(f"does not match {pattern!r}")


EcmaDraft202012Validator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator, validators={"pattern": _ecma_pattern}
)


@cache
def oracle(version: str) -> Any:
    """jsonschema (no format checker) over the vendored files of one version, read straight from schemas/."""
    resources = []
    root = None
    for path in sorted((SCHEMA_DIR / version).glob("*.schema.json")):
        if "combined" in path.name:
            continue
        doc = json.loads(path.read_text(encoding="utf-8"))
        resources.append((doc["$id"], DRAFT202012.create_resource(doc)))
        if path.name in ("DCC.schema.json", "DGC.schema.json"):
            root = doc
    assert root is not None
    jsonschema.Draft202012Validator.check_schema(root)
    registry: referencing.Registry[Any] = referencing.Registry().with_resources(resources)
    return EcmaDraft202012Validator(root, registry=registry)


def compiled(version: str) -> Any:
    return validation._compiled(version).check


def expected_validate_dcc(data: Any) -> bool:
    """What validate_dcc must decide: the oracle for the chosen schema, plus the profile checks in code:
    exactly one of v/t/r with exactly one entry, and a whole-value country and date of birth."""
    try:
        version = schema_version_for(data.get("ver") if isinstance(data, dict) else None)
    except SchemaError:
        return False
    if not oracle(version).is_valid(data):
        return False
    present = [k for k in ("v", "t", "r") if k in data]
    if len(present) != 1 or len(data[present[0]]) != 1:
        return False
    co = data[present[0]][0].get("co")
    dob = data.get("dob")
    whole_country = not isinstance(co, str) or re.fullmatch("[A-Z]{1,10}", co, re.ASCII) is not None
    whole_dob = (
        not isinstance(dob, str) or re.fullmatch(r"((19|20)\d\d(-\d\d){0,2})?", dob, re.ASCII) is not None
    )
    return whole_country and whole_dob


def accepts(data: Any) -> bool:
    try:
        validate_dcc(data)
    except SchemaError:
        return False
    return True


def _load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _dgc_payloads() -> Iterator[tuple[str, Any, dict[str, Any]]]:
    assert DGC_DIR is not None
    for path in DGC_FILES:
        doc = _load(path)
        if "JSON" in doc:
            yield str(path.relative_to(DGC_DIR)), doc["JSON"], doc.get("EXPECTEDRESULTS", {})


# -- vendoring ---------------------------------------------------------------------------------------------


def _tree(root: Path, *, skip: tuple[str, ...] = ()) -> set[str]:
    return {
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file() and not any(part in skip for part in p.relative_to(root).parts[:2])
    }


def test_package_copy_is_identical_to_vendored_schemas() -> None:
    """vaxcred/data/schemas/ is a byte copy of schemas/ (without the test-only examples/ and test/)."""
    top = _tree(VENDORED, skip=("examples", "test"))
    assert top == _tree(PACKAGED)
    mismatch = [
        name for name in sorted(top) if not filecmp.cmp(VENDORED / name, PACKAGED / name, shallow=False)
    ]
    assert mismatch == []


def test_vendored_data_keeps_licences_and_provenance() -> None:
    """Both upstream folders carry their LICENSE and SOURCE_COMMIT.txt; the README names them."""
    readme = (VENDORED / "README.md").read_text(encoding="utf-8")
    for folder in ("eu-dcc-schema", "eu-dcc-valuesets"):
        assert "Apache License" in (VENDORED / folder / "LICENSE").read_text(encoding="utf-8")
        commit = (VENDORED / folder / "SOURCE_COMMIT.txt").read_text(encoding="utf-8").split()[0]
        assert f"ehn-dcc-development/{folder}" in readme
        assert commit in readme
    assert sorted(p.name for p in SCHEMA_DIR.iterdir() if p.is_dir() and p.name[0].isdigit()) == list(
        SCHEMA_VERSIONS
    )


@pytest.mark.parametrize("version", SCHEMA_VERSIONS)
def test_every_vendored_version_compiles(version: str) -> None:
    """Each published version compiles (no unsupported keyword) and accepts its own examples."""
    check = compiled(version)
    assert callable(check)
    assert validation.load_schema_documents(version)[""]["$id"].endswith(".schema.json")


# -- oracle agreement ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", UPSTREAM_CASES, ids=lambda p: "/".join(p.parts[-2:]))
def test_upstream_cases_agree_with_jsonschema_for_every_version(path: Path) -> None:
    """eu-dcc-schema examples and test cases: same decision as jsonschema under all nine schemas."""
    data = _load(path)
    for version in SCHEMA_VERSIONS:
        assert compiled(version)(data) == oracle(version).is_valid(data), version
    assert accepts(data) == expected_validate_dcc(data)


def test_upstream_valid_and_invalid_cases() -> None:
    """test/valid passes validate_dcc, test/invalid fails it."""
    for path in sorted(SCHEMA_DIR.glob("test/valid/*.json")) + sorted(SCHEMA_DIR.glob("examples/*/*.json")):
        validate_dcc(_load(path))
    for path in sorted(SCHEMA_DIR.glob("test/invalid/*.json")):
        with pytest.raises(SchemaError):
            validate_dcc(_load(path))


@needs_dgc
def test_dgc_testdata_payloads_agree_with_jsonschema() -> None:
    """Every JSON field of dgc-testdata: same decision as jsonschema under all nine schemas."""
    count = 0
    for name, data, _ in _dgc_payloads():
        for version in SCHEMA_VERSIONS:
            assert compiled(version)(data) == oracle(version).is_valid(data), (name, version)
        assert accepts(data) == expected_validate_dcc(data), name
        count += 1
    assert count > 100


# Upstream's own known issues for its schema test (dgc-testdata tests/known_issues.csv, test_cose_schema):
# the vectors say EXPECTEDSCHEMAVALIDATION true, but
# - BG 1, 2 carry "t": null and "r": null: every schema version says arrays, jsonschema rejects (issue #298);
# - RO 2, SK 3 carry two vaccination entries: the 1.0.0/1.2.1 schemas allow it, vaxcred requires exactly one
#   entry (DCC.md §2, SECURITY.md pitfall 12) (issues #356, #357).
DGC_SCHEMA_EXPECTATION_WRONG = {
    # `null` type members beside the real one, date-time dob: dgc-testdata#298
    "BG/2DCode/raw/1.json",
    "BG/2DCode/raw/2.json",
    # two vaccination entries: exactly one, whatever `ver` says (dgc-testdata#356, #357)
    "RO/2DCode/raw/2.json",
    "SK/2DCode/raw/3.json",
}


@needs_dgc
def test_dgc_testdata_expected_schema_validation() -> None:
    """validate_dcc matches EXPECTEDSCHEMAVALIDATION except for upstream's listed known issues."""
    disagreements = set()
    for name, data, expected in _dgc_payloads():
        if "EXPECTEDSCHEMAVALIDATION" in expected and accepts(data) != expected["EXPECTEDSCHEMAVALIDATION"]:
            disagreements.add(name)
    assert disagreements == DGC_SCHEMA_EXPECTATION_WRONG


@pytest.mark.parametrize("ver", SCHEMA_VERSIONS)
def test_two_entries_are_refused_whatever_the_version(ver: str) -> None:
    """Two vaccination entries fail under every version, also where the schema allows them (RO/2, SK/3)."""
    data = _valid_v()
    data["v"] = [data["v"][0], {**data["v"][0], "dn": 2}]
    data["ver"] = ver
    if ver < "1.3.0":
        assert oracle(ver).is_valid(data)  # the schema alone lets it through
    with pytest.raises(SchemaError):
        validate_dcc(data)


def test_dgc2_multiple_certificate_types_is_rejected() -> None:
    """v, t and r together pass the 1.2.1 schema but not validate_dcc (common/2DCode/raw/DGC2.json)."""
    data = _valid_v()
    data["ver"] = "1.2.1"
    data["r"] = [_load(SCHEMA_DIR / "examples" / "recovery" / "simple.json")["r"][0]]
    assert oracle("1.2.1").is_valid(data)
    with pytest.raises(SchemaError) as exc:
        validate_dcc(data)
    assert exc.value.code == "schema.entry_count"


# -- hypothesis: mutations of valid DCCs --------------------------------------------------------------------

BASES = [
    _load(SCHEMA_DIR / "examples" / "vaccination" / "simple.json"),
    _load(SCHEMA_DIR / "examples" / "test" / "simple-rat.json"),
    _load(SCHEMA_DIR / "examples" / "test" / "simple-naat.json"),
    _load(SCHEMA_DIR / "examples" / "recovery" / "simple.json"),
    _load(SCHEMA_DIR / "test" / "valid" / "V-only-gnt.json"),
    _load(SCHEMA_DIR / "examples" / "vaccination" / "special-case-birthday-year-only.json"),
]
KEYS = [
    "ver",
    "nam",
    "dob",
    "v",
    "t",
    "r",
    "fn",
    "fnt",
    "gn",
    "gnt",
    "tg",
    "vp",
    "mp",
    "ma",
    "dn",
    "sd",
    "dt",
]
KEYS += ["co", "is", "ci", "tt", "nm", "sc", "tr", "tc", "fr", "df", "du", "dr", "x"]
TRICKY = [
    "", "\n", "1964\n", "1964-01-01\n", "19٦٤", "١٩٦٤", "2000-1", "1964-01-01T00:00:00", "1899-01-01",
    "1.3.0\n", "1.3.0", "1.0.0", "1.2.1", "1.0.4", "0.1.0", "1x3y0", "١.٣.٠", "1.3", "v1.3.0", " 1.3.0",
    "NL", "NL\n", "nl", "xNLx", "A", "ABCDEFGHIJK", "<", "<<", "ABC<\n", "ABC<DEF", "Abc", "Ä", "A" * 50,
    "A" * 51, "A" * 80, "A" * 81, "840539006", "2021-06-11T00:00:00Z",
]  # fmt: skip
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-3, max_value=12),
    st.integers(),
    st.floats(),
    st.sampled_from([0.0, 1.0, 2.0, 9.0, 10.0, 0.5, float("nan"), float("inf")]),
    st.text(max_size=90),
    st.sampled_from(TRICKY),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(
            st.one_of(st.sampled_from(KEYS), st.text(max_size=3), st.integers(0, 3)), inner, max_size=4
        ),
    ),
    max_leaves=8,
)


def _containers(node: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    yield path, node
    children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, child in children:
        if isinstance(child, dict | list):
            yield from _containers(child, (*path, key))


def _mutate(data: Any, draw: st.DrawFn) -> None:
    containers = [c for _, c in _containers(data)]
    target = draw(st.sampled_from(containers))
    keys = list(target.keys()) if isinstance(target, dict) else list(range(len(target)))
    op = draw(st.sampled_from(["set", "delete", "add", "newline", "stringify", "tricky", "duplicate", "ver"]))
    if op == "ver":
        data["ver"] = draw(
            st.sampled_from([*SCHEMA_VERSIONS, "1.0.4", "0.1.0", "2.0.0", "1.3.0\n", 1.3, None])
        )
    elif op == "add" and isinstance(target, dict):
        target[draw(st.sampled_from(KEYS))] = draw(VALUES)
    elif op == "duplicate" and isinstance(target, list) and target:
        target.append(copy.deepcopy(target[0]))
    elif keys:
        key = draw(st.sampled_from(keys))
        if op == "delete":
            del target[key]
        elif op == "newline" and isinstance(target[key], str):
            target[key] += "\n"
        elif op == "stringify" and isinstance(target[key], int | float):
            target[key] = str(target[key])
        elif op == "tricky":
            target[key] = draw(st.sampled_from(TRICKY))
        else:
            target[key] = draw(VALUES)


@st.composite
def mutated_dccs(draw: st.DrawFn) -> Any:
    data = copy.deepcopy(draw(st.sampled_from(BASES)))
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        _mutate(data, draw)
    return data


@settings(max_examples=400, deadline=None)
@given(mutated_dccs())
def test_property_mutations_agree_with_jsonschema(data: Any) -> None:
    """Mutated valid DCCs: the compiled validators decide exactly as jsonschema, for all nine versions."""
    for version in SCHEMA_VERSIONS:
        assert compiled(version)(data) == oracle(version).is_valid(data), version
    assert accepts(data) == expected_validate_dcc(data)


@settings(max_examples=200, deadline=None)
@given(VALUES)
def test_property_arbitrary_values_raise_only_schema_errors(data: Any) -> None:
    """Any JSON-like value either validates or raises SchemaError, matching the oracle."""
    assert accepts(data) == expected_validate_dcc(data)


# -- pattern semantics (SECURITY.md pitfall 18) --------------------------------------------------


def _valid_v() -> dict[str, Any]:
    data: dict[str, Any] = copy.deepcopy(BASES[0])
    data["ver"] = "1.3.0"
    return data


@pytest.mark.parametrize(
    ("path", "value", "valid"),
    [
        (("dob",), "1964\n", False),  # ECMA '$' matches at the very end only (Python's also before '\n')
        (("dob",), "1964\n\n", False),
        (("dob",), "19٦٤", False),  # ECMA \d is [0-9] (Python's any Unicode digit)
        (("dob",), "١٩٦٤", False),
        (("dob",), "1964-13-45", True),  # month/day ranges are the model's job
        (("v", 0, "co"), "NL", True),
        (("v", 0, "co"), "nl", False),
        (("nam", "fnt"), "ABC\n", False),
        (("nam", "fnt"), "ABC\nX", False),
        (("v", 0, "dt"), "not a date", True),  # format is an annotation only
        (("v", 0, "dn"), 1.0, True),  # an integral float is an integer
        (("v", 0, "dn"), True, False),  # a bool is not
        (("v", 0, "dn"), 0, False),
        (("v", 0, "is"), "I" * 80, True),
        (("v", 0, "is"), "I" * 81, False),
    ],
)
def test_pattern_and_type_semantics_match_jsonschema(path: tuple[Any, ...], value: Any, valid: bool) -> None:
    """Corner cases of ECMA patterns and the Draft 2020-12 type checker, pinned and checked against the oracle."""
    data = _valid_v()
    target: Any = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    assert oracle("1.3.0").is_valid(data) is valid
    assert compiled("1.3.0")(data) is valid
    assert accepts(data) is valid


@pytest.mark.parametrize("ver", ["1.3.0\n", "١.٣.٠", "1x3y0", "1.3", "", " 1.3.0", None, 1.3, 130, ["1.3.0"]])
def test_ver_strict_check(ver: Any) -> None:
    """ver must be an ASCII MAJOR.MINOR.PATCH string, stricter than the schema's '^\\d+.\\d+.\\d+$'."""
    data = _valid_v()
    data["ver"] = ver
    with pytest.raises(SchemaError) as exc:
        validate_dcc(data)
    assert exc.value.code == "schema.bad_version"
    if ver == "1x3y0":
        assert oracle("1.3.0").is_valid(data)  # the schema's bare dots alone would let it through


def test_missing_ver_is_bad_version_and_lists_other_problems() -> None:
    """A missing ver is schema.bad_version; the message still lists other problems."""
    data = _valid_v()
    del data["ver"]
    del data["dob"]
    with pytest.raises(SchemaError) as exc:
        validate_dcc(data)
    assert exc.value.code == "schema.bad_version"
    assert "'dob' is required" in exc.value.message


@pytest.mark.parametrize(
    ("ver", "used"), [("1.0.4", NEWEST_SCHEMA_VERSION), ("0.1.0", NEWEST_SCHEMA_VERSION), ("1.2.1", "1.2.1")]
)
def test_unpublished_versions_use_newest_schema(ver: str, used: str) -> None:
    """A well-formed version without a vendored schema is validated with the newest 1.3.x."""
    assert schema_version_for(ver) == used


def test_version_specific_rules() -> None:
    """Each payload is held to its own version's rules: fnt optional from 1.3.2 only, dn ≤ 9 in 1.0.0."""
    data = _valid_v()
    del data["nam"]["fnt"]
    for ver, valid in [
        ("1.0.0", False),
        ("1.3.0", False),
        ("1.3.1", False),
        ("1.3.2", True),
        ("1.3.3", True),
    ]:
        data["ver"] = ver
        assert accepts(data) is valid, ver
    data = _valid_v()
    data["v"][0]["dn"] = 10
    validate_dcc(data)
    data["ver"] = "1.0.0"
    with pytest.raises(SchemaError):
        validate_dcc(data)


def test_error_message_lists_problems_without_values() -> None:
    """Problems are located and named; personal data is not echoed."""
    data = _valid_v()
    data["nam"]["fnt"] = "Smith-Jones"
    data["v"][0]["dn"] = 0
    data["v"][0]["co"] = "nl"
    with pytest.raises(SchemaError) as exc:
        validate_dcc(data)
    message = exc.value.message
    assert exc.value.code == "schema.invalid"
    assert "$.nam.fnt" in message
    assert "$.v[0].dn" in message
    assert "$.v[0].co" in message
    assert "Smith-Jones" not in message


@pytest.mark.parametrize("data", [[], None, "HC1:", 5, {"ver": "1.3.0"}, {1: 2}])
def test_non_dcc_inputs_raise_schema_error(data: Any) -> None:
    """Non-objects and empty objects are SchemaErrors, never other exceptions."""
    with pytest.raises(SchemaError):
        validate_dcc(data)


# -- the compiler refuses what it does not implement ---------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        {"$id": "u:a", "enum": [1]},
        {"$id": "u:a", "additionalProperties": False},
        {"$id": "u:a", "properties": {"x": True}},
        {"$id": "u:a", "$defs": {"n": {"$ref": "#/$defs/n"}}, "$ref": "#/$defs/n"},
        {"$id": "u:a", "$ref": "u:other#/x"},
        {"$id": "u:a", "$ref": "#anchor"},
        {"$id": "u:a", "items": [{"type": "string"}]},
    ],
)
def test_compiler_rejects_unsupported_schemas(bad: dict[str, Any]) -> None:
    """Unknown keywords, boolean schemas, recursive or foreign refs fail at compile time, never silently."""
    with pytest.raises(ValueError):
        validation._Compiler({"u:a": bad}).compile_root("u:a")


# -- performance --------------------------------------------------------------------------------------------


def test_compiled_validator_is_much_faster_than_jsonschema() -> None:
    """Per-DCC time of validate_dcc vs jsonschema on a typical vaccination DCC."""
    data = _valid_v()
    validator = oracle("1.3.0")
    validate_dcc(data)

    def per_call(fn: Any, number: int) -> float:
        return min(timeit.repeat(fn, number=number, repeat=5)) / number

    ours = per_call(lambda: validate_dcc(data), 2000)
    theirs = per_call(lambda: validator.is_valid(data), 200)
    assert ours * 5 < theirs, (ours, theirs)
    assert ours < 100e-6
