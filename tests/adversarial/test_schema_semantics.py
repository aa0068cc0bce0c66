"""Schema patterns mean what JSON Schema says (ECMA-262), checked against a real ECMAScript engine (Node.js).

Python's ``re`` differs from ECMA-262 on ``$`` (a final newline), ``\\d``/``\\w``/``\\b`` (Unicode), ``\\s``
and ``.``; JSON Schema patterns are unanchored.  Every pattern of every vendored schema version, and the
constructs the translator accepts, are run through ``new RegExp(p, "u").test(s)`` and through
:func:`vaxcred.schema.ecma.compile_pattern` on the same tricky strings: the decisions must be identical.
Then the DCC profile's stricter checks (done in code) and the one-entry rule.
"""

from __future__ import annotations

import copy
import json
import random
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from vaxcred.errors import SchemaError
from vaxcred.schema import SCHEMA_VERSIONS, validate_dcc
from vaxcred.schema.ecma import compile_pattern, translate

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas" / "eu-dcc-schema"
EXAMPLE = json.loads((SCHEMAS / "examples" / "vaccination" / "simple.json").read_text(encoding="utf-8"))


def _patterns(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "pattern" and isinstance(value, str):
                yield value
            else:
                yield from _patterns(value)
    elif isinstance(node, list):
        for value in node:
            yield from _patterns(value)


SCHEMA_PATTERNS = sorted(
    {
        pattern
        for version in SCHEMA_VERSIONS
        for path in (SCHEMAS / version).glob("*.schema.json")
        for pattern in _patterns(json.loads(path.read_text(encoding="utf-8")))
    }
)
#: every construct the translator accepts, so the oracle covers the translator, not only today's schemas
CONSTRUCTS = [
    r"^\d+$", r"\D", r"^\w+$", r"\W", r"^\s$", r"\S", r"\bAB\b", r"A\B", r"^.$", r"^a.c$", r"x$", r"^$",
    r"[\d-]", r"[\w<]+", r"[^\s]", r"[a\-z]", r"[!--]", r"[]", r"[^]", r"^[A-Z<]*$", r"a{2,}?b", r"(?:ab)+$",
    r"a(?=b)", r"a(?!b)", r"\t\n\v\f\r", r"\x41\u00e9", r"\cJ", r"\0", r"\.\*\+\?\(\)\[\]\{\}\|\/\^\$\\",
    r"[\b]", r"^(19|20)\d\d$", "ñ+$", r"^[\u0600-\u06ff]+$", r"a|b$", r"^(a|)$",
]  # fmt: skip
_ALPHABET = [
    *"0123456789AZaz_<-. :T",
    "\n", "\r", "\t", "\x0b", "\x0c", "\x00", "\x1c", "\x85", "\xa0", "\u2028", "\u2029", "\ufeff", "\u200b",
    "\u0663", "\u06f3", "\u0966", "\uff13", "\U0001d7d8", "é", "ñ", "Ä", "ß", "\u212a", "\U0001f600", "\u0600",
]  # fmt: skip
_SEEDS = ["1990-01-01", "2021", "1964-05", "1.3.0", "NL", "ABC<DEF", "AB", "ab", "abc", "x", "", "\n"]


def _corpus(seed: int) -> list[str]:
    rng = random.Random(seed)
    strings = set(_SEEDS)
    for base in _SEEDS:
        strings.update({base + "\n", "\n" + base, base + "\r", base + "\u2028", f"x{base}x", base.upper()})
    while len(strings) < 400:
        base = list(rng.choice(_SEEDS))
        for _ in range(rng.randint(0, 3)):
            where = rng.randint(0, len(base))
            base[where:where] = rng.choice(_ALPHABET)
        if base and rng.random() < 0.5:
            base[rng.randrange(len(base))] = rng.choice(_ALPHABET)
        strings.add("".join(base))
    strings.update("".join(rng.choice(_ALPHABET) for _ in range(rng.randint(0, 6))) for _ in range(200))
    return sorted(strings)


_NODE_SCRIPT = """
const input = JSON.parse(require("fs").readFileSync(0, "utf8"));
const out = input.patterns.map((p) => { const re = new RegExp(p, "u"); return input.strings.map((s) => re.test(s)); });
process.stdout.write(JSON.stringify(out));
"""


def _node() -> str:
    node = shutil.which("node") or shutil.which("nodejs")
    assert node, "Node.js is needed as the ECMA-262 oracle (scripts/ensure_system_deps.sh installs nodejs)"
    return node


def test_every_schema_pattern_is_covered() -> None:
    """The vendored schemas hold the six known patterns, all of which the translator accepts."""
    assert len(SCHEMA_PATTERNS) == 6, SCHEMA_PATTERNS
    for pattern in SCHEMA_PATTERNS:
        translate(pattern)


def test_patterns_decide_exactly_as_ecmascript() -> None:
    """Schema patterns and every accepted construct: same search result as Node's RegExp (u flag)."""
    patterns = SCHEMA_PATTERNS + CONSTRUCTS
    strings = _corpus(18)
    proc = subprocess.run(
        [_node(), "-e", _NODE_SCRIPT],
        input=json.dumps({"patterns": patterns, "strings": strings}),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    expected = json.loads(proc.stdout)
    disagreements = [
        (pattern, string, want)
        for pattern, row in zip(patterns, expected, strict=True)
        for string, want in zip(strings, row, strict=True)
        if (compile_pattern(pattern).search(string) is not None) != want
    ]
    assert disagreements == []


@pytest.mark.parametrize(
    "pattern",
    [r"(?<=a)b", r"(?<n>a)", r"\1", r"\p{L}", r"\u{41}", r"a{", r"a}", r"]", r"a**", r"a*+", r"[\D]", r"[\d-z]",
     r"(?i)a", r"\A", r"\Z", r"\q", "(", ")", r"[z-a]", r"(?=a)*", "\\"],
)  # fmt: skip
def test_untranslatable_patterns_are_refused(pattern: str) -> None:
    """Constructs outside the supported ECMA subset (or invalid with the u flag) raise, never approximate."""
    with pytest.raises(ValueError, match="ECMA pattern"):
        translate(pattern)


@pytest.mark.parametrize("pattern", ["a{3,2}", "a{99999999999}"])
def test_invalid_repeat_counts_raise_value_error(pattern: str) -> None:
    """Repeat counts Python's re refuses surface as ValueError, like every other refusal."""
    with pytest.raises(ValueError, match="ECMA pattern"):
        compile_pattern(pattern)


# --- the DCC profile, in code ---------------------------------------------------------------------------


def _payload(ver: str = "1.3.0", **changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = copy.deepcopy(EXAMPLE)
    data["ver"] = ver
    data.update(changes)
    return data


def _code(data: Any) -> str | None:
    try:
        validate_dcc(data)
    except SchemaError as e:
        return e.code
    return None


@pytest.mark.parametrize("ver", SCHEMA_VERSIONS)
@pytest.mark.parametrize(
    "dob", ["1990-01-01\n", "1990-01-01\r", "1990-01-01\u2028", "19٩0-01-01", "١٩٩٠-٠١-٠١"]
)
def test_date_of_birth_with_trailing_newline_or_foreign_digits_fails(ver: str, dob: str) -> None:
    """'1990-01-01\\n' (it passed: Python's $) and non-ASCII digits fail under every version."""
    assert _code(_payload(ver, dob=dob)) == "schema.invalid"


@pytest.mark.parametrize("ver", ["1.0.0", "1.0.1"])
@pytest.mark.parametrize("dob", ["x1990-01-01", "1990-01-01x", "1990-01-01T00:00:00Z", "11990-01-01"])
def test_unanchored_full_date_of_birth_must_be_the_whole_value(ver: str, dob: str) -> None:
    """The 1.0.x dob pattern is unanchored (search semantics): the profile requires the whole value."""
    assert _code(_payload(ver, dob=dob)) == "schema.invalid"


@pytest.mark.parametrize("ver", SCHEMA_VERSIONS)
@pytest.mark.parametrize("co", ["xNLx", "NL\n", "N L", "NL1", "nl", "ABCDEFGHIJK", "\u202eNL"])
def test_country_must_be_the_whole_value(ver: str, co: str) -> None:
    """The country pattern [A-Z]{1,10} is anchored in code: 'xNLx' (it passed) fails under every version."""
    data = _payload(ver)
    data["v"][0]["co"] = co
    assert _code(data) == "schema.invalid"


@pytest.mark.parametrize("ver", SCHEMA_VERSIONS)
def test_valid_payload_passes_every_version_with_the_profile(ver: str) -> None:
    """The plain example stays valid: the profile checks refuse only what they should."""
    assert _code(_payload(ver)) is None


@pytest.mark.parametrize("ver", [*SCHEMA_VERSIONS, "1.0.4"])
@pytest.mark.parametrize("entries", [0, 2, 3])
def test_exactly_one_entry_whatever_ver_says(ver: str, entries: int) -> None:
    """Zero, two or three vaccination entries fail under every version (1.0-1.2 schemas allow several)."""
    data = _payload(ver)
    data["v"] = [dict(data["v"][0], dn=n + 1) for n in range(entries)]
    assert _code(data) in {"schema.entry_count", "schema.invalid"}
    if entries > 1:
        assert _code(data) == "schema.entry_count" or ver not in SCHEMA_VERSIONS or ver >= "1.3.0"
