"""The one-pass compare of a stored batch member's payload against the dose it should say (:func:`_leaf_is`),
with the remembered encoded items of the values that repeat and their verdicts.  Pure: no keys, no clock, no I/O.
"""

from __future__ import annotations

import functools
from datetime import date as calendar_date
from typing import Final

from vaxcred.codec import cbor
from vaxcred.pipeline.records.model import MAX_DOSE_NUMBER
from vaxcred.pipeline.site_signing.certs import _SITE_ID_RE
from vaxcred.pipeline.site_signing.claims import SALT_LENGTH, citizen_hash
from vaxcred.pipeline.site_signing.decoding import _CODE_RE, _DATE_RE
from vaxcred.pipeline.site_signing.encoding import (
    _CID_HEAD,
    _LEAF_START,
    _PAYLOAD_KEYS,
    _SALT_HEAD,
    _SMALL_INTS,
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
