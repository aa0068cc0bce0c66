"""Messages signed with a *trusted* key around arbitrary claims: every check after the signature is reached.

Random bytes stop at the codec or the signature; these helpers put hostile content under a valid signature,
so the chain, time, key-usage and schema steps (and the result built from them) see it.
"""

from __future__ import annotations

from typing import Any

import cbor2
from cryptography.hazmat.primitives.serialization import Encoding

from tests.interop.payloads import wrap_hc1
from vaxcred import keys
from vaxcred.codec import cose
from vaxcred.trust import Environment, TrustedDsc, TrustMode, TrustStore
from vaxcred.x509util import parse_dsc


def der(pair: keys.KeyPair) -> bytes:
    return pair.certificate.public_bytes(Encoding.DER)


def sign_payload(
    pair: keys.KeyPair,
    payload: bytes,
    *,
    protected: bytes | None = None,
    unprotected: dict[Any, Any] | None = None,
) -> str:
    """HC1 text of a COSE_Sign1 over ``payload`` (any bytes) with a valid signature by ``pair``."""
    signer = pair.signer()
    head = protected if protected is not None else cose.encode_protected(int(signer.algorithm), signer.kid)
    signature = signer.sign(cose.sig_structure_for(head, payload))
    if unprotected is None:
        return wrap_hc1(cose.encode_sign1(head, payload, signature))
    return wrap_hc1(cbor2.dumps(cbor2.CBORTag(18, [head, unprotected, payload, signature])))


def sign_claims(pair: keys.KeyPair, claims: Any) -> str:
    """HC1 text of ``claims`` (any CBOR-encodable value, normally a CWT claims map) signed by ``pair``."""
    return sign_payload(pair, cbor2.dumps(claims))


def gateway_store(dsc: keys.KeyPair, csca: keys.KeyPair) -> TrustStore:
    """A trust-list store (chain checked) holding ``dsc`` under the VN CSCA."""
    return TrustStore.build(
        environment=Environment.TST,
        mode=TrustMode.GATEWAY,
        dscs=[TrustedDsc(info=parse_dsc(der(dsc)), country="VN", source="gateway")],
        cscas=[("VN", csca.certificate)],
    )
