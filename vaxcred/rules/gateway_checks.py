"""The checks of an EU gateway rule document (:mod:`vaxcred.rules.gateway` describes the three layers): the
gateway's JSON schema written as code, its clock-free content checks, and the ``lint`` layer of ``vaxcred
rules validate``; every problem reported with its JSON pointer, a layer run only when the ones before it
found nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from vaxcred.rules.validator import Problem, expression_problems, pointer

ENGINE = "CERTLOGIC"
#: the CertLogic specification version vaxcred implements
ENGINE_VERSION = (1, 3, 3)
_OLDEST_ENGINE = (0, 7, 5)
CERTIFICATE_TYPES = ("General", "Test", "Vaccination", "Recovery")
#: the value sets rules may name (``external.valueSets.<id>``)
RULE_VALUE_SETS = (
    "country-2-codes",
    "disease-agent-targeted",
    "covid-19-lab-test-manufacturer-and-name",
    "covid-19-lab-result",
    "covid-19-lab-test-type",
    "vaccines-covid-19-auth-holders",
    "vaccines-covid-19-names",
    "sct-vaccines-covid-19",
)
_REQUIRED = (
    "AffectedFields",
    "Country",
    "CertificateType",
    "Description",
    "Engine",
    "EngineVersion",
    "Identifier",
    "Logic",
    "SchemaVersion",
    "Type",
    "ValidFrom",
    "ValidTo",
    "Version",
)
_PROPERTIES = frozenset((*_REQUIRED, "Region"))
_IDENTIFIER = re.compile(r"(GR|VR|TR|RR|IR)-([A-Z]{2})-[0-9]{4}\Z", re.ASCII)
_COUNTRY = re.compile(r"[A-Z]{2}\Z", re.ASCII)
_REGION = re.compile(r"[A-Z0-9]{0,5}\Z", re.ASCII)
_VERSION = re.compile(r"([0-9]+)\.([0-9]+)\.([0-9]+)\Z", re.ASCII)
_LANG = re.compile(r"(?:[a-z]{2}|[a-z]{2}-[a-z]{2})\Z", re.ASCII)
_TIMESTAMP = re.compile(
    r"([0-9]{4})-([01][0-9])-([0-3][0-9])T([0-2][0-9]):([0-5][0-9]):([0-5][0-9])(Z|([-+])([0-2][0-9]):([0-5][0-9]))\Z",
    re.ASCII,
)
_PREFIX_TYPE = {"GR": "General", "VR": "Vaccination", "TR": "Test", "RR": "Recovery"}
_ENTRY_OF_TYPE = {"Vaccination": "v", "Test": "t", "Recovery": "r"}
_MIN_VALIDITY = timedelta(hours=72)
#: the CertLogic version that introduced an operation or unit (for EngineVersion)
_SINCE = {"month": (1, 1, 0), "year": (1, 1, 0), "extractFromUVCI": (1, 2, 0), "dccDateOfBirth": (1, 3, 0)}


def parse_version(text: str) -> tuple[int, int, int] | None:
    """``MAJOR.MINOR.PATCH`` (ASCII digits) as integers, else ``None``."""
    m = _VERSION.match(text)
    return (int(m[1]), int(m[2]), int(m[3])) if m else None


def parse_timestamp(text: str) -> datetime | None:
    """A ``ValidFrom``/``ValidTo`` value as an aware UTC datetime (``None``: no such instant)."""
    m = _TIMESTAMP.match(text)
    if not m:
        return None
    try:
        year, month, day, hour, minute, second = (int(m[i]) for i in range(1, 7))
        moment = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError:
        return None
    if m[8]:
        hours, minutes = int(m[9]), int(m[10])
        if hours > 23:
            return None
        offset = timedelta(hours=hours, minutes=minutes)
        moment = moment - offset if m[8] == "+" else moment + offset
    return moment


class _Checker:
    __slots__ = ("problems",)

    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def add(self, where: str, message: str) -> None:
        self.problems.append(Problem(pointer=where, message=message))

    def string(self, rule: Mapping[str, Any], key: str, pattern: re.Pattern[str] | None, what: str) -> None:
        if key not in rule:
            return
        value = rule[key]
        if not isinstance(value, str):
            self.add(pointer(key), "must be a string")
        elif pattern is not None and not pattern.match(value):
            self.add(pointer(key), f"must be {what}")

    def enum(self, rule: Mapping[str, Any], key: str, allowed: tuple[str, ...]) -> None:
        if key in rule and rule[key] not in allowed:
            self.add(pointer(key), "must be one of " + ", ".join(allowed))

    def schema(self, rule: Mapping[str, Any]) -> None:
        """Layer 1: the gateway's JSON schema."""
        for key in _REQUIRED:
            if key not in rule:
                self.add(pointer(key), "is required")
        for key in rule:
            if key not in _PROPERTIES:
                self.add(pointer(key), "is not a rule property")
        self.string(rule, "Identifier", _IDENTIFIER, "like VR-XX-0000 (GR, VR, TR, RR or IR)")
        self.enum(rule, "Type", ("Acceptance", "Invalidation"))
        self.string(rule, "Country", _COUNTRY, "a two-letter upper-case country code")
        self.string(rule, "Region", _REGION, "at most five upper-case letters or digits")
        for key in ("Version", "SchemaVersion", "EngineVersion"):
            self.string(rule, key, _VERSION, "a MAJOR.MINOR.PATCH version")
        self.string(rule, "Engine", None, "")
        self.enum(rule, "CertificateType", CERTIFICATE_TYPES)
        for key in ("ValidFrom", "ValidTo"):
            self.string(rule, key, _TIMESTAMP, "YYYY-MM-DDThh:mm:ss with Z or ±hh:mm")
        if "Description" in rule:  # missing is reported as required; null is not an array
            self.descriptions(rule["Description"])
        fields = rule.get("AffectedFields")
        if "AffectedFields" in rule:
            if not isinstance(fields, list):
                self.add("/AffectedFields", "must be an array")
            else:
                if not fields:
                    self.add("/AffectedFields", "needs at least 1 item")
                for i, item in enumerate(fields):
                    if not isinstance(item, str):
                        self.add(pointer("AffectedFields", i), "must be a string")
        if "Logic" in rule:
            logic = rule["Logic"]
            if not isinstance(logic, dict):
                self.add("/Logic", "must be an object")
            elif not logic:
                self.add("/Logic", "needs at least 1 property")

    def descriptions(self, value: Any) -> None:
        if not isinstance(value, list):
            self.add("/Description", "must be an array")
            return
        if not value:
            self.add("/Description", "needs at least 1 item")
        english = False
        for i, item in enumerate(value):
            if not isinstance(item, dict):
                self.add(pointer("Description", i), "must be an object")
                continue
            for key in ("lang", "desc"):
                if key not in item:
                    self.add(pointer("Description", i, key), "is required")
            lang, desc = item.get("lang"), item.get("desc")
            lang_ok = "lang" not in item or (isinstance(lang, str) and _LANG.match(lang) is not None)
            desc_ok = "desc" not in item or (isinstance(desc, str) and len(desc) >= 20)
            if not lang_ok:
                self.add(pointer("Description", i, "lang"), "must be a language code such as en or vi")
            if not desc_ok:
                self.add(pointer("Description", i, "desc"), "must be a string of at least 20 characters")
            english = english or (lang == "en" and lang_ok and desc_ok and "desc" in item)
        if value and not english:
            self.add("/Description", "needs an English (en) description")

    def content(self, rule: Mapping[str, Any]) -> None:
        """Layer 2: the gateway's content checks that need no clock."""
        m = _IDENTIFIER.match(rule["Identifier"])
        assert m is not None
        prefix, country = m[1], m[2]
        if rule["Type"] == "Invalidation" and prefix != "IR":
            self.add("/Identifier", "an Invalidation rule's identifier starts with IR")
        if rule["Type"] == "Acceptance":
            if prefix == "IR":
                self.add("/Identifier", "an Acceptance rule's identifier starts with GR, VR, TR or RR")
            elif _PREFIX_TYPE[prefix] != rule["CertificateType"]:
                self.add("/CertificateType", f"a {prefix} rule has CertificateType {_PREFIX_TYPE[prefix]}")
        if country != rule["Country"]:
            self.add("/Identifier", "the identifier's country must be the rule's Country")
        start, end = parse_timestamp(rule["ValidFrom"]), parse_timestamp(rule["ValidTo"])
        if start is None:
            self.add("/ValidFrom", "is not a real instant")
        if end is None:
            self.add("/ValidTo", "is not a real instant")
        if start is not None and end is not None and end - start < _MIN_VALIDITY:
            self.add("/ValidTo", "must be at least 72 hours after ValidFrom")

    def lint(self, rule: Mapping[str, Any]) -> None:
        """Layer 3: what ``vaxcred rules validate`` adds (engine, Logic, fields read, value sets)."""
        engine_version = parse_version(rule["EngineVersion"])
        assert engine_version is not None
        if rule["Engine"] != ENGINE:
            self.add("/Engine", f"vaxcred runs only {ENGINE}")
        if not _OLDEST_ENGINE <= engine_version <= ENGINE_VERSION:
            self.add("/EngineVersion", "must be from 0.7.5 to 1.3.3 (the CertLogic versions vaxcred runs)")
        logic = rule["Logic"]
        problems = expression_problems(logic, at="/Logic")
        self.problems.extend(problems)
        if problems:
            return
        reads = _Reads()
        reads.walk(logic, in_lambda=False)
        for feature in sorted(reads.features):
            if engine_version < _SINCE[feature]:
                since = ".".join(map(str, _SINCE[feature]))
                self.add("/EngineVersion", f"{feature!r} needs CertLogic {since} or later")
        affected = set(rule["AffectedFields"])
        for field in sorted(reads.payload - affected):
            self.add("/AffectedFields", f"misses {field!r}, read by Logic")
        for i, field in enumerate(rule["AffectedFields"]):
            if field not in reads.payload:
                self.add(pointer("AffectedFields", i), f"{field!r} is not read by Logic")
        for name in sorted(reads.value_sets - set(RULE_VALUE_SETS)):
            self.add("/Logic", f"unknown value set {name!r}")
        entry = _ENTRY_OF_TYPE.get(rule["CertificateType"])
        if entry is not None:
            for field in sorted(reads.payload):
                if field != "dob" and field != entry and not field.startswith(entry + "."):
                    self.add("/Logic", f"a {rule['CertificateType']} rule reads {field!r}")


class _Reads:
    """The paths an expression reads: ``payload.`` paths, value sets, version-dependent features."""

    __slots__ = ("features", "payload", "value_sets")

    def __init__(self) -> None:
        self.payload: set[str] = set()
        self.value_sets: set[str] = set()
        self.features: set[str] = set()

    def walk(self, expr: Any, *, in_lambda: bool) -> None:
        if isinstance(expr, list):
            for item in expr:
                self.walk(item, in_lambda=in_lambda)
            return
        if not isinstance(expr, dict):
            return
        ((op, operands),) = expr.items()
        if op == "var":
            if not in_lambda and operands.startswith("payload."):
                self.payload.add(operands.removeprefix("payload."))
            if not in_lambda and operands.startswith("external.valueSets."):
                self.value_sets.add(operands.removeprefix("external.valueSets.").split(".")[0])
            return
        if op in _SINCE:
            self.features.add(op)
        if op == "plusTime" and operands[2] in _SINCE:
            self.features.add(operands[2])
        if op in ("plusTime", "extractFromUVCI", "dccDateOfBirth"):
            self.walk(operands[0], in_lambda=in_lambda)
        elif op == "reduce":
            self.walk(operands[0], in_lambda=in_lambda)
            self.walk(operands[1], in_lambda=True)
            self.walk(operands[2], in_lambda=in_lambda)
        else:
            self.walk(operands, in_lambda=in_lambda)


def _layers(rule: Any, lint: bool) -> Iterator[list[Problem]]:
    checker = _Checker()
    if not isinstance(rule, dict):
        checker.add("", "a rule must be a JSON object")
        yield checker.problems
        return
    checker.schema(rule)
    yield checker.problems
    checker.content(rule)
    yield checker.problems
    if lint:
        checker.lint(rule)
        yield checker.problems


def schema_problems(rule: Any) -> tuple[Problem, ...]:
    """Layer 1 alone: the problems the gateway's JSON schema finds (jsonschema's verdict, in vaxcred's code)."""
    checker = _Checker()
    if not isinstance(rule, dict):
        checker.add("", "a rule must be a JSON object")
    else:
        checker.schema(rule)
    return tuple(checker.problems)


def rule_problems(rule: Any, *, lint: bool = True) -> tuple[Problem, ...]:
    """Every problem of ``rule`` (a parsed JSON document), layer by layer: a layer runs only when the
    ones before it found nothing (module docstring). ``lint=False`` stops after the gateway's checks."""
    problems: list[Problem] = []
    for problems in _layers(rule, lint):
        if problems:
            break
    return tuple(problems)
