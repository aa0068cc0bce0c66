"""The `rules` verify step end to end: real passports, signed and verified, judged by rule sets (CERTLOGIC.md §7)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.interop.payloads import DAY, NOW, sample_dcc
from vaxcred import errors, keys
from vaxcred.codec import base45, compress, cose, cwt, prefix
from vaxcred.issue import issue
from vaxcred.model import generate_uvci
from vaxcred.result import Status, StepResult, VerificationResult
from vaxcred.rules import Outcome, RuleSet, vietnam_rules
from vaxcred.trust import TrustStore
from vaxcred.verify import verify

from .test_gateway import RULE

AT = NOW + DAY
RECENT = (NOW - 30 * DAY).date().isoformat()
VN = vietnam_rules()


@pytest.fixture(scope="module")
def store(dsc: keys.KeyPair) -> TrustStore:
    from cryptography.hazmat.primitives.serialization import Encoding

    return TrustStore.from_dsc_certificates([dsc.certificate.public_bytes(Encoding.DER)])


def _hc1(dsc: keys.KeyPair, **entry: Any) -> str:
    return issue(sample_dcc(**{"dt": RECENT, **entry}), dsc.signer(), now=NOW).hc1


def _hand_built(dsc: keys.KeyPair, payload: dict[str, Any]) -> str:
    """An HC1 of any payload (no issuing-side checks), signed by the real DSC."""
    signer = dsc.signer()
    claims = cwt.encode_claims(
        iss="VN", iat=int(NOW.timestamp()), exp=int((NOW + 30 * DAY).timestamp()), dcc=payload
    )
    protected = cose.encode_protected(int(signer.algorithm), signer.kid)
    signature = signer.sign(cose.sig_structure_for(protected, claims))
    return prefix.add_prefix(
        base45.b45encode(compress.compress(cose.encode_sign1(protected, claims, signature)))
    )


def _outcomes(result: VerificationResult) -> dict[str, str]:
    return {o.identifier: o.outcome.value for o in result.rules}


def test_without_rules_the_step_is_skipped(dsc: keys.KeyPair, store: TrustStore) -> None:
    """No rule set: rules is skip/rules.not_configured and the status is unchanged."""
    result = verify(_hc1(dsc), store, now=AT)
    assert result.status is Status.VALID
    assert (result.step("rules").result, result.step("rules").code) == (
        StepResult.SKIP,
        "rules.not_configured",
    )
    assert result.rules == ()


def test_recent_full_course_passes_the_vietnam_rules(dsc: keys.KeyPair, store: TrustStore) -> None:
    """A fresh, complete Comirnaty course: every selected rule passes, VALID, outcomes listed by identifier."""
    result = verify(_hc1(dsc), store, now=AT, rules=VN, country="vn")
    assert result.status is Status.VALID, result.step("rules")
    assert result.step("rules").code == "rules.ok"
    assert _outcomes(result) == dict.fromkeys(
        [
            "GR-VN-0001",
            "GR-VN-0002",
            "IR-VN-0001",
            "VR-VN-0001",
            "VR-VN-0002",
            "VR-VN-0003",
            "VR-VN-0004",
            "VR-VN-0005",
        ],
        "passed",
    )
    first = result.rules[0]
    assert first.description("vi") != first.description("en")
    document = result.to_json()
    assert [r["identifier"] for r in document["rules"]] == [o.identifier for o in result.rules]
    assert document["steps"]["rules"]["result"] == "pass"


@pytest.mark.parametrize(
    ("entry", "failed"),
    [
        ({"dt": "2021-09-12"}, "VR-VN-0004"),
        ({"dn": 1, "sd": 2}, "VR-VN-0002"),
        ({"dt": (NOW - 5 * DAY).date().isoformat()}, "VR-VN-0003"),
        ({"ci": generate_uvci(issuer="S079123")}, "IR-VN-0001"),
    ],
)
def test_a_failed_rule_makes_the_passport_invalid(
    dsc: keys.KeyPair, store: TrustStore, entry: dict[str, Any], failed: str
) -> None:
    """Too old, incomplete, too recent, or from an invalidated site: INVALID with rules.failed naming the rule."""
    result = verify(_hc1(dsc, **entry), store, now=AT, rules=VN, country="VN")
    assert result.status is Status.INVALID
    assert result.step("rules").code == "rules.failed"
    assert failed in result.step("rules").message
    assert [o.identifier for o in result.rules if o.outcome is Outcome.FAILED] == [failed]
    with pytest.raises(errors.RulesError):
        result.raise_for_status()


def test_an_unknown_code_passes_the_schema_and_fails_the_rules(dsc: keys.KeyPair, store: TrustStore) -> None:
    """Value-set membership is a rule, not a schema matter: a mistyped holder (dgc-testdata SM) fails VR-VN-0005."""
    payload = sample_dcc(dt=RECENT).to_json()
    payload["v"][0]["ma"] = "ORG-1000030215"
    result = verify(_hand_built(dsc, payload), store, now=AT, rules=VN, country="VN")
    assert result.step("schema").result is StepResult.PASS
    assert result.status is Status.INVALID
    assert _outcomes(result)["VR-VN-0005"] == "failed"
    (vr5,) = [o for o in result.rules if o.identifier == "VR-VN-0005"]
    assert dict(vr5.affected)["v.0.ma"] == "ORG-1000030215"


def _set_with(**changes: Any) -> RuleSet:
    rule = copy.deepcopy(RULE)
    rule.update(changes)
    return RuleSet.from_documents([rule])


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"EngineVersion": "2.0.0"}, "rules.incompatible_engine"),
        ({"Engine": "OTHER"}, "rules.incompatible_engine"),
        ({"SchemaVersion": "1.9.0"}, "rules.incompatible_schema"),
        ({"SchemaVersion": "2.0.0"}, "rules.incompatible_schema"),
    ],
)
def test_a_rule_vaxcred_cannot_run_needs_a_check(
    dsc: keys.KeyPair, store: TrustStore, changes: dict[str, Any], code: str
) -> None:
    """Engine or schema version out of reach: the rule is open, the step fails with rules.incompatible, and the
    status is NEEDS_CHECK, never VALID."""
    result = verify(_hc1(dsc), store, now=AT, rules=_set_with(**changes), country="VN")
    assert result.status is Status.NEEDS_CHECK
    assert (result.step("rules").result, result.step("rules").code) == (StepResult.FAIL, "rules.incompatible")
    assert [(o.outcome, o.code) for o in result.rules] == [(Outcome.OPEN, code)]


@pytest.mark.parametrize(
    ("logic", "code"),
    [
        ({"+": [{"var": "payload.v.0.mp"}, 1]}, "rules.error"),
        ({"var": "payload.v.0.mp"}, "rules.not_boolean"),
        ({"or": [True, True]}, "rules.invalid_logic"),
    ],
)
def test_a_rule_that_errors_counts_as_failed(
    dsc: keys.KeyPair, store: TrustStore, logic: dict[str, Any], code: str
) -> None:
    """A runtime error, a non-boolean value or invalid Logic leaves the rule open by error: INVALID."""
    result = verify(_hc1(dsc), store, now=AT, rules=_set_with(Logic=logic), country="VN")
    assert result.status is Status.INVALID
    assert result.step("rules").code == "rules.failed"
    assert [(o.outcome, o.code) for o in result.rules] == [(Outcome.OPEN, code)]


def test_failed_beats_incompatible(dsc: keys.KeyPair, store: TrustStore) -> None:
    """One failed rule and one unrunnable rule: INVALID, not NEEDS_CHECK."""
    rules = RuleSet.from_documents(
        [
            {**RULE, "Logic": {"===": [{"var": "payload.v.0.mp"}, "x"]}, "AffectedFields": ["v.0.mp"]},
            {**RULE, "Identifier": "VR-VN-0002", "EngineVersion": "9.0.0"},
        ]
    )
    result = verify(_hc1(dsc), store, now=AT, rules=rules, country="VN")
    assert result.status is Status.INVALID


def test_no_selected_rule_is_a_skip(dsc: keys.KeyPair, store: TrustStore) -> None:
    """Arriving in a country without rules (and no invalidation rule of the issuer): skip rules.none, VALID."""
    result = verify(_hc1(dsc), store, now=AT, rules=_set_with(), country="FR")
    assert result.status is Status.VALID
    assert (result.step("rules").result, result.step("rules").code) == (StepResult.SKIP, "rules.none")


def test_external_parameters_reach_the_rules(dsc: keys.KeyPair, store: TrustStore) -> None:
    """countryCode, issuerCountryCode, kid, iat/exp and the clock are what CERTLOGIC.md §1 says."""
    import base64

    expected_kid = base64.b64encode(dsc.kid).decode()
    logic = {
        "and": [
            {"===": [{"var": "external.countryCode"}, "VN"]},
            {"===": [{"var": "external.issuerCountryCode"}, "VN"]},
            {"===": [{"var": "external.kid"}, expected_kid]},
            {"===": [{"var": "external.region"}, ""]},
            {"===": [{"var": "external.validationClock"}, "2026-01-11T09:30:00.000Z"]},
            {"===": [{"var": "external.iat"}, "2026-01-10T09:30:00.000Z"]},
            {"in": ["VN", {"var": "external.valueSets.country-2-codes"}]},
            {"===": [{"var": "payload.v.0.mp"}, "EU/1/20/1528"]},
        ]
    }
    result = verify(
        _hc1(dsc), store, now=AT, rules=_set_with(Logic=logic, AffectedFields=["v.0.mp"]), country="vn"
    )
    assert result.status is Status.VALID, result.rules
