"""The EU dgc-testdata payloads judged by the value-set rules of the Viet Nam rule set.

Value-set membership is not a schema matter (DCC.md §2, CERTLOGIC.md §1): the vectors below pass the schema
(EXPECTEDSCHEMAVALIDATION true, and vaxcred's schema step agrees) yet carry codes outside the EU value sets —
a mistyped authorisation holder (SM), a holder and a test device outside the sets (GE). The dgc-testdata
format has no flag for business rules, so this test states the verdict itself: exactly these vectors fail
exactly these rules, and every other payload passes them (an empty test device, CH/2 and IT/4, reads as absent).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vaxcred.conformance import parse_clock
from vaxcred.rules import RuleSet, judge, vietnam_rules

DATA = Path(__file__).resolve().parent.parent / "data" / "dgc-testdata"
VECTORS = sorted(p for p in DATA.glob("*/2DCode/raw/*.json"))
VALUE_SET_RULES = ("GR-VN-0001", "GR-VN-0002", "VR-VN-0001", "VR-VN-0005", "TR-VN-0001")
RULES = RuleSet(rules=tuple(r for r in vietnam_rules().rules if r.identifier in VALUE_SET_RULES))

#: vector -> the value-set rules it fails, and why
FAILS = {
    "GE/2DCode/raw/1.json": ["VR-VN-0005"],  # v.ma "SinovacBiotech" (the set says "Sinovac-Biotech")
    "GE/2DCode/raw/2.json": ["TR-VN-0001"],  # t.ma "N/A"
    "SM/2DCode/raw/1.json": ["VR-VN-0005"],  # v.ma "ORG-1000030215" (one 0 too many)
    "SM/2DCode/raw/2.json": ["VR-VN-0005"],
    "SM/2DCode/raw/3.json": ["VR-VN-0005"],
    "SM/2DCode/raw/4.json": ["VR-VN-0005"],
    "SM/2DCode/raw/5.json": ["VR-VN-0005"],
}


def _name(path: Path) -> str:
    return path.relative_to(DATA).as_posix()


def _payload_vectors() -> list[Path]:
    return [p for p in VECTORS if isinstance(json.loads(p.read_text(encoding="utf-8")).get("JSON"), dict)]


def test_enough_vectors_carry_a_payload() -> None:
    """Most vectors carry their JSON payload (the others test lower layers only)."""
    assert len(_payload_vectors()) >= 100


@pytest.mark.parametrize("path", _payload_vectors(), ids=_name)
def test_value_set_rules_judge_the_vector(path: Path) -> None:
    """The listed vectors fail the listed rules (their schema verdict is valid); every other payload passes."""
    vector = json.loads(path.read_text(encoding="utf-8"))
    clock = vector.get("TESTCTX", {}).get("VALIDATIONCLOCK")
    at = parse_clock(clock) if clock else parse_clock("2021-06-01T00:00:00Z")
    verdict = judge(RULES, vector["JSON"], at=at, country="VN", issuer_country=None)
    failed = [o.identifier for o in verdict.outcomes if o.outcome.value != "passed"]
    assert failed == FAILS.get(_name(path), [])
    if failed:
        assert vector["EXPECTEDRESULTS"].get("EXPECTEDSCHEMAVALIDATION") is True
        assert verdict.code == "rules.failed"
