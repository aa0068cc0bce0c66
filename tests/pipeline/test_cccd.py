"""Citizen ID numbers: CCCD structure (CCCD.md), CMND, other numbers, and the DOB / gender cross-check."""

from __future__ import annotations

import csv
import io
from importlib import resources
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from vaxcred.errors import VaxcredError
from vaxcred.model import DateOfBirth
from vaxcred.pipeline.errors import PipelineError
from vaxcred.pipeline.records.cccd import (
    PROVINCES,
    CitizenId,
    Gender,
    IdType,
    build_cccd,
    check_consistency,
    id_problems,
    parse_citizen_id,
)

SHARED_CSV = Path("/work/shared/data/vietnam/cccd_province_codes.csv")


def _dob(text: str) -> DateOfBirth:
    return DateOfBirth.from_text(text)


def test_provinces_are_the_63_codes_of_circular_07_2016() -> None:
    """The vendored table has 63 codes within 001–096, with the well-known ones."""
    assert len(PROVINCES) == 63
    assert all(len(code) == 3 and code.isdigit() and "001" <= code <= "096" for code in PROVINCES)
    assert PROVINCES["001"] == "Hà Nội"
    assert PROVINCES["079"] == "Hồ Chí Minh"
    assert PROVINCES["048"] == "Đà Nẵng"
    assert PROVINCES["096"] == "Cà Mau"
    assert "003" not in PROVINCES  # a gap: unused


def test_vendored_province_csv_is_loaded_as_package_data() -> None:
    """The table comes from vaxcred/data/vietnam/ (importlib.resources) and equals the parsed CSV."""
    text = (
        resources.files("vaxcred").joinpath("data", "vietnam", "cccd_province_codes.csv").read_text("utf-8")
    )
    rows = list(csv.DictReader(io.StringIO(text)))
    assert dict(PROVINCES) == {row["code"]: row["province"] for row in rows}


@pytest.mark.skipif(not SHARED_CSV.exists(), reason="shared reference data not present")
def test_vendored_province_csv_is_byte_identical_to_the_shared_reference() -> None:
    """The package copy was not edited by hand."""
    packaged = resources.files("vaxcred").joinpath("data", "vietnam", "cccd_province_codes.csv").read_bytes()
    assert packaged == SHARED_CSV.read_bytes()


def test_provinces_mapping_is_read_only() -> None:
    """PROVINCES cannot be modified by a caller."""
    with pytest.raises(TypeError):
        PROVINCES["999"] = "Nowhere"  # type: ignore[index]


@pytest.mark.parametrize(
    ("number", "century", "year", "gender", "province"),
    [
        ("001085012345", 1900, 1985, Gender.MALE, "Hà Nội"),  # CCCD.md example
        ("079303012345", 2000, 2003, Gender.FEMALE, "Hồ Chí Minh"),  # CCCD.md example
        ("048190000001", 1900, 1990, Gender.FEMALE, "Đà Nẵng"),
        ("096210999999", 2000, 2010, Gender.MALE, "Cà Mau"),
        ("001400000001", 2100, 2100, Gender.MALE, "Hà Nội"),  # the table goes on to the 2300s
        ("001999000001", 2300, 2399, Gender.FEMALE, "Hà Nội"),
    ],
)
def test_cccd_digits_give_province_century_year_and_gender(
    number: str, century: int, year: int, gender: Gender, province: str
) -> None:
    """Digits 1–3 province, 4 century + gender, 5–6 year."""
    cid = parse_citizen_id(number)
    assert cid.id_type is IdType.CCCD
    assert cid.province_code == number[:3]
    assert cid.province == province
    assert cid.century == century
    assert cid.birth_year == year
    assert cid.gender is gender


def test_cmnd_is_nine_digits_without_embedded_data() -> None:
    """A legacy CMND has no province / century / year fields."""
    cid = parse_citizen_id("012345678")
    assert cid == CitizenId(number="012345678", id_type=IdType.CMND)
    assert cid.gender is Gender.UNKNOWN
    assert cid.birth_year is None
    assert cid.province is None


@pytest.mark.parametrize("number", ["C1234567", "B7654321", "PA00112233", "AB12345678901234567Z"])
def test_other_identification_numbers_follow_the_pattern(number: str) -> None:
    """Passport-style numbers are OTHER: 5–20 of A–Z, 0–9."""
    assert parse_citizen_id(number).id_type is IdType.OTHER


def test_id_type_hint_overrides_the_shape() -> None:
    """A 12-digit passport number is OTHER when the record says so; its prefix is then not checked."""
    cid = parse_citizen_id("999999999999", id_type=IdType.OTHER)
    assert cid.id_type is IdType.OTHER
    assert cid.province_code is None


@pytest.mark.parametrize(
    ("number", "hint"),
    [
        ("012345678", IdType.CCCD),  # 9 digits are not a CCCD
        ("001085012345", IdType.CMND),  # 12 digits are not a CMND
        ("C1234567", IdType.CCCD),
    ],
)
def test_id_type_hint_must_fit_the_number(number: str, hint: IdType) -> None:
    """A hint does not make a wrong shape acceptable."""
    with pytest.raises(PipelineError) as info:
        parse_citizen_id(number, id_type=hint)
    assert info.value.code == "pipeline.invalid_id"


@pytest.mark.parametrize(
    "number",
    [
        "",
        "003085012345",  # 003 is a gap in the table
        "097085012345",  # beyond the last code
        "000085012345",
        "００１０８５０１２３４５",  # full-width digits are not ASCII digits
        "٠٠١٠٨٥٠١٢٣٤٥",  # Arabic-Indic digits
        " 001085012345",  # whitespace is the caller's to trim
        "001085012345\n",
        "c1234567",  # lower case
        "C-1234567",
        "1234",  # too short for OTHER
        "A" * 21,
    ],
)
def test_malformed_ids_are_refused_with_invalid_id(number: str) -> None:
    """Every malformed number raises pipeline.invalid_id."""
    with pytest.raises(PipelineError) as info:
        parse_citizen_id(number)
    assert info.value.code == "pipeline.invalid_id"
    assert info.value.field == "citizen_id"
    assert isinstance(info.value, VaxcredError)


@pytest.mark.parametrize("number", ["1090012345", "79185001234", "0010850123456", "12345"])
def test_digits_of_a_wrong_length_are_refused_not_stored_as_other(number: str) -> None:
    """A CCCD whose leading zeros a spreadsheet dropped (10, 11 digits) or an extra digit (13) is refused
    without an explicit id_type, never silently stored as OTHER (a second person later)."""
    with pytest.raises(PipelineError) as info:
        parse_citizen_id(number)
    assert info.value.code == "pipeline.invalid_id"
    assert f"{len(number)} digits" in info.value.message
    assert number not in info.value.message


def test_digits_of_another_length_are_other_when_the_row_says_so() -> None:
    """An all-digit passport number is accepted as OTHER when id_type OTHER is explicit."""
    assert parse_citizen_id("0010850123456", id_type=IdType.OTHER).id_type is IdType.OTHER


def test_error_messages_and_repr_mask_the_number() -> None:
    """Neither an error nor repr() shows the province / century / year prefix."""
    with pytest.raises(PipelineError) as info:
        parse_citizen_id("003085012345")
    assert "003085" not in str(info.value)
    assert "*********345" in str(info.value)
    assert "001085" not in repr(parse_citizen_id("001085012345"))


def test_non_string_number_is_a_caller_mistake() -> None:
    """A number passed as int raises TypeError, not a data error."""
    with pytest.raises(TypeError):
        parse_citizen_id(1085012345)  # type: ignore[arg-type]


@pytest.mark.parametrize("dob", ["1985-03-17", "1985-03", "1985", ""])
def test_consistent_cccd_has_no_problems(dob: str) -> None:
    """A man born in 1985 with 001085…: consistent at any dob precision, and with an unknown gender."""
    cid = parse_citizen_id("001085012345")
    assert check_consistency(cid, _dob(dob), Gender.MALE) == ()
    assert check_consistency(cid, _dob(dob), Gender.UNKNOWN) == ()


@pytest.mark.parametrize(
    ("dob", "gender", "problems"),
    [
        ("1986-03-17", Gender.MALE, ("birth_year",)),
        ("2085-03-17", Gender.MALE, ("century",)),
        ("1985-03-17", Gender.FEMALE, ("gender",)),
        ("2003", Gender.FEMALE, ("century", "birth_year", "gender")),
    ],
)
def test_inconsistent_cccd_names_its_problems(dob: str, gender: Gender, problems: tuple[str, ...]) -> None:
    """Year, century and gender disagreements are reported separately."""
    cid = parse_citizen_id("001085012345")
    assert check_consistency(cid, _dob(dob), gender) == problems


def test_cmnd_and_other_numbers_cannot_be_inconsistent() -> None:
    """Numbers without embedded data are consistent with anything."""
    for number in ("012345678", "C1234567"):
        assert check_consistency(parse_citizen_id(number), _dob("1950-01-01"), Gender.FEMALE) == ()


def test_build_cccd_composes_the_cccd_md_examples() -> None:
    """build_cccd is the inverse of parsing."""
    assert (
        build_cccd(province_code="001", birth_year=1985, gender=Gender.MALE, sequence=12345) == "001085012345"
    )
    assert (
        build_cccd(province_code="079", birth_year=2003, gender=Gender.FEMALE, sequence=12345)
        == "079303012345"
    )
    with pytest.raises(ValueError):
        build_cccd(province_code="003", birth_year=1985, gender=Gender.MALE, sequence=1)
    with pytest.raises(ValueError):
        build_cccd(province_code="001", birth_year=1985, gender=Gender.UNKNOWN, sequence=1)


@given(
    province=st.sampled_from(sorted(PROVINCES)),
    year=st.integers(1900, 2099),
    gender=st.sampled_from([Gender.MALE, Gender.FEMALE]),
    sequence=st.integers(0, 999_999),
)
def test_built_cccds_parse_back_consistently(province: str, year: int, gender: Gender, sequence: int) -> None:
    """Every CCCD composed from a valid province, year and gender parses and is consistent with them."""
    number = build_cccd(province_code=province, birth_year=year, gender=gender, sequence=sequence)
    cid = parse_citizen_id(number)
    assert (cid.province_code, cid.birth_year, cid.gender) == (province, year, gender)
    assert check_consistency(cid, DateOfBirth(year=year), gender) == ()


@given(st.text(max_size=24))
def test_parse_citizen_id_raises_only_pipeline_errors(text: str) -> None:
    """Arbitrary text either parses or raises PipelineError (never another exception)."""
    try:
        cid = parse_citizen_id(text)
    except PipelineError as e:
        error = e
    else:
        assert cid.number == text
        return
    assert error.code == "pipeline.invalid_id"


def _slow_id_problems(
    number: str, id_type: IdType, dob: DateOfBirth, gender: Gender
) -> tuple[str, ...] | None:
    """What the registry check decided before :func:`id_problems`: a parse, then the consistency check."""
    try:
        cid = parse_citizen_id(number, id_type=id_type)
    except PipelineError:
        return None
    return check_consistency(cid, dob, gender)


_CCCD_LIKE = st.builds(
    lambda province, digits, tail: province + digits + tail,
    st.sampled_from([*sorted(PROVINCES)[:5], "000", "999", "٠١٢"]),
    st.text("0123456789", min_size=3, max_size=3),
    st.text("0123456789", min_size=6, max_size=6) | st.text("0123456789 x١", max_size=8),
)
_DOBS = st.sampled_from(["", "1900", "1985", "1985-03", "2000-02-29", "2005-12-31", "2085", "2099-01-01"])


@given(
    number=_CCCD_LIKE | st.text("0123456789ABZ ", max_size=14),
    id_type=st.sampled_from(IdType),
    dob=_DOBS,
    gender=st.sampled_from(Gender),
)
@example(number="00108501234\u0665", id_type=IdType.CCCD, dob="1985", gender=Gender.MALE)  # a non-ASCII digit
def test_id_problems_decides_what_parse_and_consistency_decide(
    number: str, id_type: IdType, dob: str, gender: Gender
) -> None:
    """:func:`id_problems` (a CCCD's digits read directly) gives the answer of :func:`parse_citizen_id` +
    :func:`check_consistency` for every number, type, date of birth and gender: valid, refused, inconsistent."""
    assert id_problems(number, id_type, _dob(dob), gender) == _slow_id_problems(
        number, id_type, _dob(dob), gender
    )


def test_id_problems_covers_every_answer_and_refuses_wrong_types_as_before() -> None:
    """Each branch of :func:`id_problems` (consistent, each problem, refused) and a caller's wrong type:
    ``TypeError`` as :func:`parse_citizen_id` / :func:`check_consistency` raise it."""
    cccd = build_cccd(province_code="001", birth_year=1985, gender=Gender.MALE, sequence=1)
    assert id_problems(cccd, IdType.CCCD, _dob("1985-03-17"), Gender.MALE) == ()
    assert id_problems(cccd, IdType.CCCD, _dob("2085"), Gender.FEMALE) == ("century", "gender")
    assert id_problems(cccd, IdType.CCCD, _dob("1986"), Gender.UNKNOWN) == ("birth_year",)
    assert id_problems("999" + cccd[3:], IdType.CCCD, _dob(""), Gender.MALE) is None
    assert id_problems(cccd, IdType.CMND, _dob(""), Gender.MALE) is None
    assert id_problems("123456789", IdType.CMND, _dob("1985"), Gender.MALE) == ()
    with pytest.raises(TypeError):
        id_problems(cccd, "CCCD", _dob(""), Gender.MALE)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        id_problems(cccd, IdType.CCCD, "1985", Gender.MALE)  # type: ignore[arg-type]
