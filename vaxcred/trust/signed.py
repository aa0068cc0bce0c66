"""The national trust list: a COSE_Sign1 by the ministry's trust-list key over a canonical CBOR map.

Wire format (all headers protected; the unprotected header is empty)::

    COSE_Sign1 (tag 18)
      protected   {1: alg (ES256 | PS256, from the key type), 3: CONTENT_TYPE, 4: kid, 33: x5chain}
                  kid = SHA-256(trust-list certificate DER)[:8]; x5chain (RFC 9360) = that DER
      payload     {"environment": "PROD" | "ACC" | "TST",
                   "issued_at":   int epoch seconds,
                   "sequence":    int >= 0, monotonic per environment,
                   "cscas":       [{"country": "VN", "der": h'..'}, ...],   sorted
                   "dscs":        [{"country": "VN", "der": h'..'}, ...]}   sorted

Loading (:func:`load_signed_trust_list`) checks, in order; every failure is a TrustStoreError:

- ``trust.malformed``: too large, not a COSE_Sign1, headers or payload not as above;
- ``trust.wrong_purpose``: another content type, or a signing certificate without ``TRUST_LIST_EKU``
  (a DSC, a site certificate or a CSCA cannot sign a trust list) or with a DCC purpose beside it (one
  key, one purpose);
- ``trust.kid_mismatch``: the kid is not the signing certificate's;
- ``trust.untrusted_signer``: the signing certificate does not chain to ``anchor`` at ``now``;
- ``trust.bad_signature``: the signature does not verify (one flipped bit anywhere);
- ``trust.wrong_environment``: signed for another environment;
- ``trust.issued_in_future``: ``issued_at`` after ``now``;
- ``trust.issued_before_signer``: ``issued_at`` before the signing certificate's notBefore;
- ``trust.rollback``: ``sequence`` below ``min_sequence`` (an older list replayed; the caller keeps the
  highest sequence seen in a :class:`~vaxcred.trust.RollbackState`);
- ``trust.dsc_is_ca`` / ``trust.dsc_dual_purpose``: a listed DSC is a CA or carries the trust-list
  purpose; ``trust.too_many_candidates``: more than 8 DSCs share a kid.

The payload is read only after the signature holds.  A list older than ``max_age`` still loads: the
store records ``max_age`` and :meth:`TrustStore.is_fresh` tells the verifier to answer NEEDS_CHECK
(SECURITY.md pitfall 14).  Pure: bytes, certificates and ``now`` in; no clock, no files.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from vaxcred.codec import cbor, cose
from vaxcred.crypto import Signer, kid_for, verify_signature
from vaxcred.errors import ChainError, DecodeError, SignatureError, TrustStoreError, VaxcredError
from vaxcred.oids import DCC_EKU_OIDS, TRUST_LIST_EKU
from vaxcred.trust.chain import check_issued_by
from vaxcred.trust.store import (
    Environment,
    TrustedDsc,
    TrustMode,
    TrustStore,
    dsc_problem,
    is_country,
    require_utc,
)
from vaxcred.x509util import load_untrusted_certificate, parse_dsc

__all__ = [
    "CONTENT_TYPE",
    "MAX_SIGNED_LIST_BYTES",
    "load_signed_trust_list",
    "sign_trust_list",
]

#: COSE content type (label 3) of a vaxcred national trust list: keeps it apart from any other COSE object
CONTENT_TYPE: Final = "application/vnd.vaxcred.trust-list+cbor"
MAX_SIGNED_LIST_BYTES: Final = 50 * 1024 * 1024
MAX_SIGNED_LIST_ENTRIES: Final = 100_000
#: COSE header label x5chain (RFC 9360)
X5CHAIN: Final = 33

_ALG = int(cose.HeaderLabel.ALG)
_CONTENT_TYPE = int(cose.HeaderLabel.CONTENT_TYPE)
_KID = int(cose.HeaderLabel.KID)
_PROTECTED_LABELS = frozenset({_ALG, _CONTENT_TYPE, _KID, X5CHAIN})
_PAYLOAD_KEYS = frozenset({"environment", "issued_at", "sequence", "cscas", "dscs"})
_ENTRY_KEYS = frozenset({"country", "der"})
_SOURCE = "signed_list"


def _malformed(message: str) -> TrustStoreError:
    return TrustStoreError(message, code="trust.malformed")


def _check_sequence(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative int")
    return value


def _has_trust_list_eku(cert: x509.Certificate) -> bool:
    """TRUST_LIST_EKU present and no DCC purpose beside it (one key, one purpose)."""
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except Exception:  # absent or unreadable: not a trust-list certificate
        return False
    dcc = {oid.dotted_string for oid in eku} & DCC_EKU_OIDS
    return TRUST_LIST_EKU in eku and not dcc


def _may_sign(cert: x509.Certificate) -> bool:
    try:
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return True
    except Exception:
        return False
    return ku.digital_signature


# --- signing -------------------------------------------------------------------------------------------


def _entries(pairs: list[tuple[str, bytes]]) -> list[dict[str, object]]:
    return [{"country": country, "der": der} for country, der in sorted(pairs)]


def sign_trust_list(store: TrustStore, *, signer: Signer, issued_at: datetime, sequence: int) -> bytes:
    """Sign ``store`` as a national trust list (see the module docstring for the format).

    ``signer.certificate`` must carry ``TRUST_LIST_EKU`` (else TrustStoreError ``trust.wrong_purpose``);
    every DSC must be filed under a country (ValueError otherwise).  ``issued_at`` (aware) is truncated
    to whole seconds; ``sequence`` must grow with every list the ministry publishes.
    """
    issued_at = require_utc(issued_at, "issued_at")
    sequence = _check_sequence(sequence, "sequence")
    certificate = signer.certificate
    if not _has_trust_list_eku(certificate) or not _may_sign(certificate):
        raise TrustStoreError(
            "the signer's certificate is not a trust-list certificate (TRUST_LIST_EKU)",
            code="trust.wrong_purpose",
        )
    for dsc in store.all_dscs():
        if not dsc.country:
            raise ValueError(f"DSC {dsc.info.kid.hex()} has no country: a national list needs one")
    payload = cbor.dumps(
        {
            "environment": store.environment.value,
            "issued_at": int(issued_at.timestamp()),
            "sequence": sequence,
            "cscas": _entries([(c, cert.public_bytes(Encoding.DER)) for c, cert in store.all_cscas()]),
            "dscs": _entries([(dsc.country, dsc.info.der) for dsc in store.all_dscs()]),
        }
    )
    cert_der = certificate.public_bytes(Encoding.DER)
    protected = cbor.dumps(
        {
            _ALG: int(signer.algorithm),
            _CONTENT_TYPE: CONTENT_TYPE,
            _KID: kid_for(cert_der),
            X5CHAIN: cert_der,
        }
    )
    signature = signer.sign(cose.sig_structure_for(protected, payload))
    return cose.encode_sign1(protected, payload, signature)


# --- loading -------------------------------------------------------------------------------------------


def _decode(data: bytes) -> cose.Sign1Message:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError("a signed trust list must be bytes")
    raw = bytes(data)
    if len(raw) > MAX_SIGNED_LIST_BYTES:
        raise _malformed(f"signed trust list of {len(raw)} bytes exceeds {MAX_SIGNED_LIST_BYTES}")
    try:
        msg = cose.decode_sign1(raw)
    except DecodeError as e:
        raise _malformed(f"not a COSE_Sign1 ({e.code}: {e.message})") from e
    if msg.unprotected:
        raise _malformed("the unprotected header must be empty")
    unknown = set(msg.protected) - _PROTECTED_LABELS
    if unknown:
        raise _malformed(f"unexpected protected header labels {sorted(map(str, unknown))}")
    if msg.protected.get(_CONTENT_TYPE) != CONTENT_TYPE:
        raise TrustStoreError("not a vaxcred trust list (COSE content type)", code="trust.wrong_purpose")
    if msg.alg is None or _ALG not in msg.protected:
        raise _malformed("no algorithm in the protected header")
    if msg.kid is None or not msg.kid_in_protected:
        raise _malformed("no kid in the protected header")
    return msg


def _signing_certificate(msg: cose.Sign1Message, anchor: x509.Certificate) -> x509.Certificate:
    chain = msg.protected.get(X5CHAIN)
    if chain is None:
        return anchor  # no certificate carried: the anchor must be the trust-list certificate itself
    if not isinstance(chain, bytes):
        raise _malformed("x5chain must be one DER certificate (bstr)")
    try:
        return load_untrusted_certificate(chain)
    except (ValueError, x509.InvalidVersion) as e:
        raise _malformed(f"x5chain is not a certificate: {type(e).__name__}") from e


def _check_signer(signer: x509.Certificate, anchor: x509.Certificate, now: datetime) -> None:
    try:
        if signer == anchor:
            # pinned trust-list certificate: only its own validity is left to check
            if not signer.not_valid_before_utc <= now <= signer.not_valid_after_utc:
                raise ChainError("the pinned trust-list certificate is not valid now", code="chain.expired")
        else:
            check_issued_by(signer, anchor, now)
    except ChainError as e:
        raise TrustStoreError(
            f"the trust-list certificate does not chain to the anchor ({e.code}: {e.message})",
            code="trust.untrusted_signer",
        ) from e


def _entry_list(payload: Mapping[object, object], key: str) -> list[tuple[str, bytes]]:
    items = payload[key]
    if not isinstance(items, list):
        raise _malformed(f"{key} must be an array")
    if len(items) > MAX_SIGNED_LIST_ENTRIES:
        raise _malformed(f"{key} has more than {MAX_SIGNED_LIST_ENTRIES} entries")
    result = []
    for item in items:
        if not isinstance(item, dict) or set(item) != _ENTRY_KEYS:
            raise _malformed(f"{key} entries must be maps with exactly 'country' and 'der'")
        country, der = item["country"], item["der"]
        if not is_country(country) or not isinstance(der, bytes):
            raise _malformed(f"bad {key} entry: country must be alpha-2 text, der a byte string")
        result.append((country, der))
    return result


def load_signed_trust_list(
    data: bytes,
    *,
    anchor: x509.Certificate,
    environment: Environment,
    now: datetime,
    min_sequence: int | None = None,
    max_age: timedelta | None = None,
) -> TrustStore:
    """Verify and load a national trust list (checks and codes in the module docstring).

    ``anchor`` is the pinned CSCA that issued the trust-list certificate carried in the list, or the
    trust-list certificate itself.  ``min_sequence`` is the sequence of the last list accepted (equal is
    allowed: the same list again).  ``max_age`` is recorded on the store for :meth:`TrustStore.is_fresh`.
    """
    if not isinstance(anchor, x509.Certificate):
        raise TypeError("anchor must be an x509.Certificate")
    if not isinstance(environment, Environment):
        raise TypeError("environment must be an Environment")
    now = require_utc(now)
    if min_sequence is not None:
        _check_sequence(min_sequence, "min_sequence")

    # (1) envelope and headers; (2) the signing certificate, its anchor and purpose; (3) the signature
    msg = _decode(data)
    signer = _signing_certificate(msg, anchor)
    if msg.kid != kid_for(signer.public_bytes(Encoding.DER)):
        raise TrustStoreError("the kid is not the trust-list certificate's", code="trust.kid_mismatch")
    _check_signer(signer, anchor, now)
    if not _has_trust_list_eku(signer) or not _may_sign(signer):
        raise TrustStoreError(
            "the list is signed by a certificate without TRUST_LIST_EKU (a DSC, site or CA key?)",
            code="trust.wrong_purpose",
        )
    alg = msg.alg
    if alg is None:  # already refused by _decode; keeps the type checker informed
        raise _malformed("no algorithm in the protected header")
    try:
        verify_signature(signer.public_key(), alg, cose.sig_structure(msg), msg.signature)
    except SignatureError as e:
        raise TrustStoreError(f"trust list signature invalid ({e.code})", code="trust.bad_signature") from e

    # (4) the signed payload
    try:
        payload = cbor.loads(msg.payload)
    except DecodeError as e:
        raise _malformed(f"payload is not strict CBOR ({e.code})") from e
    if not isinstance(payload, dict) or set(payload) != _PAYLOAD_KEYS:
        raise _malformed(f"payload must be a map with exactly {sorted(_PAYLOAD_KEYS)}")
    env_value, issued_value, sequence = payload["environment"], payload["issued_at"], payload["sequence"]
    if not isinstance(env_value, str) or env_value not in Environment.__members__:
        raise _malformed("environment must be PROD, ACC or TST")
    if isinstance(issued_value, bool) or not isinstance(issued_value, int) or issued_value < 0:
        raise _malformed("issued_at must be a non-negative integer")
    if isinstance(sequence, bool) or not isinstance(sequence, int) or sequence < 0:
        raise _malformed("sequence must be a non-negative integer")
    try:
        issued_at = datetime.fromtimestamp(issued_value, tz=UTC)
    except (OverflowError, OSError, ValueError) as e:
        raise _malformed(f"issued_at out of range: {e}") from e
    cscas = _entry_list(payload, "cscas")
    dscs = _entry_list(payload, "dscs")

    # (5) environment, time, rollback
    if Environment(env_value) is not environment:
        raise TrustStoreError(
            f"trust list is for {env_value}, {environment.value} required", code="trust.wrong_environment"
        )
    if issued_at > now:
        raise TrustStoreError(
            f"trust list issued in the future ({issued_at.isoformat()})", code="trust.issued_in_future"
        )
    if issued_at < signer.not_valid_before_utc.replace(microsecond=0):
        raise TrustStoreError(
            "trust list issued before its signing certificate was valid", code="trust.issued_before_signer"
        )
    if min_sequence is not None and sequence < min_sequence:
        raise TrustStoreError(
            f"trust list sequence {sequence} is older than the last accepted {min_sequence}",
            code="trust.rollback",
        )

    # (6) the certificates: a DSC that is a CA or carries the trust-list purpose refuses the whole list
    try:
        csca_certs = [(country, x509.load_der_x509_certificate(der)) for country, der in cscas]
        infos = [(country, parse_dsc(der)) for country, der in dscs]
    except (VaxcredError, ValueError, x509.InvalidVersion) as e:
        raise _malformed(f"a listed certificate does not load: {e}") from e
    for _, info in infos:
        problem = dsc_problem(info)
        if problem is not None:
            raise TrustStoreError(f"listed DSC {info.kid.hex()}: {problem[1]}", code=problem[0])
    try:
        return TrustStore.build(
            environment=environment,
            mode=TrustMode.SIGNED_LIST,
            dscs=[TrustedDsc(info=info, country=country, source=_SOURCE) for country, info in infos],
            cscas=csca_certs,
            issued_at=issued_at,
            sequence=sequence,
            max_age=max_age,
        )
    except ValueError as e:  # more DSCs for one kid than a store holds
        raise TrustStoreError(str(e), code="trust.too_many_candidates") from e
