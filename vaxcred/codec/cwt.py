"""CWT claims (RFC 8392) of an HC1 payload: ``{1: iss, 4: exp, 6: iat, -260: {1: DCC}}`` (DCC.md §1, §9).

Decoding rules:

- the payload is strict CBOR (:func:`vaxcred.codec.cbor.loads`) and must be a map (``cose.claims_invalid``);
- ``iat`` (6) and ``exp`` (4) are required (``cose.missing_iat`` / ``cose.missing_exp``); an integer, or a
  finite non-negative float floored to an integer (RFC 8392 §2 allows floats; SDKs were patched to accept
  them).  Anything else — tags, text, NaN, negative numbers, instants from the year 10000 on
  (:data:`MAX_TIME`, where Python's ``datetime`` ends) — fails with ``cose.bad_time`` before any ``datetime``
  could be built from it;
- ``iss`` (1) is optional and informational; when present it must be text (``cose.bad_iss``): RFC 8392
  defines it as a StringOrURI, and a non-text ``iss`` means a malformed CWT;
- ``hcert`` (-260) must be a map whose key 1 (``eu_dcc_v1``) is a map: the DCC (``cose.missing_hcert``,
  ``cose.bad_hcert``);
- the DCC is returned JSON-like (``dict`` with ``str`` keys, ``list``, ``str``, ``int``, ``float``, ``bool``,
  ``None``): date-times tagged 0 (or 1004 from some libraries) keep their text; any other tag, byte
  strings and non-text keys fail with ``cose.bad_dcc``.  Whether the values make sense is the schema's job.

Claim values other than these are ignored.  Unknown claims are ignored.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Final

from vaxcred.codec.cbor import Tagged, dumps_json, encode_head, encode_text, loads
from vaxcred.codec.vaccination_cbor import vaccination_cbor
from vaxcred.errors import ClaimsError
from vaxcred.text import clip

__all__ = ["MAX_TIME", "CWTClaim", "Claims", "HCertKey", "decode_claims", "encode_claims"]

#: Exclusive upper bound for ``iat`` / ``exp``: 10000-01-01T00:00:00Z, the first instant ``datetime`` cannot
#: hold (a validly signed ``exp`` beyond it once made verify() raise after the signature step).
MAX_TIME: Final = 253_402_300_800

#: Tags whose text content is kept as the DCC value: 0 (RFC 3339 date-time), 1004 (RFC 8943 full-date).
_TEXT_DATE_TAGS: Final = frozenset({0, 1004})


class CWTClaim(IntEnum):
    """CWT claim keys used by HC1 (RFC 8392 §3.1; hcert spec §3.3.2)."""

    ISS = 1
    EXP = 4
    IAT = 6
    HCERT = -260


class HCertKey(IntEnum):
    """Keys of the ``hcert`` claim map."""

    EU_DCC_V1 = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class Claims:
    """The CWT claims of an HC1 payload; ``dcc`` is the JSON-like EU DCC."""

    iss: str | None
    iat: int
    exp: int
    dcc: Mapping[str, Any]


def decode_claims(payload: bytes) -> Claims:
    """Decode the CWT claims of a COSE_Sign1 payload; see the module documentation.

    Raises :class:`~vaxcred.errors.ClaimsError` (or :class:`~vaxcred.errors.CborError` for bytes that
    are not strict CBOR).
    """
    claims = loads(payload)
    if not isinstance(claims, dict):
        raise ClaimsError("CWT claims are not a map", code="cose.claims_invalid")

    iss: str | None = None
    if _ISS in claims:
        value = claims[_ISS]
        if not isinstance(value, str):
            raise ClaimsError("'iss' is not a text string", code="cose.bad_iss")
        iss = value
    iat = _numeric_date(claims, CWTClaim.IAT, "cose.missing_iat")
    exp = _numeric_date(claims, CWTClaim.EXP, "cose.missing_exp")

    if _HCERT not in claims:
        raise ClaimsError("'hcert' claim (-260) is missing", code="cose.missing_hcert")
    hcert = claims[_HCERT]
    if not isinstance(hcert, dict):
        raise ClaimsError("'hcert' claim is not a map", code="cose.bad_hcert")
    if _EU_DCC_V1 not in hcert:
        raise ClaimsError("'hcert' has no 'eu_dcc_v1' (1) entry", code="cose.missing_hcert")
    dcc = hcert[_EU_DCC_V1]
    if not isinstance(dcc, dict):
        raise ClaimsError("'eu_dcc_v1' is not a map", code="cose.bad_hcert")
    return Claims(iss=iss, iat=iat, exp=exp, dcc=_json_object(dcc))


# plain ints: IntEnum member access and hashing cost more on the verify hot path
_ISS: Final = int(CWTClaim.ISS)
_HCERT: Final = int(CWTClaim.HCERT)
_EU_DCC_V1: Final = int(HCertKey.EU_DCC_V1)


def _numeric_date(claims: Mapping[object, object], key: CWTClaim, missing_code: str) -> int:
    label = _LABELS[key]
    if label not in claims:
        raise ClaimsError(f"'{key.name.lower()}' claim ({label}) is missing", code=missing_code)
    value = claims[label]
    if type(value) is int:
        seconds = value
    elif type(value) is float and math.isfinite(value) and value >= 0:
        seconds = math.floor(value)
    else:
        raise ClaimsError(
            f"'{key.name.lower()}' is not a non-negative number of seconds", code="cose.bad_time"
        )
    if not 0 <= seconds < MAX_TIME:
        raise ClaimsError(f"'{key.name.lower()}' = {seconds} is out of range", code="cose.bad_time")
    return seconds


_LABELS: Final = {CWTClaim.IAT: int(CWTClaim.IAT), CWTClaim.EXP: int(CWTClaim.EXP)}


_SCALARS: Final = frozenset({str, int, float, bool, type(None)})


def _json_object(obj: dict[Any, Any]) -> dict[str, Any]:
    """Check ``obj`` (freshly decoded, so ours to change) is JSON-like; unwrap text date tags in place."""
    scalars = _SCALARS
    for key, value in obj.items():
        if type(key) is not str:
            raise ClaimsError(f"DCC map key {clip(key)} is not text", code="cose.bad_dcc")
        if type(value) not in scalars:
            obj[key] = _json_value(value)
    return obj


def _json_value(value: object) -> Any:
    # Depth is bounded by the CBOR decoder's max_depth, so this recursion is bounded too.
    if isinstance(value, dict):
        return _json_object(value)
    if isinstance(value, list):
        scalars = _SCALARS
        for i, item in enumerate(value):
            if type(item) not in scalars:
                value[i] = _json_value(item)
        return value
    if isinstance(value, Tagged):
        if value.tag in _TEXT_DATE_TAGS and type(value.value) is str:
            return value.value
        raise ClaimsError(f"tag {value.tag} is not allowed in the DCC", code="cose.bad_dcc")
    raise ClaimsError(f"{type(value).__name__} values are not allowed in the DCC", code="cose.bad_dcc")


def encode_claims(*, iss: str | None, iat: int, exp: int, dcc: Mapping[str, Any]) -> bytes:
    """Encode ``{1: iss, 4: exp, 6: iat, -260: {1: dcc}}`` deterministically (``iss`` omitted if ``None``)."""
    for name, value in (("iat", iat), ("exp", exp)):
        if type(value) is not int:
            raise TypeError(f"{name} must be an int")
        if not 0 <= value < MAX_TIME:
            raise ValueError(f"{name} = {value} is out of range")
    if iss is not None and not isinstance(iss, str):
        raise TypeError("iss must be a str or None")
    # The outer layout is fixed, so it is written by hand, byte-identical to the deterministic encoding of
    # {1: iss, 4: exp, 6: iat, -260: {1: dcc}} (keys 01 < 04 < 06 < 39 01 03); only the DCC goes through
    # the encoder (a vaccination in vaxcred's own layout through its one-pass writer: the same bytes).
    encoded = vaccination_cbor(dcc)
    if encoded is None:
        encoded = dumps_json(dcc if type(dcc) is dict else dict(dcc))
    return b"".join(
        (
            _MAP3 if iss is None else _MAP4 + _ISS_KEY + encode_text(iss),
            _EXP_KEY,
            encode_head(0, exp),
            _IAT_KEY,
            encode_head(0, iat),
            _HCERT_KEY_MAP1_DCC_KEY,
            encoded,
        )
    )


_MAP3: Final = encode_head(5, 3)
_MAP4: Final = encode_head(5, 4)
_ISS_KEY: Final = encode_head(0, CWTClaim.ISS.value)
_EXP_KEY: Final = encode_head(0, CWTClaim.EXP.value)
_IAT_KEY: Final = encode_head(0, CWTClaim.IAT.value)
#: -260 (major type 1, argument 259), then the one-entry hcert map and its key 1
_HCERT_KEY_MAP1_DCC_KEY: Final = (
    encode_head(1, -1 - CWTClaim.HCERT.value) + encode_head(5, 1) + encode_head(0, HCertKey.EU_DCC_V1.value)
)
