"""Hypothesis strategies for hostile content that a trusted key signs (see :mod:`tests.adversarial.signing`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cbor2
from hypothesis import strategies as st

from tests.interop.payloads import DAY, NOW

EXAMPLES = Path(__file__).resolve().parents[2] / "schemas" / "eu-dcc-schema" / "examples"
#: valid payloads of each type (the DCC schema's own examples), the shapes hostile values are put into
BASES = [
    json.loads((EXAMPLES / name).read_text(encoding="utf-8"))
    for name in ("vaccination/simple.json", "test/simple-naat.json", "recovery/simple.json")
]

#: characters a terminal or a reader must not take as they are (SECURITY.md pitfall 22)
UNSAFE_CHARS = (
    [chr(c) for c in range(0x20)]
    + [chr(c) for c in range(0x7F, 0xA0)]
    + list("\u061c\u200b\u200c\u200d\u200e\u200f\u2028\u2029\u2060\ufeff\u00ad")
    + [chr(c) for c in range(0x202A, 0x202F)]
    + [chr(c) for c in range(0x2066, 0x206A)]
    + ["\U000e0041", "\x1b[2J\x1b[H", "\x1b]0;owned\x07", "\x9b31m"]
)

hostile_text = st.one_of(
    st.text(max_size=40),
    st.lists(st.sampled_from(UNSAFE_CHARS) | st.text(max_size=3), max_size=8).map("".join),
    st.sampled_from(["1990-01-01\n", "NL\n", "xNLx", "١٩٩٠", "19٩0-01-01", "A" * 81, "\u202eLIAVNI", ""]),
)
hostile_ints = st.one_of(
    st.integers(),
    st.integers(min_value=2**63, max_value=2**64 - 1),
    st.integers(min_value=-(2**64), max_value=-(2**63)),
    st.sampled_from([0, -1, 1, 253_402_300_799, 253_402_300_800, 2**40, 2**64 - 1, -(2**64)]),
)
hostile_floats = st.one_of(
    st.floats(), st.sampled_from([float("nan"), float("inf"), float("-inf"), -0.0, 1e308, 1.5])
)
hostile_scalars = st.one_of(
    st.none(),
    st.booleans(),
    hostile_ints,
    hostile_floats,
    hostile_text,
    st.binary(max_size=20),
    st.builds(
        cbor2.CBORTag, st.sampled_from([0, 1, 1004, 2, 3, 18, 55799, 2**32]), hostile_text | hostile_ints
    ),
)
hostile_values = st.recursive(
    hostile_scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(hostile_text | hostile_ints | st.binary(max_size=4), inner, max_size=3)
    ),
    max_leaves=10,
)

#: CWT times: well-placed around NOW (so VALID happens), and hostile
times = st.one_of(
    st.integers(min_value=int((NOW - 3 * DAY).timestamp()), max_value=int((NOW + 400 * DAY).timestamp())),
    hostile_ints,
    hostile_floats,
    st.sampled_from([253_402_300_799, 253_402_300_800, 2**40 - 1, 2**62]),
    hostile_scalars,
)


def _copy(node: Any) -> Any:
    """A copy of the dicts and lists of ``node`` (CBOR tags are shared: deepcopy cannot copy them)."""
    if isinstance(node, dict):
        return {key: _copy(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_copy(value) for value in node]
    return node


def _containers(node: Any) -> list[Any]:
    found = [node]
    children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
    for child in children:
        if isinstance(child, dict | list):
            found.extend(_containers(child))
    return found


@st.composite
def hostile_dccs(draw: st.DrawFn) -> Any:
    """A DCC payload of the schema's shape with a few fields replaced by hostile values (or none)."""
    data = _copy(draw(st.sampled_from(BASES)))
    data["ver"] = draw(st.sampled_from(["1.3.0", "1.3.3", "1.0.0", "1.2.1", "1.0.4"]) | hostile_values)
    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        target = draw(st.sampled_from(_containers(data)))
        if isinstance(target, dict):
            key = draw(st.sampled_from([*target, "v", "t", "r", "x"]) if target else st.just("x"))
            if draw(st.booleans()) and key in target:
                del target[key]
            else:
                target[key] = draw(hostile_values)
        elif target:
            index = draw(st.integers(min_value=0, max_value=len(target) - 1))
            target[index] = draw(hostile_values) if draw(st.booleans()) else _copy(target[index])
            if draw(st.booleans()):
                target.append(_copy(target[0]))  # a second entry
    return data


@st.composite
def hostile_claims(draw: st.DrawFn) -> Any:
    """A CWT claims map: mostly the HC1 layout with hostile times/DCC, sometimes anything at all."""
    kind = draw(st.sampled_from(["layout", "layout", "layout", "extra", "anything"]))
    if kind == "anything":
        return draw(hostile_values)
    claims: dict[Any, Any] = {4: draw(times), 6: draw(times)}
    if draw(st.booleans()):
        claims[1] = draw(st.just("VN") | hostile_scalars)
    hcert: Any = {1: draw(hostile_dccs() | hostile_values)}
    claims[-260] = hcert if draw(st.integers(0, 9)) else draw(hostile_values)
    if kind == "extra":
        claims.update(draw(st.dictionaries(hostile_ints | hostile_text, hostile_values, max_size=3)))
    return claims
