"""Tests for vaxcred.codec.base45 (RFC 9285; the ``base45`` package is the oracle)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import base45 as oracle
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vaxcred.codec.base45 import ALPHABET, b45decode, b45encode
from vaxcred.errors import Base45Error

VECTORS: dict[str, Any] = json.loads(
    (Path(__file__).parents[1] / "data" / "rfc9285" / "base45_vectors.json").read_text()
)

# Expected code for each invalid vector (the vector file only gives a reason in prose).
INVALID_CODES = {
    "GGW": "base45.overflow",
    "ZZZ": "base45.overflow",
    "::": "base45.overflow",
    "V5": "base45.overflow",
    "0": "base45.bad_length",
    "0000": "base45.bad_length",
    "bb8": "base45.invalid_char",
    "BB8=": "base45.invalid_char",
    "BB8\n": "base45.invalid_char",  # policy: reject (the base45 package strips it)
}


def test_alphabet_is_the_rfc_9285_alphabet() -> None:
    """The 45-character alphabet matches the vector file (space included)."""
    assert VECTORS["alphabet"] == ALPHABET
    assert len(set(ALPHABET)) == 45


@pytest.mark.parametrize("case", VECTORS["valid"], ids=lambda c: c["text"] or "empty")
def test_rfc_9285_valid_vector_decodes(case: dict[str, str]) -> None:
    """Each valid RFC 9285 text decodes to its bytes."""
    assert b45decode(case["text"]) == bytes.fromhex(case["bytes_hex"])


@pytest.mark.parametrize("case", VECTORS["valid"], ids=lambda c: c["text"] or "empty")
def test_rfc_9285_valid_vector_encodes(case: dict[str, str]) -> None:
    """Each valid RFC 9285 byte string encodes to exactly its text."""
    assert b45encode(bytes.fromhex(case["bytes_hex"])) == case["text"]


@pytest.mark.parametrize("case", VECTORS["invalid"], ids=lambda c: repr(c["text"]))
def test_rfc_9285_invalid_vector_is_rejected(case: dict[str, str]) -> None:
    """Each invalid vector raises Base45Error with the code for its reason."""
    with pytest.raises(Base45Error) as info:
        b45decode(case["text"])
    assert info.value.code == INVALID_CODES[case["text"]]


def test_every_invalid_vector_has_an_expected_code() -> None:
    """The code table above covers the whole invalid list (a new vector needs a decision)."""
    assert {c["text"] for c in VECTORS["invalid"]} == set(INVALID_CODES)


def test_trailing_newline_is_rejected_unlike_the_base45_package() -> None:
    """Regression: a trailing newline is not Base45 (the package silently accepts it)."""
    assert oracle.b45decode("BB8\n") == b"AB"
    with pytest.raises(Base45Error):
        b45decode("BB8\n")


@pytest.mark.parametrize("text", ["BB8é", "BB８", "\x00BB", "BB\t", "B\u00a08"])
def test_non_alphabet_characters_are_rejected(text: str) -> None:
    """Non-ASCII, control and look-alike characters fail with ``base45.invalid_char``."""
    with pytest.raises(Base45Error) as info:
        b45decode(text)
    assert info.value.code == "base45.invalid_char"


def test_overflow_in_a_middle_triplet_is_detected() -> None:
    """A triplet above 65535 is found wherever it is, not only at the end."""
    with pytest.raises(Base45Error) as info:
        b45decode("BB8GGWBB8")
    assert info.value.code == "base45.overflow"


def test_decode_rejects_bytes_with_type_error() -> None:
    """Passing bytes is a caller mistake (TypeError)."""
    with pytest.raises(TypeError):
        b45decode(b"BB8")  # type: ignore[arg-type]


def test_encode_accepts_bytearray_and_memoryview() -> None:
    """Any bytes-like object encodes like its bytes."""
    assert b45encode(bytearray(b"AB")) == b45encode(memoryview(b"AB")) == "BB8"


@settings(max_examples=300)
@given(st.binary(max_size=600))
def test_round_trip(data: bytes) -> None:
    """``b45decode(b45encode(x)) == x`` for any bytes."""
    assert b45decode(b45encode(data)) == data


@settings(max_examples=300)
@given(st.binary(max_size=600))
def test_agrees_with_the_base45_package_on_valid_input(data: bytes) -> None:
    """Encoding matches the package, and we decode the package's output."""
    text = oracle.b45encode(data).decode("ascii")
    assert b45encode(data) == text
    assert b45decode(text) == oracle.b45decode(text) == data


@settings(max_examples=500)
@given(st.text(alphabet=ALPHABET + "abc\n\t=é", max_size=60))
def test_arbitrary_text_raises_only_base45_error(text: str) -> None:
    """Any text either decodes or fails with Base45Error, and accepted text agrees with the package."""
    try:
        decoded = b45decode(text)
    except Base45Error:
        return
    assert oracle.b45decode(text) == decoded
