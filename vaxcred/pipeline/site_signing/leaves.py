"""A batch member's payload written straight from a stored dose row, from parts kept across rows.

What :func:`~vaxcred.pipeline.site_signing.batch.sign_batch` writes for a row's
:class:`~vaxcred.pipeline.records.model.DoseRecord` (built, checked, then ``_dose_fields`` and ``_encode_leaf``),
byte for byte, without building either: the payload's fixed canonical key order (v, dn, dt, ma, mp, vp, cid, lot,
salt, site) is written from

* the dose number's head (a small table), the date's text (kept per date), the vaccine's three codes (kept per
  vaccine: its ``ma``, ``mp`` and ``vp`` items and keys) and the site's text (one per batch);
* the row's own lot text and salted citizen hash.

Only a row in the usual form takes this way: every field of the type the database returns and within what
``DoseRecord`` and ``_dose_fields`` accept (a known vaccine, a printable trimmed lot of 1–64 characters, a
calendar date not after the signing day, a dose number 1–9, a non-empty citizen ID, the signer's own site).
For anything else :func:`member_payloads` answers ``None`` and the caller signs the batch the general way, which
refuses the row as it always did (a hypothesis test holds the two ways to the same bytes and refusals).
Pure: no keys, no clock, no I/O.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
from collections.abc import Sequence
from typing import Final, Protocol

from vaxcred.codec import cbor
from vaxcred.pipeline.records.fields import MAX_DOSE_NUMBER, MAX_LOT_LENGTH, SITE_RE
from vaxcred.pipeline.records.vaccines import canonical_vaccines, vaccine_codes
from vaxcred.pipeline.site_signing.claims import (
    CITIZEN_HASH_LENGTH,
    SALT_LENGTH,
)
from vaxcred.pipeline.site_signing.encoding import (
    _LEAF_START,
    _PAYLOAD_KEYS,
)

__all__ = ["DoseRowFields", "member_payloads"]


class DoseRowFields(Protocol):
    """The fields of a stored dose row a payload is written from (``work_queue._DoseRow``)."""

    @property
    def dose_number(self) -> int: ...
    @property
    def date(self) -> dt.date: ...
    @property
    def site_id(self) -> str: ...
    @property
    def vaccine(self) -> str: ...
    @property
    def lot(self) -> str: ...
    @property
    def citizen_id(self) -> str: ...


_K: Final = _PAYLOAD_KEYS
#: the payload up to and including the dose number, for each dose number a record may hold
_UP_TO_DN: Final = tuple(
    _LEAF_START + _K["dn"] + cbor.encode_head(0, n) if 1 <= n <= MAX_DOSE_NUMBER else None
    for n in range(MAX_DOSE_NUMBER + 1)
)
_CID: Final = _K["cid"] + cbor.encode_head(2, CITIZEN_HASH_LENGTH)
_SALT: Final = _K["salt"] + cbor.encode_head(2, SALT_LENGTH)
_LOT: Final = _K["lot"]
#: a text head for each length a lot's UTF-8 can have (at most 4 bytes a character)
_TEXT_HEADS: Final = tuple(cbor.encode_head(3, n) for n in range(4 * MAX_LOT_LENGTH + 1))


@functools.lru_cache(maxsize=4096)
def _date_part(day: dt.date) -> bytes:
    return _K["dt"] + cbor.encode_text(day.isoformat())


@functools.lru_cache(maxsize=256)
def _vaccine_part(vaccine: str) -> bytes | None:
    """ma, mp, vp (keys and items) of a vaccine a DoseRecord accepts, else ``None``."""
    if vaccine not in canonical_vaccines():
        return None
    try:
        codes = vaccine_codes(vaccine)
        return b"".join(
            (
                _K["ma"],
                cbor.encode_text(codes.ma),
                _K["mp"],
                cbor.encode_text(codes.mp),
                _K["vp"],
                cbor.encode_text(codes.vp),
            )
        )
    except (ValueError, TypeError):
        return None


@functools.lru_cache(maxsize=256)
def _site_part(site_id: str) -> bytes | None:
    if not SITE_RE.match(site_id):
        return None
    return _K["site"] + cbor.encode_text(site_id)


def member_payloads(
    rows: Sequence[DoseRowFields], site_id: str, signing_day: dt.date, salts: bytes
) -> list[bytes] | None:
    """Each row's member payload for ``site_id`` (the signer's site), signed on ``signing_day`` (Viet Nam's
    calendar day at the signing time), row ``i`` salted with ``salts[16 i : 16 (i + 1)]``; ``None`` as soon as
    a row is not in the usual form (see the module documentation)."""
    if type(site_id) is not str or len(salts) != SALT_LENGTH * len(rows):
        return None
    site = _site_part(site_id)
    if site is None:
        return None
    sha256 = hashlib.sha256
    out: list[bytes] = []
    for i, row in enumerate(rows):
        dn, day, vaccine, lot, citizen = row.dose_number, row.date, row.vaccine, row.lot, row.citizen_id
        if (
            type(dn) is not int
            or not 1 <= dn <= MAX_DOSE_NUMBER
            or type(day) is not dt.date
            or day > signing_day
            or type(vaccine) is not str
            or type(lot) is not str
            or not 1 <= len(lot) <= MAX_LOT_LENGTH
            or not lot.isprintable()
            or lot != lot.strip()
            or type(citizen) is not str
            or not citizen
            or row.site_id != site_id
        ):
            return None
        codes = _vaccine_part(vaccine)
        if codes is None:
            return None
        try:
            lot_bytes = lot.encode("utf-8")
            citizen_bytes = citizen.encode("utf-8")
        except UnicodeEncodeError:
            return None
        salt = salts[i * SALT_LENGTH : (i + 1) * SALT_LENGTH]
        out.append(
            b"".join(
                (
                    _UP_TO_DN[dn],  # type: ignore[arg-type]  # 1..MAX_DOSE_NUMBER: never None
                    _date_part(day),
                    codes,
                    _CID,
                    sha256(salt + citizen_bytes).digest(),
                    _LOT,
                    _TEXT_HEADS[len(lot_bytes)],
                    lot_bytes,
                    _SALT,
                    salt,
                    site,
                )
            )
        )
    return out
