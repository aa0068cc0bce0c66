"""Interop with pycose 1.1.0 (test-only oracle): our HC1 verifies in pycose, pycose's COSE_Sign1 in vaxcred."""

from __future__ import annotations

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from hypothesis import given, settings
from pycose.algorithms import Es256, Ps256
from pycose.headers import KID, Algorithm
from pycose.messages import Sign1Message

from tests.interop.conftest import Chain
from tests.interop.cose_keys import pycose_private_key, pycose_public_key
from tests.interop.payloads import DAY, NOW, claims_for, dccs, icao_oracle, sample_dcc, unwrap_hc1, wrap_hc1
from vaxcred.issue import issue
from vaxcred.model import DCC
from vaxcred.result import Status, StepResult
from vaxcred.verify import verify

PROPERTY_SETTINGS = settings(max_examples=50, deadline=None)


def _pycose_alg(chain: Chain) -> type[Es256] | type[Ps256]:
    return Es256 if isinstance(chain.dsc.private_key, ec.EllipticCurvePrivateKey) else Ps256


def _pycose_message(hc1: str, chain: Chain) -> Sign1Message:
    msg = Sign1Message.decode(unwrap_hc1(hc1))
    msg.key = pycose_public_key(chain.dsc.certificate.public_key())
    return msg


def _pycose_hc1(chain: Chain, dcc: DCC, *, kid_protected: bool = True) -> str:
    kid = {KID: chain.dsc.kid}
    msg = Sign1Message(
        phdr={Algorithm: _pycose_alg(chain), **(kid if kid_protected else {})},
        uhdr={} if kid_protected else kid,
        payload=cbor2.dumps(claims_for(dcc)),
        key=pycose_private_key(chain.dsc.private_key),
    )
    return wrap_hc1(msg.encode())


# --- ours in pycose -----------------------------------------------------------------------------------


def test_our_hc1_signature_verifies_in_pycose(chain: Chain) -> None:
    """An HC1 issued by vaxcred (ES256 and PS256) verifies with pycose and the DSC public key."""
    passport = issue(sample_dcc(), chain.dsc.signer(), now=NOW)
    assert _pycose_message(passport.hc1, chain).verify_signature() is True


def test_pycose_reads_alg_and_kid_from_our_protected_header(chain: Chain) -> None:
    """pycose finds our algorithm and the DSC kid in the protected header and nothing unprotected."""
    passport = issue(sample_dcc(), chain.dsc.signer(), now=NOW)
    msg = _pycose_message(passport.hc1, chain)
    assert msg.phdr[Algorithm] is _pycose_alg(chain)
    assert msg.phdr[KID] == chain.dsc.kid
    assert msg.uhdr == {}


def test_pycose_reads_our_claims(chain: Chain) -> None:
    """The payload pycose sees decodes to our iss, exp, iat and the DCC unchanged."""
    dcc = sample_dcc()
    passport = issue(dcc, chain.dsc.signer(), now=NOW)
    claims = cbor2.loads(_pycose_message(passport.hc1, chain).payload)
    assert claims == {
        1: "VN",
        4: int(passport.exp.timestamp()),
        6: int(NOW.timestamp()),
        -260: {1: dcc.to_json()},
    }


def test_pycose_rejects_our_hc1_with_altered_payload(es256: Chain) -> None:
    """The oracle is not blind: pycose refuses our signature once one payload byte changes."""
    passport = issue(sample_dcc(), es256.dsc.signer(), now=NOW)
    msg = _pycose_message(passport.hc1, es256)
    msg.payload = msg.payload[:-1] + bytes([msg.payload[-1] ^ 1])
    assert msg.verify_signature() is False


# --- pycose in ours -----------------------------------------------------------------------------------


def test_pycose_signed_hc1_is_valid_in_vaxcred(chain: Chain) -> None:
    """A COSE_Sign1 signed by pycose (ES256, PS256 with salt 32) over our claims verifies VALID."""
    result = verify(_pycose_hc1(chain, sample_dcc()), chain.store, now=NOW + DAY)
    assert result.status is Status.VALID, result.failures
    assert result.kid == chain.dsc.kid


def test_pycose_signed_hc1_with_kid_only_unprotected_is_valid(chain: Chain) -> None:
    """A kid carried only in the unprotected header still selects the DSC: the signature decides."""
    result = verify(_pycose_hc1(chain, sample_dcc(), kid_protected=False), chain.store, now=NOW + DAY)
    assert result.status is Status.VALID, result.failures
    assert result.kid == chain.dsc.kid


def _mismatched_hc1(chain: Chain, header_alg: int) -> str:
    """A COSE_Sign1 whose protected header names ``header_alg`` but whose signature is the key's own."""
    protected = cbor2.dumps({1: header_alg, 4: chain.dsc.kid})
    payload = cbor2.dumps(claims_for(sample_dcc()))
    to_be_signed = cbor2.dumps(["Signature1", protected, b"", payload])
    key = chain.dsc.private_key
    if isinstance(key, ec.EllipticCurvePrivateKey):
        r, s = decode_dss_signature(key.sign(to_be_signed, ec.ECDSA(hashes.SHA256())))
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    else:
        pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
        signature = key.sign(to_be_signed, pss, hashes.SHA256())
    return wrap_hc1(cbor2.dumps(cbor2.CBORTag(18, [protected, {}, payload, signature])))


def test_ps256_header_over_ec_key_fails_alg_mismatch(es256: Chain) -> None:
    """Header alg PS256 on a message an EC DSC signed fails the signature step with alg_mismatch."""
    result = verify(_mismatched_hc1(es256, -37), es256.store, now=NOW + DAY)
    assert result.status is Status.INVALID
    assert result.step("signature").result is StepResult.FAIL
    assert result.step("signature").code == "signature.alg_mismatch"


def test_es256_header_over_rsa_key_fails_alg_mismatch(ps256: Chain) -> None:
    """Header alg ES256 on a message an RSA DSC signed fails the signature step with alg_mismatch."""
    result = verify(_mismatched_hc1(ps256, -7), ps256.store, now=NOW + DAY)
    assert result.status is Status.INVALID
    assert result.step("signature").code == "signature.alg_mismatch"


def test_matching_header_alg_control_is_valid(chain: Chain) -> None:
    """Control for the mismatch tests: the same hand-built message with the key's own alg is VALID."""
    alg = -7 if isinstance(chain.dsc.private_key, ec.EllipticCurvePrivateKey) else -37
    result = verify(_mismatched_hc1(chain, alg), chain.store, now=NOW + DAY)
    assert result.status is Status.VALID, result.failures


# --- properties ---------------------------------------------------------------------------------------


@PROPERTY_SETTINGS
@given(dcc=dccs())
def test_any_issued_payload_verifies_in_pycose(es256: Chain, dcc: DCC) -> None:
    """For generated Vietnamese payloads, every HC1 vaxcred issues verifies in pycose."""
    passport = issue(dcc, es256.dsc.signer(), now=NOW)
    msg = _pycose_message(passport.hc1, es256)
    assert msg.verify_signature() is True
    assert cbor2.loads(msg.payload)[-260][1] == dcc.to_json()


@PROPERTY_SETTINGS
@given(dcc=dccs())
def test_any_pycose_signed_payload_is_valid_in_vaxcred(es256: Chain, dcc: DCC) -> None:
    """For generated Vietnamese payloads, pycose's COSE_Sign1 verifies VALID with the holder's ICAO names."""
    result = verify(_pycose_hc1(es256, dcc), es256.store, now=NOW + DAY)
    assert result.status is Status.VALID, result.failures
    assert result.holder is not None
    assert result.holder.fnt == icao_oracle(dcc.nam.fn or "")
    assert result.holder.gnt == icao_oracle(dcc.nam.gn or "")
