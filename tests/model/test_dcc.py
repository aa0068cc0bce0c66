"""The typed DCC payload: to_json / from_json (DCC.md §2)."""

from __future__ import annotations

import copy
import dataclasses
import json
import unicodedata
from pathlib import Path
from typing import Any

import pytest

from vaxcred.errors import ModelError, SchemaError
from vaxcred.model import DCC, DateOfBirth, Name, Recovery, Test, Vaccination, generate_uvci
from vaxcred.schema import validate_dcc

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "schemas" / "eu-dcc-schema" / "examples").glob("*/*.json"))
VALID_CASES = sorted((ROOT / "schemas" / "eu-dcc-schema" / "test" / "valid").glob("*.json"))
# dgc-testdata: the vendored copy in tests/data/, else the shared read-only data next to the repository.
_DGC_DIRS = [ROOT / "tests" / "data" / "dgc-testdata", ROOT.parent / "shared" / "data" / "dgc-testdata"]
DGC_DIR = next((d for d in _DGC_DIRS if d.is_dir()), None)
DGC_FILES = sorted(DGC_DIR.glob("*/2DCode/*/*.json")) if DGC_DIR else []


def _vaccination(**overrides: Any) -> Vaccination:
    fields: dict[str, Any] = {
        "tg": "840539006",
        "vp": "1119349007",
        "mp": "EU/1/20/1528",
        "ma": "ORG-100030215",
        "dn": 2,
        "sd": 2,
        "dt": "2021-10-05",
        "co": "VN",
        "is_": "Bộ Y tế",
        "ci": "URN:UVCI:01:VN:BYT/A7K2M9Q4X1#5",
    }
    fields.update(overrides)
    return Vaccination(**fields)


def _vn_dcc() -> DCC:
    return DCC(
        nam=Name.from_vietnamese("Nguyễn Văn Đức"),
        dob=DateOfBirth.from_text("1985-03-07"),
        entry=_vaccination(ci=generate_uvci()),
    )


def test_vietnamese_vaccination_to_json() -> None:
    """to_json gives the wire keys, lists, text dates and the 'is' key; it passes the schema."""
    dcc = _vn_dcc()
    data = dcc.to_json()
    assert data["ver"] == "1.3.0"
    assert data["nam"] == {"fn": "Nguyễn", "fnt": "NGUYEN", "gn": "Văn Đức", "gnt": "VAN<DUC"}
    assert data["dob"] == "1985-03-07"
    assert isinstance(data["v"], list)
    assert len(data["v"]) == 1
    entry = data["v"][0]
    assert entry["is"] == "Bộ Y tế"
    assert "is_" not in entry
    assert entry["dn"] == 2
    assert isinstance(entry["dt"], str)
    assert set(data) == {"ver", "nam", "dob", "v"}
    assert dcc.payload_type == "v"
    assert dcc.v is dcc.entry
    assert dcc.t is None
    assert dcc.r is None
    validate_dcc(data)
    assert DCC.from_json(data) == dcc


@pytest.mark.parametrize("path", EXAMPLES + VALID_CASES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_schema_examples_round_trip(path: Path) -> None:
    """Every upstream example and valid case decodes, and to_json gives it back."""
    data = json.loads(path.read_text(encoding="utf-8"))
    dcc = DCC.from_json(data)
    assert dcc.payload_type in data
    assert dcc.to_json() == data


def test_test_and_recovery_entries() -> None:
    """Test entries keep optional fields only when present; payload_type follows the entry."""
    test = Test(
        tg="840539006", tt="LP217198-3", sc="2021-06-19T00:00:00+02:00", tr="260415000", co="VN", is_="BYT",
        ci="URN:UVCI:01:VN:BYT/X", ma="1232",
    )  # fmt: skip
    dcc = DCC(nam=Name.create(gn="Đức"), dob=DateOfBirth.from_text(""), entry=test)
    assert dcc.payload_type == "t"
    assert dcc.to_json()["t"] == [
        {"tg": "840539006", "tt": "LP217198-3", "sc": "2021-06-19T00:00:00+02:00", "tr": "260415000",
         "co": "VN", "is": "BYT", "ci": "URN:UVCI:01:VN:BYT/X", "ma": "1232"}
    ]  # fmt: skip
    recovery = Recovery(
        tg="840539006",
        fr="2021-05-01",
        co="VN",
        is_="BYT",
        df="2021-05-12",
        du="2021-11-01",
        ci="URN:UVCI:01:VN:X",
    )
    assert DCC(nam=Name.create(fn="Lê"), dob=DateOfBirth(year=1990), entry=recovery).payload_type == "r"


def test_strings_are_nfc() -> None:
    """Decomposed text in entries is normalised to NFC."""
    entry = _vaccination(is_=unicodedata.normalize("NFD", "Bộ Y tế"))
    assert entry.is_ == "Bộ Y tế"


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"dn": 0}, "dn"),
        ({"dn": True}, "dn"),
        ({"sd": "2"}, "sd"),
        ({"dt": None}, "dt"),
        ({"co": 84}, "co"),
        ({"ci": "U" * 81}, "ci"),
        ({"is_": "I" * 81}, "is"),
    ],
)
def test_entry_field_checks(overrides: dict[str, Any], field: str) -> None:
    """Wrong types, dose numbers below 1 and over-long text raise model.bad_field."""
    with pytest.raises(ModelError) as exc:
        _vaccination(**overrides)
    assert exc.value.code == "model.bad_field"
    assert field in exc.value.message


def _payload() -> dict[str, Any]:
    return _vn_dcc().to_json()


def _mutate(path: tuple[Any, ...], value: Any = None, *, delete: bool = False) -> dict[str, Any]:
    data = copy.deepcopy(_payload())
    target: Any = data
    for key in path[:-1]:
        target = target[key]
    if delete:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return data


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (_mutate(("v",), delete=True), "model.entry_count"),
        ({**_payload(), "r": [{}]}, "model.entry_count"),
        (_mutate(("v",), [_payload()["v"][0]] * 2), "model.entry_count"),
        (_mutate(("v",), []), "model.entry_count"),
        (_mutate(("v",), {"tg": "840539006"}), "model.bad_payload"),
        (_mutate(("ver",), delete=True), "model.bad_payload"),
        (_mutate(("nam",), "NGUYEN"), "model.bad_payload"),
        (_mutate(("nam", "fnt"), "nguyen"), "model.bad_name"),
        (_mutate(("dob",), "1985-02-30"), "model.bad_date"),
        (_mutate(("v", 0, "dn"), "2"), "model.bad_field"),
        (_mutate(("v", 0, "ci"), delete=True), "model.bad_field"),
        (_mutate(("v", 0), "entry"), "model.bad_payload"),
    ],
)
def test_from_json_structural_problems(data: Any, code: str) -> None:
    """from_json raises ModelError with a specific code, never another exception."""
    with pytest.raises(ModelError) as exc:
        DCC.from_json(data)
    assert exc.value.code == code


def test_from_json_not_a_mapping() -> None:
    """A non-object payload is a ModelError."""
    with pytest.raises(ModelError):
        DCC.from_json([])  # type: ignore[arg-type]


def test_from_json_tolerates_wire_variants() -> None:
    """Integral floats for dn/sd, date-times in dates, extra fields are accepted."""
    data = _mutate(("v", 0, "dn"), 2.0)
    data["v"][0]["dt"] = "2021-10-05T00:00:00"
    data["dob"] = "1985-03-07T00:00:00"
    data["v"][0]["xx"] = "extra"
    data["extra"] = 1
    dcc = DCC.from_json(data)
    assert dcc.v is not None
    assert dcc.v.dn == 2
    assert isinstance(dcc.v.dn, int)
    assert dcc.v.dt == "2021-10-05T00:00:00"
    assert dcc.dob.text == "1985-03-07T00:00:00"


@pytest.mark.skipif(not DGC_FILES, reason="dgc-testdata not available")
def test_every_schema_valid_dgc_vector_decodes() -> None:
    """Each dgc-testdata payload that validate_dcc accepts also loads into the model, except the pre-1.3
    two-entry payloads (RO/2, SK/3), which the single-entry model refuses with model.entry_count."""
    decoded = 0
    for path in DGC_FILES:
        data = json.loads(path.read_text(encoding="utf-8")).get("JSON")
        if not isinstance(data, dict):
            continue
        try:
            validate_dcc(data)
        except SchemaError:
            continue
        kind = next(k for k in ("v", "t", "r") if k in data)
        if len(data[kind]) > 1:
            with pytest.raises(ModelError) as exc:
                DCC.from_json(data)
            assert exc.value.code == "model.entry_count"
            continue
        dcc = DCC.from_json(data)
        assert dcc.payload_type in data, path
        decoded += 1
    assert decoded > 100


def test_forename_only_holder_needs_schema_1_3_2() -> None:
    """Schema 1.3.0 (vaxcred's default ver) still requires fnt: a forename-only name needs ver 1.3.2+."""
    dcc = DCC(nam=Name.create(gn="Đức"), dob=DateOfBirth.from_text("1985"), entry=_vaccination())
    with pytest.raises(SchemaError):
        validate_dcc(dcc.to_json())
    validate_dcc(dataclasses.replace(dcc, ver="1.3.2").to_json())
