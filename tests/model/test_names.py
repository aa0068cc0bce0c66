"""ICAO 9303 transliteration and the ``nam`` object (DCC.md §4)."""

from __future__ import annotations

import re
import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vaxcred.errors import ModelError
from vaxcred.model import Name, names, transliterate

# The twelve Vietnamese vowels and the five tone marks (combining characters).
VOWELS = "aăâeêioôơuưy"
TONES = {
    "huyền": "\u0300",  # grave
    "sắc": "\u0301",  # acute
    "hỏi": "\u0309",  # hook above
    "ngã": "\u0303",  # tilde
    "nặng": "\u0323",  # dot below
}

# Real-world style Vietnamese full names (họ + tên đệm + tên) with their expected fnt / gnt.  Together (in the
# lower-case forms used below) they contain every tone mark on every vowel, and đ/Đ.
VIETNAMESE_NAMES = [
    ("Nguyễn Văn Đức", "NGUYEN", "VAN<DUC"),
    ("Trần Thị Thu Hương", "TRAN", "THI<THU<HUONG"),
    ("Đặng Thùy Dương", "DANG", "THUY<DUONG"),
    ("Huỳnh Thị Mỹ Lệ", "HUYNH", "THI<MY<LE"),
    ("Ngô Đình Quốc Bảo", "NGO", "DINH<QUOC<BAO"),
    ("Lê Hoàng Anh Tuấn", "LE", "HOANG<ANH<TUAN"),
    ("Phạm Minh Đạt", "PHAM", "MINH<DAT"),
    ("Hoàng Thị Hải Yến", "HOANG", "THI<HAI<YEN"),
    ("Võ Thị Hằng Nga", "VO", "THI<HANG<NGA"),
    ("Lã Văn Thắng", "LA", "VAN<THANG"),
    ("Bùi Cẩm Tú", "BUI", "CAM<TU"),
    ("Đỗ Mạnh Hùng", "DO", "MANH<HUNG"),
    ("Dương Thị Mẫn", "DUONG", "THI<MAN"),
    ("Hồ Văn Mậu", "HO", "VAN<MAU"),
    ("Phan Thị Hoè", "PHAN", "THI<HOE"),
    ("Nguyễn Thị Bé", "NGUYEN", "THI<BE"),
    ("Lý Thị Vẻ", "LY", "THI<VE"),
    ("Trịnh Văn Kẽ", "TRINH", "VAN<KE"),
    ("Mai Thị Hẹn", "MAI", "THI<HEN"),
    ("Kiều Diễm Hiền", "KIEU", "DIEM<HIEN"),
    ("Vũ Tiến Dũng", "VU", "TIEN<DUNG"),
    ("Đinh Văn Hiển", "DINH", "VAN<HIEN"),
    ("Lò Văn Giàng", "LO", "VAN<GIANG"),
    ("Lương Văn Chí", "LUONG", "VAN<CHI"),
    ("Tạ Văn Đỉnh", "TA", "VAN<DINH"),
    ("Cao Trọng Nghĩa", "CAO", "TRONG<NGHIA"),
    ("Đoàn Thị Ngọc Ánh", "DOAN", "THI<NGOC<ANH"),
    ("Nguyễn Văn Hóa", "NGUYEN", "VAN<HOA"),
    ("Châu Thị Thỏa", "CHAU", "THI<THOA"),
    ("Khổng Minh Lộc", "KHONG", "MINH<LOC"),
    ("Nguyễn Thị Nở", "NGUYEN", "THI<NO"),
    ("Mai Thị Ngời", "MAI", "THI<NGOI"),
    ("Trương Văn Lớn", "TRUONG", "VAN<LON"),
    ("Lê Thị Mỡ", "LE", "THI<MO"),
    ("Lê Lợi", "LE", "LOI"),
    ("Hứa Vĩnh Phúc", "HUA", "VINH<PHUC"),
    ("Từ Thị Thục Quyên", "TU", "THI<THUC<QUYEN"),
    ("Lữ Văn Sử", "LU", "VAN<SU"),
    ("Đàm Văn Lực", "DAM", "VAN<LUC"),
    ("Nguyễn Thị Quỳnh Như", "NGUYEN", "THI<QUYNH<NHU"),
    ("Phùng Văn Kỷ", "PHUNG", "VAN<KY"),
    ("Tô Văn Tỵ", "TO", "VAN<TY"),
    ("Quách Thị Lụa", "QUACH", "THI<LUA"),
    ("Doãn Văn Khẳng", "DOAN", "VAN<KHANG"),
    ("Nông Thị Lẵng", "NONG", "THI<LANG"),
    ("Giáp Văn Thủ", "GIAP", "VAN<THU"),
    ("Âu Dương Phụng", "AU", "DUONG<PHUNG"),
    ("Ông Ích Khiêm", "ONG", "ICH<KHIEM"),
    ("Ưng Hoàng Phúc", "UNG", "HOANG<PHUC"),
    ("Lê Thị Ý Nhi", "LE", "THI<Y<NHI"),
    ("Lê Thị Ỷ Lan", "LE", "THI<Y<LAN"),
    ("Đinh Văn Phổ", "DINH", "VAN<PHO"),
    ("Phó Đức Phương", "PHO", "DUC<PHUONG"),
    ("Nguyễn Ánh Tuyết", "NGUYEN", "ANH<TUYET"),
]


def _forms(text: str) -> list[str]:
    """The name as written, in upper and lower case, each in NFC and NFD."""
    cased = [text, text.upper(), text.lower()]
    return [unicodedata.normalize(form, c) for c in cased for form in ("NFC", "NFD")]


def test_name_list_covers_every_tone_on_every_vowel_in_both_cases() -> None:
    """The name list holds all 60 vowel+tone letters (lower and upper case) and đ/Đ."""
    lower = set("".join(name.lower() for name, _, _ in VIETNAMESE_NAMES))
    upper = set("".join(name.upper() for name, _, _ in VIETNAMESE_NAMES))
    for vowel in VOWELS:
        for tone in TONES.values():
            letter = unicodedata.normalize("NFC", vowel + tone)
            assert len(letter) == 1
            assert letter in lower, letter
            assert letter.upper() in upper, letter.upper()
    assert {"đ", "Đ"} <= lower | upper
    assert len(VIETNAMESE_NAMES) >= 40


@pytest.mark.parametrize(("full_name", "fnt", "gnt"), VIETNAMESE_NAMES)
def test_vietnamese_full_name_splits_and_transliterates(full_name: str, fnt: str, gnt: str) -> None:
    """Họ → fn/fnt, the rest → gn/gnt, for title, upper and lower case in NFC and NFD."""
    for form in _forms(full_name):
        name = Name.from_vietnamese(form)
        assert (name.fnt, name.gnt) == (fnt, gnt), form
        assert name.fn is not None
        assert unicodedata.is_normalized("NFC", name.fn)
        assert name.gn is not None
        assert unicodedata.is_normalized("NFC", name.gn)


@pytest.mark.parametrize("vowel", list(VOWELS))
@pytest.mark.parametrize("tone", list(TONES))
def test_every_tone_mark_on_every_vowel_is_dropped(vowel: str, tone: str) -> None:
    """Each of the 60 toned vowels, either case, NFC or NFD, becomes its bare Latin letter."""
    base = unicodedata.normalize("NFD", vowel)[0].upper()
    for letter in (vowel + TONES[tone], (vowel + TONES[tone]).upper()):
        for form in ("NFC", "NFD"):
            assert transliterate(unicodedata.normalize(form, letter)) == base


@pytest.mark.parametrize(
    ("fn", "gn", "fnt", "gnt"),
    [
        # DCC.md §4 table
        ("Nguyễn", "Văn Đức", "NGUYEN", "VAN<DUC"),
        ("Trần", "Thị Thu Hương", "TRAN", "THI<THU<HUONG"),
        ("Đặng", "Thùy Dương", "DANG", "THUY<DUONG"),
        ("Huỳnh", "Thị Mỹ Lệ", "HUYNH", "THI<MY<LE"),
        ("Ngô", "Đình Quốc Bảo", "NGO", "DINH<QUOC<BAO"),
        ("Tôn Nữ", "Diễm Phương", "TON<NU", "DIEM<PHUONG"),
        ("Võ-Trương", "Quý", "VO<TRUONG", "QUY"),
        ("Niê Kdăm", "H'Liên", "NIE<KDAM", "HLIEN"),
        # eu-dcc-schema examples
        ("d'Červenková Panklová", "Jiřina-Maria Alena", "DCERVENKOVA<PANKLOVA", "JIRINA<MARIA<ALENA"),
        ("Musterfrau-Gößinger", "Gabriele", "MUSTERFRAU<GOESSINGER", "GABRIELE"),
    ],
)
def test_create_matches_spec_table(fn: str, gn: str, fnt: str, gnt: str) -> None:
    """Name.create computes the ICAO forms of DCC.md §4 and the schema examples."""
    name = Name.create(fn=fn, gn=gn)
    assert (name.fn, name.gn, name.fnt, name.gnt) == (fn, gn, fnt, gnt)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Ärger", "AERGER"),
        ("Öhman", "OEHMAN"),
        ("Übel", "UEBEL"),
        ("Ångström", "AANGSTROEM"),
        ("Æsir", "AESIR"),
        ("Søren", "SOEREN"),
        ("Straße", "STRASSE"),
        ("Þór", "THOR"),
        ("Ĳssel", "IJSSEL"),
        ("Łukasz", "LUKASZ"),
        ("Ðorđe", "DORDE"),
        ("O’Brien", "OBRIEN"),
        ("  Anne -  Marie  ", "ANNE<MARIE"),
        ("Jean--Luc", "JEAN<LUC"),
        ("-Ana-", "ANA"),
        ("Anne\u00a0Marie", "ANNE<MARIE"),
        ("", ""),
        ("   ", ""),
    ],
)
def test_transliterate_icao_cases(text: str, expected: str) -> None:
    """Multi-letter ICAO cases, apostrophes, fillers and trimming."""
    assert transliterate(text) == expected


@pytest.mark.parametrize("text", ["Nguyễn 2", "Dr. Nguyễn", "李小龙", "محمد", "Anna\tMaria", "A/B", "x@y"])
def test_untransliterable_characters_are_an_error(text: str) -> None:
    """Characters without an ICAO form raise model.bad_name instead of being dropped."""
    with pytest.raises(ModelError) as exc:
        transliterate(text)
    assert exc.value.code == "model.bad_name"


def test_truncation_cuts_then_strips_trailing_filler() -> None:
    """Cut to the limit first, then strip a '<' left at the end."""
    assert transliterate("A" * 79 + " B") == "A" * 79
    assert transliterate("A" * 100) == "A" * 80
    assert transliterate("Nguyễn Văn Đức", max_len=10) == "NGUYEN<VAN"
    assert transliterate("Nguyễn Văn Đức", max_len=7) == "NGUYEN"


def test_name_requires_fn_or_gn() -> None:
    """A name needs a surname or a forename."""
    with pytest.raises(ModelError):
        Name.create()
    with pytest.raises(ModelError):
        Name.create(fn="  ", gn="")
    only_gn = Name.create(gn="Đức")
    assert (only_gn.fn, only_gn.fnt, only_gn.gnt) == (None, None, "DUC")
    assert only_gn.to_json() == {"gn": "Đức", "gnt": "DUC"}


def test_name_longer_than_80_is_refused() -> None:
    """fn/gn are limited to 80 characters."""
    with pytest.raises(ModelError):
        Name.create(fn="A" * 81)
    assert Name.create(fn="A" * 80).fnt == "A" * 80


def test_name_of_only_apostrophes_is_refused() -> None:
    """A part that transliterates to nothing is refused (vaxcred never emits an empty fnt)."""
    with pytest.raises(ModelError):
        Name.create(fn="'’")


def test_wire_name_checks_icao_pattern() -> None:
    """The constructor enforces ^[A-Z<]*$ on fnt/gnt and at least one of them."""
    with pytest.raises(ModelError):
        Name(fn="Nguyễn", fnt="Nguyen")
    with pytest.raises(ModelError):
        Name(fn="Nguyễn")
    assert Name(fnt="").fnt == ""  # schema-valid on the wire


def test_name_fields_are_nfc() -> None:
    """Decomposed input is stored in NFC."""
    name = Name(fn=unicodedata.normalize("NFD", "Nguyễn"), fnt="NGUYEN")
    assert name.fn == "Nguyễn"
    assert unicodedata.is_normalized("NFC", name.fn)


def test_from_vietnamese_single_word_has_no_gn() -> None:
    """A one-word name is a surname only."""
    name = Name.from_vietnamese("  Đức ")
    assert (name.fn, name.gn, name.fnt, name.gnt) == ("Đức", None, "DUC", None)
    with pytest.raises(ModelError):
        Name.from_vietnamese("   ")


_VIETNAMESE_LETTERS = sorted(
    {
        unicodedata.normalize("NFC", base + tone)
        for base in VOWELS + VOWELS.upper()
        for tone in ["", *TONES.values()]
    }
    | set("bcdghklmnpqrstvxđBCDGHKLMNPQRSTVXĐ")
)
_ICAO_OUTPUT = re.compile(r"[A-Z<]*\Z")


@given(st.text(alphabet=st.sampled_from([*_VIETNAMESE_LETTERS, " ", "-", "'"]), max_size=120))
def test_property_output_is_clean_icao(text: str) -> None:
    """Any string of Vietnamese letters gives A–Z and single inner '<' only, NFC and NFD alike."""
    out = transliterate(text)
    assert _ICAO_OUTPUT.match(out)
    assert not out.startswith("<")
    assert not out.endswith("<")
    assert "<<" not in out
    assert len(out) <= 80
    assert transliterate(unicodedata.normalize("NFD", text)) == out


def _uncached(name: str, max_len: int) -> str:
    try:
        return names._icao.__wrapped__(name, max_len)
    except ModelError as e:
        return f"refused {e.code}"


@given(
    words=st.lists(
        st.sampled_from(["Nguyễn", "Văn", "Đức", "Hương", "O'Neil", "Anne-Marie", "1", "Ǆ", "  "])
        | st.text(max_size=6),
        max_size=4,
    ),
    max_len=st.sampled_from([80, 80, 5, 1]),
)
def test_transliterate_remembered_answers_as_computed(words: list[str], max_len: int) -> None:
    """transliterate (remembered per process) gives the uncached computation's name or refusal, asked twice."""
    name = " ".join(words)
    for _ in range(2):
        try:
            got = transliterate(name, max_len)
        except ModelError as e:
            got = f"refused {e.code}"
        assert got == _uncached(name, max_len)


def test_transliterate_remembers_plain_text_only() -> None:
    """A str subclass is read as the plain text it holds (the cache never keys on a subclass's own equality)."""

    class Loud(str):
        def __hash__(self) -> int:
            return 0

        def __eq__(self, other: object) -> bool:
            return True

    assert transliterate(Loud("Đức")) == "DUC"
    assert transliterate("Văn") == "VAN"
