"""vaxcred.pipeline.site_signing.record: site-signed dose records (COSE_Sign1, own content type, never a passport)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import cbor2
import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import given, settings
from hypothesis import strategies as st

from vaxcred import keys
from vaxcred.codec import base45, cbor, compress, cose, prefix
from vaxcred.crypto import Algorithm
from vaxcred.errors import (
    ChainError,
    CoseError,
    DecodeError,
    KeyUsageError,
    KidError,
    SignatureError,
    TimeError,
    VerificationError,
)
from vaxcred.pipeline.errors import PipelineError
from vaxcred.pipeline.records.model import DoseRecord
from vaxcred.pipeline.site_signing.record import (
    CONTENT_TYPE,
    DoseClaims,
    citizen_hash,
    is_site_certificate,
    sign_dose,
    site_id_of,
    verify_dose,
)
from vaxcred.result import Status
from vaxcred.trust import TrustStore
from vaxcred.valuesets import VIETNAM_VACCINES
from vaxcred.verify import verify

CA_TIME = datetime(2021, 1, 1, tzinfo=UTC)
NOW = datetime(2021, 10, 1, 8, 30, 15, 250_000, tzinfo=UTC)
NOW_S = NOW.replace(microsecond=0)
CITIZEN = "001090012345"


@pytest.fixture(scope="module")
def site_ca() -> keys.KeyPair:
    return keys.make_site_ca(now=CA_TIME)


@pytest.fixture(scope="module")
def site_a(site_ca: keys.KeyPair) -> keys.KeyPair:
    return keys.make_site_certificate(
        site_ca, site_id="HN-001", site_name="Trạm Y tế Phường Láng Thượng", now=CA_TIME
    )


@pytest.fixture(scope="module")
def site_b(site_ca: keys.KeyPair) -> keys.KeyPair:
    return keys.make_site_certificate(site_ca, site_id="HCM-042", site_name="Bệnh viện Quận 1", now=CA_TIME)


@pytest.fixture(scope="module")
def dsc() -> keys.KeyPair:
    return keys.make_dsc(keys.make_csca(now=CA_TIME), now=CA_TIME)


def _dose(**overrides: Any) -> DoseRecord:
    fields: dict[str, Any] = {
        "citizen_id": CITIZEN,
        "vaccine": "Comirnaty",
        "lot": "FK1234",
        "date": "2021-09-01",
        "dose_number": 1,
        "site_id": "HN-001",
    }
    fields.update(overrides)
    return DoseRecord(**fields)


def _payload(**overrides: Any) -> dict[str, Any]:
    salt = bytes(range(16))
    codes = VIETNAM_VACCINES["Comirnaty"]
    payload: dict[str, Any] = {
        "v": 1,
        "site": "HN-001",
        "cid": citizen_hash(CITIZEN, salt),
        "salt": salt,
        "mp": codes.mp,
        "ma": codes.ma,
        "vp": codes.vp,
        "lot": "FK1234",
        "dt": "2021-09-01",
        "dn": 1,
        "signed": int(NOW_S.timestamp()),
    }
    payload.update(overrides)
    return payload


def _forge(pair: keys.KeyPair, payload: object, *, protected: dict[int, object] | None = None) -> bytes:
    """A record built by hand and signed with ``pair``'s key, bypassing sign_dose's checks."""
    header = {1: int(Algorithm.ES256), 3: CONTENT_TYPE, 4: pair.kid} if protected is None else protected
    protected_bytes = cbor.dumps(header)
    payload_bytes = payload if isinstance(payload, bytes) else cbor.dumps(payload)
    signature = pair.signer().sign(cose.sig_structure_for(protected_bytes, payload_bytes))
    return cose.encode_sign1(protected_bytes, payload_bytes, signature)


# --- round trip ---------------------------------------------------------------------------------------


def test_round_trip(site_a: keys.KeyPair, site_ca: keys.KeyPair) -> None:
    """A signed record verifies against its certificate, site CA and citizen, giving back its content."""
    signed = sign_dose(_dose(), signer=site_a.signer(), now=NOW)
    assert signed.kid == site_a.kid
    assert signed.signed_at == NOW_S
    assert signed.site_id == "HN-001"
    claims = verify_dose(
        signed.cose,
        site_certificate=site_a.certificate,
        site_ca=site_ca.certificate,
        citizen_id=CITIZEN,
        now=NOW,
    )
    codes = VIETNAM_VACCINES["Comirnaty"]
    assert (claims.mp, claims.ma, claims.vp) == (codes.mp, codes.ma, codes.vp)
    assert (claims.site_id, claims.lot, claims.date, claims.dose_number) == (
        "HN-001",
        "FK1234",
        "2021-09-01",
        1,
    )
    assert claims.signed_at == NOW_S
    assert claims.kid == site_a.kid
    assert claims.matches_citizen(CITIZEN)


def test_record_layout(site_a: keys.KeyPair) -> None:
    """Tag 18, protected {alg, content type, kid}, a text-keyed canonical payload without the citizen ID."""
    signed = sign_dose(_dose(), signer=site_a.signer(), now=NOW)
    assert signed.cose[:1] == b"\xd2"
    msg = cose.decode_sign1(signed.cose)
    assert dict(msg.protected) == {1: -7, 3: CONTENT_TYPE, 4: site_a.kid}
    assert msg.unprotected == {}
    payload = cbor.loads(msg.payload)
    assert isinstance(payload, dict)
    assert all(isinstance(k, str) for k in payload)
    assert set(payload) == {"v", "site", "cid", "salt", "mp", "ma", "vp", "lot", "dt", "dn", "signed"}
    assert payload["cid"] == hashlib.sha256(payload["salt"] + CITIZEN.encode()).digest()
    assert cbor.dumps(payload) == msg.payload
    assert CITIZEN.encode() not in signed.cose


def test_fresh_salt_per_signature(site_a: keys.KeyPair) -> None:
    """Two signatures of the same dose carry different salts and citizen hashes (not linkable by hash)."""
    first = verify_dose(
        sign_dose(_dose(), signer=site_a.signer(), now=NOW).cose, site_certificate=site_a.certificate
    )
    second = verify_dose(
        sign_dose(_dose(), signer=site_a.signer(), now=NOW).cose, site_certificate=site_a.certificate
    )
    assert first.salt != second.salt
    assert first.citizen_hash != second.citizen_hash
    assert "cid" not in repr(first)
    assert first.citizen_hash.hex() not in repr(first)


def test_vaccine_given_as_mp_code(site_a: keys.KeyPair) -> None:
    """A dose recorded with an mp code signs with the product's codes."""
    signed = sign_dose(_dose(vaccine="EU/1/21/1529"), signer=site_a.signer(), now=NOW)
    claims = verify_dose(signed.cose, site_certificate=site_a.certificate)
    assert (claims.mp, claims.ma) == ("EU/1/21/1529", VIETNAM_VACCINES["Vaxzevria"].ma)


def test_rsa_site_certificate_signs_ps256(site_ca: keys.KeyPair) -> None:
    """An RSA site key signs PS256 records that verify."""
    rsa_site = keys.make_site_certificate(
        site_ca, site_id="DN-007", site_name="TTYT Hải Châu", now=CA_TIME, key="rsa"
    )
    signed = sign_dose(_dose(site_id="DN-007"), signer=rsa_site.signer(), now=NOW)
    assert cose.decode_sign1(signed.cose).alg == Algorithm.PS256
    assert (
        verify_dose(signed.cose, site_certificate=rsa_site.certificate, site_ca=site_ca.certificate).site_id
        == "DN-007"
    )


@settings(max_examples=40, deadline=None)
@given(
    citizen_id=st.from_regex(r"[0-9]{12}|[0-9]{9}|[A-Z][A-Z0-9]{4,19}", fullmatch=True),
    vaccine=st.sampled_from(sorted(VIETNAM_VACCINES)),
    lot=st.text(st.characters(codec="utf-8", categories=["L", "N", "P"]), min_size=1, max_size=64),
    day=st.dates(min_value=datetime(2021, 3, 8).date(), max_value=NOW.date()),
    dose_number=st.integers(min_value=1, max_value=9),
    offset=st.integers(min_value=0, max_value=60 * 86400),  # the certificate ends 2022-01-01
)
def test_round_trip_property(
    site_a: keys.KeyPair,
    citizen_id: str,
    vaccine: str,
    lot: str,
    day: Any,
    dose_number: int,
    offset: int,
) -> None:
    """Any valid dose of site A, signed while the certificate is valid, verifies to its own content."""
    dose = _dose(
        citizen_id=citizen_id, vaccine=vaccine, lot=lot, date=day.isoformat(), dose_number=dose_number
    )
    at = NOW + timedelta(seconds=offset)
    claims = verify_dose(
        sign_dose(dose, signer=site_a.signer(), now=at).cose,
        site_certificate=site_a.certificate,
        citizen_id=citizen_id,
    )
    assert (claims.mp, claims.lot, claims.date, claims.dose_number) == (
        VIETNAM_VACCINES[vaccine].mp,
        lot,
        day.isoformat(),
        dose_number,
    )
    assert claims.signed_at == at.replace(microsecond=0)


# --- who may sign -------------------------------------------------------------------------------------


def test_site_id_of_reads_the_subject_cn(
    site_a: keys.KeyPair, dsc: keys.KeyPair, site_ca: keys.KeyPair
) -> None:
    """The site id is the site certificate's CN; DSCs and CAs are not site certificates."""
    assert site_id_of(site_a.certificate) == "HN-001"
    assert is_site_certificate(site_a.certificate)
    assert not is_site_certificate(dsc.certificate)
    assert not is_site_certificate(site_ca.certificate)


@pytest.mark.parametrize("which", ["dsc", "site_ca"])
def test_dsc_or_ca_cannot_sign(which: str, dsc: keys.KeyPair, site_ca: keys.KeyPair) -> None:
    """A passport signer (DSC) or the site root refuses to sign dose records: sitesign.wrong_purpose."""
    pair = dsc if which == "dsc" else site_ca
    with pytest.raises(PipelineError) as info:
        sign_dose(_dose(), signer=pair.signer(), now=NOW)
    assert info.value.code == "sitesign.wrong_purpose"


def test_site_cannot_sign_another_sites_record(site_a: keys.KeyPair) -> None:
    """Site A's key refuses a record recorded by site B: sitesign.not_own_record."""
    with pytest.raises(PipelineError) as info:
        sign_dose(_dose(site_id="HCM-042"), signer=site_a.signer(), now=NOW)
    assert info.value.code == "sitesign.not_own_record"


def test_forged_record_for_another_site_fails(site_a: keys.KeyPair) -> None:
    """A record naming site B, signed by hand with site A's key, fails verification: sitesign.not_own_record."""
    forged = _forge(site_a, _payload(site="HCM-042"))
    with pytest.raises(KeyUsageError) as info:
        verify_dose(forged, site_certificate=site_a.certificate)
    assert info.value.code == "sitesign.not_own_record"


def test_record_signed_by_a_dsc_fails_verification(dsc: keys.KeyPair) -> None:
    """Given a DSC as the 'site certificate', verification refuses it: sitesign.wrong_purpose."""
    with pytest.raises(KeyUsageError) as info:
        verify_dose(_forge(dsc, _payload()), site_certificate=dsc.certificate)
    assert info.value.code == "sitesign.wrong_purpose"


def test_certificate_other_than_the_kids_fails(site_a: keys.KeyPair, site_b: keys.KeyPair) -> None:
    """Verified against another site's certificate, the kid does not match: sitesign.kid_mismatch."""
    signed = sign_dose(_dose(), signer=site_a.signer(), now=NOW)
    with pytest.raises(KidError) as info:
        verify_dose(signed.cose, site_certificate=site_b.certificate)
    assert info.value.code == "sitesign.kid_mismatch"


def test_site_certificate_under_another_root_fails_the_chain(site_a: keys.KeyPair) -> None:
    """With a site CA given, a certificate it did not issue fails: chain.*."""
    signed = sign_dose(_dose(), signer=site_a.signer(), now=NOW)
    other_root = keys.make_site_ca(now=CA_TIME)
    with pytest.raises(ChainError):
        verify_dose(signed.cose, site_certificate=site_a.certificate, site_ca=other_root.certificate)


# --- tampering and malformed input ----------------------------------------------------------------------


def test_tampered_payload_fails_the_signature(site_a: keys.KeyPair) -> None:
    """Changing one payload byte (the lot) breaks the signature."""
    msg = cose.decode_sign1(sign_dose(_dose(), signer=site_a.signer(), now=NOW).cose)
    tampered = msg.payload.replace(b"FK1234", b"FK1235")
    assert tampered != msg.payload
    with pytest.raises(SignatureError) as info:
        verify_dose(
            cose.encode_sign1(msg.protected_bytes, tampered, msg.signature),
            site_certificate=site_a.certificate,
        )
    assert info.value.code == "signature.invalid"


def test_header_alg_disagreeing_with_the_key_fails(site_a: keys.KeyPair) -> None:
    """The algorithm comes from the key: a PS256 header on an EC key fails signature.alg_mismatch."""
    forged = _forge(site_a, _payload(), protected={1: -37, 3: CONTENT_TYPE, 4: site_a.kid})
    with pytest.raises(SignatureError) as info:
        verify_dose(forged, site_certificate=site_a.certificate)
    assert info.value.code == "signature.alg_mismatch"


@pytest.mark.parametrize(
    ("protected", "code"),
    [
        ({1: -7, 3: "application/cbor", 4: None}, "sitesign.bad_content_type"),
        ({1: -7, 4: None}, "sitesign.bad_header"),
        ({1: -7, 3: CONTENT_TYPE, 4: None, 5: b"x"}, "sitesign.bad_header"),
    ],
)
def test_wrong_headers_fail(site_a: keys.KeyPair, protected: dict[int, object], code: str) -> None:
    """Another content type, a missing or an extra header fails decoding, even when signed."""
    header = {k: (site_a.kid if v is None else v) for k, v in protected.items()}
    with pytest.raises(CoseError) as info:
        verify_dose(_forge(site_a, _payload(), protected=header), site_certificate=site_a.certificate)
    assert info.value.code == code


def test_untagged_or_cwt_tagged_record_fails(site_a: keys.KeyPair) -> None:
    """Only tag 18 is a site record: the untagged array fails sitesign.bad_tag."""
    signed = sign_dose(_dose(), signer=site_a.signer(), now=NOW)
    with pytest.raises(CoseError) as info:
        verify_dose(signed.cose[1:], site_certificate=site_a.certificate)
    assert info.value.code == "sitesign.bad_tag"
    with pytest.raises(CoseError):
        verify_dose(cbor.dumps(cbor.Tagged(61, cbor.loads(signed.cose))), site_certificate=site_a.certificate)


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (_payload(v=2), "sitesign.bad_payload"),
        ({k: v for k, v in _payload().items() if k != "salt"}, "sitesign.bad_payload"),
        ({**_payload(), "extra": 1}, "sitesign.bad_payload"),
        (_payload(cid=b"\x00" * 31), "sitesign.bad_payload"),
        (_payload(salt=b"\x00" * 8), "sitesign.bad_payload"),
        (_payload(dn=0), "sitesign.bad_payload"),
        (_payload(dn=True), "sitesign.bad_payload"),
        (_payload(dt="2021-02-30"), "sitesign.bad_payload"),
        (_payload(dt="01/09/2021"), "sitesign.bad_payload"),
        (_payload(signed=-1), "sitesign.bad_payload"),
        (_payload(site="bad site"), "sitesign.bad_payload"),
        (_payload(lot=""), "sitesign.bad_payload"),
        ({1: "VN", 4: 1, 6: 0, -260: {1: {}}}, "sitesign.bad_payload"),  # CWT claims are not a dose record
        ([1, 2, 3], "sitesign.bad_payload"),
    ],
)
def test_malformed_payload_fails(site_a: keys.KeyPair, payload: object, code: str) -> None:
    """A signed payload that is not exactly the dose-record map fails with sitesign.bad_payload."""
    with pytest.raises(CoseError) as info:
        verify_dose(_forge(site_a, payload), site_certificate=site_a.certificate)
    assert info.value.code == code


def test_non_canonical_payload_fails(site_a: keys.KeyPair) -> None:
    """Keys out of canonical order (even with a valid signature) fail sitesign.not_canonical."""
    canonical = cbor.dumps(_payload())
    reordered = dict(reversed(list(_payload().items())))
    raw = cbor2.dumps(reordered)  # the plain (non-canonical) encoder keeps insertion order
    assert raw != canonical
    with pytest.raises(CoseError) as info:
        verify_dose(_forge(site_a, raw), site_certificate=site_a.certificate)
    assert info.value.code == "sitesign.not_canonical"


@pytest.mark.parametrize(
    "data", [b"", b"\xd2", b"\xd2\x84", b"\xd2\x84\x40\xa0\x40", b"not cbor at all", b"\xd2" * 9000]
)
def test_garbage_raises_decode_errors_only(site_a: keys.KeyPair, data: bytes) -> None:
    """Malformed bytes raise a DecodeError, never a library exception."""
    with pytest.raises(DecodeError):
        verify_dose(data, site_certificate=site_a.certificate)


# --- time -------------------------------------------------------------------------------------------------


def test_certificate_checked_at_signing_time_not_now(site_a: keys.KeyPair, site_ca: keys.KeyPair) -> None:
    """A record signed while the certificate was valid still verifies after it expired."""
    signed = sign_dose(_dose(), signer=site_a.signer(), now=NOW)
    much_later = site_a.certificate.not_valid_after_utc + timedelta(days=400)
    claims = verify_dose(
        signed.cose, site_certificate=site_a.certificate, site_ca=site_ca.certificate, now=much_later
    )
    assert claims.signed_at == NOW_S


def test_expired_certificate_cannot_sign(site_a: keys.KeyPair) -> None:
    """sign_dose refuses once the site certificate has expired: sitesign.cert_not_valid."""
    after = site_a.certificate.not_valid_after_utc + timedelta(seconds=1)
    with pytest.raises(PipelineError) as info:
        sign_dose(_dose(), signer=site_a.signer(), now=after)
    assert info.value.code == "sitesign.cert_not_valid"


@pytest.mark.parametrize("when", ["after_expiry", "before_issue"])
def test_record_signed_outside_the_certificate_validity_fails(site_a: keys.KeyPair, when: str) -> None:
    """A record whose signing time lies outside the certificate's validity fails sitesign.cert_not_valid."""
    cert = site_a.certificate
    at = (
        cert.not_valid_after_utc + timedelta(seconds=1)
        if when == "after_expiry"
        else cert.not_valid_before_utc - timedelta(seconds=1)
    )
    forged = _forge(site_a, _payload(signed=int(at.timestamp())))
    with pytest.raises(TimeError) as info:
        verify_dose(forged, site_certificate=cert)
    assert info.value.code == "sitesign.cert_not_valid"


def test_record_signed_in_the_future_fails(site_a: keys.KeyPair) -> None:
    """With now given, a signing time after now fails sitesign.signed_in_future (skew allows some)."""
    signed = sign_dose(_dose(), signer=site_a.signer(), now=NOW)
    with pytest.raises(TimeError) as info:
        verify_dose(signed.cose, site_certificate=site_a.certificate, now=NOW - timedelta(minutes=5))
    assert info.value.code == "sitesign.signed_in_future"
    verify_dose(
        signed.cose,
        site_certificate=site_a.certificate,
        now=NOW - timedelta(minutes=5),
        skew=timedelta(minutes=10),
    )


def test_dose_dated_after_signing_is_refused(site_a: keys.KeyPair) -> None:
    """A site cannot sign a dose dated after the signing time: sitesign.bad_record."""
    with pytest.raises(PipelineError) as info:
        sign_dose(_dose(date="2021-10-02"), signer=site_a.signer(), now=NOW)
    assert info.value.code == "sitesign.bad_record"
    assert info.value.field == "date"


def test_naive_now_is_a_caller_mistake(site_a: keys.KeyPair) -> None:
    """A naive now raises ValueError."""
    with pytest.raises(ValueError):
        sign_dose(_dose(), signer=site_a.signer(), now=NOW.replace(tzinfo=None))


# --- citizen ----------------------------------------------------------------------------------------------


def test_wrong_citizen_id_fails(site_a: keys.KeyPair) -> None:
    """Verifying for another citizen ID fails sitesign.citizen_mismatch."""
    signed = sign_dose(_dose(), signer=site_a.signer(), now=NOW)
    with pytest.raises(VerificationError) as info:
        verify_dose(signed.cose, site_certificate=site_a.certificate, citizen_id="001090012346")
    assert info.value.code == "sitesign.citizen_mismatch"
    claims = verify_dose(signed.cose, site_certificate=site_a.certificate)
    assert isinstance(claims, DoseClaims)
    assert not claims.matches_citizen(" " + CITIZEN)


# --- never a passport ---------------------------------------------------------------------------------------


def test_site_record_is_not_a_passport(site_a: keys.KeyPair) -> None:
    """Wrapped as HC1 and verified with the site certificate trusted as a DSC, the record is INVALID at cose."""
    signed = sign_dose(_dose(), signer=site_a.signer(), now=NOW)
    hc1 = prefix.add_prefix(base45.b45encode(compress.compress(signed.cose)))
    store = TrustStore.from_dsc_certificates([site_a.certificate.public_bytes(Encoding.DER)])
    result = verify(hc1, store, now=NOW)
    assert result.status is Status.INVALID
    failed = [step for step in result.steps if step.result == "fail"]
    assert [step.name for step in failed] == ["cose"]
