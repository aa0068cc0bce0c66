"""Vietnamese-aware name comparison: which kind of difference, and the match policy."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vaxcred.pipeline.records.names import (
    MATCHING_DIFFERENCES,
    NameDifference,
    compare_names,
    fold_diacritics,
    names_match,
    normalize_name,
)

# Real-world style Vietnamese full names (họ + tên đệm + tên), with every tone mark, the vowel marks ă â ê ô ơ ư
# and đ, and how they are typed without marks on an ASCII keyboard.
NAMES = [
    ("Nguyễn Văn Đức", "Nguyen Van Duc"),
    ("Trần Thị Thu Hương", "Tran Thi Thu Huong"),
    ("Lê Hoàng Anh Tuấn", "Le Hoang Anh Tuan"),
    ("Phạm Minh Đạt", "Pham Minh Dat"),
    ("Hoàng Thị Hải Yến", "Hoang Thi Hai Yen"),
    ("Huỳnh Thị Mỹ Lệ", "Huynh Thi My Le"),
    ("Phan Thanh Bình", "Phan Thanh Binh"),
    ("Vũ Đức Thắng", "Vu Duc Thang"),
    ("Võ Thị Hằng Nga", "Vo Thi Hang Nga"),
    ("Đặng Thùy Dương", "Dang Thuy Duong"),
    ("Bùi Cẩm Tú", "Bui Cam Tu"),
    ("Đỗ Mạnh Hùng", "Do Manh Hung"),
    ("Hồ Ngọc Hà", "Ho Ngoc Ha"),
    ("Ngô Đình Quốc Bảo", "Ngo Dinh Quoc Bao"),
    ("Dương Thị Mẫn", "Duong Thi Man"),
    ("Lý Thị Kiều Oanh", "Ly Thi Kieu Oanh"),
    ("Trương Ngọc Ánh", "Truong Ngoc Anh"),
    ("Lã Văn Thắng", "La Van Thang"),
    ("Tôn Nữ Thị Ninh", "Ton Nu Thi Ninh"),
    ("Châu Khải Phong", "Chau Khai Phong"),
]
WITH_STROKE = [name for name, _ in NAMES if "đ" in name.casefold()]


@pytest.mark.parametrize("name", [n for n, _ in NAMES])
def test_identical_names_differ_in_nothing(name: str) -> None:
    """A name compared with itself is NONE and matches."""
    assert compare_names(name, name) is NameDifference.NONE
    assert names_match(name, name)


@pytest.mark.parametrize("name", [n for n, _ in NAMES])
def test_nfd_input_from_some_keyboards_is_only_a_unicode_form_difference(name: str) -> None:
    """Decomposed input (base letter + combining marks) is the same name."""
    nfd = unicodedata.normalize("NFD", name)
    assert nfd != name
    assert compare_names(nfd, name) is NameDifference.UNICODE_FORM
    assert names_match(nfd, name)


def test_legacy_composed_forms_other_than_nfc_are_a_unicode_form_difference() -> None:
    """Partially composed text (ê + combining acute, as VNI/TCVN converters produce) equals the NFC name."""
    partly = "Nguye\u0302\u0303n Va\u0306n \u0110\u01b0\u0301c"  # ê, ă as marks; ư precomposed + acute
    assert compare_names(partly, "Nguyễn Văn Đức") is NameDifference.UNICODE_FORM


@pytest.mark.parametrize("name", [n for n, _ in NAMES])
def test_upper_case_entry_is_a_case_difference(name: str) -> None:
    """NGUYỄN VĂN ĐỨC (sites often type capitals) matches Nguyễn Văn Đức."""
    assert compare_names(name.upper(), name) is NameDifference.CASE
    assert names_match(name.upper(), name)


def test_case_and_nfd_together_report_the_more_significant_case() -> None:
    """Several matching differences: the most significant one is reported."""
    assert (
        compare_names(unicodedata.normalize("NFD", "NGUYỄN VĂN ĐỨC"), "Nguyễn Văn Đức") is NameDifference.CASE
    )


@pytest.mark.parametrize(
    "spaced",
    ["Nguyễn  Văn Đức", " Nguyễn Văn Đức ", "Nguyễn\u00a0Văn Đức", "Nguyễn\tVăn   Đức", "Nguyễn Văn Đức\n"],
)
def test_double_spaces_and_odd_whitespace_are_a_spacing_difference(spaced: str) -> None:
    """Runs of whitespace (also NO-BREAK SPACE and tabs) and surrounding spaces still match."""
    assert compare_names(spaced, "Nguyễn Văn Đức") is NameDifference.SPACING
    assert names_match(spaced, "Nguyễn Văn Đức")


def test_a_missing_space_joins_words_and_is_other() -> None:
    """ThịNga is not Thị Nga with odd spacing: it is a different string of words."""
    assert compare_names("Võ ThịHằng Nga", "Võ Thị Hằng Nga") is NameDifference.OTHER


@pytest.mark.parametrize(("name", "typed"), NAMES)
def test_missing_tone_marks_are_a_tone_marks_mismatch(name: str, typed: str) -> None:
    """Nguyen Van Duc vs Nguyễn Văn Đức: differs only in diacritics (đ included) → TONE_MARKS, a mismatch."""
    assert compare_names(typed, name) is NameDifference.TONE_MARKS
    assert not names_match(typed, name)


def test_a_single_wrong_tone_mark_is_a_tone_marks_mismatch() -> None:
    """Đức vs Dục-like errors: one tone changed (Hà / Hạ) is a different name."""
    assert compare_names("Hồ Ngọc Hạ", "Hồ Ngọc Hà") is NameDifference.TONE_MARKS
    assert compare_names("Trần Thị Thu Huong", "Trần Thị Thu Hương") is NameDifference.TONE_MARKS


@pytest.mark.parametrize("name", WITH_STROKE)
def test_d_typed_for_d_stroke_is_a_d_stroke_mismatch(name: str) -> None:
    """Only đ → d, every other mark kept: D_STROKE, a mismatch."""
    typed = name.replace("Đ", "D").replace("đ", "d")
    assert compare_names(typed, name) is NameDifference.D_STROKE
    assert not names_match(typed, name)


def test_eth_look_alike_for_d_stroke_is_a_d_stroke_difference() -> None:
    """Ð (U+00D0, Icelandic eth) typed for Đ (U+0110) counts as the đ/d kind."""
    assert compare_names("\u00d0ỗ Mạnh Hùng", "Đỗ Mạnh Hùng") is NameDifference.D_STROKE


def test_d_stroke_in_upper_case_with_odd_spacing_is_still_d_stroke() -> None:
    """Matching differences on top of đ/d do not hide it."""
    assert compare_names("DỖ  MẠNH HÙNG", "Đỗ Mạnh Hùng") is NameDifference.D_STROKE


@pytest.mark.parametrize(
    ("recorded", "registry"),
    [
        ("Văn Nguyễn Đức", "Nguyễn Văn Đức"),  # swapped word order
        ("Đức Nguyễn Văn", "Nguyễn Văn Đức"),  # given name first (Western order)
        ("Nguyễn Đức", "Nguyễn Văn Đức"),  # middle name left out
        ("Nguyễn Văn Đức Anh", "Nguyễn Văn Đức"),
        ("Nguyễn Văn Phúc", "Nguyễn Văn Đức"),
        ("Trần Thị Lan", "Trần Thị Lâm"),
        ("Nguễn Văn Đức", "Nguyễn Văn Đức"),  # a dropped letter
        ("", "Nguyễn Văn Đức"),
    ],
)
def test_other_differences_are_other(recorded: str, registry: str) -> None:
    """Word order, missing or changed letters and words: OTHER, a mismatch."""
    assert compare_names(recorded, registry) is NameDifference.OTHER
    assert not names_match(recorded, registry)


def test_comparison_is_symmetric_on_the_examples() -> None:
    """The kind does not depend on which side is the registry."""
    for name, typed in NAMES:
        assert compare_names(name, typed) is compare_names(typed, name)


def test_match_policy() -> None:
    """NONE, UNICODE_FORM, CASE and SPACING match; TONE_MARKS, D_STROKE and OTHER do not."""
    assert {
        NameDifference.NONE,
        NameDifference.UNICODE_FORM,
        NameDifference.CASE,
        NameDifference.SPACING,
    } == MATCHING_DIFFERENCES


def test_normalize_and_fold() -> None:
    """normalize_name is the matching form; fold_diacritics drops all marks and the stroke."""
    assert normalize_name("  NGUYỄN   Văn Đức ") == "nguyễn văn đức"
    assert fold_diacritics("Nguyễn Văn Đức") == "nguyen van duc"


def test_non_string_names_are_caller_mistakes() -> None:
    """None is not a name."""
    with pytest.raises(TypeError):
        compare_names(None, "Nguyễn Văn Đức")  # type: ignore[arg-type]


_LETTERS = st.sampled_from(list("aăâbcdđeêghiklmnoôơpqrstuưvxyAĂÂĐÊÔƠƯ") + list("áàảãạếềểễệốồổỗộứừửữựýỳỷỹỵ"))
_NAME = st.lists(st.text(_LETTERS, min_size=1, max_size=7), min_size=1, max_size=4).map(" ".join)


@given(_NAME)
def test_matching_transformations_always_match(name: str) -> None:
    """NFD, upper case and doubled spaces never turn a name into a mismatch."""
    variant = unicodedata.normalize("NFD", name.upper()).replace(" ", "  ")
    assert names_match(variant, name)


@given(_NAME)
def test_stripping_marks_is_tone_marks_or_nothing(name: str) -> None:
    """Dropping all diacritics gives TONE_MARKS or D_STROKE (or matches, when there were none)."""
    plain = fold_diacritics(name)
    kind = compare_names(plain, name.casefold())
    assert kind in {NameDifference.NONE, NameDifference.TONE_MARKS, NameDifference.D_STROKE}
