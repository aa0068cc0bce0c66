"""EU value sets and the issuing-side vaccination check."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

from vaxcred.errors import IssuanceError
from vaxcred.model import Vaccination
from vaxcred.valuesets import (
    VALUE_SET_NAMES,
    VIETNAM_VACCINES,
    VaccineCodes,
    check_vaccination,
    load_value_sets,
)

ROOT = Path(__file__).resolve().parents[1]
VENDORED = ROOT / "schemas" / "eu-dcc-valuesets"


def _vaccination(codes: VaccineCodes, **overrides: Any) -> Vaccination:
    fields: dict[str, Any] = {
        "tg": "840539006",
        "vp": codes.vp,
        "mp": codes.mp,
        "ma": codes.ma,
        "dn": 1,
        "sd": 2,
        "dt": "2021-10-05",
        "co": "VN",
        "is_": "Ministry of Health of Viet Nam",
        "ci": "URN:UVCI:01:VN:BYT/A7K2M9Q4X1#5",
    }
    fields.update(overrides)
    return Vaccination(**fields)


def test_loads_every_value_set_once() -> None:
    """All value sets load from package data, cached, with the vendored content."""
    vs = load_value_sets()
    assert load_value_sets() is vs
    assert set(vs.sets) == set(VALUE_SET_NAMES)
    for name in VALUE_SET_NAMES:
        raw = json.loads((VENDORED / f"{name}.json").read_text(encoding="utf-8"))
        assert vs.sets[name].id == raw["valueSetId"]
        assert set(vs.sets[name].entries) == set(raw["valueSetValues"])
    assert len(vs.sets["country-2-codes"].entries) == 250


def test_value_sets_are_immutable() -> None:
    """The loaded object cannot be changed by a caller."""
    vs = load_value_sets()
    with pytest.raises(dataclasses.FrozenInstanceError):
        vs.sets = {}  # type: ignore[misc]
    with pytest.raises(TypeError):
        vs.sets["x"] = vs.sets["test-type"]  # type: ignore[index]


def test_is_valid_display_and_active_flags() -> None:
    """Membership, display text and the active flag (J07BX03 is deprecated)."""
    vs = load_value_sets()
    assert vs.is_valid("country-2-codes", "VN")
    assert vs.display("country-2-codes", "VN") == "Viet Nam"
    assert vs.display("vaccine-medicinal-product", "EU/1/21/1529") == "Vaxzevria"
    assert vs.display("vaccine-medicinal-product", "nope") is None
    assert not vs.is_valid("country-2-codes", "XX")
    assert not vs.is_valid("country-2-codes", 84)
    assert vs.is_valid("vaccine-prophylaxis", "J07BX03")
    assert not vs.is_active("vaccine-prophylaxis", "J07BX03")
    assert vs.is_active("vaccine-prophylaxis", "1119349007")
    assert vs.is_valid("test-type", "LP6464-4")
    assert vs.is_valid("test-result", "260415000")
    assert vs.is_valid("disease-agent-targeted", "840539006")
    with pytest.raises(ValueError):
        vs.is_valid("no-such-set", "x")


def test_encoding_instructions_structure() -> None:
    """Annex A rows are keyed by product code, with holder and allowed vaccine types."""
    vs = load_value_sets()
    (row,) = vs.encoding["EU/1/21/1529"]
    assert row.name == "Vaxzevria"
    assert row.ma == "ORG-100001699"
    assert row.vp == ("28531000087107", "29061000087103")
    assert vs.allowed_combination(mp="EU/1/21/1529", ma="ORG-100001699", vp="29061000087103")
    assert not vs.allowed_combination(mp="EU/1/21/1529", ma="ORG-100030215", vp="29061000087103")


@pytest.mark.parametrize("name", sorted(VIETNAM_VACCINES))
def test_vietnam_products_pass_check_vaccination(name: str) -> None:
    """Every Viet Nam product constant is issuable as is, and its codes are active value-set members."""
    codes = VIETNAM_VACCINES[name]
    check_vaccination(_vaccination(codes))
    vs = load_value_sets()
    assert vs.is_active("vaccine-medicinal-product", codes.mp)
    assert vs.is_active("vaccine-mah-manf", codes.ma)
    assert vs.is_active("vaccine-prophylaxis", codes.vp)


def test_vietnam_products_cover_the_campaign() -> None:
    """The mapping names the products used in Viet Nam."""
    expected = {
        "Vaxzevria", "Comirnaty", "Spikevax", "Janssen", "BBIBP-CorV", "Sputnik-V", "Hayat-Vax", "Abdala",
        "Covaxin", "CoronaVac", "Novavax",
    }  # fmt: skip
    assert expected <= set(VIETNAM_VACCINES)
    assert VIETNAM_VACCINES["Vaxzevria"].mp == "EU/1/21/1529"
    assert VIETNAM_VACCINES["Comirnaty"].mp == "EU/1/20/1528"
    assert VIETNAM_VACCINES["Spikevax"].mp == "EU/1/20/1507"
    assert VIETNAM_VACCINES["Janssen"].mp == "EU/1/20/1525"


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"tg": "840539007"}, "issue.valueset"),
        ({"vp": "J07BX03"}, "issue.valueset"),  # deprecated (the real VN sample uses it)
        ({"mp": "EU/1/99/0001"}, "issue.valueset"),
        ({"mp": "NVX-CoV2373"}, "issue.valueset"),  # deprecated product code
        ({"ma": "ORG-999"}, "issue.valueset"),
        ({"co": "XX"}, "issue.valueset"),
        ({"co": "vn"}, "issue.valueset"),
        # the real VN sample: Vaxzevria with BioNTech as holder (DCC.md §10)
        ({"ma": "ORG-100030215"}, "issue.bad_combination"),
        ({"vp": "1119349007"}, "issue.bad_combination"),  # Vaxzevria is not an mRNA vaccine
    ],
)
def test_check_vaccination_refuses(overrides: dict[str, Any], code: str) -> None:
    """Codes outside the current value sets and combinations outside Annex A are refused."""
    with pytest.raises(IssuanceError) as exc:
        check_vaccination(_vaccination(VIETNAM_VACCINES["Vaxzevria"], **overrides))
    assert exc.value.code == code


def test_check_vaccination_product_without_instruction() -> None:
    """A product with no Annex A row cannot be encoded (value sets passed in explicitly)."""
    vs = load_value_sets()
    without = dataclasses.replace(
        vs, encoding=MappingProxyType({mp: rows for mp, rows in vs.encoding.items() if mp != "EU/1/21/1529"})
    )
    entry = _vaccination(VIETNAM_VACCINES["Vaxzevria"])
    check_vaccination(entry, vs)
    with pytest.raises(IssuanceError) as exc:
        check_vaccination(entry, without)
    assert exc.value.code == "issue.bad_combination"


def test_every_active_encoding_row_is_issuable() -> None:
    """Each Annex A row whose codes are active passes with each of its vaccine types."""
    vs = load_value_sets()
    checked = 0
    for rows in vs.encoding.values():
        for row in rows:
            if not (
                vs.is_active("vaccine-medicinal-product", row.mp) and vs.is_active("vaccine-mah-manf", row.ma)
            ):
                continue
            for vp in row.vp:
                check_vaccination(_vaccination(VaccineCodes(mp=row.mp, ma=row.ma, vp=vp)))
                checked += 1
    assert checked > 50
