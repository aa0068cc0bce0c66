"""Personal data is masked in repr and by the masking helpers (SECURITY.md §4)."""

from __future__ import annotations

from vaxcred.model import DateOfBirth, Name
from vaxcred.privacy import mask_dob, mask_id, mask_name


def test_mask_name_keeps_initials_and_lengths() -> None:
    """Initial plus one star per further character, per word."""
    assert mask_name("Nguyễn Văn Đức") == "N***** V** Đ**"


def test_mask_dob_keeps_the_year_only() -> None:
    """A full date of birth is reduced to its year."""
    assert mask_dob("1990-05-17") == "1990"


def test_mask_id_never_shows_the_cccd_prefix() -> None:
    """Only the last three digits of a CCCD remain."""
    assert mask_id("001090012345") == "*********345"


def test_model_repr_hides_names_and_birth_dates() -> None:
    """repr() of a name or date of birth, as a log line would show it, leaks neither."""
    text = repr(Name.from_vietnamese("Nguyễn Văn Đức")) + repr(DateOfBirth.from_text("1990-05-17"))
    assert "Nguyễn" not in text
    assert "Đức" not in text
    assert "05-17" not in text
