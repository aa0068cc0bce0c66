"""DCC payload validation against the official JSON schema of the payload's own version — fast.

:func:`validate_dcc` picks the vendored schema for ``ver`` (1.0.0 … 1.3.3; any other well-formed version,
such as the unpublished ``1.0.4`` seen in IE vectors, is validated with the newest 1.3.x) and runs it with
JSON Schema's own semantics: ``pattern`` is an ECMA-262 regex, unanchored (:mod:`vaxcred.schema.ecma`;
SECURITY.md pitfall 18).  The DCC profile is stricter than its schemas, so code adds (DCC.md §2):

* ``ver`` must be ``^[0-9]+\\.[0-9]+\\.[0-9]+$`` in ASCII (the schema's ``^\\d+.\\d+.\\d+$`` has bare dots);
* exactly one of ``v``/``t``/``r`` is present, holding exactly one entry, whatever ``ver`` says (SECURITY.md
  pitfall 12; schemas before 1.3.0 do not say so — dgc-testdata ``common/2DCode/raw/DGC2.json`` carries all
  three, ``RO/2DCode/raw/2.json`` and ``SK/2DCode/raw/3.json`` two vaccinations, upstream known issues);
* the patterns the schemas leave unanchored must match the whole value: the entry's country ``co``
  (``[A-Z]{1,10}``, so ``"xNLx"`` fails) and the 1.0.x ``dob`` (``(19|20)\\d{2}-\\d{2}-\\d{2}``).

Value-set membership is not a schema matter (``rules``).

The compiler (schema -> nested Python closures; why not :mod:`jsonschema` at run time) is
:mod:`vaxcred.schema.compiler`.

Error messages name the failing location and rule, never the value (personal data).

Codes: ``schema.invalid`` (the payload breaks the schema or the profile), ``schema.bad_version`` (``ver``
missing, not a string, or not ``MAJOR.MINOR.PATCH``), ``schema.entry_count`` (not exactly one of v/t/r, or
not exactly one entry).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from importlib import resources
from typing import Any

from vaxcred.errors import SchemaError
from vaxcred.schema.compiler import (
    _Compiler,
    _Node,
)
from vaxcred.schema.vaccination import plainly_valid

__all__ = ["NEWEST_SCHEMA_VERSION", "SCHEMA_VERSIONS", "schema_version_for", "validate_dcc"]

#: Every vendored (published) schema version, oldest first; 0.1.0 was a draft and is not vendored.
SCHEMA_VERSIONS = ("1.0.0", "1.0.1", "1.1.0", "1.2.0", "1.2.1", "1.3.0", "1.3.1", "1.3.2", "1.3.3")
NEWEST_SCHEMA_VERSION = "1.3.3"

_VER_RE = re.compile(r"[0-9]+\.[0-9]+\.[0-9]+\Z")
_ENTRY_KEYS = ("v", "t", "r")
_MAX_PROBLEMS = 20


def schema_version_for(ver: object) -> str:
    """The vendored schema version that validates a payload claiming ``ver``.

    Raises :class:`SchemaError` (``schema.bad_version``) if ``ver`` is not an ASCII ``MAJOR.MINOR.PATCH``
    string.
    """
    if not isinstance(ver, str) or not _VER_RE.match(ver):
        raise SchemaError("ver must be a MAJOR.MINOR.PATCH version string", code="schema.bad_version")
    return ver if ver in _VERSION_SET else NEWEST_SCHEMA_VERSION


_VERSION_SET = frozenset(SCHEMA_VERSIONS)


def validate_dcc(dcc: Mapping[str, Any]) -> None:
    """Validate a decoded DCC payload against the schema of its ``ver``; :class:`SchemaError` if invalid.

    The message lists the problems found (locations and rules, not values). A vaccination DCC in vaxcred's own
    layout is accepted in one pass (:func:`~vaxcred.schema.vaccination.plainly_valid`); anything else, and
    every refusal, goes through the compiled schema.
    """
    if plainly_valid(dcc):
        return
    try:
        ver = dcc.get("ver") if isinstance(dcc, dict) else None
        try:
            version = schema_version_for(ver)
        except SchemaError as e:
            # Still list what else is wrong, judged by the newest schema.
            problems = [e.message, *_compiled(NEWEST_SCHEMA_VERSION).explain(dcc, "$")]
            raise SchemaError(_message(problems), code="schema.bad_version") from None
        node = _compiled(version)
        if not node.check(dcc):
            raise SchemaError(_message(list(node.explain(dcc, "$"))), code="schema.invalid")
        present = [key for key in _ENTRY_KEYS if key in dcc]
        if len(present) != 1:
            raise SchemaError("exactly one of v, t, r must be present", code="schema.entry_count")
        entries = dcc[present[0]]  # an array: every schema version says so
        if len(entries) != 1:
            raise SchemaError(f"{present[0]} must hold exactly one entry", code="schema.entry_count")
        problems = _profile_problems(dcc, present[0], entries[0])
        if problems:
            raise SchemaError(_message(problems), code="schema.invalid")
    except (TypeError, ValueError, RecursionError) as e:  # defensive: exotic input objects
        raise SchemaError(f"payload cannot be validated: {type(e).__name__}", code="schema.invalid") from e


#: the whole value, ASCII: what the schemas' unanchored patterns mean for the DCC profile
_COUNTRY_RE = re.compile(r"[A-Z]{1,10}\Z")
_DOB_RE = re.compile(r"(?:(?:19|20)[0-9]{2}(?:-[0-9]{2}){0,2})?\Z")


def _profile_problems(dcc: Mapping[str, Any], kind: str, entry: Any) -> list[str]:
    """What the DCC profile refuses although the schema's search semantics let it through."""
    problems = []
    dob = dcc.get("dob")
    if isinstance(dob, str) and not _DOB_RE.match(dob):
        problems.append("$.dob: is not a whole date YYYY[-MM[-DD]] (DCC profile)")
    country = entry.get("co") if isinstance(entry, dict) else None
    if isinstance(country, str) and not _COUNTRY_RE.match(country):
        problems.append(f"$.{kind}[0].co: is not 1 to 10 letters A-Z (DCC profile)")
    return problems


def _message(problems: list[str]) -> str:
    shown = problems[:_MAX_PROBLEMS]
    more = f"; and {len(problems) - len(shown)} more" if len(problems) > len(shown) else ""
    return "schema validation failed: " + "; ".join(shown or ["invalid"]) + more


# ----------------------------------------------------------------------------------------------------
# Vendored schemas (package data, identical to schemas/eu-dcc-schema/ at the top of the repository)


def load_schema_documents(version: str) -> dict[str, dict[str, Any]]:
    """The vendored JSON documents of one schema version keyed by ``$id`` (bundles excluded), and the root's.

    The root document (``DCC.schema.json``/``DGC.schema.json``) is also under the key ``""``.
    """
    if version not in _VERSION_SET:
        raise ValueError(f"no vendored schema {version!r}")
    folder = resources.files("vaxcred").joinpath("data", "schemas", "eu-dcc-schema", version)
    documents: dict[str, dict[str, Any]] = {}
    for entry in folder.iterdir():
        name = entry.name
        if not name.endswith(".schema.json") or "combined" in name:
            continue
        doc = json.loads(entry.read_text(encoding="utf-8"))
        documents[doc["$id"]] = doc
        if name in ("DCC.schema.json", "DGC.schema.json"):
            documents[""] = doc
    return documents


@functools.cache
def _compiled(version: str) -> _Node:
    documents = load_schema_documents(version)
    root = documents.pop("")
    return _Compiler(documents).compile_root(root["$id"])
