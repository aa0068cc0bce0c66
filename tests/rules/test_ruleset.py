"""Rule sets: loading a file, an array or a folder (hostile input bounded), and selection (CERTLOGIC.md §7)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from vaxcred import errors
from vaxcred.rules import RuleSet

from .test_gateway import RULE, _with

AT = datetime(2023, 1, 1, tzinfo=UTC)


def _rule(identifier: str = "VR-VN-0001", **changes: Any) -> dict[str, Any]:
    prefix = identifier[:2]
    kind = {"GR": "General", "VR": "Vaccination", "TR": "Test", "RR": "Recovery", "IR": "Vaccination"}[prefix]
    rule = _with(Identifier=identifier, Country=identifier[3:5], CertificateType=kind, **changes)
    if prefix == "IR":
        rule["Type"] = "Invalidation"
    if kind != "Vaccination":
        rule["Logic"], rule["AffectedFields"] = {"var": "payload.dob"}, ["dob"]
    return rule


def _ids(rules: RuleSet, **query: Any) -> list[str]:
    defaults: dict[str, Any] = {"arrival": "VN", "issuer": "DE", "certificate_type": "Vaccination", "at": AT}
    return [f"{r.identifier}@{r.version_text}" for r in rules.select(**{**defaults, **query})]


def test_selection_by_country_type_and_kind() -> None:
    """Acceptance rules of the arrival country, Invalidation rules of the issuer, General or the payload's type."""
    rules = RuleSet.from_documents(
        [
            _rule("VR-VN-0001"),
            _rule("GR-VN-0001"),
            _rule("TR-VN-0001"),
            _rule("VR-DE-0001"),
            _rule("IR-DE-0001"),
            _rule("IR-VN-0001"),
        ]
    )
    assert _ids(rules) == ["GR-VN-0001@1.0.0", "IR-DE-0001@1.0.0", "VR-VN-0001@1.0.0"]
    assert _ids(rules, arrival="vn", issuer="de", certificate_type="Test") == [
        "GR-VN-0001@1.0.0",
        "TR-VN-0001@1.0.0",
    ]
    assert _ids(rules, certificate_type=None, issuer=None) == ["GR-VN-0001@1.0.0"]
    assert rules.countries() == frozenset({"VN", "DE"})


def test_selection_takes_the_newest_valid_version_numerically() -> None:
    """Per identifier the highest version in force: 1.10.0 beats 1.9.0; a future version waits."""
    rules = RuleSet.from_documents(
        [
            [_rule(Version="1.9.0"), _rule(Version="1.10.0")],
            _rule(Version="2.0.0", ValidFrom="2023-01-01T00:00:01Z"),
        ]
    )
    assert _ids(rules) == ["VR-VN-0001@1.10.0"]
    assert _ids(rules, at=datetime(2023, 1, 1, 0, 0, 1, tzinfo=UTC)) == ["VR-VN-0001@2.0.0"]


def test_validity_window_excludes_its_end() -> None:
    """ValidFrom <= clock < ValidTo (how-to and utils; the apps include the end)."""
    rules = RuleSet.from_documents(
        [_rule(ValidFrom="2022-01-01T00:00:00Z", ValidTo="2023-01-01T00:00:00+01:00")]
    )
    assert _ids(rules, at=datetime(2022, 12, 31, 22, 59, 59, tzinfo=UTC)) == ["VR-VN-0001@1.0.0"]
    assert _ids(rules, at=datetime(2022, 12, 31, 23, tzinfo=UTC)) == []
    assert _ids(rules, at=datetime(2021, 12, 31, 23, 59, 59, tzinfo=UTC)) == []


def test_region() -> None:
    """A region selects its own rules; without one, only rules without a region apply."""
    rules = RuleSet.from_documents([_rule("VR-VN-0001"), _rule("VR-VN-0002", Region="HN")])
    assert _ids(rules) == ["VR-VN-0001@1.0.0"]
    assert _ids(rules, region="HN") == ["VR-VN-0002@1.0.0"]


def test_same_version_with_other_content_is_refused() -> None:
    """Two different rules under one identifier and version make the set ambiguous."""
    with pytest.raises(errors.RulesError) as info:
        RuleSet.from_documents([_rule(), _rule(AffectedFields=["v.0.mp", "v.0"])])
    assert info.value.code == "rules.duplicate_rule"
    assert len(RuleSet.from_documents([_rule(), _rule()]).rules) == 2


def test_from_path_reads_a_file_an_array_and_a_folder(tmp_path: Path) -> None:
    """One rule, an array of rules, or a folder of *.json files (other files ignored)."""
    (tmp_path / "a.json").write_text(json.dumps(_rule()), encoding="utf-8")
    (tmp_path / "b.json").write_text(json.dumps([_rule("GR-VN-0001"), _rule("TR-VN-0001")]), encoding="utf-8")
    (tmp_path / "notes.txt").write_text("not a rule", encoding="utf-8")
    assert len(RuleSet.from_path(tmp_path / "a.json").rules) == 1
    assert len(RuleSet.from_path(tmp_path / "b.json").rules) == 2
    assert len(RuleSet.from_path(tmp_path).rules) == 3


@pytest.mark.parametrize(
    ("content", "code"),
    [
        (b"{", "rules.invalid_json"),
        (b'{"a": NaN}', "rules.invalid_json"),
        (b'{"a": 1, "a": 2}', "rules.invalid_json"),
        (b"\xff", "rules.invalid_json"),
        (b"[" * 100_000, "rules.invalid_json"),
        (b"[1]", "rules.invalid_rule"),
        (json.dumps(_with(Identifier="bad")).encode(), "rules.invalid_rule"),
        (b" " * (1024 * 1024 + 1), "rules.limit"),
    ],
)
def test_bad_files_are_typed_errors_naming_the_file(tmp_path: Path, content: bytes, code: str) -> None:
    """Malformed, ambiguous, oversized or deeply nested files raise RulesError with the file's name."""
    (tmp_path / "ok.json").write_text(json.dumps(RULE), encoding="utf-8")
    (tmp_path / "zz-bad.json").write_bytes(content)
    with pytest.raises(errors.RulesError) as info:
        RuleSet.from_path(tmp_path)
    assert info.value.code == code
    assert "zz-bad.json" in info.value.message
