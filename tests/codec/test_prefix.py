"""Tests for vaxcred.codec.prefix (DCC.md §1; SECURITY.md pitfall 10)."""

from __future__ import annotations

import pytest

from vaxcred.codec.prefix import HC1_PREFIX, MAX_HC1_CHARS, add_prefix, strip_prefix
from vaxcred.errors import PrefixError


def test_strip_prefix_returns_the_text_after_hc1() -> None:
    """``HC1:`` is removed and the rest returned unchanged."""
    assert strip_prefix("HC1:NCF 0") == "NCF 0"


def test_strip_prefix_trims_surrounding_whitespace_once() -> None:
    """Whitespace around the whole input (e.g. a scanner's newline) is trimmed before the prefix check."""
    assert strip_prefix(" \r\nHC1:ABC\n\t ") == "ABC"


def test_strip_prefix_keeps_spaces_after_the_prefix() -> None:
    """A space right after ``HC1:`` is Base45 data, not padding."""
    assert strip_prefix("HC1: AB") == " AB"


@pytest.mark.parametrize("text", ["HC2:ABC", "hc1:ABC", "HL0:ABC", "ABC", "", "HC1", " HC 1:ABC", "xHC1:ABC"])
def test_strip_prefix_rejects_anything_but_exactly_hc1(text: str) -> None:
    """Only the exact, upper-case ``HC1:`` context identifier is accepted."""
    with pytest.raises(PrefixError) as info:
        strip_prefix(text)
    assert info.value.code == "prefix.missing"


def test_strip_prefix_accepts_the_qr_maximum_length() -> None:
    """An input of exactly MAX_HC1_CHARS characters passes."""
    text = HC1_PREFIX + "A" * (MAX_HC1_CHARS - len(HC1_PREFIX))
    assert len(strip_prefix(text)) == MAX_HC1_CHARS - 4


def test_strip_prefix_rejects_input_longer_than_a_qr_code_holds() -> None:
    """One character over MAX_HC1_CHARS fails with ``prefix.too_long``."""
    text = HC1_PREFIX + "A" * (MAX_HC1_CHARS - len(HC1_PREFIX) + 1)
    with pytest.raises(PrefixError) as info:
        strip_prefix(text)
    assert info.value.code == "prefix.too_long"


def test_strip_prefix_checks_the_length_before_scanning_a_huge_input() -> None:
    """A megabyte of text fails on length, whatever it starts with."""
    with pytest.raises(PrefixError) as info:
        strip_prefix("HC1:" + "0" * 1_000_000)
    assert info.value.code == "prefix.too_long"


def test_strip_prefix_rejects_bytes_with_type_error() -> None:
    """Passing bytes is a caller mistake (TypeError), not untrusted-input failure."""
    with pytest.raises(TypeError):
        strip_prefix(b"HC1:ABC")  # type: ignore[arg-type]


def test_add_prefix_round_trips_with_strip_prefix() -> None:
    """``strip_prefix(add_prefix(x)) == x``."""
    assert add_prefix("NCF") == "HC1:NCF"
    assert strip_prefix(add_prefix("NCF")) == "NCF"
