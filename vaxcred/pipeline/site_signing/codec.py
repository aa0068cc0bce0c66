"""The dose-record wire format of :mod:`vaxcred.pipeline.site_signing.record`: the COSE envelope and the payload map.

Encoding (the payload as canonical CBOR, the protected header) and strict decoding (envelope: step (1); payload:
step (5) of :func:`~vaxcred.pipeline.site_signing.record.verify_dose`), the claims a verified record yields
(:class:`DoseClaims`) and the salted citizen hash.  Pure: no keys, no clock, no I/O.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from datetime import date as calendar_date
from typing import Final

from vaxcred.codec import cbor, cose
from vaxcred.errors import CborError, CoseError
from vaxcred.pipeline.records.model import MAX_DOSE_NUMBER
from vaxcred.pipeline.site_signing.certs import _SITE_ID_RE

__all__ = [
    "BATCH_VERSION",
    "CITIZEN_HASH_LENGTH",
    "CONTENT_TYPE",
    "RECORD_VERSION",
    "SALT_LENGTH",
    "DoseClaims",
    "citizen_hash",
]

#: the COSE content type (header 3) of a site-signed dose record
CONTENT_TYPE: Final = "application/vnd.vaxcred.dose-record+cbor"
RECORD_VERSION: Final = 1
#: the version of a batch head and of its members' payloads (:mod:`vaxcred.pipeline.site_signing.batch`)
BATCH_VERSION: Final = 2
SALT_LENGTH: Final = 16
CITIZEN_HASH_LENGTH: Final = 32

_DATE_RE: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_CODE_RE: Final = re.compile(r"[^\x00-\x1f\x7f]{1,80}")
_FIELDS: Final = frozenset({"v", "site", "cid", "salt", "mp", "ma", "vp", "lot", "dt", "dn", "signed"})
_PROTECTED_LABELS: Final = frozenset(
    {cose.HeaderLabel.ALG, cose.HeaderLabel.CONTENT_TYPE, cose.HeaderLabel.KID}
)
_TAG_18: Final = b"\xd2"
#: a COSE record is small (~250 bytes; RSA-4096 signatures ~600); anything far larger is refused unread
_MAX_RECORD_BYTES: Final = 8 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class DoseClaims:
    """The verified content of a site-signed dose record.  ``repr`` hides the citizen hash and salt."""

    site_id: str
    citizen_hash: bytes = field(repr=False)
    salt: bytes = field(repr=False)
    mp: str
    ma: str
    vp: str
    lot: str
    date: str
    dose_number: int
    signed_at: datetime
    kid: bytes

    def matches_citizen(self, citizen_id: str) -> bool:
        """Whether the record was signed for ``citizen_id`` (constant-time comparison)."""
        return hmac.compare_digest(citizen_hash(citizen_id, self.salt), self.citizen_hash)


def citizen_hash(citizen_id: str, salt: bytes) -> bytes:
    """SHA-256(salt ‖ UTF-8(citizen_id)); the salt is exactly :data:`SALT_LENGTH` bytes."""
    if not isinstance(citizen_id, str) or not isinstance(salt, bytes):
        raise TypeError("citizen_id must be str and salt bytes")
    if len(salt) != SALT_LENGTH:
        raise ValueError(f"salt must be {SALT_LENGTH} bytes")
    return hashlib.sha256(salt + citizen_id.encode("utf-8")).digest()


def _canonical_order(fields: frozenset[str]) -> tuple[str, ...]:
    """Text keys in canonical order (RFC 8949 §4.2.1 as cbor2 applies it: UTF-8 length, then bytes)."""
    return tuple(sorted(fields, key=lambda k: (len(k.encode()), k.encode())))


#: a batch member's payload (version 2): the v1 fields without the signing time, which its batch head carries
_LEAF_FIELDS: Final = _FIELDS - {"signed"}
_ORDERS: Final = {fields: _canonical_order(fields) for fields in (_FIELDS, _LEAF_FIELDS)}
_PAYLOAD_KEYS: Final = {k: cbor.encode_head(3, len(k)) + k.encode() for k in _FIELDS}


def _encode_payload(payload: dict[str, object]) -> bytes:
    """``cbor.dumps(payload)`` for a record's flat map (v1 or batch member), written by hand (byte-identical;
    about 10 µs less per record). Any value outside the simple forms (a negative int, a non-UTF-8 string) or
    another key set goes to ``cbor.dumps``."""
    order = _ORDERS.get(frozenset(payload))
    if order is None:
        return cbor.dumps(payload)
    parts = [cbor.encode_head(5, len(order))]
    try:
        for key in order:
            value = payload[key]
            parts.append(_PAYLOAD_KEYS[key])
            if type(value) is int and 0 <= value < 1 << 64:
                parts.append(cbor.encode_head(0, value))
            elif type(value) is str:
                data = value.encode("utf-8")
                parts.append(cbor.encode_head(3, len(data)))
                parts.append(data)
            elif type(value) is bytes:
                parts.append(cbor.encode_head(2, len(value)))
                parts.append(value)
            else:
                return cbor.dumps(payload)
    except UnicodeEncodeError:
        return cbor.dumps(payload)
    return b"".join(parts)


@functools.lru_cache(maxsize=4096)
def _text_item(value: str) -> bytes:
    """A text value as a CBOR item (site ids, vaccine codes, dates and lots repeat: kept)."""
    return cbor.encode_text(value)


_LEAF_START: Final = (
    cbor.encode_head(5, len(_LEAF_FIELDS)) + _PAYLOAD_KEYS["v"] + cbor.encode_head(0, BATCH_VERSION)
)


def _encode_leaf(
    *, site: str, cid: bytes, salt: bytes, mp: str, ma: str, vp: str, lot: str, dt: str, dn: int
) -> bytes:
    """A batch member's payload, ``_encode_payload`` of its map specialised to its fixed canonical key order
    (v, dn, dt, ma, mp, vp, cid, lot, salt, site); anything unusual goes the general way."""
    if type(dn) is not int or not 0 <= dn < 24 or len(cid) != CITIZEN_HASH_LENGTH or len(salt) != SALT_LENGTH:
        return _encode_payload(
            {
                "v": BATCH_VERSION,
                "site": site,
                "cid": cid,
                "salt": salt,
                "mp": mp,
                "ma": ma,
                "vp": vp,
                "lot": lot,
                "dt": dt,
                "dn": dn,
            }
        )
    k = _PAYLOAD_KEYS
    return b"".join(
        (
            _LEAF_START,
            k["dn"],
            _SMALL_INTS[dn],
            k["dt"],
            _text_item(dt),
            k["ma"],
            _text_item(ma),
            k["mp"],
            _text_item(mp),
            k["vp"],
            _text_item(vp),
            k["cid"],
            _CID_HEAD,
            cid,
            k["lot"],
            _text_item(lot),
            k["salt"],
            _SALT_HEAD,
            salt,
            k["site"],
            _text_item(site),
        )
    )


_SMALL_INTS: Final = tuple(cbor.encode_head(0, i) for i in range(24))
_CID_HEAD: Final = cbor.encode_head(2, CITIZEN_HASH_LENGTH)
_SALT_HEAD: Final = cbor.encode_head(2, SALT_LENGTH)


@functools.lru_cache(maxsize=256)
def _protected_header(alg: int, kid: bytes, content_type: str = CONTENT_TYPE) -> bytes:
    """The protected header of a signer's records or batch heads (the same bytes for every one it signs)."""
    return cbor.dumps(
        {
            int(cose.HeaderLabel.ALG): alg,
            int(cose.HeaderLabel.CONTENT_TYPE): content_type,
            int(cose.HeaderLabel.KID): kid,
        }
    )


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


def _valid_text_fields(site: str, mp: str, ma: str, vp: str, lot: str, dt: str) -> bool:
    """Whether :func:`_claims` accepts these text values (``str`` each, that UTF-8 can encode: any a decoder
    returns): its checks, field by field, without building the claims (a test holds the two to the same verdict
    for any such values)."""
    return (
        _date_item(dt) is not None
        and _lot_item(lot) is not None
        and _site_item(site) is not None
        and _codes_items(mp, ma, vp) is not None
    )


def _encodable(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@functools.lru_cache(maxsize=4096)
def _date_item(dt: str) -> bytes | None:
    """``"dt"`` and ``dt`` as a member payload holds them when :func:`_claims` accepts the date, else ``None``
    (remembered: a population's doses fall on a few thousand days)."""
    if _DATE_RE.fullmatch(dt) is None:
        return None
    try:
        calendar_date.fromisoformat(dt)
    except ValueError:
        return None
    return _PAYLOAD_KEYS["dt"] + cbor.encode_text(dt)


@functools.lru_cache(maxsize=4096)
def _site_item(site: str) -> bytes | None:
    """``"site"`` and ``site`` as encoded (the last entry of a member payload) when :func:`_claims` accepts the
    site ID, else ``None`` (remembered: a few sites sign a run's records)."""
    if _SITE_ID_RE.fullmatch(site) is None or not _encodable(site):
        return None
    return _PAYLOAD_KEYS["site"] + cbor.encode_text(site)


@functools.lru_cache(maxsize=1024)
def _codes_items(mp: str, ma: str, vp: str) -> bytes | None:
    """The ``ma``, ``mp`` and ``vp`` entries as encoded (consecutive in the canonical order) when :func:`_claims`
    accepts the codes, else ``None`` (remembered: a handful of products)."""
    items = []
    for key, value in (("ma", ma), ("mp", mp), ("vp", vp)):
        if _CODE_RE.fullmatch(value) is None or not _encodable(value):
            return None
        items.append(_PAYLOAD_KEYS[key] + cbor.encode_text(value))
    return b"".join(items)


def _lot_item(lot: str) -> bytes | None:
    """``"lot"`` and ``lot`` as encoded when :func:`_claims` accepts the lot (not blank), else ``None`` (not
    remembered: lots hardly repeat in the synthetic population)."""
    if _CODE_RE.fullmatch(lot) is None or not lot.strip() or not _encodable(lot):
        return None
    return _PAYLOAD_KEYS["lot"] + cbor.encode_text(lot)


def _leaf_is(
    raw: bytes, *, citizen_id: str, site: str, mp: str, ma: str, vp: str, lot: str, dt: str, dn: int
) -> bool:
    """Whether ``raw`` is a batch member's payload saying exactly these values for ``citizen_id``: ``True``
    only when :func:`_decode_leaf` of ``raw`` returns claims with exactly these values (every check of the
    decoding passing) whose ``matches_citizen(citizen_id)`` holds; ``False``: not shown — decode it to learn
    why (it may still be valid, e.g. for another citizen). The proof: ``raw`` equals the canonical encoding
    (:func:`_encode_leaf`, in its key order: v, dn, dt, ma, mp, vp, cid, lot, salt, site) of the version-2 map
    of these values with the salt ``raw`` carries and the citizen hash of ``citizen_id`` under that salt, so
    decoding ``raw`` yields that map, and :func:`_claims` accepts it because it accepts these values (the
    ``_*_item`` checks, which are :func:`_valid_text_fields`; the dose number's range; a 32-byte hash and a
    16-byte salt by construction). No decoding, no claims object: issuance checks ~2.5 records a passport, and
    the encoded items of the values that repeat (dates, sites, products) are remembered with their verdicts."""
    if (
        type(raw) is not bytes
        or type(citizen_id) is not str
        or type(dn) is not int
        or not 1 <= dn <= MAX_DOSE_NUMBER
        or type(site) is not str
        or type(mp) is not str
        or type(ma) is not str
        or type(vp) is not str
        or type(lot) is not str
        or type(dt) is not str
    ):
        return False
    date_item = _date_item(dt)
    codes = _codes_items(mp, ma, vp)
    lot_item = _lot_item(lot)
    tail = _site_item(site)
    if date_item is None or codes is None or lot_item is None or tail is None:
        return False
    end = len(raw) - len(tail)
    if end < SALT_LENGTH or not raw.endswith(tail):
        return False
    salt = raw[end - SALT_LENGTH : end]
    try:
        cid = citizen_hash(citizen_id, salt)
    except UnicodeEncodeError:  # a citizen ID UTF-8 cannot encode: not shown here
        return False
    expected = b"".join(
        (
            _LEAF_START,
            _DN_KEY,
            _SMALL_INTS[dn] if dn < 24 else cbor.encode_head(0, dn),
            date_item,
            codes,
            _CID_KEY_HEAD,
            cid,
            lot_item,
            _SALT_KEY_HEAD,
            salt,
            tail,
        )
    )
    return raw == expected


_DN_KEY: Final = _PAYLOAD_KEYS["dn"]
_CID_KEY_HEAD: Final = _PAYLOAD_KEYS["cid"] + _CID_HEAD
_SALT_KEY_HEAD: Final = _PAYLOAD_KEYS["salt"] + _SALT_HEAD


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
