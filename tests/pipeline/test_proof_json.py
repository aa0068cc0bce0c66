"""PassportProof.from_json: strict and bounded; every malformed proof is a DecodeError log.malformed_proof."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vaxcred.errors import DecodeError
from vaxcred.pipeline.log import PassportProof

GOOD = PassportProof(
    entry=b"\x01" * 40, leaf_index=5, path=(b"\x02" * 32, b"\x03" * 32), tree_head=b"\x84" * 90
)


def _with(**changes: object) -> dict[str, object]:
    return {**GOOD.to_json(), **changes}


def test_round_trip() -> None:
    """to_json then from_json (object or text) gives the same proof."""
    assert PassportProof.from_json(GOOD.to_json()) == GOOD
    assert PassportProof.from_json(json.dumps(GOOD.to_json())) == GOOD
    assert PassportProof.from_json(json.dumps(GOOD.to_json()).encode()) == GOOD


@pytest.mark.parametrize(
    "data",
    [
        "",
        "[]",
        "not json",
        b"\xff\xfe",
        "[" * 50_000,
        " " * (64 * 1024 + 1),
        '{"entry": "01", "entry": "02", "leaf_index": 0, "path": [], "tree_head": "01"}',
        json.dumps(_with(leaf_index=True)),
        json.dumps(_with(leaf_index=-1)),
        json.dumps(_with(leaf_index=2**63)),
        json.dumps(_with(leaf_index=1.0)),
        json.dumps(_with(leaf_index=float("nan"))),
        json.dumps(_with(path=["02" * 32] * 65)),
        json.dumps(_with(path=["02" * 31])),
        json.dumps(_with(path="0202")),
        json.dumps(_with(entry="")),
        json.dumps(_with(entry="0" * 3)),
        json.dumps(_with(entry="00" * 4097)),
        json.dumps(_with(tree_head=None)),
        json.dumps(_with(extra=1)),
        json.dumps({k: v for k, v in GOOD.to_json().items() if k != "path"}),
    ],
)
def test_malformed_proofs_are_typed_errors(data: str | bytes) -> None:
    """Each malformed or oversized proof raises DecodeError log.malformed_proof, nothing else."""
    with pytest.raises(DecodeError) as caught:
        PassportProof.from_json(data)
    assert caught.value.code == "log.malformed_proof"


@given(st.text(max_size=300) | st.binary(max_size=300))
def test_any_text_is_a_proof_or_a_typed_error(data: str | bytes) -> None:
    """Arbitrary input never raises anything but DecodeError."""
    with contextlib.suppress(DecodeError):
        PassportProof.from_json(data)
