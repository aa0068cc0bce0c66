"""`vaxcred rules eval|validate` and `vaxcred verify --country --rules --lang`: the contract for outside tools."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from tests.interop.payloads import DAY, NOW, sample_dcc
from vaxcred import keys
from vaxcred.cli import main
from vaxcred.issue import issue

RULES = Path(__file__).resolve().parent.parent.parent / "vaxcred" / "data" / "rules" / "VN"


def _write(path: Path, value: Any) -> Path:
    path.write_text(json.dumps(value, ensure_ascii=False), encoding="utf-8")
    return path


def test_eval_prints_the_json_value(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """EXPR.json over DATA.json: the value as JSON, date-times as ISO instants, exit 0."""
    expr = _write(tmp_path / "e.json", [{"plusTime": [{"var": "d"}, 1, "year"]}, {"var": "n"}, 1])
    data = _write(tmp_path / "d.json", {"d": "2020-02-29", "n": None})
    assert main(["rules", "eval", str(expr), str(data)]) == 0
    assert json.loads(capsys.readouterr().out) == ["2021-03-01T00:00:00.000Z", None, 1]


def test_eval_jsonl_prints_one_value_per_line_in_order(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """DATA.jsonl: one evaluation and one output line per (non-empty) input line, in order."""
    expr = _write(tmp_path / "e.json", {"+": [{"var": "i"}, 1]})
    data = tmp_path / "d.jsonl"
    data.write_text('{"i": 1}\n\n{"i": 41}\n{"i": -1}\n', encoding="utf-8")
    assert main(["rules", "eval", str(expr), str(data)]) == 0
    assert capsys.readouterr().out.splitlines() == ["2", "42", "0"]


def test_eval_invalid_expression_exits_1_with_the_typed_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An invalid expression: exit 1, `[rules.invalid_expression]` and every problem on stderr, nothing on stdout."""
    expr = _write(tmp_path / "e.json", {"and": [{"or": [1, 2]}, {"var": 3}]})
    data = _write(tmp_path / "d.json", {})
    assert main(["rules", "eval", str(expr), str(data)]) == 1
    out = capsys.readouterr()
    assert out.out == ""
    assert out.err.startswith("[rules.invalid_expression]")
    assert "/and/0/or: " in out.err
    assert "/and/1/var: " in out.err


def test_eval_runtime_error_names_the_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A runtime type mismatch: exit 1 with rules.evaluation and the line number; earlier lines were printed."""
    expr = _write(tmp_path / "e.json", {"in": [1, {"var": "xs"}]})
    data = tmp_path / "d.jsonl"
    data.write_text('{"xs": [1]}\n{"xs": null}\n{"xs": [2]}\n', encoding="utf-8")
    assert main(["rules", "eval", str(expr), str(data)]) == 1
    out = capsys.readouterr()
    assert out.out.splitlines() == ["true"]
    assert out.err.startswith("line 2: [rules.evaluation]")


def test_eval_refuses_malformed_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """NaN, duplicate keys and broken JSON are typed errors (exit 1), never tracebacks."""
    expr = tmp_path / "e.json"
    expr.write_text('{"var": "a", "var": "b"}', encoding="utf-8")
    data = _write(tmp_path / "d.json", {})
    assert main(["rules", "eval", str(expr), str(data)]) == 1
    assert "[rules.invalid_json]" in capsys.readouterr().err


@pytest.mark.parametrize("name", sorted(p.name for p in RULES.glob("*.json")))
def test_validate_accepts_the_shipped_rules(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Each Viet Nam rule validates (exit 0, nothing on stdout)."""
    assert main(["rules", "validate", str(RULES / name)]) == 0
    assert capsys.readouterr().out == ""


def test_validate_lists_every_problem_as_pointer_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An invalid rule: exit 1, one `JSON-pointer: message` line per problem."""
    rule = json.loads((RULES / "VR-VN-0001.json").read_text(encoding="utf-8"))
    rule["Logic"] = {"or": [{"var": "payload.v.0.mp"}, {"var": 1}]}
    assert main(["rules", "validate", str(_write(tmp_path / "r.json", rule))]) == 1
    assert capsys.readouterr().out.splitlines() == [
        "/Logic/or: 'or' is not a CertLogic operation (use '!' and 'and', or 'if')"
    ]
    rule["Identifier"] = "VR-VN-1"
    del rule["Country"]
    assert main(["rules", "validate", str(_write(tmp_path / "r.json", rule))]) == 1
    assert capsys.readouterr().out.splitlines() == [
        "/Country: is required",
        "/Identifier: must be like VR-XX-0000 (GR, VR, TR, RR or IR)",
    ]


def test_validate_an_expression(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A bare expression is validated as CertLogic."""
    assert main(["rules", "validate", str(_write(tmp_path / "e.json", {"var": "a"}))]) == 0
    assert main(["rules", "validate", str(_write(tmp_path / "e.json", {"var": "a..b"}))]) == 1
    assert capsys.readouterr().out.startswith("/var: ")


# --- verify with rules ----------------------------------------------------------------------------------


@pytest.fixture
def passport_files(dsc: keys.KeyPair, tmp_path: Path) -> tuple[Path, Path]:
    """A fresh full course (HC1 file) and its DSC (PEM file)."""
    hc1 = tmp_path / "hc1.txt"
    hc1.write_text(issue(sample_dcc(dt=(NOW - 30 * DAY).date().isoformat()), dsc.signer(), now=NOW).hc1)
    pem = tmp_path / "dsc.pem"
    pem.write_bytes(dsc.certificate.public_bytes(Encoding.PEM))
    return hc1, pem


def _verify(hc1: Path, pem: Path, *extra: str) -> int:
    return main(["verify", str(hc1), "--dsc", str(pem), "--at", "2026-01-11T00:00:00Z", *extra])


def test_verify_with_a_rule_folder(
    passport_files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """--country VN --rules FOLDER: VALID, the rules step and each rule in the JSON output."""
    hc1, pem = passport_files
    assert _verify(hc1, pem, "--country", "VN", "--rules", str(RULES), "--json") == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["steps"]["rules"]["code"] == "rules.ok"
    assert {r["identifier"]: r["outcome"] for r in doc["rules"]}["VR-VN-0004"] == "passed"


def test_verify_with_a_rule_array_shows_failures_in_the_officers_language(
    passport_files: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A JSON array file; a failed rule: exit 1, and the human output names the rule in Vietnamese (--lang vi)."""
    hc1, pem = passport_files
    rules = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(RULES.glob("VR-*.json"))]
    rules[1]["Logic"] = {"if": [{"var": "payload.v.0"}, {">": [{"var": "payload.v.0.dn"}, 5]}, True]}
    path = _write(tmp_path / "rules.json", rules)
    assert _verify(hc1, pem, "--country", "VN", "--rules", str(path), "--lang", "vi") == 1
    out = capsys.readouterr().out
    assert "rules.failed" in out
    assert "✗ VR-VN-0002 1.0.0 failed: Phải tiêm đủ liệu trình" in out


def test_verify_rules_and_country_go_together(passport_files: tuple[Path, Path]) -> None:
    """--rules without --country (or the reverse) is a usage error (exit 3)."""
    hc1, pem = passport_files
    assert _verify(hc1, pem, "--rules", str(RULES)) == 3
    assert _verify(hc1, pem, "--country", "VN") == 3


def test_verify_with_a_broken_rule_file_is_a_usage_error(
    passport_files: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A rule file that fails the gateway checks: exit 3 naming the file and the code."""
    hc1, pem = passport_files
    (tmp_path / "bad").mkdir()
    _write(tmp_path / "bad" / "x.json", {"Identifier": "nope"})
    assert _verify(hc1, pem, "--country", "VN", "--rules", str(tmp_path / "bad")) == 3
    assert "rules.invalid_rule" in capsys.readouterr().err
