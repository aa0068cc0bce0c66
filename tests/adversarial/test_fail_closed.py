"""Fail closed: an extension whose absence permits more must not be read as absent when it is unreadable.

An unreadable extendedKeyUsage already failed (absent EKU = every payload type); an unreadable or duplicated
privateKeyUsagePeriod (absent = the key may sign throughout the certificate's validity) now fails too.
"""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from tests.interop.payloads import DAY, NOW
from vaxcred import errors, keys
from vaxcred.trust import TrustStore
from vaxcred.x509util import PRIVATE_KEY_USAGE_PERIOD, encode_pkup, parse_dsc

#: extnValue contents of a privateKeyUsagePeriod that no reader can take for a period
UNREADABLE_PKUP = {
    "empty": b"",
    "not a sequence": b"\x04\x00",
    "empty sequence": b"\x30\x00",
    "integer inside": b"\x30\x03\x02\x01\x00",
    "truncated": b"\x30\x11\x80\x0f2026",
    "bad time": b"\x30\x11\x80\x0f20261399000000Z",
    "local time": b"\x30\x10\x80\x0e20260101000000",
    "notAfter before notBefore tag order": b"\x30\x22\x81\x0f20270101000000Z\x80\x0f20260101000000Z",
    "trailing bytes": b"\x30\x11\x80\x0f20260101000000Z\x00",
}


def _dsc_with(csca: keys.KeyPair, extensions: list[tuple[bytes, bool]]) -> bytes:
    """A DSC under ``csca`` whose privateKeyUsagePeriod extension(s) carry the given raw values (DER)."""
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COUNTRY_NAME, "VN")]))
        .issuer_name(csca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - DAY)
        .not_valid_after(NOW + 365 * DAY)
    )
    cert = builder
    for value, _ in extensions[:1]:
        cert = cert.add_extension(x509.UnrecognizedExtension(PRIVATE_KEY_USAGE_PERIOD, value), critical=False)
    der = cert.sign(csca.private_key, hashes.SHA256()).public_bytes(Encoding.DER)  # type: ignore[arg-type]
    if len(extensions) > 1:  # pyca refuses duplicate extensions when building: splice a copy into the DER
        der = _duplicate_first_extension(der)
    return der


def _duplicate_first_extension(der: bytes) -> bytes:
    """The same certificate (signature no longer valid: parsing only) with its one extension twice."""
    from vaxcred.der import only as _only
    from vaxcred.der import tlvs as _tlvs

    cert_start, cert_end = _only(der, 0, len(der), 0x30)
    (_, tbs_start, tbs_end), *_ = list(_tlvs(der, cert_start, cert_end))
    ext_wrapper = next(t for t in _tlvs(der, tbs_start, tbs_end) if t[0] == 0xA3)
    seq_start, seq_end = _only(der, ext_wrapper[1], ext_wrapper[2], 0x30)
    exts = der[seq_start:seq_end] * 2
    seq = b"\x30" + _length(len(exts)) + exts
    wrapper = b"\xa3" + _length(len(seq)) + seq
    tbs_body = der[tbs_start : _header_start(der, ext_wrapper[1])] + wrapper
    tbs = b"\x30" + _length(len(tbs_body)) + tbs_body
    rest = der[tbs_end:cert_end]
    body = tbs + rest
    return b"\x30" + _length(len(body)) + body


def _header_start(der: bytes, content_start: int) -> int:
    """Start of the TLV whose content starts at ``content_start`` (the wrapper's length is short or 0x81/0x82)."""
    for header in (2, 3, 4):
        if der[content_start - header] == 0xA3:
            return content_start - header
    raise AssertionError("extension wrapper not found")


def _length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


@pytest.mark.parametrize("value", list(UNREADABLE_PKUP.values()), ids=list(UNREADABLE_PKUP))
def test_unreadable_private_key_usage_period_is_refused(csca: keys.KeyPair, value: bytes) -> None:
    """An unreadable privateKeyUsagePeriod raises keys.bad_certificate (it was read as absent)."""
    with pytest.raises(errors.KeyStoreError) as exc:
        parse_dsc(_dsc_with(csca, [(value, False)]))
    assert exc.value.code == "keys.bad_certificate"
    assert "privateKeyUsagePeriod" in exc.value.message


@pytest.mark.parametrize("value", list(UNREADABLE_PKUP.values()), ids=list(UNREADABLE_PKUP))
def test_trust_store_refuses_a_dsc_with_an_unreadable_period(csca: keys.KeyPair, value: bytes) -> None:
    """The --dsc trust store refuses such a certificate outright (trust.bad_certificate)."""
    with pytest.raises(errors.TrustStoreError) as exc:
        TrustStore.from_dsc_certificates([_dsc_with(csca, [(value, False)])])
    assert exc.value.code == "trust.bad_certificate"


def test_duplicate_private_key_usage_period_is_refused(csca: keys.KeyPair) -> None:
    """Two privateKeyUsagePeriod extensions: which one binds is unknowable, so the certificate is refused."""
    good = encode_pkup(NOW - DAY, NOW + 30 * DAY)
    der = _dsc_with(csca, [(good, False), (good, False)])
    with pytest.raises(errors.KeyStoreError, match="duplicate privateKeyUsagePeriod"):
        parse_dsc(der)


def test_readable_private_key_usage_period_is_read(csca: keys.KeyPair) -> None:
    """A well-formed period still parses, on pyca's path: the refusal is for unreadable ones only."""
    start, end = NOW - DAY, NOW + 30 * DAY
    info = parse_dsc(_dsc_with(csca, [(encode_pkup(start, end), False)]))
    assert info.pkup == (start.replace(microsecond=0), end.replace(microsecond=0))
