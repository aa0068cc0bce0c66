"""atheris fuzz targets (SECURITY.md §6): each feeds untrusted bytes to one entry point of vaxcred.

The rule every target enforces: untrusted input ends in a value or a typed :class:`~vaxcred.errors.VaxcredError`
(``verify()``: always a :class:`~vaxcred.VerificationResult`, never an exception). Anything else — a foreign
exception, a hang (libFuzzer ``-timeout``), memory beyond ``-rss_limit_mb`` — is a bug; libFuzzer stops and
writes the input to a ``crash-*`` / ``timeout-*`` file.

| target | entry point | what the fuzzer's bytes are |
|---|---|---|
| ``verify`` | :func:`vaxcred.verify` | the scanned QR text (bytes; images are left to bench_hostile) |
| ``hc1_cose`` | :func:`vaxcred.verify` | a COSE_Sign1, wrapped here in zlib, Base45 and ``HC1:`` |
| ``hc1_claims`` | :func:`vaxcred.verify` | CWT claims, signed here with a trusted test DSC (every step after ``signature`` runs) |
| ``base45`` ``zlib`` ``cbor`` ``cose`` ``cwt`` | each codec's decoder | that layer's input |
| ``trust_gateway`` | :func:`~vaxcred.trust.load_gateway_trust_list` | the EU gateway trust-list JSON |
| ``trust_signed`` | :func:`~vaxcred.trust.load_signed_trust_list` | the whole signed national list |
| ``trust_signed_payload`` | :func:`~vaxcred.trust.load_signed_trust_list` | its payload, signed here by the trust-list key |
| ``x509_dsc`` | :func:`~vaxcred.x509util.parse_dsc` (tolerant, own DER walker) | a certificate's DER |
| ``revocation_batch`` | :meth:`~vaxcred.revocation.RevocationBatch.from_json` | an EU gateway revocation batch |
| ``certlogic`` | :func:`~vaxcred.rules.evaluate` (+ ``to_json_value``) | JSON ``[expression, data]`` |
| ``rules_gateway`` | :meth:`~vaxcred.rules.RuleSet.from_json` | an EU gateway business rule (or an array) |

The keys: test_vectors/keys (public TEST-ONLY keys) for passports; a trust-list chain made at start-up.
This module imports only vaxcred and cryptography, so that ``tests/fuzz/run.py`` can instrument vaxcred.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, load_pem_private_key

from vaxcred import keys
from vaxcred.codec import base45, cbor, compress, cose, cwt, prefix
from vaxcred.crypto import LocalSigner, SigningKey
from vaxcred.errors import VaxcredError
from vaxcred.result import VerificationResult
from vaxcred.revocation import RevocationBatch
from vaxcred.rules import RuleSet, evaluate, parse_json, to_json_value
from vaxcred.trust import (
    Environment,
    TrustedDsc,
    TrustMode,
    TrustStore,
    load_gateway_trust_list,
    load_signed_trust_list,
    sign_trust_list,
)
from vaxcred.verify import verify
from vaxcred.x509util import parse_dsc

REPO = Path(__file__).resolve().parents[2]
KEYS = REPO / "test_vectors" / "keys"
#: the validation clock of most of our vectors (test_vectors/README.md)
NOW = datetime(2025, 10, 1, tzinfo=UTC)
_DSC_NAMES = ("dsc-ec", "dsc-rsa2048", "dsc-ec-other", "dsc-ec-short", "dsc-ec-test-eku")


class FuzzFinding(AssertionError):
    """An outcome no input may have (e.g. verify() returned something that is not a result)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class _Fixture:
    store: TrustStore
    signer: LocalSigner
    trust_anchor: x509.Certificate
    trust_list: bytes
    trust_protected: bytes
    trust_signer: LocalSigner


def _test_pair(name: str) -> LocalSigner:
    key = load_pem_private_key((KEYS / f"{name}.TEST-ONLY.key.pem").read_bytes(), password=None)
    assert isinstance(key, SigningKey)
    return LocalSigner(key, x509.load_pem_x509_certificate((KEYS / f"{name}.pem").read_bytes()))


@functools.cache
def fixture() -> _Fixture:
    """Trust store, passport signer and trust-list signer; built once per process."""
    certificates = [x509.load_pem_x509_certificate((KEYS / f"{n}.pem").read_bytes()) for n in _DSC_NAMES]
    store = TrustStore.from_dsc_certificates([c.public_bytes(Encoding.DER) for c in certificates])
    csca = keys.make_csca(now=NOW - timedelta(days=30))
    list_signer = keys.make_trust_list_signer(csca, now=NOW - timedelta(days=1)).signer()
    signed = sign_trust_list(
        national_store(), signer=list_signer, issued_at=NOW - timedelta(hours=1), sequence=7
    )
    return _Fixture(
        store=store,
        signer=_test_pair("dsc-ec"),
        trust_anchor=csca.certificate,
        trust_list=signed,
        trust_protected=cose.decode_sign1(signed).protected_bytes,
        trust_signer=list_signer,
    )


def national_store() -> TrustStore:
    """A store to sign as a national list: the test CSCA and DSC of Viet Nam."""
    csca = x509.load_pem_x509_certificate((KEYS / "csca.pem").read_bytes())
    dsc = x509.load_pem_x509_certificate((KEYS / "dsc-ec.pem").read_bytes())
    return TrustStore.build(
        environment=Environment.TST,
        mode=TrustMode.SIGNED_LIST,
        dscs=[TrustedDsc(info=parse_dsc(dsc.public_bytes(Encoding.DER)), country="VN", source="national")],
        cscas=[("VN", csca)],
    )


def signed_trust_list(payload: bytes) -> bytes:
    """A national trust list whose payload is ``payload``, validly signed by the fixture's list key."""
    fx = fixture()
    signature = fx.trust_signer.sign(cose.sig_structure_for(fx.trust_protected, payload))
    return cose.encode_sign1(fx.trust_protected, payload, signature)


def signed_claims(payload: bytes) -> str:
    """An HC1 whose CWT claims are ``payload``, validly signed by the trusted test DSC."""
    signer = fixture().signer
    protected = cose.encode_protected(int(signer.algorithm), signer.kid)
    signature = signer.sign(cose.sig_structure_for(protected, payload))
    return wrap_cose(cose.encode_sign1(protected, payload, signature))


def wrap_cose(message: bytes) -> str:
    return prefix.add_prefix(base45.b45encode(compress.compress(message)))


def _verify(data: str | bytes) -> None:
    result = verify(data, fixture().store, now=NOW)
    if not isinstance(result, VerificationResult):
        raise FuzzFinding(f"verify() returned {type(result).__name__}")


def _typed(call: Callable[[], object]) -> None:
    """Run ``call``; a VaxcredError is an allowed outcome, any other exception propagates (a finding)."""
    with contextlib.suppress(VaxcredError):
        call()


# --- targets: each takes the fuzzer's bytes ------------------------------------------------------------


def target_verify(data: bytes) -> None:
    if data[:3] == b"\xff\xd8\xff" or data[:8] == b"\x89PNG\r\n\x1a\n":
        return  # image decoding: bench_hostile and the QR tests (Pillow and zxing are not instrumented)
    _verify(data)


def target_hc1_cose(data: bytes) -> None:
    _verify(wrap_cose(data))


def target_hc1_claims(data: bytes) -> None:
    _verify(signed_claims(data))


def target_base45(data: bytes) -> None:
    text = data.decode("latin-1")
    try:
        decoded = base45.b45decode(text)
    except VaxcredError:
        return
    if base45.b45encode(decoded) != text:  # a strict decoder accepts exactly one spelling of each value
        raise FuzzFinding(f"Base45 {text!r} decodes, but re-encodes differently")


def target_zlib(data: bytes) -> None:
    try:
        inflated = compress.decompress(data)
    except VaxcredError:
        return
    if len(inflated) > compress.MAX_INFLATED:
        raise FuzzFinding(f"inflated to {len(inflated)} bytes, more than MAX_INFLATED")


def target_cbor(data: bytes) -> None:
    _typed(lambda: cbor.loads(data))


def target_cose(data: bytes) -> None:
    _typed(lambda: cose.decode_sign1(data))


def target_cwt(data: bytes) -> None:
    _typed(lambda: cwt.decode_claims(data))


def target_trust_gateway(data: bytes) -> None:
    # authenticated loading (the only kind a verifier should use): parsing, entry checks, CMS signatures
    anchor = fixture().trust_anchor
    _typed(lambda: load_gateway_trust_list(data, environment=Environment.TST, anchors=[anchor], now=NOW))


def _load_national(data: bytes) -> TrustStore:
    fx = fixture()
    return load_signed_trust_list(data, anchor=fx.trust_anchor, environment=Environment.TST, now=NOW)


def target_trust_signed(data: bytes) -> None:
    _typed(lambda: _load_national(data))


def target_trust_signed_payload(data: bytes) -> None:
    _typed(lambda: _load_national(signed_trust_list(data)))


def target_x509_dsc(data: bytes) -> None:
    _typed(lambda: parse_dsc(data))


def target_revocation_batch(data: bytes) -> None:
    _typed(lambda: RevocationBatch.from_json(data))


def _certlogic(data: bytes) -> None:
    document = parse_json(data)
    if isinstance(document, list) and len(document) == 2:
        to_json_value(evaluate(document[0], document[1]))


def target_certlogic(data: bytes) -> None:
    _typed(lambda: _certlogic(data))


def target_rules_gateway(data: bytes) -> None:
    _typed(lambda: RuleSet.from_json(data))


TARGETS: dict[str, Callable[[bytes], None]] = {
    "verify": target_verify,
    "hc1_cose": target_hc1_cose,
    "hc1_claims": target_hc1_claims,
    "base45": target_base45,
    "zlib": target_zlib,
    "cbor": target_cbor,
    "cose": target_cose,
    "cwt": target_cwt,
    "trust_gateway": target_trust_gateway,
    "trust_signed": target_trust_signed,
    "trust_signed_payload": target_trust_signed_payload,
    "x509_dsc": target_x509_dsc,
    "revocation_batch": target_revocation_batch,
    "certlogic": target_certlogic,
    "rules_gateway": target_rules_gateway,
}
