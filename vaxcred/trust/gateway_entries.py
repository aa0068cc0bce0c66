"""The entries of an EU gateway trust-list document (:mod:`vaxcred.trust.gateway`), one at a time: each is
well formed (types, strict Base64, kid and thumbprint matching the certificate, timestamp) or rejected with
its reason (:class:`RejectedEntry`), and a well-formed one becomes a certificate or a :class:`TrustedDsc`.
Authentication and the document as a whole are :mod:`~vaxcred.trust.gateway`'s business."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from cryptography import x509

from vaxcred.errors import VaxcredError
from vaxcred.trust.store import KID_LENGTH, TrustedDsc, dsc_problem, is_country
from vaxcred.x509util import load_untrusted_certificate, parse_dsc

#: one certificate (real DSCs and CSCAs are 0.5-3 KB)
MAX_CERTIFICATE_BYTES: Final = 64 * 1024

_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:\d{2})")
_THUMBPRINT = re.compile(r"[0-9a-fA-F]{64}")


@dataclass(frozen=True, slots=True, kw_only=True)
class RejectedEntry:
    """A gateway entry that was not loaded: its position in the array and why."""

    index: int
    reason: str


class Reject(Exception):
    """One entry is unusable (internal; becomes a :class:`RejectedEntry`)."""


@dataclass(frozen=True, slots=True)
class DuplicateKeys:
    """Stands in for a JSON object with a repeated key (so only that entry is rejected)."""

    key: str


def reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any] | DuplicateKeys:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            return DuplicateKeys(key)
        result[key] = value
    return result


def _text(entry: Mapping[str, Any], key: str) -> str:
    value = entry.get(key)
    if not isinstance(value, str):
        raise Reject(f"{key} missing or not a string")
    return value


def _check_entry(entry: Mapping[str, Any], der: bytes) -> None:
    """kid, thumbprint, timestamp, signature type: the parts that do not depend on certificateType."""
    try:
        kid = base64.b64decode(_text(entry, "kid"), validate=True)
    except ValueError as e:  # binascii.Error, and ValueError for non-ASCII text
        raise Reject(f"kid is not Base64: {e}") from e
    digest = hashlib.sha256(der).digest()
    if len(kid) != KID_LENGTH or kid != digest[:KID_LENGTH]:
        raise Reject("kid does not match SHA-256(rawData)[:8]")
    thumbprint = _text(entry, "thumbprint")
    if not _THUMBPRINT.fullmatch(thumbprint) or thumbprint.lower() != digest.hex():
        raise Reject("thumbprint does not match SHA-256(rawData)")
    timestamp = _text(entry, "timestamp")
    if not _TIMESTAMP.fullmatch(timestamp):
        raise Reject("timestamp is not yyyy-MM-dd'T'HH:mm:ssXXX")
    try:
        datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError as e:
        raise Reject(f"timestamp is not a valid date-time: {e}") from e
    signature = entry.get("signature")
    if signature is not None and not isinstance(signature, str):
        raise Reject("signature is not a string")


def _decode_raw(value: str) -> bytes:
    if len(value) > (MAX_CERTIFICATE_BYTES * 4) // 3 + 4:
        raise Reject("rawData too large")
    try:
        der = base64.b64decode(value, validate=True)
    except ValueError as e:  # binascii.Error, and ValueError for non-ASCII text (found by atheris)
        raise Reject(f"rawData is not Base64: {e}") from e
    if not der:
        raise Reject("rawData is empty")
    return der


@dataclass(frozen=True, slots=True)
class Entry:
    """A well-formed CSCA / DSC / UPLOAD entry, not yet authenticated."""

    index: int
    cert_type: str
    country: str
    der: bytes
    signature: str | None


def parse_entries(
    document: list[Any], rejected: list[RejectedEntry]
) -> tuple[list[Entry], list[tuple[int, str, bytes | None, str | None]], int]:
    """Well-formed entries, withdrawn ``(index, kid, kid bytes, thumbprint)`` and the ignored count."""
    entries: list[Entry] = []
    withdrawn: list[tuple[int, str, bytes | None, str | None]] = []
    ignored = 0
    for index, entry in enumerate(document):
        try:
            if isinstance(entry, DuplicateKeys):
                raise Reject(f"entry repeats the key {entry.key!r}")
            if not isinstance(entry, dict):
                raise Reject("entry is not a JSON object")
            cert_type = _text(entry, "certificateType")
            if cert_type not in ("CSCA", "DSC", "UPLOAD"):
                ignored += 1
                continue
            country = _text(entry, "country")
            if not is_country(country):
                raise Reject(f"country {country!r} is not ISO 3166-1 alpha-2")
            raw = entry.get("rawData")
            if raw is None:
                kid = _text(entry, "kid")
                thumbprint = entry.get("thumbprint")
                withdrawn.append(
                    (index, kid, _kid_bytes(kid), thumbprint.lower() if isinstance(thumbprint, str) else None)
                )
                continue
            if not isinstance(raw, str):
                raise Reject("rawData is not a string")
            der = _decode_raw(raw)
            _check_entry(entry, der)
            signature = entry.get("signature")
            entries.append(
                Entry(
                    index=index,
                    cert_type=cert_type,
                    country=country,
                    der=der,
                    signature=signature if isinstance(signature, str) and signature else None,
                )
            )
        except Reject as e:
            rejected.append(RejectedEntry(index=index, reason=str(e)))
    return entries, withdrawn, ignored


def _kid_bytes(kid: str) -> bytes | None:
    try:
        return base64.b64decode(kid, validate=True)
    except ValueError:  # binascii.Error, or non-ASCII text
        return None


def certificate(der: bytes) -> x509.Certificate:
    try:
        return load_untrusted_certificate(der)
    except (ValueError, x509.InvalidVersion) as e:
        raise Reject(f"rawData is not a usable certificate: {e}") from e


def dsc_of(entry: Entry) -> TrustedDsc:
    try:
        info = parse_dsc(entry.der)
    except (VaxcredError, ValueError) as e:
        raise Reject(f"rawData is not a usable certificate: {e}") from e
    problem = dsc_problem(info)
    if problem is not None:
        raise Reject(f"{problem[0]}: {problem[1]}")
    return TrustedDsc(info=info, country=entry.country, source="gateway")
