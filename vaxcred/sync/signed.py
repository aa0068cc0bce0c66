"""Documents signed by the ministry's trust-list key, other than the trust list itself (the sync index).

Same envelope as the national trust list (:mod:`vaxcred.trust.signed`): a COSE_Sign1 whose protected
header holds ``alg`` (from the key type), a ``content type`` naming the document kind, ``kid`` (SHA-256 of
the signing certificate, first 8 bytes) and ``x5chain`` (that certificate); the unprotected header is
empty.  The content type keeps the kinds apart: a trust list is never accepted as an index, nor the
reverse.  The signing certificate must carry ``TRUST_LIST_EKU``, allow digital signatures and be the
pinned anchor or be issued by it, valid at ``now``.

Failures raise :class:`~vaxcred.errors.SyncError`: ``sync.malformed``, ``sync.wrong_purpose``,
``sync.kid_mismatch``, ``sync.untrusted_signer``, ``sync.bad_signature``.  Pure.

Seam: :mod:`vaxcred.trust.signed` holds the same signer checks privately; once both land, they can share
one public helper there.
"""

from __future__ import annotations

from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from vaxcred.codec import cbor, cose
from vaxcred.crypto import Signer, kid_for, verify_signature
from vaxcred.errors import ChainError, DecodeError, SignatureError, SyncError
from vaxcred.oids import TRUST_LIST_EKU
from vaxcred.trust.chain import check_issued_by
from vaxcred.trust.store import require_utc
from vaxcred.x509util import load_untrusted_certificate

__all__ = ["sign_document", "verify_document"]

_ALG = int(cose.HeaderLabel.ALG)
_CONTENT_TYPE = int(cose.HeaderLabel.CONTENT_TYPE)
_KID = int(cose.HeaderLabel.KID)
_X5CHAIN = 33
_LABELS = frozenset({_ALG, _CONTENT_TYPE, _KID, _X5CHAIN})


def _may_sign_lists(cert: x509.Certificate) -> bool:
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except Exception:  # absent or unreadable: not a trust-list certificate
        return False
    if TRUST_LIST_EKU not in eku:
        return False
    try:
        return bool(cert.extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature)
    except x509.ExtensionNotFound:
        return True
    except Exception:
        return False


def sign_document(payload: bytes, *, content_type: str, signer: Signer) -> bytes:
    """COSE_Sign1 over ``payload`` by the trust-list key (``signer.certificate`` must carry TRUST_LIST_EKU)."""
    certificate = signer.certificate
    if not _may_sign_lists(certificate):
        raise SyncError("the signer's certificate is not a trust-list certificate", code="sync.wrong_purpose")
    der = certificate.public_bytes(Encoding.DER)
    protected = cbor.dumps(
        {_ALG: int(signer.algorithm), _CONTENT_TYPE: content_type, _KID: kid_for(der), _X5CHAIN: der}
    )
    return cose.encode_sign1(protected, payload, signer.sign(cose.sig_structure_for(protected, payload)))


def verify_document(
    data: bytes, *, content_type: str, anchor: x509.Certificate, now: datetime, max_bytes: int
) -> bytes:
    """The payload of ``data`` once its envelope, signer and signature hold (see the module docstring)."""
    now = require_utc(now)
    if len(data) > max_bytes:
        raise SyncError(f"signed document of {len(data)} bytes exceeds {max_bytes}", code="sync.too_large")
    try:
        msg = cose.decode_sign1(bytes(data))
    except DecodeError as e:
        raise SyncError(f"not a COSE_Sign1 ({e.code})", code="sync.malformed") from e
    if msg.unprotected or set(msg.protected) - _LABELS:
        raise SyncError("unexpected COSE headers", code="sync.malformed")
    if msg.protected.get(_CONTENT_TYPE) != content_type:
        raise SyncError(f"not a {content_type} document", code="sync.wrong_purpose")
    chain = msg.protected.get(_X5CHAIN)
    if msg.alg is None or msg.kid is None or not msg.kid_in_protected or not isinstance(chain, bytes):
        raise SyncError("alg, kid and x5chain must be in the protected header", code="sync.malformed")
    try:
        signer = load_untrusted_certificate(chain)
    except (ValueError, x509.InvalidVersion) as e:  # InvalidVersion is no ValueError (found by the bit flips)
        raise SyncError("x5chain is not a certificate", code="sync.malformed") from e
    if msg.kid != kid_for(chain):
        raise SyncError("the kid is not the signing certificate's", code="sync.kid_mismatch")
    try:
        if signer == anchor:
            if not signer.not_valid_before_utc <= now <= signer.not_valid_after_utc:
                raise ChainError("the pinned certificate is not valid now", code="chain.expired")
        else:
            check_issued_by(signer, anchor, now)
    except ChainError as e:
        raise SyncError(
            f"the signer does not chain to the anchor ({e.code})", code="sync.untrusted_signer"
        ) from e
    if not _may_sign_lists(signer):
        raise SyncError("signed by a certificate without TRUST_LIST_EKU", code="sync.wrong_purpose")
    try:
        verify_signature(signer.public_key(), msg.alg, cose.sig_structure(msg), msg.signature)
    except SignatureError as e:
        raise SyncError(f"signature invalid ({e.code})", code="sync.bad_signature") from e
    return msg.payload
