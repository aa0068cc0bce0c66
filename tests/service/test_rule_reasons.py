"""The answer names each entry rule a passport failed, in the rule's own words (found by the merged-product QA
pass: the officer saw only "does not meet the entry rules", not which one)."""

from __future__ import annotations

from datetime import timedelta

from tests.service.support import Chain, dcc
from vaxcred.issue import Issuer
from vaxcred.rules import vietnam_rules
from vaxcred.service import VerifierContext
from vaxcred.service.response import build_response


def test_failed_rules_are_reasons_in_both_languages(chain: Chain) -> None:
    """An incomplete course dosed long ago fails VR-VN-0002 and VR-VN-0004: each is a reason with its
    identifier and description in Vietnamese and English, after the generic rules.failed."""
    context = VerifierContext(
        trust=chain.store(), loaded_at=chain.now, verify_options={"rules": vietnam_rules()}
    )
    hc1 = Issuer(chain.dsc.signer()).issue(dcc(dn=1), now=chain.now).hc1
    result = context.verify(hc1, now=chain.now, country="VN")
    response = build_response(result, context, now=chain.now, minimal=True)
    assert response.status == "INVALID"
    assert [r.code for r in response.reasons] == ["rules.failed", "rules.failed", "rules.failed"]
    first, *by_rule = response.reasons
    assert first.message.en == "The certificate does not meet the entry rules of the destination country."
    assert [r.message.en.split(":")[0] for r in by_rule] == ["VR-VN-0002", "VR-VN-0004"]
    assert "270" in by_rule[1].message.en
    assert by_rule[1].message.vi.startswith("VR-VN-0004: Mũi tiêm cuối cùng")


def test_a_passport_passing_the_rules_has_no_rule_reasons(chain: Chain) -> None:
    """Passed rules add nothing: a VALID answer keeps an empty reasons list."""
    context = VerifierContext(
        trust=chain.store(), loaded_at=chain.now, verify_options={"rules": vietnam_rules()}
    )
    hc1 = (
        Issuer(chain.dsc.signer())
        .issue(dcc(dt=(chain.now - timedelta(days=30)).date().isoformat()), now=chain.now)
        .hc1
    )
    result = context.verify(hc1, now=chain.now, country="VN")
    response = build_response(result, context, now=chain.now, minimal=True)
    assert (response.status, response.reasons) == ("VALID", []), response.reasons
