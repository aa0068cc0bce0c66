"""The schema compiler behind :func:`vaxcred.schema.validate_dcc`: one schema version's documents -> closures.

Why not :mod:`jsonschema` at run time: it takes ~0.5 ms per DCC, more than the whole verify budget.  Each
schema version is compiled once, on first use, into nested Python closures: no ``exec``/``eval`` and no code
generated from text, and only the vendored schemas are ever compiled (never a schema from input).  The
closures make exactly jsonschema's decisions (Draft 2020-12, no format checker): the same type predicates
(``dict`` objects, ``list`` arrays, ``bool`` not an integer, ``2.0`` an integer), ``format`` an annotation
only — except ``pattern``, which follows JSON Schema itself: an ECMA-262 regex (``u`` flag), unanchored,
translated by :mod:`vaxcred.schema.ecma` (``$`` only at the very end, ``\\d`` ASCII digits; jsonschema uses
Python's ``re`` as it is, SECURITY.md pitfall 18).  The tests hold jsonschema (with ECMA patterns) as the
oracle for everything else, and Node.js's ``RegExp`` for the patterns.  A keyword the compiler does not
implement makes compilation fail: nothing is silently skipped.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from vaxcred.schema.ecma import compile_pattern

# ----------------------------------------------------------------------------------------------------
# Compiler: schema (dict) -> _Node(check, explain)

Check = Callable[[Any], bool]
Explain = Callable[[Any, str], Iterator[str]]


@dataclass(frozen=True, slots=True)
class _Node:
    check: Check  # fast path: True if valid
    explain: Explain  # slow path, failures only: one message per problem


def _is_number(x: Any) -> bool:
    return isinstance(x, numbers.Number) and not isinstance(x, bool)


def _is_integer(x: Any) -> bool:
    if isinstance(x, bool):
        return False
    return isinstance(x, int) or (isinstance(x, float) and x.is_integer())


# Draft 2020-12 type checker of jsonschema (jsonschema._types.draft202012_type_checker).
_TYPES: dict[str, Check] = {
    "array": lambda x: isinstance(x, list),
    "boolean": lambda x: isinstance(x, bool),
    "integer": _is_integer,
    "null": lambda x: x is None,
    "number": _is_number,
    "object": lambda x: isinstance(x, dict),
    "string": lambda x: isinstance(x, str),
}

# Keywords without assertion semantics here (format: no format checker, like jsonschema's default).
_ANNOTATIONS = frozenset(
    {"$schema", "$id", "$comment", "$defs", "title", "description", "examples", "format", "valueset-uri"}
)


def _ok(_: Any, __: str) -> Iterator[str]:
    return iter(())


class _Compiler:
    """Compile one schema version (a set of documents keyed by ``$id``) into closures."""

    def __init__(self, documents: Mapping[str, Mapping[str, Any]]) -> None:
        self._documents = documents
        self._refs: dict[str, _Node] = {}
        self._resolving: set[str] = set()
        # subschemas already compiled, by identity (the documents outlive the compiler run), so that the
        # fused checks below reuse the nodes the keyword builders made
        self._compiled: dict[int, _Node] = {}

    def compile_root(self, uri: str) -> _Node:
        return self._ref(uri, uri)

    def _ref(self, ref: str, base: str) -> _Node:
        doc_uri, _, fragment = ref.partition("#")
        doc_uri = doc_uri or base
        key = f"{doc_uri}#{fragment}"
        if key in self._refs:
            return self._refs[key]
        if key in self._resolving:
            raise ValueError(f"recursive $ref {key} is not supported")
        if doc_uri not in self._documents:
            raise ValueError(f"unknown schema document {doc_uri}")
        target: Any = self._documents[doc_uri]
        if fragment:
            if not fragment.startswith("/"):
                raise ValueError(f"only JSON-pointer $refs are supported: {ref}")
            for token in fragment[1:].split("/"):
                target = target[token.replace("~1", "/").replace("~0", "~")]
        self._resolving.add(key)
        node = self._compile(target, doc_uri)
        self._resolving.discard(key)
        self._refs[key] = node
        return node

    def _compile(self, schema: Any, base: str) -> _Node:
        if not isinstance(schema, dict):
            raise ValueError("boolean schemas are not supported")  # the DCC schemas use none
        if id(schema) in self._compiled:
            return self._compiled[id(schema)]
        if "$id" in schema and schema["$id"] != base:
            raise ValueError("nested $id is not supported")
        parts: dict[str, _Node] = {}
        for keyword, value in schema.items():
            if keyword in _ANNOTATIONS:
                continue
            builder = getattr(self, "_kw_" + keyword.replace("$", "dollar_"), None)
            if builder is None:
                raise ValueError(f"unsupported JSON Schema keyword {keyword!r}")
            parts[keyword] = builder(value, schema, base)
        node = _all(list(parts.values()))
        fused = self._fuse(schema, parts, base)
        if fused is not None:
            node = _Node(fused, node.explain)
        self._compiled[id(schema)] = node
        return node

    # -- fused checks ------------------------------------------------------------------------------------
    #
    # A schema with a single ``type`` fails every value of another type, so the keywords that only
    # constrain that type (maxLength, pattern, required, properties, items, minimum, ...) need no guard
    # of their own: one closure tests the type once and then each constraint inline, instead of one
    # closure call per keyword.  Only the fast ``check`` is fused; ``explain`` (failures only) stays the
    # per-keyword one.  The decisions are the same conjunction of the same predicates.

    def _fuse(self, schema: Mapping[str, Any], parts: Mapping[str, _Node], base: str) -> Check | None:
        kind = schema.get("type")
        fuse = {
            "string": self._fuse_string,
            "object": self._fuse_object,
            "array": self._fuse_array,
            "integer": self._fuse_integer,
        }.get(kind if isinstance(kind, str) else "")
        if fuse is None or len(parts) < 2:
            return None
        return fuse(schema, parts, base)

    @staticmethod
    def _rest(parts: Mapping[str, _Node], consumed: frozenset[str]) -> tuple[Check, ...]:
        return tuple(node.check for keyword, node in parts.items() if keyword not in consumed)

    def _fuse_string(self, schema: Mapping[str, Any], parts: Mapping[str, _Node], _base: str) -> Check:
        rest = self._rest(parts, frozenset({"type", "minLength", "maxLength", "pattern"}))
        low: int = schema.get("minLength", 0)
        high: int | float = schema.get("maxLength", math.inf)
        pattern = schema.get("pattern")
        search = compile_pattern(pattern).search if pattern is not None else None

        def check(x: Any) -> bool:
            if not isinstance(x, str) or not low <= len(x) <= high:
                return False
            if search is not None and search(x) is None:
                return False
            for c in rest:  # noqa: SIM110 - a loop beats all() over a generator here
                if not c(x):
                    return False
            return True

        return check

    def _fuse_object(self, schema: Mapping[str, Any], parts: Mapping[str, _Node], base: str) -> Check:
        rest = self._rest(parts, frozenset({"type", "required", "properties"}))
        required = tuple(schema.get("required", ()))
        properties = tuple(
            (name, self._compile(sub, base).check) for name, sub in schema.get("properties", {}).items()
        )

        def check(x: Any) -> bool:
            if not isinstance(x, dict):
                return False
            for name in required:
                if name not in x:
                    return False
            for name, sub_check in properties:
                if name in x and not sub_check(x[name]):
                    return False
            for c in rest:  # noqa: SIM110 - a loop beats all() over a generator here
                if not c(x):
                    return False
            return True

        return check

    def _fuse_integer(self, schema: Mapping[str, Any], parts: Mapping[str, _Node], _base: str) -> Check:
        rest = self._rest(parts, frozenset({"type", "minimum", "maximum"}))
        low: float = schema.get("minimum", -math.inf)
        high: float = schema.get("maximum", math.inf)

        def check(x: Any) -> bool:
            if not _is_integer(x) or not low <= x <= high:
                return False
            for c in rest:  # noqa: SIM110 - a loop beats all() over a generator here
                if not c(x):
                    return False
            return True

        return check

    def _fuse_array(self, schema: Mapping[str, Any], parts: Mapping[str, _Node], base: str) -> Check:
        rest = self._rest(parts, frozenset({"type", "minItems", "maxItems", "items"}))
        low: int = schema.get("minItems", 0)
        high: int | float = schema.get("maxItems", math.inf)
        item_check = self._compile(schema["items"], base).check if "items" in schema else None

        def check(x: Any) -> bool:
            if not isinstance(x, list) or not low <= len(x) <= high:
                return False
            if item_check is not None:
                for item in x:
                    if not item_check(item):
                        return False
            for c in rest:  # noqa: SIM110 - a loop beats all() over a generator here
                if not c(x):
                    return False
            return True

        return check

    # -- keywords (each mirrors jsonschema/_keywords.py) ----------------------------------------------------

    def _kw_dollar_ref(self, ref: str, _schema: Any, base: str) -> _Node:
        return self._ref(ref, base)

    def _kw_type(self, types: str | list[str], _schema: Any, _base: str) -> _Node:
        names = (types,) if isinstance(types, str) else tuple(types)
        preds = tuple(_TYPES[name] for name in names)
        if len(preds) == 1:
            check = preds[0]
        else:

            def check(x: Any) -> bool:
                return any(p(x) for p in preds)

        def explain(x: Any, path: str) -> Iterator[str]:
            if not check(x):
                yield f"{path}: is not of type {' or '.join(names)}"

        return _Node(check, explain)

    def _kw_required(self, required: list[str], _schema: Any, _base: str) -> _Node:
        names = tuple(required)

        def check(x: Any) -> bool:
            if not isinstance(x, dict):
                return True
            for name in names:  # noqa: SIM110 - a loop beats all() over a generator here
                if name not in x:
                    return False
            return True

        def explain(x: Any, path: str) -> Iterator[str]:
            if isinstance(x, dict):
                for name in names:
                    if name not in x:
                        yield f"{path}: {name!r} is required"

        return _Node(check, explain)

    def _kw_properties(self, properties: Mapping[str, Any], _schema: Any, base: str) -> _Node:
        subs = tuple((name, self._compile(sub, base)) for name, sub in properties.items())
        checks = tuple((name, node.check) for name, node in subs)

        def check(x: Any) -> bool:
            if not isinstance(x, dict):
                return True
            for name, sub_check in checks:  # noqa: SIM110 - a loop beats all() over a generator here
                if name in x and not sub_check(x[name]):
                    return False
            return True

        def explain(x: Any, path: str) -> Iterator[str]:
            if isinstance(x, dict):
                for name, node in subs:
                    if name in x:
                        yield from node.explain(x[name], f"{path}.{name}")

        return _Node(check, explain)

    def _kw_items(self, items: Any, schema: Mapping[str, Any], base: str) -> _Node:
        if "prefixItems" in schema or not isinstance(items, dict):
            raise ValueError("only Draft 2020-12 'items' with a single schema is supported")
        node = self._compile(items, base)
        sub_check = node.check

        def check(x: Any) -> bool:
            if not isinstance(x, list):
                return True
            for item in x:  # noqa: SIM110 - a loop beats all() over a generator here
                if not sub_check(item):
                    return False
            return True

        def explain(x: Any, path: str) -> Iterator[str]:
            if isinstance(x, list):
                for i, item in enumerate(x):
                    yield from node.explain(item, f"{path}[{i}]")

        return _Node(check, explain)

    def _kw_minItems(self, limit: int, _schema: Any, _base: str) -> _Node:
        return _predicate(
            lambda x: not isinstance(x, list) or len(x) >= limit, f"needs at least {limit} item(s)"
        )

    def _kw_maxItems(self, limit: int, _schema: Any, _base: str) -> _Node:
        return _predicate(
            lambda x: not isinstance(x, list) or len(x) <= limit, f"allows at most {limit} item(s)"
        )

    def _kw_minLength(self, limit: int, _schema: Any, _base: str) -> _Node:
        return _predicate(lambda x: not isinstance(x, str) or len(x) >= limit, f"is shorter than {limit}")

    def _kw_maxLength(self, limit: int, _schema: Any, _base: str) -> _Node:
        return _predicate(lambda x: not isinstance(x, str) or len(x) <= limit, f"is longer than {limit}")

    def _kw_minimum(self, limit: float, _schema: Any, _base: str) -> _Node:
        return _predicate(lambda x: not _is_number(x) or x >= limit, f"is less than {limit}")

    def _kw_maximum(self, limit: float, _schema: Any, _base: str) -> _Node:
        return _predicate(lambda x: not _is_number(x) or x <= limit, f"is greater than {limit}")

    def _kw_pattern(self, pattern: str, _schema: Any, _base: str) -> _Node:
        search = compile_pattern(pattern).search  # ECMA-262 semantics, unanchored (JSON Schema)

        return _predicate(
            lambda x: not isinstance(x, str) or search(x) is not None, f"does not match {pattern!r}"
        )

    def _kw_anyOf(self, subschemas: list[Any], _schema: Any, base: str) -> _Node:
        nodes = tuple(self._compile(sub, base) for sub in subschemas)
        checks = tuple(node.check for node in nodes)

        def check(x: Any) -> bool:
            return any(c(x) for c in checks)

        def explain(x: Any, path: str) -> Iterator[str]:
            if not check(x):
                reasons = " | ".join(", ".join(n.explain(x, path)) for n in nodes)
                yield f"{path}: matches none of anyOf ({reasons})"

        return _Node(check, explain)

    def _kw_oneOf(self, subschemas: list[Any], _schema: Any, base: str) -> _Node:
        nodes = tuple(self._compile(sub, base) for sub in subschemas)
        checks = tuple(node.check for node in nodes)

        def check(x: Any) -> bool:
            matched = 0
            for c in checks:
                if c(x):
                    matched += 1
                    if matched > 1:
                        return False
            return matched == 1

        def explain(x: Any, path: str) -> Iterator[str]:
            matched = sum(1 for c in checks if c(x))
            if matched == 0:
                reasons = " | ".join(", ".join(n.explain(x, path)) for n in nodes)
                yield f"{path}: matches none of oneOf ({reasons})"
            elif matched > 1:
                yield f"{path}: matches {matched} of oneOf, exactly one allowed"

        return _Node(check, explain)


def _predicate(test: Check, rule: str) -> _Node:
    def explain(x: Any, path: str) -> Iterator[str]:
        if not test(x):
            yield f"{path}: {rule}"

    return _Node(test, explain)


def _all(parts: list[_Node]) -> _Node:
    if not parts:
        return _Node(lambda _: True, _ok)
    if len(parts) == 1:
        return parts[0]
    checks = tuple(p.check for p in parts)
    explains = tuple(p.explain for p in parts)

    def check(x: Any) -> bool:
        for c in checks:  # noqa: SIM110 - a loop beats all() over a generator here
            if not c(x):
                return False
        return True

    def explain(x: Any, path: str) -> Iterator[str]:
        for e in explains:
            yield from e(x, path)

    return _Node(check, explain)
