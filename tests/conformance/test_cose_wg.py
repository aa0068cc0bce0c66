"""COSE WG examples (``tests/data/cose-wg-examples/``, see its SOURCE.md) run through vaxcred's primitives.

SECURITY.md §6, row "COSE WG".  Each COSE_Sign1 example goes ``codec.cose.decode_sign1`` →
``codec.cose.sig_structure`` → ``crypto.verify_signature`` with the public key of the example's JWK-like key.
Every file of the four folders is in exactly one of the tables below with its exact outcome (the error
class, the step that raises it, the code); an entry whose behaviour changes fails its test.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from vaxcred.codec import cbor, cose, cwt
from vaxcred.crypto import algorithm_for_key, verify_signature
from vaxcred.errors import ClaimsError, CoseError, DecodeError, SignatureError, VaxcredError

DATA = Path(__file__).resolve().parents[1] / "data" / "cose-wg-examples"
FOLDERS = ("sign1-tests", "ecdsa-examples", "rsa-pss-examples", "CWT")


@dataclass(frozen=True, slots=True)
class Expect:
    """One example's outcome: ``error is None`` means the signature verifies."""

    error: type[VaxcredError] | None
    code: str | None
    reason: str


def _verifies(reason: str) -> Expect:
    return Expect(None, None, reason)


# --- the expectation tables -----------------------------------------------------------------------
#
# COSE_Sign1 examples: decode_sign1 -> sig_structure -> verify_signature.  A DecodeError subclass is
# raised by decode_sign1, a SignatureError by verify_signature (after a successful decode).
# verify_signature checks the alg allowlist before the key, so ES384/ES512 examples fail with
# signature.unsupported_alg whatever their curve (the key check is asserted separately below).
SIGN1: dict[str, Expect] = {
    # --- upstream pass cases
    # DEVIATION (STRICT): the message carries protected h'A0' (an empty map inside the bstr) but upstream
    # signed h'' (the "ChangeProtected" mutation was applied after signing; cose-wg/Examples#107 calls the
    # vector mislabelled).  Our rule (DCC.md §1, SECURITY.md checklist): the Sig_structure is built from
    # the bytes as received, never rebuilt from the decoded map, so this must NOT verify.
    "sign1-tests/sign-pass-01.json": Expect(
        SignatureError, "signature.invalid", "protected h'A0' received, upstream signed h'' (Examples#107)"
    ),
    # DEVIATION (STRICT): signed with external AAD h'11aa22bb33cc44dd55006699'.  HC1 has no external AAD
    # and vaxcred offers no way to supply one: our Sig_structure carries h'', so it cannot verify.
    "sign1-tests/sign-pass-02.json": Expect(
        SignatureError, "signature.invalid", "external AAD, which HC1 never uses and we never supply"
    ),
    "sign1-tests/sign-pass-03.json": _verifies("untagged COSE_Sign1 array (RFC 9052 allows it)"),
    # --- upstream fail cases (failures.* in the vector names the mutation)
    "sign1-tests/sign-fail-01.json": Expect(CoseError, "cose.bad_tag", "tag 998 instead of 18"),
    "sign1-tests/sign-fail-02.json": Expect(
        SignatureError, "signature.invalid", "payload modified after signing ('.' -> '/')"
    ),
    "sign1-tests/sign-fail-03.json": Expect(
        SignatureError, "signature.unsupported_alg", "protected alg changed to -999 (integer: decodes)"
    ),
    "sign1-tests/sign-fail-04.json": Expect(
        CoseError, "cose.bad_alg", "protected alg changed to text 'unknown'"
    ),
    "sign1-tests/sign-fail-06.json": Expect(
        SignatureError, "signature.invalid", "protected ctyp added after signing"
    ),
    "sign1-tests/sign-fail-07.json": Expect(
        SignatureError, "signature.invalid", "protected ctyp removed after signing"
    ),
    # --- ECDSA Sign1 ("sign0") examples
    "ecdsa-examples/ecdsa-sig-01.json": _verifies("ES256, P-256, protected {alg, ctyp: 0}"),
    "ecdsa-examples/ecdsa-sig-02.json": Expect(
        SignatureError, "signature.unsupported_alg", "ES384 (-35), P-384: not on the allowlist"
    ),
    "ecdsa-examples/ecdsa-sig-03.json": Expect(
        SignatureError, "signature.unsupported_alg", "ES512 (-36), P-521: not on the allowlist"
    ),
    "ecdsa-examples/ecdsa-sig-04.json": Expect(
        SignatureError, "signature.unsupported_alg", "ES512 (-36) with a P-256 key (P-256 with SHA-512)"
    ),
    # --- CWT (RFC 8392 Appendix A)
    "CWT/A_3.json": _verifies("RFC 8392 A.3: signed CWT, ES256, tag 18"),
}

# Upstream pass cases (no "fail": true) that vaxcred does not verify: the documented deviations above and
# the refused algorithms.  Kept apart so that refusing another pass case takes two deliberate edits.
SIGN1_DEVIATIONS = frozenset(
    {
        "sign1-tests/sign-pass-01.json",
        "sign1-tests/sign-pass-02.json",
        "ecdsa-examples/ecdsa-sig-02.json",
        "ecdsa-examples/ecdsa-sig-03.json",
        "ecdsa-examples/ecdsa-sig-04.json",
    }
)

# COSE_Sign (tag 98, a signers array) is not COSE_Sign1: decode_sign1 rejects each with cose.bad_tag.
# To still run vaxcred's crypto over these keys and signatures, the test builds the COSE_Sign
# Sig_structure ["Signature", body_protected, sign_protected, h'', payload] itself (checked against the
# upstream ToBeSign_hex) and calls verify_signature with the signer's alg; the expectation is that call's.
COSE_SIGN: dict[str, Expect] = {
    "ecdsa-examples/ecdsa-01.json": _verifies("ES256, P-256"),
    "ecdsa-examples/ecdsa-02.json": Expect(SignatureError, "signature.unsupported_alg", "ES384 (-35), P-384"),
    "ecdsa-examples/ecdsa-03.json": Expect(SignatureError, "signature.unsupported_alg", "ES512 (-36), P-521"),
    "ecdsa-examples/ecdsa-04.json": Expect(
        SignatureError, "signature.unsupported_alg", "ES512 (-36) with a P-256 key (P-256 with SHA-512)"
    ),
    "rsa-pss-examples/rsa-pss-01.json": _verifies("PS256, RSA 2048, salt 32"),
    "rsa-pss-examples/rsa-pss-02.json": Expect(
        SignatureError, "signature.unsupported_alg", "PS384 (-38): not on the allowlist"
    ),
    "rsa-pss-examples/rsa-pss-03.json": Expect(
        SignatureError, "signature.unsupported_alg", "PS512 (-39): not on the allowlist"
    ),
}

# SKIP (outside the HC1 profile, which is COSE_Sign1 only): the other RFC 8392 Appendix A CWTs.  They
# are not verified; decode_sign1 must reject each with a typed DecodeError (here: CoseError cose.bad_tag).
OUT_OF_PROFILE: dict[str, Expect] = {
    "CWT/A_4.json": Expect(CoseError, "cose.bad_tag", "COSE_Mac0 (tag 17), HS256/64"),
    "CWT/A_5.json": Expect(CoseError, "cose.bad_tag", "COSE_Encrypt0 (tag 16), AES-CCM-16-128/64"),
    "CWT/A_6.json": Expect(CoseError, "cose.bad_tag", "COSE_Encrypt0 (tag 16) around the A.3 COSE_Sign1"),
    "CWT/A_7.json": Expect(CoseError, "cose.bad_tag", "COSE_Mac0 (tag 17), float iat"),
}

# Examples whose alg vaxcred refuses, with how the upstream signature is actually made (hash, PSS salt),
# to show that the refusal is policy, not a broken vector.
_ECDSA_HASH: dict[int, hashes.HashAlgorithm] = {-35: hashes.SHA384(), -36: hashes.SHA512()}
_PSS: dict[int, tuple[hashes.HashAlgorithm, int]] = {-38: (hashes.SHA384(), 48), -39: (hashes.SHA512(), 64)}

# RFC 8392 Appendix A.1, the claims signed in A.3.
RFC8392_A1_CLAIMS = {
    1: "coap://as.example.com",
    2: "erikw",
    3: "coap://light.example.com",
    4: 1444064944,
    5: 1443944944,
    6: 1443944944,
    7: bytes.fromhex("0b71"),
}


# --- helpers ----------------------------------------------------------------------------------------


@cache
def _vector(name: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads((DATA / name).read_text(encoding="utf-8"))
    return result


def _message(name: str) -> bytes:
    return bytes.fromhex(_vector(name)["output"]["cbor"])


def _field(key: dict[str, str], name: str) -> int:
    """A key field: ``<name>_hex`` (hex) or ``<name>`` (unpadded base64url, as in a JWK)."""
    if f"{name}_hex" in key:
        raw = bytes.fromhex(key[f"{name}_hex"])
    else:
        value = key[name]
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    return int.from_bytes(raw, "big")


_CURVES: dict[str, ec.EllipticCurve] = {
    "P-256": ec.SECP256R1(),
    "P-384": ec.SECP384R1(),
    "P-521": ec.SECP521R1(),
}


def _public_key(key: dict[str, str]) -> PublicKeyTypes:
    if key["kty"] == "EC":
        return ec.EllipticCurvePublicNumbers(
            _field(key, "x"), _field(key, "y"), _CURVES[key["crv"]]
        ).public_key()
    assert key["kty"] == "RSA"
    return rsa.RSAPublicNumbers(_field(key, "e"), _field(key, "n")).public_key()


def _sign1_key(name: str) -> PublicKeyTypes:
    return _public_key(_vector(name)["input"]["sign0"]["key"])


def _upstream_to_be_signed(name: str) -> bytes:
    intermediates = _vector(name)["intermediates"]
    if "signers" in intermediates:
        return bytes.fromhex(intermediates["signers"][0]["ToBeSign_hex"])
    return bytes.fromhex(intermediates["ToBeSign_hex"])


@dataclass(frozen=True, slots=True)
class _Signer:
    """The one signer of a COSE_Sign example, with the Sig_structure built here (vaxcred has none)."""

    key: PublicKeyTypes
    alg: int
    to_be_signed: bytes
    signature: bytes


def _cose_sign_signer(name: str) -> _Signer:
    item = cbor.loads(_message(name))
    assert isinstance(item, cbor.Tagged)
    assert item.tag == 98
    body_protected, _, payload, signers = item.value
    (signer,) = signers
    sign_protected, _, signature = signer
    alg = cbor.loads(sign_protected)[1]
    to_be_signed = cbor.dumps(["Signature", body_protected, sign_protected, b"", payload])
    key = _public_key(_vector(name)["input"]["sign"]["signers"][0]["key"])
    return _Signer(key, alg, to_be_signed, signature)


def _refused_signer(name: str) -> _Signer:
    if name in COSE_SIGN:
        return _cose_sign_signer(name)
    msg = cose.decode_sign1(_message(name))
    assert msg.alg is not None
    return _Signer(_sign1_key(name), msg.alg, cose.sig_structure(msg), msg.signature)


def _check(expect: Expect, call: Any) -> None:
    if expect.error is None:
        call()
        return
    with pytest.raises(expect.error) as info:
        call()
    assert info.value.code == expect.code, expect.reason


# --- completeness -----------------------------------------------------------------------------------


def test_every_example_file_is_in_exactly_one_table() -> None:
    """The files of the four folders are exactly the table entries, none listed twice."""
    seen = {p.relative_to(DATA).as_posix() for folder in FOLDERS for p in (DATA / folder).glob("*.json")}
    tables = [set(SIGN1), set(COSE_SIGN), set(OUT_OF_PROFILE)]
    assert sum(map(len, tables)) == len(set().union(*tables)), "an example is in two tables"
    assert seen == set().union(*tables)


def test_upstream_fail_cases_are_never_expected_to_verify() -> None:
    """No table entry lets an upstream ``"fail": true`` example verify."""
    expectations = {**SIGN1, **COSE_SIGN, **OUT_OF_PROFILE}
    failing = [name for name in expectations if _vector(name).get("fail") is True]
    assert failing, "the sign-fail-* examples carry fail: true"
    assert [name for name in failing if expectations[name].error is None] == []


def test_only_documented_deviations_refuse_an_upstream_sign1_pass_case() -> None:
    """Upstream Sign1 pass cases that do not verify are exactly the documented deviations."""
    refused = {name for name, e in SIGN1.items() if e.error is not None and not _vector(name).get("fail")}
    assert refused == SIGN1_DEVIATIONS


# --- COSE_Sign1 examples ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SIGN1))
def test_sign1_example_has_its_expected_outcome(name: str) -> None:
    """decode_sign1 → sig_structure → verify_signature gives the table's exact outcome and step."""
    expect = SIGN1[name]
    data = _message(name)
    if expect.error is not None and issubclass(expect.error, DecodeError):
        _check(expect, lambda: cose.decode_sign1(data))
        return
    msg = cose.decode_sign1(data)
    assert msg.alg is not None
    key = _sign1_key(name)
    _check(expect, lambda: verify_signature(key, msg.alg, cose.sig_structure(msg), msg.signature))


@pytest.mark.parametrize("name", sorted(n for n, e in SIGN1.items() if e.error is None))
def test_verified_sign1_sig_structure_is_the_upstream_to_be_signed(name: str) -> None:
    """For every verifying Sign1 example our Sig_structure is byte-identical to upstream's ToBeSign."""
    msg = cose.decode_sign1(_message(name))
    assert cose.sig_structure(msg) == _upstream_to_be_signed(name)


def test_sign_pass_01_upstream_signed_empty_protected_not_the_received_a0() -> None:
    """sign-pass-01's signature verifies over h'' protected only, so refusing it is the h'A0' rule alone."""
    name = "sign1-tests/sign-pass-01.json"
    msg = cose.decode_sign1(_message(name))
    assert msg.protected_bytes == b"\xa0"
    upstream = _upstream_to_be_signed(name)
    assert upstream == cose.sig_structure_for(b"", msg.payload) != cose.sig_structure(msg)
    verify_signature(_sign1_key(name), msg.alg, upstream, msg.signature)


def test_sign_pass_02_upstream_signed_an_external_aad_we_never_supply() -> None:
    """sign-pass-02's signature verifies only over a Sig_structure that carries its external AAD."""
    name = "sign1-tests/sign-pass-02.json"
    msg = cose.decode_sign1(_message(name))
    external = bytes.fromhex(_vector(name)["input"]["sign0"]["external"])
    upstream = _upstream_to_be_signed(name)
    assert upstream == cbor.dumps(["Signature1", msg.protected_bytes, external, msg.payload])
    assert cose.sig_structure(msg) == cbor.dumps(["Signature1", msg.protected_bytes, b"", msg.payload])
    verify_signature(_sign1_key(name), msg.alg, upstream, msg.signature)


# --- COSE_Sign examples (tag 98) ------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(COSE_SIGN))
def test_cose_sign_example_is_rejected_by_decode_sign1(name: str) -> None:
    """A COSE_Sign (tag 98) is not a COSE_Sign1: ``cose.bad_tag``."""
    with pytest.raises(CoseError) as info:
        cose.decode_sign1(_message(name))
    assert info.value.code == "cose.bad_tag"


@pytest.mark.parametrize("name", sorted(COSE_SIGN))
def test_cose_sign_test_built_sig_structure_is_the_upstream_to_be_signed(name: str) -> None:
    """The COSE_Sign Sig_structure this test builds is upstream's ToBeSign, so the outcomes below are fair."""
    assert _cose_sign_signer(name).to_be_signed == _upstream_to_be_signed(name)


@pytest.mark.parametrize("name", sorted(COSE_SIGN))
def test_cose_sign_signer_signature_has_its_expected_outcome(name: str) -> None:
    """verify_signature over the signer's signature gives the table's exact outcome (PS256, ES256 verify)."""
    signer = _cose_sign_signer(name)
    _check(
        COSE_SIGN[name],
        lambda: verify_signature(signer.key, signer.alg, signer.to_be_signed, signer.signature),
    )


# --- refused algorithms and keys --------------------------------------------------------------------

#: the upstream pass cases refused for their algorithm (ES384, ES512, PS384, PS512)
REFUSED = sorted(
    name
    for name, expect in {**SIGN1, **COSE_SIGN}.items()
    if expect.code == "signature.unsupported_alg" and not _vector(name).get("fail")
)


@pytest.mark.parametrize("name", REFUSED)
def test_refused_example_signature_is_genuine_upstream(name: str) -> None:
    """Each refused example verifies with its own algorithm in pyca/cryptography: the refusal is policy."""
    signer = _refused_signer(name)
    if signer.alg in _ECDSA_HASH:
        assert isinstance(signer.key, ec.EllipticCurvePublicKey)
        half = len(signer.signature) // 2
        der = encode_dss_signature(
            int.from_bytes(signer.signature[:half], "big"), int.from_bytes(signer.signature[half:], "big")
        )
        signer.key.verify(der, signer.to_be_signed, ec.ECDSA(_ECDSA_HASH[signer.alg]))
    else:
        assert isinstance(signer.key, rsa.RSAPublicKey)
        digest, salt = _PSS[signer.alg]
        pss = padding.PSS(mgf=padding.MGF1(digest), salt_length=salt)
        signer.key.verify(signer.signature, signer.to_be_signed, pss, digest)


@pytest.mark.parametrize("name", ["ecdsa-examples/ecdsa-sig-02.json", "ecdsa-examples/ecdsa-sig-03.json"])
def test_p384_and_p521_keys_are_refused_even_under_an_es256_header(name: str) -> None:
    """A P-384 / P-521 key fails with ``signature.unsupported_key`` even when the header says ES256."""
    msg = cose.decode_sign1(_message(name))
    with pytest.raises(SignatureError) as info:
        verify_signature(_sign1_key(name), cose.Algorithm.ES256, cose.sig_structure(msg), msg.signature)
    assert info.value.code == "signature.unsupported_key"


@pytest.mark.parametrize("name", ["ecdsa-examples/ecdsa-sig-02.json", "ecdsa-examples/ecdsa-sig-03.json"])
def test_p384_and_p521_keys_have_no_vaxcred_algorithm(name: str) -> None:
    """algorithm_for_key refuses P-384 and P-521 keys with ``signature.unsupported_key``."""
    with pytest.raises(SignatureError) as info:
        algorithm_for_key(_sign1_key(name))
    assert info.value.code == "signature.unsupported_key"


# --- CWT ------------------------------------------------------------------------------------------


def test_cwt_a3_claims_are_the_rfc8392_example() -> None:
    """A.3's verified payload decodes (strict CBOR) to the RFC 8392 A.1 claims: iss, sub, aud, exp, nbf, iat, cti."""
    msg = cose.decode_sign1(_message("CWT/A_3.json"))
    claims = cbor.loads(msg.payload)
    assert claims == RFC8392_A1_CLAIMS
    assert claims[cwt.CWTClaim.ISS] == "coap://as.example.com"
    assert claims[cwt.CWTClaim.EXP] == 1444064944
    assert claims[cwt.CWTClaim.IAT] == 1443944944


def test_cwt_a3_is_not_an_hcert() -> None:
    """decode_claims refuses A.3 (a plain CWT, no hcert claim) with ``cose.missing_hcert``."""
    msg = cose.decode_sign1(_message("CWT/A_3.json"))
    with pytest.raises(ClaimsError) as info:
        cwt.decode_claims(msg.payload)
    assert info.value.code == "cose.missing_hcert"


@pytest.mark.parametrize("name", sorted(OUT_OF_PROFILE))
def test_out_of_profile_cwt_is_rejected_by_decode_sign1(name: str) -> None:
    """MAC'd and encrypted CWTs are not COSE_Sign1: a typed DecodeError with the table's code."""
    expect = OUT_OF_PROFILE[name]
    assert expect.error is not None
    assert issubclass(expect.error, DecodeError)
    _check(expect, lambda: cose.decode_sign1(_message(name)))
