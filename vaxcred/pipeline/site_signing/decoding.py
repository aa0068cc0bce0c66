"""Strict decoding of the dose-record wire format: the COSE envelope (step (1)) and the payload (step (5) of
:func:`~vaxcred.pipeline.site_signing.record.verify_dose`) into :class:`~.claims.DoseClaims`; the general
decoder and the one-pass reader of a batch member's canonical payload.  Pure: no keys, no clock, no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from datetime import date as calendar_date
from typing import Final

from vaxcred.codec import cbor, cose
from vaxcred.errors import CborError, CoseError
from vaxcred.pipeline.records.model import MAX_DOSE_NUMBER
from vaxcred.pipeline.site_signing.certs import _SITE_ID_RE
from vaxcred.pipeline.site_signing.claims import (
    BATCH_VERSION,
    CITIZEN_HASH_LENGTH,
    CONTENT_TYPE,
    RECORD_VERSION,
    SALT_LENGTH,
    DoseClaims,
)
from vaxcred.pipeline.site_signing.encoding import (
    _FIELDS,
    _LEAF_FIELDS,
    _LEAF_START,
    _ORDERS,
    _PAYLOAD_KEYS,
    _encode_payload,
)

_DATE_RE: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_CODE_RE: Final = re.compile(r"[^\x00-\x1f\x7f]{1,80}")
_PROTECTED_LABELS: Final = frozenset(
    {cose.HeaderLabel.ALG, cose.HeaderLabel.CONTENT_TYPE, cose.HeaderLabel.KID}
)
_TAG_18: Final = b"\xd2"
#: a COSE record is small (~250 bytes; RSA-4096 signatures ~600); anything far larger is refused unread
_MAX_RECORD_BYTES: Final = 8 * 1024


def _bad_payload(message: str) -> CoseError:
    return CoseError(f"dose record payload: {message}", code="sitesign.bad_payload")


def _text(payload: Mapping[object, object], key: str, pattern: re.Pattern[str]) -> str:
    value = payload[key]
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise _bad_payload(f"{key!r} is not a valid text value")
    return value


def _bytes(payload: Mapping[object, object], key: str, length: int) -> bytes:
    value = payload[key]
    if not isinstance(value, bytes) or len(value) != length:
        raise _bad_payload(f"{key!r} is not a {length}-byte string")
    return value


def _integer(payload: Mapping[object, object], key: str, low: int, high: int) -> int:
    value = payload[key]
    if type(value) is not int or not low <= value <= high:
        raise _bad_payload(f"{key!r} is not an integer {low}-{high}")
    return value


def _decode_payload(raw: bytes, kid: bytes) -> DoseClaims:
    """Step (5) of a v1 record: the payload signed on its own, with its signing time."""
    payload = _decode_map(raw, _FIELDS, RECORD_VERSION, what="dose record payload")
    signed = _integer(payload, "signed", 0, MAX_SIGNED)
    return _claims(payload, kid, datetime.fromtimestamp(signed, UTC))


def _decode_leaf(raw: bytes, kid: bytes, signed_at: datetime) -> DoseClaims:
    """Step (5) of a batch member: its payload (the leaf), with the signing time and kid of its verified head."""
    payload = _canonical_leaf(raw)
    if payload is None:  # not the canonical form: the general decoder says what is wrong
        payload = _decode_map(raw, _LEAF_FIELDS, BATCH_VERSION, what="batch record payload")
    return _claims(payload, kid, signed_at)


#: the keys of a member's payload after "v", in canonical order, as CBOR items
_LEAF_KEYS: Final = tuple((key, _PAYLOAD_KEYS[key]) for key in _ORDERS[_LEAF_FIELDS] if key != "v")


def _canonical_leaf(raw: bytes) -> dict[object, object] | None:
    """The map of a member's payload when ``raw`` is exactly the canonical encoding of a version-2 map of the
    leaf fields with unsigned-integer, text or byte-string values (what ``_decode_map`` would return for it),
    else ``None``. The one form accepted is read in place, in one pass, without the general decoder and the
    re-encoding it needs for the canonical check; every other input, valid or not, goes the general way."""
    if not raw.startswith(_LEAF_START):
        return None
    pos = len(_LEAF_START)
    size = len(raw)
    payload: dict[object, object] = {"v": BATCH_VERSION}
    try:
        for key, item in _LEAF_KEYS:
            if not raw.startswith(item, pos):
                return None
            pos += len(item)
            head = raw[pos]
            pos += 1
            major, n = head >> 5, head & 0x1F
            if n == 24:  # shortest form only: a one-byte argument is >= 24, a two-byte one >= 256
                n = raw[pos]
                pos += 1
                if n < 24:
                    return None
            elif n == 25:
                n = int.from_bytes(raw[pos : pos + 2], "big")
                pos += 2
                if n < 256 or pos > size:
                    return None
            elif n > 24:
                return None
            if major == 0:
                payload[key] = n
                continue
            if major != 2 and major != 3:
                return None
            end = pos + n
            if end > size:
                return None
            value = raw[pos:end]
            payload[key] = value.decode("utf-8") if major == 3 else value
            pos = end
    except (IndexError, UnicodeDecodeError):
        return None
    return payload if pos == size else None


#: the latest signing time a record may carry: 9999-12-31T23:59:59Z
MAX_SIGNED: Final = 253402300799


def _decode_map(raw: bytes, fields: frozenset[str], version: int, *, what: str) -> dict[object, object]:
    """A flat, canonical, text-keyed map with exactly ``fields``, its ``"v"`` being ``version``."""
    try:
        payload = cbor.loads(raw, max_depth=1)  # a flat map: nothing nests
    except CborError as e:
        raise _bad_payload(f"not valid CBOR ({e.code})") from e
    if not isinstance(payload, dict):
        raise _bad_payload("not a map")
    if set(payload) != fields:
        raise _bad_payload("the fields are not exactly " + ", ".join(sorted(fields)))
    if _encode_payload(payload) != raw:  # text keys: checked just above
        raise CoseError(f"{what} is not canonical CBOR", code="sitesign.not_canonical")
    if _integer(payload, "v", 0, 2**32) != version:
        raise _bad_payload(f"version {payload['v']!r} is not {version}")
    return payload


def _claims(payload: Mapping[object, object], kid: bytes, signed_at: datetime) -> DoseClaims:
    day = _text(payload, "dt", _DATE_RE)
    try:
        calendar_date.fromisoformat(day)
    except ValueError as e:
        raise _bad_payload("'dt' is not a calendar date") from e
    lot = _text(payload, "lot", _CODE_RE)
    if not lot.strip():
        raise _bad_payload("'lot' is blank")
    return DoseClaims(
        site_id=_text(payload, "site", _SITE_ID_RE),
        citizen_hash=_bytes(payload, "cid", CITIZEN_HASH_LENGTH),
        salt=_bytes(payload, "salt", SALT_LENGTH),
        mp=_text(payload, "mp", _CODE_RE),
        ma=_text(payload, "ma", _CODE_RE),
        vp=_text(payload, "vp", _CODE_RE),
        lot=lot,
        date=day,
        dose_number=_integer(payload, "dn", 1, MAX_DOSE_NUMBER),
        signed_at=signed_at,
        kid=kid,
    )


def _decode_envelope(data: bytes, content_type: str = CONTENT_TYPE) -> tuple[cose.Sign1Message, int, bytes]:
    """Step (1): a tagged COSE_Sign1 with exactly alg, ``content_type`` and kid protected, nothing unprotected."""
    if not isinstance(data, bytes):
        raise TypeError(f"a site-signed record is bytes, not {type(data).__name__}")
    if len(data) > _MAX_RECORD_BYTES:
        raise CoseError(f"record of {len(data)} bytes exceeds {_MAX_RECORD_BYTES}", code="sitesign.too_large")
    if not data.startswith(_TAG_18):
        raise CoseError("a site-signed record is a COSE_Sign1 with tag 18", code="sitesign.bad_tag")
    msg = cose.decode_sign1(data)
    if msg.unprotected:
        raise CoseError("the unprotected header must be empty", code="sitesign.bad_header")
    alg, kid = msg.alg, msg.kid
    if set(msg.protected) != _PROTECTED_LABELS or alg is None or kid is None:
        raise CoseError(
            "the protected header must hold exactly alg, content type and kid", code="sitesign.bad_header"
        )
    if msg.protected[cose.HeaderLabel.CONTENT_TYPE] != content_type:
        raise CoseError(f"content type is not {content_type}", code="sitesign.bad_content_type")
    return msg, alg, kid
