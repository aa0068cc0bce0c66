"""The text form of a standalone site record (``VXSR1:`` + Base45): round trip, the QR alphanumeric set, bounds
and typed errors for everything else; and the split import-row modules keep their old import path."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vaxcred.errors import Base45Error, DecodeError, PrefixError
from vaxcred.pipeline.records import fields, model, parsing, row, vaccines
from vaxcred.pipeline.reports.record_text import (
    MAX_RECORD_TEXT_CHARS,
    RECORD_TEXT_PREFIX,
    decode_record_text,
    encode_record_text,
    read_record,
)
from vaxcred.qr.render import QR_ALPHANUMERIC

V1_START = b"\xd2\x84"  # tag 18, a 4-array: a COSE_Sign1
BATCH_START = b"\x85\x02"  # [2, ...: a batch member


@given(st.binary(min_size=1, max_size=2048))
def test_text_round_trips_and_is_one_alphanumeric_qr_segment(record: bytes) -> None:
    """Any record survives encode → decode (also with a scanner's trailing newline), in the QR alphanumeric set."""
    text = encode_record_text(record)
    assert text.startswith(RECORD_TEXT_PREFIX)
    assert set(text) <= set(QR_ALPHANUMERIC)
    assert decode_record_text(text) == record
    assert decode_record_text(f"  {text}\r\n") == record
    assert read_record(text.encode("ascii") + b"\n") == record


def test_binary_records_are_read_as_they_are() -> None:
    """A file holding the record's bytes (v1 or batch) is returned unchanged, never decoded as text."""
    for record in (V1_START + b"rest", BATCH_START + b"rest"):
        assert read_record(record) == record


@pytest.mark.parametrize(
    ("text", "error", "code"),
    [
        ("HC1:6BFOXN", PrefixError, "sitesign.bad_prefix"),  # a passport is not a site record
        ("vxsr1:AB", PrefixError, "sitesign.bad_prefix"),  # the prefix is case-sensitive
        ("", PrefixError, "sitesign.bad_prefix"),
        (RECORD_TEXT_PREFIX, DecodeError, "sitesign.bad_prefix"),  # nothing after the prefix
        (RECORD_TEXT_PREFIX + "ab", Base45Error, "base45.invalid_char"),
        (RECORD_TEXT_PREFIX + "A", Base45Error, "base45.bad_length"),
        (RECORD_TEXT_PREFIX + "GGW", Base45Error, "base45.overflow"),
        (RECORD_TEXT_PREFIX + "A" * MAX_RECORD_TEXT_CHARS, DecodeError, "sitesign.too_large"),
    ],
)
def test_malformed_text_is_a_typed_decode_error(text: str, error: type[DecodeError], code: str) -> None:
    """Each malformed text raises its DecodeError subclass with a stable code; the size bound comes first."""
    with pytest.raises(error) as raised:
        decode_record_text(text)
    assert raised.value.code == code


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (bytes(range(128, 200)), "sitesign.bad_prefix"),  # neither binary nor ASCII text
        (b"A" * (MAX_RECORD_TEXT_CHARS + 1), "sitesign.too_large"),  # bounded before decoding
        (b"{}", "sitesign.bad_prefix"),
    ],
)
def test_files_that_are_no_record_are_typed_errors(data: bytes, code: str) -> None:
    """read_record refuses a file that is neither form with a DecodeError and its code."""
    with pytest.raises(DecodeError) as raised:
        read_record(data)
    assert raised.value.code == code


def test_caller_mistakes_are_type_and_value_errors() -> None:
    """Wrong argument types and an empty record are the caller's mistake, not untrusted input."""
    with pytest.raises(ValueError, match="non-empty"):
        encode_record_text(b"")
    with pytest.raises(TypeError):
        decode_record_text(b"VXSR1:")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        read_record("VXSR1:")  # type: ignore[arg-type]


def test_the_old_model_module_names_the_same_objects() -> None:
    """records.model (split into fields, vaccines, row, parsing) still exports every name it held, the same
    objects, so `from vaxcred.pipeline.records.model import DoseRecord` keeps working."""
    homes = (fields, vaccines, row, parsing)
    for name in model.__all__:
        (home,) = [m for m in homes if name in m.__all__]
        assert getattr(model, name) is getattr(home, name), name
    assert set(model.__all__) == {
        "EARLIEST_DOSE_DATE",
        "FORMULA_PREFIXES",
        "MAX_DOSE_NUMBER",
        "MAX_LOT_LENGTH",
        "OPTIONAL_FIELDS",
        "ROW_FIELDS",
        "SITE_ID_PATTERN",
        "VACCINE_ALIASES",
        "DoseRecord",
        "ImportRow",
        "Person",
        "parse_gender",
        "parse_row",
        "resolve_vaccine",
        "vaccine_codes",
    }
