"""vaxcred.x509util: tolerant DSC parsing (every dgc-testdata certificate), EKU rules, certificate loading."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID, NameOID
from hypothesis import given
from hypothesis import strategies as st

from vaxcred.crypto import kid_for
from vaxcred.errors import KeyStoreError
from vaxcred.oids import EKU_TEST, EKU_VACCINATION_LEGACY
from vaxcred.x509util import (
    PRIVATE_KEY_USAGE_PERIOD,
    DscInfo,
    _extensions_from_der,
    _extensions_from_pyca,
    eku_allows,
    encode_pkup,
    load_certificate_bytes,
    load_untrusted_certificate,
    parse_dsc,
)

_VENDORED = Path(__file__).parent / "data" / "dgc-testdata"
DGC_TESTDATA = _VENDORED if _VENDORED.is_dir() else Path("/work/shared/data/dgc-testdata")
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

#: dgc-testdata certificates that pyca's ``cert.extensions`` rejects, so parse_dsc reads the DER itself
PYCA_REJECTS = {"common/2DCode/raw/CO15.json"}  # empty extendedKeyUsage SEQUENCE (SIZE 1..MAX)


def _vector_files() -> list[Path]:
    return sorted(DGC_TESTDATA.glob("*/2DCode/*/*.json"))


def _vector_id(path: Path) -> str:
    return path.relative_to(DGC_TESTDATA).as_posix()


def _certificate_der(name: str) -> bytes:
    vector = json.loads((DGC_TESTDATA / name).read_text(encoding="utf-8"))
    return load_certificate_bytes(vector["TESTCTX"]["CERTIFICATE"])


def _certificate(
    extensions: list[x509.ExtensionType], key: ec.EllipticCurvePrivateKey | None = None
) -> bytes:
    key = key or ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "VN")])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(7)
        .not_valid_before(NOW)
        .not_valid_after(NOW + timedelta(days=10))
    )
    for extension in extensions:
        builder = builder.add_extension(extension, critical=False)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


# --- every dgc-testdata certificate ----------------------------------------------------------------------


def test_dgc_testdata_has_140_vectors_with_certificates() -> None:
    """All 140 dgc-testdata vectors are present and each carries a TESTCTX.CERTIFICATE."""
    files = _vector_files()
    assert len(files) == 140
    assert all(json.loads(f.read_text(encoding="utf-8"))["TESTCTX"].get("CERTIFICATE") for f in files)


@pytest.mark.parametrize("path", _vector_files(), ids=_vector_id)
def test_parse_dsc_reads_dgc_testdata_certificate(path: Path) -> None:
    """parse_dsc reads every real-world DSC in dgc-testdata (SHA-1, critical EKU, ICAO, empty EKU...)."""
    der = _certificate_der(_vector_id(path))
    info = parse_dsc(der)
    assert info.kid == kid_for(der)
    assert info.not_before.tzinfo is not None
    assert info.not_before < info.not_after
    assert info.certificate is not None


@pytest.mark.parametrize("path", _vector_files(), ids=_vector_id)
def test_der_walker_agrees_with_pyca_on_dgc_testdata_certificate(path: Path) -> None:
    """The fallback DER walker reads the same extensions as pyca wherever pyca can read them."""
    name = _vector_id(path)
    der = _certificate_der(name)
    walked = _extensions_from_der(der)
    if name in PYCA_REJECTS:
        with pytest.raises(ValueError):
            _extensions_from_pyca(x509.load_der_x509_certificate(der))
        return
    assert _extensions_from_pyca(x509.load_der_x509_certificate(der)) == walked


def test_co15_empty_eku_reads_as_present_but_empty() -> None:
    """CO15's empty EKU (which pyca rejects) parses as an empty frozenset, not None."""
    info = parse_dsc(_certificate_der("common/2DCode/raw/CO15.json"))
    assert info.eku == frozenset()
    assert info.key_usage_digital_signature is True


@pytest.mark.parametrize("payload_type", ["v", "t", "r"])
def test_eku_allows_every_type_for_co15_empty_eku(payload_type: str) -> None:
    """An empty EKU (CO15) permits every payload type (DCC.md §5)."""
    assert eku_allows(parse_dsc(_certificate_der("common/2DCode/raw/CO15.json")), payload_type)


def test_eku_refuses_is3_foreign_purpose_for_its_test_payload() -> None:
    """IS/3's EKU lists only a foreign (ICAO) purpose, so its test payload is not allowed."""
    info = parse_dsc(_certificate_der("IS/2DCode/raw/3.json"))
    assert info.eku == frozenset({"2.23.136.1.1.14.2"})
    assert not eku_allows(info, "t")


def test_parse_dsc_reads_private_key_usage_period_of_hr_dsc() -> None:
    """HR's DSC carries privateKeyUsagePeriod 2021-04-20T06:34:01Z .. 2022-04-20T06:34:01Z."""
    info = parse_dsc(_certificate_der("HR/2DCode/raw/1.json"))
    assert info.pkup == (
        datetime(2021, 4, 20, 6, 34, 1, tzinfo=UTC),
        datetime(2022, 4, 20, 6, 34, 1, tzinfo=UTC),
    )


def test_parse_dsc_reads_rsa_3072_dsc_of_co2() -> None:
    """CO2's RSA-3072 DSC parses with its RSA public key."""
    info = parse_dsc(_certificate_der("common/2DCode/raw/CO2.json"))
    assert getattr(info.public_key, "key_size", None) == 3072


# --- synthetic certificates ------------------------------------------------------------------------------


def test_parse_dsc_reads_fields_of_a_built_certificate() -> None:
    """kid, country, EKU, keyUsage, basicConstraints, SKI and AKI come out as built."""
    key = ec.generate_private_key(ec.SECP256R1())
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    der = _certificate(
        [
            x509.ExtendedKeyUsage([EKU_TEST]),
            x509.BasicConstraints(ca=False, path_length=None),
            ski,
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski),
        ],
        key,
    )
    info = parse_dsc(der)
    assert info.kid == kid_for(der)
    assert info.country == "VN"
    assert info.eku == frozenset({EKU_TEST.dotted_string})
    assert info.is_ca is False
    assert info.ski == info.aki == ski.digest
    assert info.key_usage_digital_signature is None
    assert info.pkup is None


def test_parse_dsc_without_eku_has_eku_none() -> None:
    """No EKU extension reads as None (distinct from an empty EKU)."""
    assert parse_dsc(_certificate([])).eku is None


def test_parse_dsc_falls_back_for_empty_eku_extension() -> None:
    """A built certificate with an empty EKU SEQUENCE (pyca rejects it) parses via the DER walker."""
    der = _certificate([x509.UnrecognizedExtension(ExtensionOID.EXTENDED_KEY_USAGE, b"\x30\x00")])
    assert parse_dsc(der).eku == frozenset()


def test_parse_dsc_refuses_unreadable_eku_rather_than_treating_it_as_absent() -> None:
    """An EKU that neither pyca nor the walker can read raises (absent EKU would permit every type)."""
    der = _certificate([x509.UnrecognizedExtension(ExtensionOID.EXTENDED_KEY_USAGE, b"\x30\x03\x02\x01\x00")])
    with pytest.raises(KeyStoreError) as info:
        parse_dsc(der)
    assert info.value.code == "keys.bad_certificate"


def test_parse_dsc_reads_pkup_on_fallback_path() -> None:
    """privateKeyUsagePeriod is read by the walker too (when pyca rejects another extension)."""
    der = _certificate(
        [
            x509.UnrecognizedExtension(ExtensionOID.EXTENDED_KEY_USAGE, b"\x30\x00"),
            x509.UnrecognizedExtension(PRIVATE_KEY_USAGE_PERIOD, encode_pkup(NOW, NOW + timedelta(days=1))),
        ]
    )
    assert parse_dsc(der).pkup == (NOW, NOW + timedelta(days=1))


def test_parse_dsc_refuses_malformed_pkup() -> None:
    """A malformed privateKeyUsagePeriod fails closed: read as absent, the key could sign at any time."""
    der = _certificate([x509.UnrecognizedExtension(PRIVATE_KEY_USAGE_PERIOD, b"\x30\x03\x02\x01\x00")])
    with pytest.raises(KeyStoreError, match="privateKeyUsagePeriod"):
        parse_dsc(der)


@pytest.mark.parametrize("data", [b"", b"\x30", b"\x30\x03\x02\x01\x00", b"not a certificate" * 3])
def test_parse_dsc_rejects_garbage_with_keystore_error(data: bytes) -> None:
    """Bytes that are not a certificate raise KeyStoreError(keys.bad_certificate) only."""
    with pytest.raises(KeyStoreError) as info:
        parse_dsc(data)
    assert info.value.code == "keys.bad_certificate"


def test_parse_dsc_rejects_truncated_certificate() -> None:
    """A truncated DSC raises KeyStoreError."""
    with pytest.raises(KeyStoreError):
        parse_dsc(_certificate_der("AT/2DCode/raw/1.json")[:-10])


@given(
    start=st.datetimes(datetime(1950, 1, 1), datetime(9989, 1, 1), timezones=st.just(UTC)),
    length=st.timedeltas(timedelta(seconds=1), timedelta(days=3650)),
)
def test_encode_pkup_round_trips_through_parse(start: datetime, length: timedelta) -> None:
    """encode_pkup's DER reads back (to the second) through the walker's parser."""
    from vaxcred.x509util import _parse_pkup

    start = start.replace(microsecond=0)
    end = min(start + length, datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)).replace(microsecond=0)
    assert _parse_pkup(encode_pkup(start, end)) == (start, end)


def test_encode_pkup_rejects_naive_datetime() -> None:
    """Naive datetimes are a caller mistake: ValueError."""
    with pytest.raises(ValueError):
        encode_pkup(datetime(2026, 1, 1), None)


# --- DscInfo, eku_allows ---------------------------------------------------------------------------------


def _info(**changes: object) -> DscInfo:
    base = parse_dsc(_certificate([]))
    fields = {name: getattr(base, name) for name in DscInfo.__dataclass_fields__}
    fields.update(changes)
    return DscInfo(**fields)


def test_dsc_info_rejects_naive_datetimes() -> None:
    """DscInfo times must be aware."""
    with pytest.raises(ValueError):
        _info(not_before=datetime(2026, 1, 1))


def test_signing_window_is_validity_narrowed_by_pkup() -> None:
    """signing_window = [max(notBefore, pkup start), min(notAfter, pkup end)]."""
    info = _info(pkup=(None, NOW + timedelta(days=2)))
    assert info.signing_window == (info.not_before, NOW + timedelta(days=2))
    assert _info(pkup=None).signing_window == (info.not_before, info.not_after)


@pytest.mark.parametrize("payload_type", ["v", "t", "r"])
def test_eku_allows_every_type_without_eku(payload_type: str) -> None:
    """No EKU extension permits every payload type."""
    assert eku_allows(_info(eku=None), payload_type)


def test_eku_allows_only_listed_type() -> None:
    """A test-only EKU permits t and refuses v and r."""
    info = _info(eku=frozenset({EKU_TEST.dotted_string}))
    assert [eku_allows(info, t) for t in ("t", "v", "r")] == [True, False, False]


def test_eku_allows_legacy_family_oid() -> None:
    """The older 1.3.6.1.4.1.0.1847.2021.1.x family counts too."""
    assert eku_allows(_info(eku=frozenset({EKU_VACCINATION_LEGACY.dotted_string})), "v")


def test_eku_refuses_foreign_purposes_only() -> None:
    """An EKU of non-DCC purposes only (serverAuth) refuses every payload type."""
    info = _info(eku=frozenset({ExtendedKeyUsageOID.SERVER_AUTH.dotted_string}))
    assert not any(eku_allows(info, t) for t in ("v", "t", "r"))


def test_eku_allows_rejects_unknown_payload_type() -> None:
    """A payload type other than v/t/r is a caller mistake: ValueError."""
    with pytest.raises(ValueError):
        eku_allows(_info(eku=None), "x")


# --- load_certificate_bytes ------------------------------------------------------------------------------


def test_load_certificate_bytes_accepts_der_pem_and_base64() -> None:
    """DER, PEM (bytes and str) and base64 DER (with line breaks) all give the same DER."""
    der = _certificate_der("AT/2DCode/raw/1.json")
    pem = x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM)
    b64 = base64.encodebytes(der)
    assert load_certificate_bytes(der) == der
    assert load_certificate_bytes(pem) == der
    assert load_certificate_bytes(pem.decode()) == der
    assert load_certificate_bytes(b64) == der
    assert load_certificate_bytes(b64.decode()) == der


@pytest.mark.parametrize(
    "data", [b"", "", "not base64!", b"\x30\x03\x02\x01\x00", "-----BEGIN CERTIFICATE-----\nAAAA\n", "AAAA"]
)
def test_load_certificate_bytes_rejects_non_certificates(data: bytes | str) -> None:
    """Anything that is not a certificate raises KeyStoreError(keys.bad_certificate)."""
    with pytest.raises(KeyStoreError) as info:
        load_certificate_bytes(data)
    assert info.value.code == "keys.bad_certificate"


def test_untrusted_certificate_with_a_non_positive_serial_is_a_value_error() -> None:
    """A serial number made negative (cryptography only warns: RFC 5280 disallows it) is a ValueError, whatever
    the warning filters; the same certificate with its serial intact loads."""
    der = _certificate([])
    assert load_untrusted_certificate(der).serial_number == 7
    at = der.index(bytes([0x02, 0x01, 0x07])) + 2
    negative = der[:at] + b"\xf9" + der[at + 1 :]  # -7
    with pytest.raises(ValueError, match="RFC 5280"):
        load_untrusted_certificate(negative)
    pem = b"-----BEGIN CERTIFICATE-----\n" + base64.encodebytes(negative) + b"-----END CERTIFICATE-----\n"
    for form in (negative, base64.b64encode(negative), pem):  # DER, base64 DER, PEM: a typed refusal each
        with pytest.raises(KeyStoreError) as raised:
            load_certificate_bytes(form)
        assert raised.value.code == "keys.bad_certificate"
