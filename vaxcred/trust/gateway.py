"""The EU gateway trust-list JSON (DCC.md §6): import into a :class:`TrustStore`, export from one.

Input is an array of ``{kid, timestamp, country, certificateType, thumbprint, signature, rawData}``.
Each entry is checked on its own; a bad one is *reported* (:class:`RejectedEntry`) and the rest kept:

- ``rawData`` ``null``: a withdrawn certificate, skipped (its kid listed in ``withdrawn``);
- ``certificateType`` other than ``CSCA`` / ``DSC`` (``AUTHENTICATION``, ``UPLOAD``, unknown): ignored;
- ``rawData`` must be strict Base64 DER that loads; ``kid`` must be Base64 of SHA-256(DER)[:8] and
  ``thumbprint`` the hex SHA-256 of the DER (case-insensitive); ``country`` ISO alpha-2;
  ``timestamp`` ``yyyy-MM-dd'T'HH:mm:ss`` with ``Z`` or ``±hh:mm`` (fractions tolerated).

The CMS ``signature`` of each entry is **not** verified here (vaxcred has no CMS verifier): a gateway list
is as authentic as the channel it came over, and its store is marked :attr:`TrustMode.GATEWAY`.  Prefer a
national signed list (:mod:`vaxcred.trust.signed`) for verifiers in the field.

A document that is not JSON, not an array, too large or with too many entries raises
TrustStoreError(``trust.malformed``).  Pure: bytes in, bytes out.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from vaxcred.errors import TrustStoreError, VaxcredError
from vaxcred.trust.store import (
    KID_LENGTH,
    Environment,
    TrustedDsc,
    TrustMode,
    TrustStore,
    is_country,
    require_utc,
)
from vaxcred.x509util import parse_dsc

__all__ = [
    "MAX_GATEWAY_BYTES",
    "MAX_GATEWAY_ENTRIES",
    "GatewayTrustList",
    "RejectedEntry",
    "export_gateway_trust_list",
    "load_gateway_trust_list",
]

#: the whole document (the EU gateway list is a few MB)
MAX_GATEWAY_BYTES: Final = 50 * 1024 * 1024
#: entries in one document
MAX_GATEWAY_ENTRIES: Final = 100_000
#: one certificate (real DSCs and CSCAs are 0.5-3 KB)
MAX_CERTIFICATE_BYTES: Final = 64 * 1024

_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:\d{2})")
_THUMBPRINT = re.compile(r"[0-9a-fA-F]{64}")
_FIELDS = ("kid", "timestamp", "country", "certificateType", "thumbprint", "signature", "rawData")


@dataclass(frozen=True, slots=True, kw_only=True)
class RejectedEntry:
    """A gateway entry that was not loaded: its position in the array and why."""

    index: int
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class GatewayTrustList:
    """The result of :func:`load_gateway_trust_list`: the store plus what was left out and why."""

    store: TrustStore
    rejected: tuple[RejectedEntry, ...] = ()
    #: base64 kids of withdrawn (``rawData: null``) entries
    withdrawn: tuple[str, ...] = ()
    #: entries of a type vaxcred does not use (AUTHENTICATION, UPLOAD, unknown)
    ignored: int = 0


class _Reject(Exception):
    """One entry is unusable (internal; becomes a :class:`RejectedEntry`)."""


@dataclass(frozen=True, slots=True)
class _DuplicateKeys:
    """Stands in for a JSON object with a repeated key (so only that entry is rejected)."""

    key: str


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any] | _DuplicateKeys:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            return _DuplicateKeys(key)
        result[key] = value
    return result


def _no_constants(name: str) -> None:
    raise ValueError(f"non-JSON constant {name}")


def _parse_document(data: bytes) -> list[Any]:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError("the gateway trust list must be bytes")
    raw = bytes(data)
    if len(raw) > MAX_GATEWAY_BYTES:
        raise TrustStoreError(
            f"trust list of {len(raw)} bytes exceeds {MAX_GATEWAY_BYTES}", code="trust.malformed"
        )
    try:
        text = raw.decode("utf-8")
        document = json.loads(text, object_pairs_hook=_reject_duplicate_keys, parse_constant=_no_constants)
    except (ValueError, RecursionError) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise TrustStoreError(f"trust list is not valid JSON: {e}", code="trust.malformed") from e
    if not isinstance(document, list):
        raise TrustStoreError("trust list must be a JSON array", code="trust.malformed")
    if len(document) > MAX_GATEWAY_ENTRIES:
        raise TrustStoreError(
            f"trust list of {len(document)} entries exceeds {MAX_GATEWAY_ENTRIES}", code="trust.malformed"
        )
    return document


def _text(entry: Mapping[str, Any], key: str) -> str:
    value = entry.get(key)
    if not isinstance(value, str):
        raise _Reject(f"{key} missing or not a string")
    return value


def _check_entry(entry: Mapping[str, Any], der: bytes) -> None:
    """kid, thumbprint, timestamp, signature type: the parts that do not depend on certificateType."""
    try:
        kid = base64.b64decode(_text(entry, "kid"), validate=True)
    except binascii.Error as e:
        raise _Reject(f"kid is not Base64: {e}") from e
    digest = hashlib.sha256(der).digest()
    if len(kid) != KID_LENGTH or kid != digest[:KID_LENGTH]:
        raise _Reject("kid does not match SHA-256(rawData)[:8]")
    thumbprint = _text(entry, "thumbprint")
    if not _THUMBPRINT.fullmatch(thumbprint) or thumbprint.lower() != digest.hex():
        raise _Reject("thumbprint does not match SHA-256(rawData)")
    timestamp = _text(entry, "timestamp")
    if not _TIMESTAMP.fullmatch(timestamp):
        raise _Reject("timestamp is not yyyy-MM-dd'T'HH:mm:ssXXX")
    try:
        datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError as e:
        raise _Reject(f"timestamp is not a valid date-time: {e}") from e
    signature = entry.get("signature")
    if signature is not None and not isinstance(signature, str):
        raise _Reject("signature is not a string")


def _decode_raw(value: str) -> bytes:
    if len(value) > (MAX_CERTIFICATE_BYTES * 4) // 3 + 4:
        raise _Reject("rawData too large")
    try:
        der = base64.b64decode(value, validate=True)
    except binascii.Error as e:
        raise _Reject(f"rawData is not Base64: {e}") from e
    if not der:
        raise _Reject("rawData is empty")
    return der


def load_gateway_trust_list(data: bytes, *, environment: Environment) -> GatewayTrustList:
    """Load a gateway trust-list JSON document into a :class:`TrustStore` of ``environment``.

    Good entries are kept, bad ones reported in ``rejected``; only a document-level problem raises
    TrustStoreError(``trust.malformed``).
    """
    if not isinstance(environment, Environment):
        raise TypeError("environment must be an Environment")
    document = _parse_document(data)
    dscs: list[TrustedDsc] = []
    cscas: list[tuple[str, x509.Certificate]] = []
    rejected: list[RejectedEntry] = []
    withdrawn: list[str] = []
    ignored = 0
    for index, entry in enumerate(document):
        try:
            if isinstance(entry, _DuplicateKeys):
                raise _Reject(f"entry repeats the key {entry.key!r}")
            if not isinstance(entry, dict):
                raise _Reject("entry is not a JSON object")
            cert_type = _text(entry, "certificateType")
            if cert_type not in ("CSCA", "DSC"):
                ignored += 1
                continue
            country = _text(entry, "country")
            if not is_country(country):
                raise _Reject(f"country {country!r} is not ISO 3166-1 alpha-2")
            raw = entry.get("rawData")
            if raw is None:
                withdrawn.append(_text(entry, "kid"))
                continue
            if not isinstance(raw, str):
                raise _Reject("rawData is not a string")
            der = _decode_raw(raw)
            _check_entry(entry, der)
            if cert_type == "DSC":
                try:
                    info = parse_dsc(der)
                except (VaxcredError, ValueError) as e:
                    raise _Reject(f"rawData is not a usable certificate: {e}") from e
                dscs.append(TrustedDsc(info=info, country=country, source="gateway"))
            else:
                try:
                    cscas.append((country, x509.load_der_x509_certificate(der)))
                except (ValueError, x509.InvalidVersion) as e:
                    raise _Reject(f"rawData is not a usable certificate: {e}") from e
        except _Reject as e:
            rejected.append(RejectedEntry(index=index, reason=str(e)))
    store = TrustStore.build(environment=environment, mode=TrustMode.GATEWAY, dscs=dscs, cscas=cscas)
    return GatewayTrustList(
        store=store, rejected=tuple(rejected), withdrawn=tuple(withdrawn), ignored=ignored
    )


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
    return {key: values[key] for key in _FIELDS}


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
