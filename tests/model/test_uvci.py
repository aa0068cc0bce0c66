"""UVCI checksum and generation (DCC.md §3)."""

from __future__ import annotations

import random
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vaxcred.errors import ModelError
from vaxcred.model import UVCI_ALPHABET, generate_uvci, uvci_checksum, uvci_is_valid_checksum
from vaxcred.model.uvci import _base36


@pytest.mark.parametrize(
    ("uvci", "check"),
    [
        ("URN:UVCI:01:VN:BYT/A7K2M9Q4X1", "5"),  # DCC.md §3 worked example
        ("URN:UVCI:01:NL:187/37512422923", "Z"),  # eu-dcc-schema FAQ
        ("URN:UVCI:01:NL:MY/INPUT/STRING", "H"),  # reference code (its docstring says S; the code gives H)
        ("urn:uvci:01:vn:byt/a7k2m9q4x1", "5"),  # case-insensitive
    ],
)
def test_checksum_known_answers(uvci: str, check: str) -> None:
    """Luhn mod 38 over the whole string gives the published check characters."""
    assert uvci_checksum(uvci) == check
    assert uvci_is_valid_checksum(f"{uvci}#{check}")


def test_worked_example_digit_sum() -> None:
    """The validation sum of the worked example is 570 = 15 × 38."""
    assert uvci_is_valid_checksum("URN:UVCI:01:VN:BYT/A7K2M9Q4X1#5")
    assert not uvci_is_valid_checksum("URN:UVCI:01:VN:BYT/A7K2M9Q4X1#6")


@pytest.mark.parametrize(
    "value",
    ["", "#5", "URN:UVCI:01:VN:BYT/A7K2M9Q4X1", "URN:UVCI:01:VN:BYT/A7K2M9Q4X1#55", "URN UVCI#A", None, 5],
)
def test_malformed_uvcis_have_no_valid_checksum(value: object) -> None:
    """Missing, long or foreign-character checksums are simply not valid."""
    assert not uvci_is_valid_checksum(value)


def test_checksum_rejects_characters_outside_alphabet() -> None:
    """Characters outside A–Z 0–9 / : raise model.bad_uvci."""
    with pytest.raises(ModelError) as exc:
        uvci_checksum("URN:UVCI:01:VN:BYT-1")
    assert exc.value.code == "model.bad_uvci"


@given(st.text(alphabet=UVCI_ALPHABET, min_size=1, max_size=60))
def test_property_checksum_validates_and_detects_single_substitution(payload: str) -> None:
    """payload#check validates; changing any one character breaks it."""
    check = uvci_checksum(payload)
    assert uvci_is_valid_checksum(f"{payload}#{check}")
    i = len(payload) // 2
    other = UVCI_ALPHABET[(UVCI_ALPHABET.index(payload[i]) + 1) % len(UVCI_ALPHABET)]
    assert not uvci_is_valid_checksum(f"{payload[:i]}{other}{payload[i + 1 :]}#{check}")


def test_generate_uvci_format() -> None:
    """Option 2 with a valid checksum, under 60 characters, random part A–Z0–9."""
    uvci = generate_uvci()
    assert re.fullmatch(r"URN:UVCI:01:VN:BYT/[A-Z0-9]{16}#[A-Z0-9/:]", uvci)
    assert len(uvci) < 60
    assert uvci_is_valid_checksum(uvci)


def test_generate_uvci_is_random() -> None:
    """Two UVCIs differ (secrets, never derived from an ID)."""
    assert len({generate_uvci() for _ in range(50)}) == 50


def test_generate_uvci_with_injected_rng_and_options() -> None:
    """A seeded source makes generation reproducible in tests; issuer and length are configurable."""
    first = generate_uvci("VN", "HCM", length=10, rng=random.Random(1))
    assert first == generate_uvci("VN", "HCM", length=10, rng=random.Random(1))
    assert first.startswith("URN:UVCI:01:VN:HCM/")
    assert len(first) == 19 + 10 + 2


@pytest.mark.parametrize(
    "kwargs",
    [{"country": "vn"}, {"country": "VNM"}, {"issuer": ""}, {"issuer": "B/T"}, {"length": 4}, {"length": 39}],
)
def test_generate_uvci_rejects_bad_options(kwargs: dict[str, object]) -> None:
    """Country, issuer and length are checked; the result must stay under 60 characters."""
    with pytest.raises(ValueError):
        generate_uvci(**kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        generate_uvci(issuer="A" * 30, length=30)


def _reference_luhn_sum(text: str, first_weight: int) -> int:
    """The Luhn mod N sum as the algorithm states it: weights alternating from the last character."""
    n = len(UVCI_ALPHABET)
    total, weight = 0, first_weight
    for ch in reversed(text):
        product = UVCI_ALPHABET.index(ch) * weight
        total += product // n + product % n
        weight = 3 - weight
    return total


@given(text=st.text(alphabet=UVCI_ALPHABET, max_size=80), first_weight=st.sampled_from([1, 2]))
def test_table_luhn_sum_is_the_stated_algorithm(text: str, first_weight: int) -> None:
    """The per-character addend tables (two sums over alternate characters) give the textbook loop's sum."""
    from vaxcred.model.uvci import _luhn_sum

    assert _luhn_sum(text, first_weight=first_weight) == _reference_luhn_sum(text, first_weight)


@given(
    head=st.text(alphabet=UVCI_ALPHABET, max_size=20),
    bad=st.characters(blacklist_characters=UVCI_ALPHABET),
    tail=st.text(alphabet=UVCI_ALPHABET, max_size=20),
)
def test_table_luhn_sum_names_the_character_outside_the_alphabet(head: str, bad: str, tail: str) -> None:
    """A character outside the alphabet anywhere is model.bad_uvci, naming that character."""
    from vaxcred.model.uvci import _luhn_sum

    with pytest.raises(ModelError, match=re.escape(repr(bad))) as caught:
        _luhn_sum(head + bad + tail, first_weight=2)
    assert caught.value.code == "model.bad_uvci"


@given(st.integers(0, 36**38 - 1), st.integers(1, 38))
def test_base36_pairs_write_what_one_symbol_at_a_time_writes(number: int, length: int) -> None:
    """_base36 (two symbols a division) gives the string of the one-symbol-a-division loop it replaced."""
    number %= 36**length
    expected, rest = [], number
    for _ in range(length):
        rest, digit = divmod(rest, 36)
        expected.append("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"[digit])
    assert _base36(number, length) == "".join(expected)


@given(
    st.sampled_from(["VN", "DE", "FR"]),
    st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=1, max_size=8),
    st.integers(8, 38),
    st.integers(0, 2**32),
)
def test_generated_check_character_is_the_checksum_of_the_body(
    country: str, issuer: str, length: int, seed: int
) -> None:
    """The check character worked out from the remembered prefix sum is uvci_checksum of the whole body, for
    every length parity, issuer and source of randomness (secrets or a seeded one); too long a UVCI is refused."""
    if len(f"URN:UVCI:01:{country}:{issuer}/") + length + 2 > 59:
        with pytest.raises(ValueError, match="keep it under 60"):
            generate_uvci(country, issuer, length=length)
        return
    for uvci in (
        generate_uvci(country, issuer, length=length, rng=random.Random(seed)),
        generate_uvci(country, issuer, length=length),
    ):
        body, _, check = uvci.rpartition("#")
        assert check == uvci_checksum(body)
        assert body.startswith(f"URN:UVCI:01:{country}:{issuer}/")
        assert len(body) == len(f"URN:UVCI:01:{country}:{issuer}/") + length
