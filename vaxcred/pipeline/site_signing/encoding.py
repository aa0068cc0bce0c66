"""Encoding of the dose-record wire format (:mod:`vaxcred.pipeline.site_signing.record`, batch members of
:mod:`vaxcred.pipeline.site_signing.batch`): the payload map as canonical CBOR, a batch member's payload, the
protected header.  Pure: no keys, no clock, no I/O.
"""

from __future__ import annotations

import functools
from typing import Final

from vaxcred.codec import cbor, cose
from vaxcred.pipeline.site_signing.claims import BATCH_VERSION, CITIZEN_HASH_LENGTH, CONTENT_TYPE, SALT_LENGTH

_FIELDS: Final = frozenset({"v", "site", "cid", "salt", "mp", "ma", "vp", "lot", "dt", "dn", "signed"})


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
