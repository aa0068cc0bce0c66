"""Steps (5) kid, (6) signature and (7) chain: which trusted DSC signed the passport.

The kid is an unauthenticated hint: it selects candidate DSCs, never a verdict. Every candidate is tried for
its signature and its chain (DCC.md: several DSCs may share a kid); the algorithm comes from the DSC's key
type, and the Sig_structure is built from the bytes as received.
"""

from __future__ import annotations

from datetime import datetime

from vaxcred import crypto, errors
from vaxcred.codec import cose
from vaxcred.result import Step
from vaxcred.trust import TrustedDsc, TrustStore, check_chain
from vaxcred.verify.steps import SKIP, Steps

KID_LENGTH = 8

_ALG_NAMES = {int(alg): alg.name for alg in crypto.Algorithm}
_CHAIN_NOT_CHECKED = Step(
    name="chain",
    result=SKIP,
    code="chain.not_checked",
    message="bare DSC supplied without its CSCA: chain not checked",
)


def find_signer(msg: cose.Sign1Message, trust: TrustStore, now: datetime, steps: Steps) -> TrustedDsc | None:
    """The DSC whose signature holds (the first passing the chain too, else the first whose signature holds,
    its chain failure reported in step (7)); ``None`` once (5) or (6) failed."""
    assert msg.alg is not None  # step (4) refuses a message without one
    # (5) kid: selects candidates only
    if msg.kid_malformed:
        steps.fail("kid", "kid.malformed", "the kid header is not a byte string")
        return None
    if msg.kid is None:
        steps.fail("kid", "kid.missing", "no kid in either header")
        return None
    if len(msg.kid) != KID_LENGTH:
        steps.fail("kid", "kid.bad_length", f"kid must be {KID_LENGTH} bytes, got {len(msg.kid)}")
        return None
    candidates = trust.candidates(msg.kid)
    if not candidates:
        steps.fail("kid", "kid.unknown", f"no trusted DSC with kid {msg.kid.hex()}")
        return None
    steps.ok("kid", f"{len(candidates)} candidate DSC(s) for the kid")

    # (6) signature + (7) chain: every candidate is tried until one passes both (a DSC whose signature
    # verifies but whose chain fails does not end the search: another DSC sharing the kid may pass)
    to_be_signed = cose.sig_structure(msg)
    dsc: TrustedDsc | None = None
    last: errors.SignatureError | None = None
    chain_failure: tuple[TrustedDsc, errors.ChainError] | None = None
    for candidate in candidates:
        try:
            crypto.verify_signature(candidate.info.public_key, msg.alg, to_be_signed, msg.signature)
        except errors.SignatureError as e:
            if last is None or last.code == "signature.alg_mismatch":
                last = e
            continue
        if trust.chain_required:
            try:
                check_chain(candidate, trust, now)
            except errors.ChainError as e:
                chain_failure = chain_failure or (candidate, e)
                continue
        dsc = candidate
        break
    if dsc is None and chain_failure is None:
        assert last is not None
        steps.error("signature", last)
        return None
    steps.ok("signature", f"signature verified ({_ALG_NAMES[msg.alg]})")

    # (7) chain (decided with the signature above)
    if not trust.chain_required:
        steps.items.append(_CHAIN_NOT_CHECKED)
    elif dsc is None:
        assert chain_failure is not None
        dsc, chain_error = chain_failure
        steps.error("chain", chain_error)
    else:
        steps.ok("chain", f"DSC chains to the {dsc.country} CSCA")
    return dsc
