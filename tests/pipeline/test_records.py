"""Import rows: field rules, vaccine aliases, CCCD consistency, and errors that name the field."""

from __future__ import annotations

import dataclasses
import datetime as dt
import unicodedata
from collections.abc import Mapping

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vaxcred.model import DatePrecision
from vaxcred.pipeline.errors import PipelineError
from vaxcred.pipeline.records.cccd import Gender, IdType
from vaxcred.pipeline.records.model import (
    MAX_DOSE_NUMBER,
    ROW_FIELDS,
    VACCINE_ALIASES,
    DoseRecord,
    ImportRow,
    Person,
    parse_gender,
    parse_row,
    resolve_vaccine,
    vaccine_codes,
)
from vaxcred.valuesets import VIETNAM_VACCINES, load_value_sets

TODAY = dt.date(2022, 6, 1)
GOOD = {
    "citizen_id": "001085012345",
    "full_name": "Nguyễn Văn Đức",
    "dob": "1985-03-17",
    "gender": "M",
    "vaccine": "Vaxzevria",
    "lot": "ABV5432",
    "date": "2021-08-02",
    "dose_number": "1",
    "site_id": "VN001-S01",
}


def _row(**changes: object) -> dict[str, object]:
    return {**GOOD, **changes}


def _bad(fields: Mapping[str, object], *, today: dt.date | None = TODAY) -> PipelineError:
    with pytest.raises(PipelineError) as info:
        parse_row(fields, today=today)
    assert info.value.code == "pipeline.bad_row"
    return info.value


def test_a_good_row_parses_into_person_and_dose() -> None:
    """All nine fields land in Person and DoseRecord."""
    row = parse_row(GOOD, today=TODAY)
    assert row.person == Person(
        citizen_id="001085012345",
        id_type=IdType.CCCD,
        full_name="Nguyễn Văn Đức",
        dob=row.person.dob,
        gender=Gender.MALE,
    )
    assert row.person.dob.text == "1985-03-17"
    assert row.dose == DoseRecord(
        citizen_id="001085012345",
        vaccine="Vaxzevria",
        lot="ABV5432",
        date="2021-08-02",
        dose_number=1,
        site_id="VN001-S01",
    )
    assert row.dose.natural_key == ("001085012345", 1, "2021-08-02", "VN001-S01")


def test_row_fields_are_the_contract_columns() -> None:
    """ROW_FIELDS is the CSV header / JSONL keys of the contract, in order."""
    assert ROW_FIELDS == (
        "citizen_id",
        "full_name",
        "dob",
        "gender",
        "vaccine",
        "lot",
        "date",
        "dose_number",
        "site_id",
    )


def test_to_fields_round_trips() -> None:
    """parse_row(row.to_fields()) gives the row back."""
    row = parse_row(GOOD, today=TODAY)
    assert row.to_fields() == GOOD
    assert parse_row(row.to_fields()) == row


def test_cells_are_trimmed() -> None:
    """Spreadsheet exports pad cells with spaces."""
    row = parse_row({k: f" {v} " for k, v in GOOD.items()}, today=TODAY)
    assert row.person.citizen_id == "001085012345"
    assert row.person.full_name == "Nguyễn Văn Đức"
    assert row.dose.site_id == "VN001-S01"


def test_nfd_name_is_stored_nfc() -> None:
    """Decomposed input from some keyboards is normalised to NFC."""
    row = parse_row(_row(full_name=unicodedata.normalize("NFD", "Nguyễn Văn Đức")), today=TODAY)
    assert row.person.full_name == "Nguyễn Văn Đức"
    assert unicodedata.is_normalized("NFC", row.person.full_name)


@pytest.mark.parametrize(
    ("dob", "precision"),
    [
        ("1985-03-17", DatePrecision.DAY),
        ("1985-03", DatePrecision.MONTH),
        ("1985", DatePrecision.YEAR),
        ("", DatePrecision.NONE),
    ],
)
def test_partial_dates_of_birth_are_allowed(dob: str, precision: DatePrecision) -> None:
    """Older people often have only a year of birth on record."""
    assert parse_row(_row(dob=dob), today=TODAY).person.dob.precision is precision


@pytest.mark.parametrize(
    ("text", "gender"),
    [("M", Gender.MALE), ("f", Gender.FEMALE), ("Nam", Gender.MALE), ("Nữ", Gender.FEMALE), ("NỮ", Gender.FEMALE),
     ("Nu", Gender.FEMALE), ("Nu\u031b\u0303", Gender.FEMALE), ("male", Gender.MALE), ("", Gender.UNKNOWN)],
)  # fmt: skip
def test_gender_accepts_codes_and_vietnamese_words(text: str, gender: Gender) -> None:
    """M/F/'' and Nam/Nữ (any case, NFC or NFD)."""
    assert parse_gender(text) is gender


def test_unknown_gender_is_a_bad_row() -> None:
    """X is not a recorded gender here."""
    assert _bad(_row(gender="X")).field == "gender"


@pytest.mark.parametrize(
    ("text", "vaccine"),
    [
        ("AstraZeneca", "Vaxzevria"),
        ("astra zeneca", "Vaxzevria"),
        ("EU/1/21/1529", "Vaxzevria"),
        ("Pfizer", "Comirnaty"),
        ("Pfizer-BioNTech", "Comirnaty"),
        ("COMIRNATY", "Comirnaty"),
        ("Moderna", "Spikevax"),
        ("Vero Cell", "BBIBP-CorV"),
        ("vero-cell", "BBIBP-CorV"),
        ("Sinopharm", "BBIBP-CorV"),
        ("Inactivated-SARS-CoV-2-Vero-Cell", "BBIBP-CorV"),
        ("Sputnik V", "Sputnik-V"),
        ("Hayat Vax", "Hayat-Vax"),
        ("Abdala", "Abdala"),
        ("J&J", "Janssen"),
        ("Nuvaxovid", "Novavax"),
        ("Covishield", "Covishield"),  # an active mp code outside VIETNAM_VACCINES stays an mp code
        ("Sputnik-Light", "Sputnik-Light"),
    ],
)
def test_vaccine_names_aliases_and_codes_resolve(text: str, vaccine: str) -> None:
    """Friendly names and mp codes resolve to the VIETNAM_VACCINES key (or the mp code)."""
    assert resolve_vaccine(text) == vaccine
    assert parse_row(_row(vaccine=text), today=TODAY).dose.vaccine == vaccine


def test_every_alias_targets_a_vietnam_vaccine() -> None:
    """The alias table points at VIETNAM_VACCINES keys only."""
    assert set(VACCINE_ALIASES.values()) <= set(VIETNAM_VACCINES)


def test_every_vietnam_vaccine_resolves_to_itself_and_has_codes() -> None:
    """Each key and its mp code resolve to the key; vaccine_codes gives the issuing codes."""
    for key, codes in VIETNAM_VACCINES.items():
        assert resolve_vaccine(key) == key
        assert resolve_vaccine(codes.mp) == key
        assert vaccine_codes(key) == codes


def test_vaccine_codes_for_an_mp_outside_vietnam_vaccines_follow_annex_a() -> None:
    """Covishield's ma and vp come from the encoding instructions."""
    codes = vaccine_codes("Covishield")
    vs = load_value_sets()
    assert vs.allowed_combination(mp=codes.mp, ma=codes.ma, vp=codes.vp)


@pytest.mark.parametrize("text", ["Sputnk", "", "NVX-CoV2373x", "Vidprevtyn", "J07BX03"])
def test_unknown_or_deprecated_vaccines_are_bad_rows(text: str) -> None:
    """A vaccine outside the value sets (or only deprecated there, without an alias) is refused."""
    error = _bad(_row(vaccine=text))
    assert error.field == "vaccine"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("citizen_id", "003085012345"),  # no such province
        ("citizen_id", ""),
        ("citizen_id", "001-085-012345"),
        ("full_name", ""),
        ("full_name", "   "),
        ("full_name", "Nguyễn Văn 2"),  # a digit has no ICAO transliteration
        ("full_name", "Nguyễn\x00Văn"),
        ("full_name", "Nguyễn " + "A" * 81),  # the forenames exceed the DCC's 80 characters
        ("dob", "17/03/1985"),
        ("dob", "1985-02-30"),
        ("dob", "1899"),
        ("lot", ""),
        ("lot", "L" * 65),
        ("lot", "AB\t12"),
        ("date", "02/08/2021"),
        ("date", "2021-02-30"),
        ("date", "2019-12-31"),  # before any COVID-19 vaccine
        ("date", "2022-06-02"),  # after TODAY
        ("dose_number", "0"),
        ("dose_number", "-1"),
        ("dose_number", "1.0"),
        ("dose_number", "two"),
        ("dose_number", str(MAX_DOSE_NUMBER + 1)),
        ("dose_number", True),
        ("site_id", ""),
        ("site_id", "Bệnh viện Bạch Mai"),
        ("site_id", "-S01"),
        ("site_id", "S" * 65),
    ],
)
def test_invalid_fields_are_bad_rows_naming_the_field(field: str, value: object) -> None:
    """Each invalid field gives pipeline.bad_row with field set and named in the message."""
    error = _bad(_row(**{field: value}))
    assert error.field == field
    assert error.message.startswith(f"{field}: ")


@pytest.mark.parametrize("field", ROW_FIELDS)
def test_missing_fields_are_bad_rows(field: str) -> None:
    """A row without one of the nine columns is refused, naming it."""
    fields = dict(GOOD)
    del fields[field]
    error = _bad(fields)
    assert error.field == field
    assert "missing" in error.message


def test_json_lines_values_integer_dose_and_null() -> None:
    """JSONL may give dose_number as an int and null for an empty gender / dob."""
    row = parse_row(_row(dose_number=2, gender=None, dob=None), today=TODAY)
    assert row.dose.dose_number == 2
    assert row.person.gender is Gender.UNKNOWN
    assert row.person.dob.text == ""


def test_non_text_values_are_bad_rows() -> None:
    """A JSON number where text is expected is refused, not coerced."""
    assert _bad(_row(citizen_id=1085012345)).field == "citizen_id"


def test_extra_columns_are_ignored() -> None:
    """Columns beyond ROW_FIELDS (a site's own notes) do not matter."""
    assert parse_row(_row(note="ghi chú"), today=TODAY) == parse_row(GOOD, today=TODAY)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"dob": "1986-03-17"}, "dob"),  # digits 5–6 say 85
        ({"dob": "2085"}, "dob"),  # digit 4 says the 1900s
        ({"gender": "F"}, "gender"),  # digit 4 is even: male
        ({"gender": "Nữ"}, "gender"),
    ],
)
def test_cccd_disagreeing_with_dob_or_gender_is_a_bad_row(changes: dict[str, str], field: str) -> None:
    """A CCCD's digits 4–6 must agree with the recorded year of birth and gender."""
    assert _bad(_row(**changes)).field == field


def test_unknown_dob_and_gender_cannot_disagree_with_a_cccd() -> None:
    """What is not recorded is not inconsistent."""
    row = parse_row(_row(dob="", gender=""), today=TODAY)
    assert row.person.gender is Gender.UNKNOWN


def test_cmnd_rows_have_no_consistency_check() -> None:
    """A 9-digit CMND carries no birth data."""
    row = parse_row(_row(citizen_id="012345678", gender="F", dob="1950"), today=TODAY)
    assert row.person.id_type is IdType.CMND


def test_id_type_column_marks_other_numbers() -> None:
    """A 12-digit passport number is accepted as OTHER when the row says so, and round-trips."""
    row = parse_row(_row(citizen_id="999999999999", id_type="other"), today=TODAY)
    assert row.person.id_type is IdType.OTHER
    assert row.to_fields()["id_type"] == "OTHER"
    assert parse_row(row.to_fields()) == row
    assert _bad(_row(id_type="PASSPORT")).field == "id_type"


def test_future_dob_is_a_bad_row() -> None:
    """A date of birth after today is refused (year-only too, when the whole year is ahead)."""
    assert _bad(_row(citizen_id="C1234567", dob="2023")).field == "dob"
    fields = _row(citizen_id="C1234567", dob="2022-07", date="2022-07-15")
    assert _bad(fields).field == "dob"
    assert parse_row(fields, today=None).person.dob.text == "2022-07"  # no clock, no future check


def test_dose_before_birth_is_a_bad_row() -> None:
    """A dose cannot precede the (earliest possible) date of birth."""
    fields = _row(citizen_id="C1234567", dob="2021-09-01", date="2021-08-31")
    assert _bad(fields).field == "date"
    assert parse_row(_row(citizen_id="C1234567", dob="2021", date="2021-01-01"), today=TODAY)


def test_dose_on_today_is_accepted_and_without_today_no_future_check() -> None:
    """today bounds the date inclusively; None disables the check (pure: no clock)."""
    assert parse_row(_row(date="2022-06-01"), today=TODAY)
    assert parse_row(_row(date="2030-01-01"), today=None).dose.date == "2030-01-01"


def test_dose_two_without_dose_one_is_allowed() -> None:
    """Seed 004: a dose 2 recorded on its own (no dose 1 paper) is accepted; order is not checked on import."""
    row = parse_row(_row(dose_number="2", date="2021-09-01"), today=TODAY)
    assert row.dose.dose_number == 2


def test_errors_never_contain_personal_values() -> None:
    """Messages say which field and why, never the ID, name or date of birth."""
    for fields in (
        _row(citizen_id="003085012345"),
        _row(dob="1986-03-17"),
        _row(full_name="Nguyễn Văn 2"),
        _row(vaccine="Nguyễn Văn Đức"),  # shifted columns: a name where the vaccine belongs
        _row(vaccine="Nguyen Van Duc"),
        _row(site_id="Nguyen Van Duc"),
    ):
        error = _bad(fields)
        text = str(error) + repr(error)
        assert "003085" not in text
        assert "1986-03-17" not in text
        assert "Nguy" not in text


def test_refused_codes_are_quoted_for_the_operator() -> None:
    """A misspelt vaccine or site code is shown, so the rejects file says what to fix."""
    assert "'Sputnk'" in _bad(_row(vaccine="Sputnk")).message
    assert "'-S01'" in _bad(_row(site_id="-S01")).message


def test_reprs_mask_personal_data() -> None:
    """repr() of a row (as a log line would show it) hides the ID prefix, the name and the birth date."""
    text = repr(parse_row(GOOD, today=TODAY))
    assert "001085" not in text
    assert "Nguyễn" not in text
    assert "03-17" not in text


def test_dataclasses_are_immutable_and_validated() -> None:
    """Frozen dataclasses; DoseRecord and ImportRow check their invariants when built."""
    row = parse_row(GOOD, today=TODAY)
    with pytest.raises(dataclasses.FrozenInstanceError):
        row.dose.lot = "X"  # type: ignore[misc]
    with pytest.raises(ValueError):
        dataclasses.replace(row.dose, vaccine="Sputnk")
    with pytest.raises(ValueError):
        dataclasses.replace(row.dose, date="2021-02-30")
    with pytest.raises(ValueError):
        ImportRow(person=row.person, dose=dataclasses.replace(row.dose, citizen_id="012345678"))
    with pytest.raises(ValueError):
        dataclasses.replace(row.person, full_name=unicodedata.normalize("NFD", "Nguyễn Văn Đức"))


@given(st.dictionaries(st.sampled_from([*ROW_FIELDS, "id_type"]), st.text(max_size=20), max_size=12))
def test_parse_row_raises_only_bad_row(fields: dict[str, str]) -> None:
    """Arbitrary rows either parse or raise pipeline.bad_row, never another exception."""
    try:
        parse_row(fields, today=TODAY)
    except PipelineError as e:
        error = e
    else:
        return
    assert error.code == "pipeline.bad_row"
    assert error.field in (*ROW_FIELDS, "id_type")
