"""Interop with python-cwt 3.3 (test-only oracle): our HC1 decodes in python-cwt, its CWTs verify in vaxcred.

python-cwt checks ``exp`` (and ``iat``) against the wall clock, so the passports it decodes are issued at the
real current time; vaxcred itself never reads the clock and gets that time as a parameter.
"""

from __future__ import annotations

from datetime import datetime

import cbor2
import cwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cwt import COSE
from cwt.cose_key_interface import COSEKeyInterface

from tests.interop.conftest import Chain
from tests.interop.cose_keys import cwt_private_key
from tests.interop.payloads import DAY, NOW, claims_for, sample_dcc, unwrap_hc1, wrap_hc1
from vaxcred.issue import issue
from vaxcred.result import Status
from vaxcred.verify import verify


def _alg(chain: Chain) -> int:
    return -7 if isinstance(chain.dsc.private_key, ec.EllipticCurvePrivateKey) else -37


def _hcert_key(chain: Chain) -> COSEKeyInterface:
    return cwt.load_pem_hcert_dsc(chain.dsc.certificate.public_bytes(Encoding.PEM).decode("ascii"))


# --- ours in python-cwt -------------------------------------------------------------------------------


def test_our_hc1_decodes_and_verifies_in_python_cwt(
    wall_clock_chain: Chain, wall_clock_now: datetime
) -> None:
    """python-cwt verifies our signature (ES256, PS256) with the DSC's hcert key and returns our claims."""
    dcc = sample_dcc()
    passport = issue(dcc, wall_clock_chain.dsc.signer(), now=wall_clock_now)
    claims = cwt.decode(unwrap_hc1(passport.hc1), keys=[_hcert_key(wall_clock_chain)])
    assert claims == {
        1: "VN",
        4: int(passport.exp.timestamp()),
        6: int(wall_clock_now.timestamp()),
        -260: {1: dcc.to_json()},
    }


def test_python_cwt_rejects_our_hc1_with_altered_signature(
    wall_clock_chain: Chain, wall_clock_now: datetime
) -> None:
    """The oracle is not blind: python-cwt refuses our message once a signature byte changes."""
    passport = issue(sample_dcc(), wall_clock_chain.dsc.signer(), now=wall_clock_now)
    cose = unwrap_hc1(passport.hc1)
    tampered = cose[:-1] + bytes([cose[-1] ^ 1])
    with pytest.raises(cwt.VerifyError):
        cwt.decode(tampered, keys=[_hcert_key(wall_clock_chain)])


# --- python-cwt in ours -------------------------------------------------------------------------------


def test_python_cwt_cose_with_protected_kid_is_valid_in_vaxcred(chain: Chain) -> None:
    """``COSE.encode_and_sign`` with protected ``{1: alg, 4: kid}`` over our claims verifies VALID."""
    key = cwt_private_key(chain.dsc.private_key, chain.dsc.kid)
    message = COSE.new().encode_and_sign(
        cbor2.dumps(claims_for(sample_dcc())),
        key,
        protected={1: _alg(chain), 4: chain.dsc.kid},
        unprotected={},
    )
    result = verify(wrap_hc1(message), chain.store, now=NOW + DAY)
    assert result.status is Status.VALID, result.failures
    assert result.kid == chain.dsc.kid


def test_python_cwt_encode_and_sign_with_unprotected_kid_is_valid_in_vaxcred(chain: Chain) -> None:
    """``cwt.encode_and_sign`` (alg protected, kid unprotected) verifies VALID with the kid found."""
    key = cwt_private_key(chain.dsc.private_key, chain.dsc.kid)
    message = cwt.encode_and_sign(claims_for(sample_dcc()), key)
    assert cbor2.loads(message).value[1] == {4: chain.dsc.kid}  # the variant under test
    result = verify(wrap_hc1(message), chain.store, now=NOW + DAY)
    assert result.status is Status.VALID, result.failures
    assert result.kid == chain.dsc.kid


def test_python_cwt_tagged_cwt_is_valid_in_vaxcred(chain: Chain) -> None:
    """A CWT tag 61 around the COSE_Sign1 tag 18 (``tagged=True``) verifies VALID."""
    key = cwt_private_key(chain.dsc.private_key, chain.dsc.kid)
    message = cwt.encode_and_sign(claims_for(sample_dcc()), key, tagged=True)
    assert message[:2] == b"\xd8\x3d"
    result = verify(wrap_hc1(message), chain.store, now=NOW + DAY)
    assert result.status is Status.VALID, result.failures


def test_python_cwt_claims_read_back_as_the_dcc(es256: Chain) -> None:
    """The DCC python-cwt signed comes back from verify unchanged, with holder and timestamps."""
    dcc = sample_dcc()
    key = cwt_private_key(es256.dsc.private_key, es256.dsc.kid)
    result = verify(wrap_hc1(cwt.encode_and_sign(claims_for(dcc), key)), es256.store, now=NOW + DAY)
    assert result.certificate == dcc.to_json()
    assert result.iat == NOW.replace(microsecond=0)
    assert result.holder is not None
    assert (result.holder.fnt, result.holder.gnt) == ("NGUYEN", "VAN<DUC")
