"""COSE_Sign1 (RFC 9052 §4.2) structure: decode, Sig_structure, encode.  No keys, no signatures here.

Decoding (DCC.md §1, §9; SECURITY.md pitfalls 4, 8):

- the envelope is an untagged array, tag 18, or CWT tag 61 around tag 18; any other tag fails
  (``cose.bad_tag``); the array has exactly 4 items (``cose.bad_structure``);
- ``protected`` is a bstr: empty means ``{}``, otherwise its content must decode, strictly, to a map
  (``A0`` inside the bstr occurs and is accepted); the bytes are kept *exactly as received* for the
  Sig_structure, which is never rebuilt from decoded maps;
- ``unprotected`` is a map; ``crit`` (2) there fails (``cose.crit_unprotected``); ``crit`` in the
  protected header must be a non-empty array of labels that are present and that we understand;
- the payload is a bstr (nil, a detached payload, fails: ``cose.no_payload``); the signature a bstr;
- ``alg`` and ``kid``: protected wins, else unprotected; unknown labels (e.g. content type 3) are ignored.
  A missing ``alg`` is not a decode error (``alg`` is ``None``; verify fails the ``cose`` step).
  An ``alg`` that is not an integer fails (``cose.bad_alg``).  A ``kid`` that is not a bstr is not a
  decode error either: ``kid`` is ``None`` and ``kid_malformed`` is set, because DCC.md makes a kid
  that is not an 8-byte bstr fail the ``kid`` step, not ``cose``.

CBOR-level problems raise :class:`~vaxcred.errors.CborError`, COSE-level ones
:class:`~vaxcred.errors.CoseError`; both are :class:`~vaxcred.errors.DecodeError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum
from types import MappingProxyType
from typing import Final

from vaxcred.codec.cbor import Tagged, dumps, encode_head, loads
from vaxcred.errors import CborError, CoseError
from vaxcred.text import clip

__all__ = [
    "COSE_SIGN1_TAG",
    "CWT_TAG",
    "Algorithm",
    "HeaderLabel",
    "Sign1Message",
    "decode_sign1",
    "encode_protected",
    "encode_sign1",
    "sig_structure",
    "sig_structure_for",
]

COSE_SIGN1_TAG: Final = 18
CWT_TAG: Final = 61


class Algorithm(IntEnum):
    """COSE algorithms vaxcred signs and verifies with (IANA COSE Algorithms)."""

    ES256 = -7
    PS256 = -37


class HeaderLabel(IntEnum):
    """COSE common header parameters (RFC 9052 §3.1)."""

    ALG = 1
    CRIT = 2
    CONTENT_TYPE = 3
    KID = 4


#: Labels this library understands, so a ``crit`` header may list them.
_UNDERSTOOD: Final = frozenset({HeaderLabel.ALG, HeaderLabel.CONTENT_TYPE, HeaderLabel.KID})
_EMPTY: Final[Mapping[int | str, object]] = MappingProxyType({})


@dataclass(frozen=True, slots=True, kw_only=True)
class Sign1Message:
    """A decoded COSE_Sign1; ``protected_bytes`` and ``payload`` are the bytes as received.

    ``alg`` and ``kid`` come from the protected header if present there, else from the unprotected one.
    ``kid`` is any bstr (its 8-byte length is checked by the ``kid`` step); ``kid_malformed`` is set when
    a kid header is present but is not a bstr (``kid`` is then ``None``).
    """

    protected_bytes: bytes
    protected: Mapping[int | str, object]
    unprotected: Mapping[int | str, object]
    payload: bytes
    signature: bytes
    alg: int | None
    kid: bytes | None
    kid_in_protected: bool
    kid_malformed: bool = False


def decode_sign1(data: bytes) -> Sign1Message:
    """Decode a COSE_Sign1 (untagged, tag 18, or tag 61 around tag 18); see the module documentation."""
    item = loads(data)
    if isinstance(item, Tagged) and item.tag == CWT_TAG:
        item = item.value
        if not isinstance(item, Tagged):
            raise CoseError("CWT tag 61 does not wrap a COSE_Sign1 (tag 18)", code="cose.bad_tag")
    if isinstance(item, Tagged):
        if item.tag != COSE_SIGN1_TAG:
            raise CoseError(f"tag {item.tag} is not a COSE_Sign1 tag (18)", code="cose.bad_tag")
        item = item.value
        if isinstance(item, Tagged):
            raise CoseError(f"unexpected tag {item.tag} inside tag 18", code="cose.bad_tag")
    if not isinstance(item, list) or len(item) != 4:
        raise CoseError("COSE_Sign1 must be an array of 4 items", code="cose.bad_structure")
    protected_bytes, unprotected, payload, signature = item
    if not isinstance(protected_bytes, bytes):
        raise CoseError("protected header is not a byte string", code="cose.bad_protected")
    protected = _PROTECTED_SEEN.get(protected_bytes)
    seen = protected is not None
    if protected is None:
        protected = _decode_protected(protected_bytes)
    if not isinstance(unprotected, dict):
        raise CoseError("unprotected header is not a map", code="cose.bad_unprotected")
    if payload is None:
        raise CoseError("detached payloads are not supported", code="cose.no_payload")
    if not isinstance(payload, bytes):
        raise CoseError("payload is not a byte string", code="cose.bad_payload")
    if not isinstance(signature, bytes):
        raise CoseError("signature is not a byte string", code="cose.bad_signature")
    if _CRIT in unprotected:
        raise CoseError("'crit' must not be in the unprotected header", code="cose.crit_unprotected")
    if not seen:
        if _CRIT in protected:
            _check_crit(protected)
        if (
            protected
            and len(protected_bytes) <= _PROTECTED_SEEN_BYTES
            and len(_PROTECTED_SEEN) < _PROTECTED_SEEN_MAX
            and all(type(v) in _IMMUTABLE for v in protected.values())  # shared: nothing to mutate
        ):
            _PROTECTED_SEEN[protected_bytes] = protected

    alg_header = protected if _ALG in protected else unprotected
    alg: int | None = None
    if _ALG in alg_header:
        value = alg_header[_ALG]
        if type(value) is not int:
            raise CoseError("'alg' is not an integer", code="cose.bad_alg")
        alg = value

    kid_in_protected = _KID in protected
    kid_header = protected if kid_in_protected else unprotected
    raw_kid = kid_header.get(_KID)
    kid = raw_kid if isinstance(raw_kid, bytes) else None
    return Sign1Message(
        protected_bytes=protected_bytes,
        protected=MappingProxyType(protected) if protected else _EMPTY,
        unprotected=MappingProxyType(unprotected) if unprotected else _EMPTY,
        payload=payload,
        signature=signature,
        alg=alg,
        kid=kid,
        kid_in_protected=kid_in_protected,
        kid_malformed=_KID in kid_header and kid is None,
    )


# plain ints: IntEnum member access and hashing cost more on the verify hot path
_ALG: Final = int(HeaderLabel.ALG)
_CRIT: Final = int(HeaderLabel.CRIT)
_KID: Final = int(HeaderLabel.KID)


#: decoded protected headers by their bytes: a verifier sees the same few (one per DSC) over and over.
#: Only small headers that decoded and passed ``_check_crit`` are kept (decoding is deterministic, so a
#: hit decides exactly as a fresh decode would); the dicts are never handed out mutable (Sign1Message
#: wraps them in a MappingProxyType).  Input can fill the cache, never change what it holds.
_PROTECTED_SEEN: dict[bytes, dict[int | str, object]] = {}
_PROTECTED_SEEN_MAX: Final = 1024
_IMMUTABLE: Final = frozenset({int, str, bytes, bool, type(None)})
_PROTECTED_SEEN_BYTES: Final = 64  # ours are 13-14 bytes; bounds the cache's memory at 64 KiB of keys


def _decode_protected(protected_bytes: bytes) -> dict[int | str, object]:
    if not protected_bytes:
        return {}
    try:
        header = loads(protected_bytes)
    except CborError as e:
        raise CoseError(f"protected header is not valid CBOR ({e.code})", code="cose.bad_protected") from e
    if not isinstance(header, dict):
        raise CoseError("protected header is not a map", code="cose.bad_protected")
    return header  # keys are int or str: the strict decoder allows no others


def _check_crit(protected: Mapping[int | str, object]) -> None:
    crit = protected[HeaderLabel.CRIT]
    if not isinstance(crit, list) or not crit:
        raise CoseError("'crit' is not a non-empty array of labels", code="cose.bad_crit")
    for label in crit:
        if type(label) is not int or label not in _UNDERSTOOD:
            raise CoseError(f"critical header {clip(label)} is not understood", code="cose.crit_unknown")
        if label not in protected:
            raise CoseError(
                f"critical header {clip(label)} is not in the protected header", code="cose.bad_crit"
            )


def _bstr_header(length: int) -> bytes:
    return encode_head(2, length)


_SIG1_PREFIX: Final = b"\x84\x6aSignature1"


def sig_structure_for(protected_bytes: bytes, payload: bytes) -> bytes:
    """``["Signature1", protected, h'', payload]`` (RFC 9052 §4.4) written from the given bytes."""
    return b"".join(
        (
            _SIG1_PREFIX,
            _bstr_header(len(protected_bytes)),
            protected_bytes,
            b"\x40",
            _bstr_header(len(payload)),
            payload,
        )
    )


def sig_structure(msg: Sign1Message) -> bytes:
    """The bytes signed for ``msg``: its protected header and payload exactly as received."""
    return sig_structure_for(msg.protected_bytes, msg.payload)


def encode_protected(alg: int, kid: bytes) -> bytes:
    """Encode the protected header ``{1: alg, 4: kid}`` deterministically (``A2 01 26 04 48 …`` for ES256)."""
    if type(alg) is not int and not isinstance(alg, IntEnum):
        raise TypeError("alg must be an int")
    if not isinstance(kid, bytes):
        raise TypeError("kid must be bytes")
    alg = int(alg)
    if not -(2**64) <= alg < 2**64:  # a bignum: not a COSE algorithm, but encode it as before
        return dumps({int(HeaderLabel.ALG): alg, int(HeaderLabel.KID): kid})
    # by hand, byte-identical to dumps({1: alg, 4: kid}) (keys 01 < 04)
    return b"".join(
        (
            _PROTECTED_HEAD,
            encode_head(0, alg) if alg >= 0 else encode_head(1, -1 - alg),
            _KID_KEY,
            _bstr_header(len(kid)),
            kid,
        )
    )


_PROTECTED_HEAD: Final = encode_head(5, 2) + encode_head(0, HeaderLabel.ALG.value)
_KID_KEY: Final = encode_head(0, HeaderLabel.KID.value)


def encode_sign1(protected_bytes: bytes, payload: bytes, signature: bytes) -> bytes:
    """Encode a tagged COSE_Sign1 (``D2 84 …``) with an empty unprotected header (``A0``)."""
    for name, value in (("protected_bytes", protected_bytes), ("payload", payload), ("signature", signature)):
        if not isinstance(value, bytes):
            raise TypeError(f"{name} must be bytes")
    # Written by hand (the layout is fixed): byte-identical to
    # dumps(Tagged(COSE_SIGN1_TAG, [protected_bytes, {}, payload, signature])), a fraction of the cost.
    return b"".join(
        (
            _SIGN1_HEAD,
            _bstr_header(len(protected_bytes)),
            protected_bytes,
            b"\xa0",
            _bstr_header(len(payload)),
            payload,
            _bstr_header(len(signature)),
            signature,
        )
    )


_SIGN1_HEAD: Final = encode_head(6, COSE_SIGN1_TAG) + encode_head(4, 4)
