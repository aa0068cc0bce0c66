"""Rule sets: loading (a file, an array, a folder of rule files), and selection (CERTLOGIC.md §7).

Selection for arrival country A, issuer country I, certificate type T, region R, at clock C: the
Acceptance rules of A and the Invalidation rules of I (countries case-insensitive); ``CertificateType`` T or
``General``; ``Region`` R (none given: rules without a region); ``ValidFrom`` ≤ C < ``ValidTo``; per
``Identifier`` the highest ``Version`` (compared part by part as integers).

Files are hostile input: each is at most :data:`MAX_RULE_FILE_BYTES`, strict UTF-8 JSON without ``NaN``,
duplicate keys or nesting deeper than the parser allows, and a set holds at most :data:`MAX_RULES` rules.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

from vaxcred.errors import RulesError
from vaxcred.rules.gateway import Rule, parse_rule

__all__ = ["MAX_RULES", "MAX_RULE_FILE_BYTES", "RuleSet", "parse_json", "vietnam_rules"]

MAX_RULE_FILE_BYTES = 1024 * 1024
MAX_RULES = 10_000


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("duplicate key in a JSON object")
    return result


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_json(data: bytes | str, *, what: str = "JSON document", code: str = "rules.invalid_json") -> Any:
    """Strict JSON (UTF-8, no ``NaN``/``Infinity``, no duplicate keys); :class:`RulesError` ``code`` else."""
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError) as e:  # JSONDecodeError is a ValueError
        raise RulesError(f"{what} is not valid JSON: {e}", code=code) from e
    except RecursionError as e:
        raise RulesError(f"{what} is nested too deeply", code=code) from e


@dataclass(frozen=True, slots=True, kw_only=True)
class RuleSet:
    """An immutable set of :class:`Rule` objects, indexed for :meth:`select`."""

    rules: tuple[Rule, ...]
    #: ``external.valueSets`` for these rules (id -> codes), e.g. from a synced folder; ``None``: the vendored
    #: EU value sets
    value_sets: Mapping[str, list[str]] | None = None
    #: ``False`` when rule or value-set files of the source could not be loaded (e.g. a synced file changed on
    #: disk): the rules that did load may pass, but a rule left out might not, so a pass asks for a check
    complete: bool = True
    _index: Mapping[tuple[str, str], tuple[Rule, ...]] = field(
        default_factory=lambda: MappingProxyType({}), repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if len(self.rules) > MAX_RULES:
            raise RulesError(f"more than {MAX_RULES} rules", code="rules.limit")
        seen: dict[tuple[str, tuple[int, int, int]], Rule] = {}
        index: dict[tuple[str, str], list[Rule]] = {}
        for rule in self.rules:
            key = (rule.identifier, rule.version)
            if key in seen and seen[key].hash != rule.hash:
                raise RulesError(
                    f"{rule.identifier} {rule.version_text} appears twice with different content",
                    code="rules.duplicate_rule",
                )
            seen[key] = rule
            index.setdefault((rule.type, rule.country.upper()), []).append(rule)
        frozen = {key: tuple(rules) for key, rules in index.items()}
        object.__setattr__(self, "_index", MappingProxyType(frozen))

    @classmethod
    def from_documents(cls, documents: Iterable[Any]) -> RuleSet:
        """Rules from parsed JSON documents, each a rule object or an array of them."""
        rules: list[Rule] = []
        for document in documents:
            items = document if isinstance(document, list) else [document]
            if len(rules) + len(items) > MAX_RULES:
                raise RulesError(f"more than {MAX_RULES} rules", code="rules.limit")
            rules.extend(parse_rule(item) for item in items)
        return cls(rules=tuple(rules))

    @classmethod
    def from_json(cls, data: bytes | str) -> RuleSet:
        """Rules from the text of one rule or a JSON array of rules."""
        if len(data) > MAX_RULE_FILE_BYTES:
            raise RulesError(f"rule file larger than {MAX_RULE_FILE_BYTES} bytes", code="rules.limit")
        return cls.from_documents([parse_json(data, what="the rule file")])

    @classmethod
    def from_path(cls, path: Path) -> RuleSet:
        """Rules from a file (one rule or an array) or a folder of ``*.json`` rule files (not recursive; other
        entries, e.g. sub-folders or FIFOs, are ignored).
        :class:`RulesError` names the file at fault; an unreadable path raises :class:`OSError`."""
        # in a folder only regular files: a FIFO named *.json would block the read forever
        files = sorted(p for p in path.glob("*.json") if p.is_file()) if path.is_dir() else [path]
        if len(files) > MAX_RULES:
            raise RulesError(f"more than {MAX_RULES} rule files", code="rules.limit")
        rules: list[Rule] = []
        for file in files:
            with file.open("rb") as fh:
                data = fh.read(MAX_RULE_FILE_BYTES + 1)
            if len(data) > MAX_RULE_FILE_BYTES:
                raise RulesError(f"{file.name}: larger than {MAX_RULE_FILE_BYTES} bytes", code="rules.limit")
            try:
                rules.extend(cls.from_documents([parse_json(data, what="the file")]).rules)
            except RulesError as e:
                raise RulesError(f"{file.name}: {e.message}", code=e.code) from e
            if len(rules) > MAX_RULES:
                raise RulesError(f"more than {MAX_RULES} rules", code="rules.limit")
        return cls(rules=tuple(rules))

    def with_value_sets(self, documents: Iterable[Any]) -> RuleSet:
        """This rule set with its own value sets: parsed EU value-set documents (``valueSetId``,
        ``valueSetValues``), replacing the vendored ones id by id. :class:`RulesError`
        (``rules.invalid_value_set``) for a document of another shape."""
        sets: dict[str, list[str]] = {}
        for document in documents:
            ok = isinstance(document, dict) and isinstance(document.get("valueSetId"), str)
            values = document.get("valueSetValues") if ok else None
            if not isinstance(values, dict) or len(values) > MAX_RULES:
                raise RulesError("not an EU value-set document", code="rules.invalid_value_set")
            sets[document["valueSetId"]] = list(values)
        return RuleSet(rules=self.rules, value_sets=sets, complete=self.complete)

    def countries(self) -> frozenset[str]:
        """The countries that own rules in this set."""
        return frozenset(country for _, country in self._index)

    def select(
        self,
        *,
        arrival: str | None,
        issuer: str | None,
        certificate_type: str | None,
        at: datetime,
        region: str | None = None,
    ) -> tuple[Rule, ...]:
        """The rules that apply (module docstring), newest version per identifier, sorted by identifier."""
        types = ("General",) if certificate_type is None else ("General", certificate_type)
        region = region or None
        candidates: list[Rule] = []
        if arrival:
            candidates.extend(self._index.get(("Acceptance", arrival.upper()), ()))
        if issuer:
            candidates.extend(self._index.get(("Invalidation", issuer.upper()), ()))
        newest: dict[str, Rule] = {}
        for rule in candidates:
            if rule.certificate_type not in types or rule.region != region:
                continue
            if not rule.valid_from <= at < rule.valid_to:
                continue
            best = newest.get(rule.identifier)
            if best is None or rule.version > best.version:
                newest[rule.identifier] = rule
        return tuple(newest[name] for name in sorted(newest))


def vietnam_rules() -> RuleSet:
    """The rule set vaxcred ships for Viet Nam as a destination (``vaxcred/data/rules/VN/*.json``)."""
    folder = resources.files("vaxcred").joinpath("data", "rules", "VN")
    documents = [
        parse_json(item.read_bytes(), what=item.name)
        for item in sorted(folder.iterdir(), key=lambda item: item.name)
        if item.name.endswith(".json")
    ]
    return RuleSet.from_documents(documents)
