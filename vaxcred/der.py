"""A minimal DER reader for the parts of a certificate vaxcred reads itself (:mod:`vaxcred.x509util` falls
back to it when pyca/cryptography refuses a real-world DSC): definite lengths and low tag numbers, all a
certificate uses; the extensions of a TBSCertificate; the extension values vaxcred needs (extendedKeyUsage,
keyUsage digitalSignature, basicConstraints cA, SKI, AKI, privateKeyUsagePeriod). Malformed DER raises
:class:`DerError` (the caller decides what it means). Pure: bytes in, values out.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime

_GENERALIZED_TIME_RE = re.compile(r"(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(?:\.\d+)?Z")


class DerError(Exception):
    """Malformed DER in the part of a certificate the walker reads."""


SEQUENCE = 0x30
OID_TAG = 0x06
BOOLEAN = 0x01
OCTET_STRING = 0x04
BIT_STRING = 0x03
EXTENSIONS_TAG = 0xA3  # [3] EXPLICIT in TBSCertificate


def tlvs(buf: bytes, start: int, end: int) -> Iterator[tuple[int, int, int]]:
    """Yield ``(tag, content_start, content_end)`` for each element in ``buf[start:end]``."""
    pos = start
    while pos < end:
        tag = buf[pos]
        if tag & 0x1F == 0x1F:
            raise DerError("high tag numbers are not used in certificates")
        pos += 1
        if pos >= end:
            raise DerError("truncated length")
        length = buf[pos]
        pos += 1
        if length & 0x80:
            count = length & 0x7F
            if count == 0 or count > 4 or pos + count > end:
                raise DerError("bad length")
            length = int.from_bytes(buf[pos : pos + count], "big")
            pos += count
        if pos + length > end:
            raise DerError("element runs past its container")
        yield tag, pos, pos + length
        pos += length


def only(buf: bytes, start: int, end: int, tag: int) -> tuple[int, int]:
    items = list(tlvs(buf, start, end))
    if len(items) != 1 or items[0][0] != tag:
        raise DerError(f"expected exactly one element with tag {tag:#04x}")
    return items[0][1], items[0][2]


def walk_extensions(der: bytes) -> Iterator[tuple[str, bytes]]:
    """Yield ``(dotted OID, extnValue content)`` for each extension of a DER certificate."""
    cert_start, cert_end = only(der, 0, len(der), SEQUENCE)
    children = list(tlvs(der, cert_start, cert_end))
    if not children or children[0][0] != SEQUENCE:
        raise DerError("no TBSCertificate")
    _, tbs_start, tbs_end = children[0]
    for tag, start, end in tlvs(der, tbs_start, tbs_end):
        if tag != EXTENSIONS_TAG:
            continue
        seq_start, seq_end = only(der, start, end, SEQUENCE)
        for ext_tag, ext_start, ext_end in tlvs(der, seq_start, seq_end):
            if ext_tag != SEQUENCE:
                raise DerError("extension is not a SEQUENCE")
            parts = list(tlvs(der, ext_start, ext_end))
            if len(parts) not in (2, 3) or parts[0][0] != OID_TAG or parts[-1][0] != OCTET_STRING:
                raise DerError("extension is not SEQUENCE { OID, [BOOLEAN], OCTET STRING }")
            if len(parts) == 3 and parts[1][0] != BOOLEAN:
                raise DerError("extension critical flag is not a BOOLEAN")
            yield decode_oid(der[parts[0][1] : parts[0][2]]), der[parts[-1][1] : parts[-1][2]]


def decode_oid(content: bytes) -> str:
    if not content or content[-1] & 0x80:
        raise DerError("bad OBJECT IDENTIFIER")
    arcs: list[int] = []
    value = 0
    for byte in content:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(value)
            value = 0
    first = arcs[0]
    head = [0, first] if first < 40 else [1, first - 40] if first < 80 else [2, first - 80]
    return ".".join(str(arc) for arc in head + arcs[1:])


def parse_eku(value: bytes) -> frozenset[str]:
    start, end = only(value, 0, len(value), SEQUENCE)
    oids: set[str] = set()
    for tag, s, e in tlvs(value, start, end):
        if tag != OID_TAG:
            raise DerError("extendedKeyUsage member is not an OID")
        oids.add(decode_oid(value[s:e]))
    return frozenset(oids)


def parse_key_usage_digital_signature(value: bytes) -> bool:
    start, end = only(value, 0, len(value), BIT_STRING)
    if end - start < 1:
        raise DerError("empty BIT STRING")
    return end - start >= 2 and bool(value[start + 1] & 0x80)  # bit 0 = digitalSignature


def parse_basic_constraints_ca(value: bytes) -> bool:
    start, end = only(value, 0, len(value), SEQUENCE)
    for tag, s, e in tlvs(value, start, end):
        return tag == BOOLEAN and e - s == 1 and value[s] != 0
    return False


def parse_ski(value: bytes) -> bytes:
    start, end = only(value, 0, len(value), OCTET_STRING)
    return value[start:end]


def parse_aki(value: bytes) -> bytes | None:
    start, end = only(value, 0, len(value), SEQUENCE)
    for tag, s, e in tlvs(value, start, end):
        if tag == 0x80:  # [0] IMPLICIT KeyIdentifier
            return value[s:e]
    return None


def parse_pkup(value: bytes) -> tuple[datetime | None, datetime | None]:
    """``PrivateKeyUsagePeriod ::= SEQUENCE { notBefore [0] GeneralizedTime OPTIONAL, notAfter [1] … }``."""
    start, end = only(value, 0, len(value), SEQUENCE)
    not_before: datetime | None = None
    not_after: datetime | None = None
    for tag, s, e in tlvs(value, start, end):
        if tag == 0x80 and not_before is None and not_after is None:
            not_before = generalized_time(value[s:e])
        elif tag == 0x81 and not_after is None:
            not_after = generalized_time(value[s:e])
        else:
            raise DerError("unexpected element in privateKeyUsagePeriod")
    if not_before is None and not_after is None:
        raise DerError("empty privateKeyUsagePeriod")
    return not_before, not_after


def generalized_time(content: bytes) -> datetime:
    match = _GENERALIZED_TIME_RE.fullmatch(content.decode("ascii", "replace"))
    if match is None:
        raise DerError("GeneralizedTime is not YYYYMMDDHHMMSS[.f]Z")
    year, month, day, hour, minute, second = (int(g) for g in match.groups())
    try:
        return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError as e:
        raise DerError(f"bad GeneralizedTime: {e}") from e
