"""The issuing side: refusals with their ``IssuanceError`` codes, validity policy, and the exact bytes emitted."""

from __future__ import annotations

import dataclasses
import hashlib
import zlib
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any

import base45
import cbor2
import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from tests.interop.payloads import DAY, NOW, sample_dcc, vaccination
from vaxcred import errors, keys
from vaxcred.issue import IssuancePolicy, IssuedPassport, Issuer, add_months, issue
from vaxcred.model import DCC, DateOfBirth, Name
from vaxcred.valuesets import VIETNAM_VACCINES

UTC7 = timezone(timedelta(hours=7))  # Indochina Time, no DST


@pytest.fixture(scope="session")
def short_dsc(csca: keys.KeyPair) -> keys.KeyPair:
    """A DSC valid 200 days: a 12-month passport issued under it would outlive it."""
    return keys.make_dsc(csca, now=NOW - DAY, validity=timedelta(days=200))


@pytest.fixture(scope="session")
def passport(dsc: keys.KeyPair) -> IssuedPassport:
    return issue(sample_dcc(), dsc.signer(), now=NOW)


@pytest.fixture(scope="session")
def rsa_passport(rsa_dsc: keys.KeyPair) -> IssuedPassport:
    return issue(sample_dcc(), rsa_dsc.signer(), now=NOW)


def _message(p: IssuedPassport) -> list[Any]:
    tagged = cbor2.loads(p.cose)
    assert tagged.tag == 18
    return tagged.value


def _claims(p: IssuedPassport) -> dict[Any, Any]:
    return cbor2.loads(_message(p)[2])


def _not_after(pair: keys.KeyPair) -> datetime:
    return pair.certificate.not_valid_after_utc


def _with_entry(**changes: Any) -> DCC:
    dcc = sample_dcc()
    return dataclasses.replace(dcc, entry=dataclasses.replace(dcc.entry, **changes))


# --- validity period ----------------------------------------------------------------------------------


def test_exp_past_dsc_not_after_is_refused(short_dsc: keys.KeyPair) -> None:
    """A 12-month passport under a DSC ending sooner is refused with issue.exp_past_dsc."""
    with pytest.raises(errors.IssuanceError) as info:
        issue(sample_dcc(), short_dsc.signer(), now=NOW)
    assert info.value.code == "issue.exp_past_dsc"


def test_clamp_to_dsc_shortens_exp_to_not_after(short_dsc: keys.KeyPair) -> None:
    """With clamp_to_dsc the passport is issued and expires exactly at the DSC's notAfter."""
    p = issue(sample_dcc(), short_dsc.signer(), now=NOW, policy=IssuancePolicy(clamp_to_dsc=True))
    assert p.exp == _not_after(short_dsc)
    assert _claims(p)[4] == int(_not_after(short_dsc).timestamp())


def test_clamp_to_dsc_leaves_a_fitting_exp_alone(dsc: keys.KeyPair) -> None:
    """clamp_to_dsc changes nothing when 12 months fit inside the DSC's validity."""
    p = issue(sample_dcc(), dsc.signer(), now=NOW, policy=IssuancePolicy(clamp_to_dsc=True))
    assert p.exp == datetime(2027, 1, 10, 9, 30, tzinfo=UTC)


def test_fixed_exp_policy_sets_exp(dsc: keys.KeyPair) -> None:
    """IssuancePolicy(fixed_exp=...) puts that instant, not iat + 12 months, into the passport."""
    fixed = datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC)
    p = issue(sample_dcc(), dsc.signer(), now=NOW, policy=IssuancePolicy(fixed_exp=fixed))
    assert p.exp == fixed
    assert _claims(p)[4] == int(fixed.timestamp())


def test_fixed_exp_in_another_timezone_is_the_same_instant(dsc: keys.KeyPair) -> None:
    """A fixed_exp given in UTC+7 becomes the same epoch second, reported in UTC."""
    fixed = datetime(2027, 1, 1, 6, 59, 59, tzinfo=UTC7)
    p = issue(sample_dcc(), dsc.signer(), now=NOW, policy=IssuancePolicy(fixed_exp=fixed))
    assert _claims(p)[4] == int(fixed.timestamp())
    assert p.exp == datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC)
    assert p.exp.utcoffset() == timedelta(0)


def test_fixed_exp_past_dsc_is_refused(short_dsc: keys.KeyPair) -> None:
    """A fixed_exp after the DSC's notAfter is refused like the default period (issue.exp_past_dsc)."""
    policy = IssuancePolicy(fixed_exp=_not_after(short_dsc) + timedelta(seconds=1))
    with pytest.raises(errors.IssuanceError) as info:
        issue(sample_dcc(), short_dsc.signer(), now=NOW, policy=policy)
    assert info.value.code == "issue.exp_past_dsc"


def test_fixed_exp_not_after_iat_is_refused(dsc: keys.KeyPair) -> None:
    """A fixed_exp at or before the signing instant is refused with issue.bad_validity."""
    with pytest.raises(errors.IssuanceError) as info:
        issue(sample_dcc(), dsc.signer(), now=NOW, policy=IssuancePolicy(fixed_exp=NOW))
    assert info.value.code == "issue.bad_validity"


def test_naive_fixed_exp_is_a_value_error() -> None:
    """A naive fixed_exp is a caller mistake (ValueError), not a policy."""
    with pytest.raises(ValueError, match="timezone-aware"):
        IssuancePolicy(fixed_exp=datetime(2027, 1, 1))


def test_default_validity_is_twelve_calendar_months(passport: IssuedPassport) -> None:
    """Without a policy, exp is iat plus 12 calendar months, same time of day."""
    assert passport.iat == NOW
    assert passport.exp == datetime(2027, 1, 10, 9, 30, tzinfo=UTC)


def test_validity_months_policy(dsc: keys.KeyPair) -> None:
    """IssuancePolicy(validity_months=3) gives exp three calendar months after iat."""
    p = issue(sample_dcc(), dsc.signer(), now=NOW, policy=IssuancePolicy(validity_months=3))
    assert p.exp == datetime(2026, 4, 10, 9, 30, tzinfo=UTC)


def test_add_months_keeps_jan_31_a_year_later() -> None:
    """Jan 31 plus 12 months is Jan 31 of the next year."""
    assert add_months(datetime(2026, 1, 31, 8, tzinfo=UTC), 12) == datetime(2027, 1, 31, 8, tzinfo=UTC)


def test_add_months_clamps_to_the_end_of_a_short_month() -> None:
    """Jan 31 plus one month is Feb 28 in a common year and Feb 29 in a leap year."""
    assert add_months(datetime(2026, 1, 31, tzinfo=UTC), 1) == datetime(2026, 2, 28, tzinfo=UTC)
    assert add_months(datetime(2028, 1, 31, tzinfo=UTC), 1) == datetime(2028, 2, 29, tzinfo=UTC)


def test_add_months_from_feb_29_clamps_to_feb_28() -> None:
    """Feb 29 2028 plus 12 months is Feb 28 2029, keeping the time of day."""
    assert add_months(datetime(2028, 2, 29, 10, 15, 7, tzinfo=UTC), 12) == datetime(
        2029, 2, 28, 10, 15, 7, tzinfo=UTC
    )


def test_add_months_crosses_the_year_boundary() -> None:
    """Nov 30 plus 3 months is Feb 28 of the next year; Dec plus 1 is January."""
    assert add_months(datetime(2026, 11, 30, tzinfo=UTC), 3) == datetime(2027, 2, 28, tzinfo=UTC)
    assert add_months(datetime(2026, 12, 15, tzinfo=UTC), 1) == datetime(2027, 1, 15, tzinfo=UTC)


def test_default_validity_from_feb_29_ends_on_feb_28() -> None:
    """A passport issued on Feb 29 2028 expires on Feb 28 2029 at the same time of day."""
    leap = datetime(2028, 2, 29, 10, 0, tzinfo=UTC)
    csca = keys.make_csca(now=leap - DAY)
    p = issue(sample_dcc(), keys.make_dsc(csca, now=leap - DAY).signer(), now=leap)
    assert p.exp == datetime(2029, 2, 28, 10, 0, tzinfo=UTC)


def test_outside_private_key_usage_period_is_refused(csca: keys.KeyPair) -> None:
    """After the DSC's privateKeyUsagePeriod ends the key may not sign (issue.outside_key_usage_period)."""
    dsc = keys.make_dsc(csca, now=NOW - 40 * DAY, private_key_usage_months=1)
    with pytest.raises(errors.IssuanceError) as info:
        issue(sample_dcc(), dsc.signer(), now=NOW)
    assert info.value.code == "issue.outside_key_usage_period"


def test_before_dsc_not_before_is_refused(dsc: keys.KeyPair) -> None:
    """Signing before the DSC is valid is refused with issue.dsc_not_valid."""
    with pytest.raises(errors.IssuanceError) as info:
        issue(sample_dcc(), dsc.signer(), now=NOW - 2 * DAY)
    assert info.value.code == "issue.dsc_not_valid"


def test_naive_now_is_a_value_error(dsc: keys.KeyPair) -> None:
    """A naive now raises ValueError before anything is signed."""
    with pytest.raises(ValueError, match="timezone-aware"):
        issue(sample_dcc(), dsc.signer(), now=datetime(2026, 1, 10, 9, 30))


def test_non_datetime_now_is_a_type_error(dsc: keys.KeyPair) -> None:
    """A now that is not a datetime (an ISO string) is a caller mistake: TypeError, as verify() raises."""
    with pytest.raises(TypeError):
        issue(sample_dcc(), dsc.signer(), now="2026-01-10T09:30:00+00:00")  # type: ignore[arg-type]


def test_iat_is_whole_utc_seconds(dsc: keys.KeyPair) -> None:
    """iat is the signing instant truncated to an integer second, whatever the caller's zone."""
    now = datetime(2026, 1, 10, 16, 30, 5, 999_999, tzinfo=UTC7)
    p = issue(sample_dcc(), dsc.signer(), now=now)
    iat = _claims(p)[6]
    assert type(iat) is int
    assert iat == int(datetime(2026, 1, 10, 9, 30, 5, tzinfo=UTC).timestamp())
    assert p.iat == datetime(2026, 1, 10, 9, 30, 5, tzinfo=UTC)


# --- who may sign what --------------------------------------------------------------------------------


def test_site_certificate_cannot_issue() -> None:
    """A vaccination-site certificate never signs a passport (issue.key_usage)."""
    site_ca = keys.make_site_ca(now=NOW - DAY)
    site = keys.make_site_certificate(
        site_ca, site_id="HN-0001", site_name="Trạm Y tế Phường 1", now=NOW - DAY
    )
    with pytest.raises(errors.IssuanceError) as info:
        issue(sample_dcc(), site.signer(), now=NOW)
    assert info.value.code == "issue.key_usage"


def test_test_only_dsc_cannot_issue_a_vaccination(csca: keys.KeyPair) -> None:
    """A DSC whose EKU permits test certificates only refuses a vaccination payload (issue.key_usage)."""
    test_dsc = keys.make_dsc(csca, now=NOW - DAY, types=("t",))
    with pytest.raises(errors.IssuanceError) as info:
        issue(sample_dcc(), test_dsc.signer(), now=NOW)
    assert info.value.code == "issue.key_usage"


def test_trust_list_signer_cannot_issue(csca: keys.KeyPair) -> None:
    """The trust-list key (TRUST_LIST_EKU only) cannot sign a vaccination passport."""
    signer = keys.make_trust_list_signer(csca, now=NOW - DAY).signer()
    with pytest.raises(errors.IssuanceError) as info:
        issue(sample_dcc(), signer, now=NOW)
    assert info.value.code == "issue.key_usage"


# --- value sets ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"mp": "EU/1/20/9999"}, id="unknown-product"),
        pytest.param({"tg": "840539007"}, id="unknown-disease"),
        pytest.param({"ma": "ORG-000000000"}, id="unknown-holder"),
        pytest.param({"co": "XX"}, id="unknown-country"),
        pytest.param({"vp": "J07BX03"}, id="deprecated-vaccine-type"),
    ],
)
def test_code_outside_value_sets_is_refused(dsc: keys.KeyPair, changes: dict[str, str]) -> None:
    """A code not in its value set, or deprecated there, is refused with issue.valueset."""
    with pytest.raises(errors.IssuanceError) as info:
        issue(_with_entry(**changes), dsc.signer(), now=NOW)
    assert info.value.code == "issue.valueset"


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"ma": "ORG-100031184"}, id="comirnaty-by-moderna"),
        pytest.param({"vp": "1157024006"}, id="comirnaty-as-inactivated"),
    ],
)
def test_disallowed_product_combination_is_refused(dsc: keys.KeyPair, changes: dict[str, str]) -> None:
    """Valid codes in an mp/ma/vp combination Annex A does not allow are refused (issue.bad_combination)."""
    with pytest.raises(errors.IssuanceError) as info:
        issue(_with_entry(**changes), dsc.signer(), now=NOW)
    assert info.value.code == "issue.bad_combination"


def test_every_vietnam_campaign_product_can_be_issued(dsc: keys.KeyPair) -> None:
    """Each product in VIETNAM_VACCINES passes the issuing-side value-set and combination checks."""
    issuer = Issuer(dsc.signer())
    for product in VIETNAM_VACCINES:
        dcc = DCC(
            nam=Name.create(fn="Trần", gn="Thị Hương"),
            dob=DateOfBirth.from_text("1975"),
            entry=vaccination(product),
        )
        assert _claims(issuer.issue(dcc, now=NOW))[-260] == {1: dcc.to_json()}


def test_nonexistent_vaccination_date_is_refused(dsc: keys.KeyPair) -> None:
    """The strict issuer refuses a vaccination date that is no calendar date (2021-02-30)."""
    with pytest.raises(errors.IssuanceError) as exc:
        issue(_with_entry(dt="2021-02-30"), dsc.signer(), now=NOW)
    assert exc.value.code == "issue.bad_date"


# --- what is emitted ----------------------------------------------------------------------------------


def test_repr_hides_hc1_text_and_names(passport: IssuedPassport) -> None:
    """repr(IssuedPassport) shows kid and times, never the HC1 text, UVCI or holder names."""
    text = repr(passport)
    assert passport.kid.hex() in text
    for secret in (
        passport.hc1,
        passport.hc1[4:40],
        passport.uvci,
        "Nguyễn",
        "NGUYEN",
        "Văn Đức",
        "1990-05-17",
    ):
        assert secret not in text


def test_uvci_is_the_entry_ci(passport: IssuedPassport) -> None:
    """IssuedPassport.uvci is the ci field actually signed."""
    assert passport.uvci == _claims(passport)[-260][1]["v"][0]["ci"]


def test_cose_is_a_tag_18_array_of_four(passport: IssuedPassport) -> None:
    """The COSE_Sign1 starts D2 84: tag 18 around a 4-element array."""
    assert passport.cose[:2] == b"\xd2\x84"


def test_es256_protected_header_bytes(passport: IssuedPassport, dsc: keys.KeyPair) -> None:
    """ES256 protected header is exactly A2 01 26 04 48 <kid>, a 13-byte bstr (4D)."""
    expected = bytes.fromhex("a2012604 48") + dsc.kid
    assert _message(passport)[0] == expected
    assert passport.cose[2:16] == b"\x4d" + expected


def test_ps256_protected_header_bytes(rsa_passport: IssuedPassport, rsa_dsc: keys.KeyPair) -> None:
    """PS256 protected header is exactly A2 01 38 24 04 48 <kid>, a 14-byte bstr (4E)."""
    expected = bytes.fromhex("a2013824 0448") + rsa_dsc.kid
    assert _message(rsa_passport)[0] == expected
    assert rsa_passport.cose[2:17] == b"\x4e" + expected


def test_unprotected_header_is_an_empty_map(passport: IssuedPassport, rsa_passport: IssuedPassport) -> None:
    """The byte after the protected bstr is A0: an empty unprotected map (ES256 and PS256)."""
    assert passport.cose[16] == 0xA0
    assert rsa_passport.cose[17] == 0xA0


def test_kid_is_sha256_prefix_of_the_dsc(passport: IssuedPassport, dsc: keys.KeyPair) -> None:
    """The kid is the first 8 bytes of SHA-256 over the DSC's DER."""
    der = dsc.certificate.public_bytes(Encoding.DER)
    assert passport.kid == hashlib.sha256(der).digest()[:8]


def test_es256_signature_is_raw_64_bytes(passport: IssuedPassport) -> None:
    """The ES256 signature is raw r||s, 64 bytes, not DER."""
    assert len(_message(passport)[3]) == 64


def test_zlib_header_is_level_9(passport: IssuedPassport) -> None:
    """The Base45 text decodes to a zlib stream with header 78 DA that inflates to the COSE bytes."""
    compressed = base45.b45decode(passport.hc1.removeprefix("HC1:"))
    assert compressed[:2] == b"\x78\xda"
    assert zlib.decompress(compressed) == passport.cose


def test_hc1_text_is_prefix_and_base45_alphabet(passport: IssuedPassport) -> None:
    """The HC1 text is 'HC1:' followed by Base45 characters only (QR alphanumeric set)."""
    alphabet = set("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:")
    assert passport.hc1.startswith("HC1:")
    assert set(passport.hc1[4:]) <= alphabet


def test_claims_keys_in_canonical_order(passport: IssuedPassport) -> None:
    """The claims map is A4 with keys 1, 4, 6, -260 in that order (hcert key encoded 39 01 03)."""
    payload = _message(passport)[2]
    assert payload[:2] == b"\xa4\x01"
    assert list(cbor2.loads(payload)) == [1, 4, 6, -260]
    assert b"\x39\x01\x03\xa1\x01" in payload


def test_iss_is_vn(passport: IssuedPassport) -> None:
    """The iss claim is the text 'VN'."""
    assert _claims(passport)[1] == "VN"


def test_iss_none_policy_omits_the_claim(dsc: keys.KeyPair) -> None:
    """IssuancePolicy(iss=None) leaves claim 1 out altogether."""
    p = issue(sample_dcc(), dsc.signer(), now=NOW, policy=IssuancePolicy(iss=None))
    assert list(_claims(p)) == [4, 6, -260]


def test_dcc_json_mapping_issues_the_same_payload(dsc: keys.KeyPair) -> None:
    """Issuing the DCC's JSON form signs the same hcert as issuing the model."""
    dcc = sample_dcc()
    from_json = issue(dcc.to_json(), dsc.signer(), now=NOW)
    assert _claims(from_json)[-260] == {1: dcc.to_json()}


def test_same_input_gives_the_same_payload(dsc: keys.KeyPair) -> None:
    """Encoding is deterministic: the same DCC at the same instant gives identical claims bytes."""
    dcc = sample_dcc()
    issuer = Issuer(dsc.signer())
    assert _message(issuer.issue(dcc, now=NOW))[2] == _message(issuer.issue(dcc, now=NOW))[2]


# --- the issuer's validity memo (one ``now`` for a whole batch) ------------------------------------------


def test_reused_issuer_gives_each_now_its_own_validity(dsc: keys.KeyPair) -> None:
    """An issuer remembers the last ``now``'s iat/exp: another ``now`` gets its own, as a fresh issuer gives."""
    issuer = Issuer(dsc.signer())
    later = NOW + timedelta(days=3, seconds=7)
    for moment in (NOW, later, NOW, later.astimezone(UTC7)):
        reused = issuer.issue(sample_dcc(), now=moment)
        fresh = Issuer(dsc.signer()).issue(sample_dcc(), now=moment)
        assert (reused.iat, reused.exp) == (fresh.iat, fresh.exp)
        assert reused.iat == moment.astimezone(UTC).replace(microsecond=0)
        assert _claims(reused)[6] == int(moment.timestamp())


def test_reused_issuer_still_refuses_a_now_outside_the_dsc(short_dsc: keys.KeyPair) -> None:
    """A remembered good ``now`` never masks a refused one (nor is a refusal remembered)."""
    issuer = Issuer(short_dsc.signer(), policy=IssuancePolicy(validity_months=1))
    issuer.issue(sample_dcc(), now=NOW)
    with pytest.raises(errors.IssuanceError) as caught:
        issuer.issue(sample_dcc(), now=_not_after(short_dsc) + DAY)
    assert caught.value.code == "issue.dsc_not_valid"
    assert issuer.issue(sample_dcc(), now=NOW).iat == NOW.replace(microsecond=0)


class _FoldZone(tzinfo):
    """A zone whose clocks go back an hour at 02:00 every day: 01:30 happens twice (fold 0: UTC-4, fold 1: UTC-5)."""

    def utcoffset(self, moment: datetime | None) -> timedelta:
        assert moment is not None
        return timedelta(hours=-5 if moment.fold else -4)

    def dst(self, moment: datetime | None) -> timedelta:
        return timedelta(0)

    def tzname(self, moment: datetime | None) -> str:
        return "FOLD"


def test_reused_issuer_tells_apart_the_two_instants_of_a_folded_hour(dsc: keys.KeyPair) -> None:
    """Regression: two aware datetimes of one zone compare equal by wall time even an hour apart (DST fold);
    the remembered validity must follow the instant, not the wall time."""
    zone = _FoldZone()
    first = NOW.astimezone(UTC7).replace(tzinfo=zone, hour=1, minute=30, second=0, microsecond=0, fold=0)
    second = first.replace(fold=1)
    assert first == second
    assert first.timestamp() != second.timestamp()
    issuer = Issuer(dsc.signer())
    issued = [issuer.issue(sample_dcc(), now=moment).iat for moment in (first, second)]
    assert issued == [first.astimezone(UTC), second.astimezone(UTC)]
    assert issued[1] - issued[0] == timedelta(hours=1)
