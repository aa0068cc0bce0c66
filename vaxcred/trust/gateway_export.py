"""The EU gateway trust-list JSON written from a :class:`TrustStore` (:func:`export_gateway_trust_list`):
deterministic, every field the format requires, withdrawn certificates with ``rawData: null``."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Final

from cryptography.hazmat.primitives.serialization import Encoding

from vaxcred.trust.store import KID_LENGTH, TrustStore, require_utc

#: the fields of an entry, in the gateway's order
FIELDS: Final = ("kid", "timestamp", "country", "certificateType", "thumbprint", "signature", "rawData")


def format_timestamp(when: datetime) -> str:
    """``yyyy-MM-dd'T'HH:mm:ssXXX`` in UTC (``XXX`` renders a zero offset as ``Z``)."""
    return require_utc(when, "timestamp").strftime("%Y-%m-%dT%H:%M:%SZ")


def _entry(
    cert_type: str, country: str, der: bytes, timestamp: str, *, withdrawn: bool = False
) -> dict[str, str | None]:
    digest = hashlib.sha256(der).digest()
    values = {
        "kid": base64.b64encode(digest[:KID_LENGTH]).decode("ascii"),
        "timestamp": timestamp,
        "country": country,
        "certificateType": cert_type,
        "thumbprint": digest.hex(),
        # vaxcred cannot produce the gateway's CMS signature (made with the trust anchor / upload key):
        # the field is present, as the gateway format requires, but empty.
        "signature": "",
        # a withdrawn certificate keeps its kid and thumbprint, without the certificate (the gateway's form)
        "rawData": None if withdrawn else base64.b64encode(der).decode("ascii"),
    }
    return {key: values[key] for key in FIELDS}


def export_gateway_trust_list(
    store: TrustStore, *, now: datetime, withdrawn: Sequence[tuple[str, bytes]] = ()
) -> bytes:
    """The store as gateway trust-list JSON: deterministic (sorted entries, fixed field order, compact).

    Every entry's ``timestamp`` is ``now`` (the store keeps no per-entry times) and ``signature`` is the
    empty string (see :func:`_entry`).  DSCs filed under no country (``--dsc`` mode without ``C=``) are
    left out: the format requires a country. ``withdrawn`` (country, DSC DER) pairs are listed with
    ``rawData: null`` so gateway consumers drop them (e.g. the key chain's withdrawn DSCs).
    """
    timestamp = format_timestamp(now)
    entries = [
        _entry("CSCA", country, cert.public_bytes(Encoding.DER), timestamp)
        for country, cert in store.all_cscas()
    ]
    entries += [
        _entry("DSC", dsc.country, dsc.info.der, timestamp) for dsc in store.all_dscs() if dsc.country
    ]
    entries += [_entry("DSC", country, der, timestamp, withdrawn=True) for country, der in withdrawn]
    entries.sort(key=lambda e: (str(e["certificateType"]), str(e["country"]), str(e["thumbprint"])))
    return json.dumps(entries, ensure_ascii=True, separators=(",", ":")).encode("ascii")
