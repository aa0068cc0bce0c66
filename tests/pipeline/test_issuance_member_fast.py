"""Issuance's one-pass check of a batch member against the stored dose (site_signing.batch_member_is): it accepts
only what the full verification accepts with exactly the stored values, whatever is edited, with the head's cache
warm from genuine members of the same batch (issue 9 §2, session 5)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vaxcred import keys
from vaxcred.errors import VaxcredError
from vaxcred.pipeline.records.model import DoseRecord
from vaxcred.pipeline.records.vaccines import vaccine_codes
from vaxcred.pipeline.site_signing import batch_member_is
from vaxcred.pipeline.site_signing.batch import BatchMember, SignedBatch, sign_batch
from vaxcred.pipeline.site_signing.claims import citizen_hash
from vaxcred.pipeline.site_signing.decoding import (
    _claims,
    _decode_leaf,
)
from vaxcred.pipeline.site_signing.encoding import _encode_leaf
from vaxcred.pipeline.site_signing.leaf_match import (
    _leaf_is,
    _valid_text_fields,
)
from vaxcred.pipeline.site_signing.record import verify_stored_dose

CA_TIME = datetime(2021, 1, 1, tzinfo=UTC)
NOW = datetime(2021, 10, 1, 8, 30, 15, tzinfo=UTC)
CITIZENS = [f"0010900{i:05d}" for i in range(11)]


@dataclass(frozen=True, slots=True, kw_only=True)
class Stored:
    """A member as issuance reads it: the row's bytes and the dose's values."""

    head: bytes
    index: int
    proof: bytes
    payload: bytes
    citizen_id: str
    values: dict[str, Any]


@pytest.fixture(scope="module")
def site_ca() -> keys.KeyPair:
    return keys.make_site_ca(now=CA_TIME)


@pytest.fixture(scope="module")
def site(site_ca: keys.KeyPair) -> keys.KeyPair:
    return keys.make_site_certificate(
        site_ca, site_id="HN-001", site_name="Trạm Y tế Láng Thượng", now=CA_TIME
    )


@pytest.fixture(scope="module")
def other_site(site_ca: keys.KeyPair) -> keys.KeyPair:
    return keys.make_site_certificate(site_ca, site_id="HCM-042", site_name="Bệnh viện Quận 1", now=CA_TIME)


def _dose(i: int) -> DoseRecord:
    return DoseRecord(
        citizen_id=CITIZENS[i],
        vaccine="Comirnaty" if i % 2 else "Vaxzevria",
        lot=f"FK{i:04d}",
        date=f"2021-09-{1 + i:02d}",
        dose_number=1 + i % 3,
        site_id="HN-001",
    )


def _values(dose: DoseRecord) -> dict[str, Any]:
    codes = vaccine_codes(dose.vaccine)
    return {
        "site_id": dose.site_id,
        "mp": codes.mp,
        "ma": codes.ma,
        "vp": codes.vp,
        "lot": dose.lot,
        "date": dose.date,
        "dose_number": dose.dose_number,
    }


def _stored(batch: SignedBatch, doses: list[DoseRecord]) -> list[Stored]:
    assert batch.head is not None
    out = []
    for dose, member in zip(doses, batch.outcomes, strict=True):
        assert isinstance(member, BatchMember)
        out.append(
            Stored(
                head=batch.head,
                index=member.index,
                proof=b"".join(member.proof),
                payload=member.payload,
                citizen_id=dose.citizen_id,
                values=_values(dose),
            )
        )
    return out


@pytest.fixture(scope="module")
def members(site: keys.KeyPair) -> list[Stored]:
    doses = [_dose(i) for i in range(len(CITIZENS))]
    return _stored(sign_batch(doses, signer=site.signer(), now=NOW), doses)


def _fast(m: Stored, certificate: Any, **changes: Any) -> datetime | None:
    fields: dict[str, Any] = {"head": m.head, "index": m.index, "proof": m.proof, "payload": m.payload}
    fields.update({k: v for k, v in changes.items() if k in fields})
    values = {**m.values, **{k: v for k, v in changes.items() if k in m.values}}
    return batch_member_is(
        fields["head"],
        fields["index"],
        fields["proof"],
        fields["payload"],
        site_certificate=certificate,
        citizen_id=changes.get("citizen_id", m.citizen_id),
        now=changes.get("now", NOW),
        **values,
    )


def _full(m: Stored, certificate: Any, **changes: Any) -> dict[str, Any] | str:
    """What the full verification says of the (changed) member: its values, or its error code."""
    fields: dict[str, Any] = {"head": m.head, "index": m.index, "proof": m.proof, "payload": m.payload}
    fields.update({k: v for k, v in changes.items() if k in fields})
    try:
        claims = verify_stored_dose(
            fields["payload"],
            fields["head"],
            fields["index"],
            fields["proof"],
            site_certificate=certificate,
            citizen_id=changes.get("citizen_id", m.citizen_id),
            now=changes.get("now", NOW),
        )
    except VaxcredError as e:
        return e.code
    return {
        "site_id": claims.site_id,
        "mp": claims.mp,
        "ma": claims.ma,
        "vp": claims.vp,
        "lot": claims.lot,
        "date": claims.date,
        "dose_number": claims.dose_number,
    }


def test_every_genuine_member_is_accepted_with_its_head_time(
    site: keys.KeyPair, members: list[Stored]
) -> None:
    """Each member of a signed batch, checked against its own dose: the head's signing time, as the full check."""
    for m in members:
        assert _fast(m, site.certificate) == NOW
        assert _full(m, site.certificate) == m.values


def test_a_forged_member_sharing_a_verified_batch_is_not_accepted(
    site: keys.KeyPair, members: list[Stored]
) -> None:
    """With the head verified (and cached) through genuine members, a member whose payload, path, index, citizen
    or dose values are not the signed ones is never accepted by the one-pass check, and the full check refuses
    it too (or reads other values than the stored dose's)."""
    genuine, neighbour = members[4], members[5]
    assert _fast(genuine, site.certificate) == NOW  # the head is in the cache now
    flipped = bytearray(genuine.payload)
    flipped[-20] ^= 0x01
    path = bytearray(genuine.proof)
    path[3] ^= 0x80
    forged: dict[str, dict[str, Any]] = {
        "payload edited": {"payload": bytes(flipped)},
        "neighbour's payload": {"payload": neighbour.payload},
        "neighbour's index": {"index": neighbour.index},
        "neighbour's path": {"proof": neighbour.proof},
        "path edited": {"proof": bytes(path)},
        "path cut short": {"proof": genuine.proof[:-32]},
        "path made longer": {"proof": genuine.proof + genuine.proof[:32]},
        "path not whole hashes": {"proof": genuine.proof[:-1]},
        "another citizen": {"citizen_id": neighbour.citizen_id},
        "another lot": {"lot": "FK9999"},
        "another date": {"date": "2021-09-30"},
        "another dose number": {"dose_number": genuine.values["dose_number"] + 1},
        "another product": {"mp": "EU/1/20/1507"},
        "another site": {"site_id": "HCM-042"},
        "signed in the future": {"now": NOW - timedelta(seconds=1)},
    }
    for how, change in forged.items():
        assert _fast(genuine, site.certificate, **change) is None, how
        full = _full(genuine, site.certificate, **change)
        assert full != genuine.values or any(k in genuine.values for k in change), how
    assert _fast(genuine, site.certificate) == NOW  # the genuine one still is


def test_a_head_not_signed_by_the_certificate_is_not_accepted(
    site: keys.KeyPair, other_site: keys.KeyPair, members: list[Stored]
) -> None:
    """Another site's certificate, or a head altered by one byte: not accepted (the full check refuses too)."""
    m = members[0]
    assert _fast(m, other_site.certificate) is None
    assert isinstance(_full(m, other_site.certificate), str)
    head = m.head[:-5] + bytes([m.head[-5] ^ 0x80]) + m.head[-4:]
    assert _fast(m, site.certificate, head=head) is None
    assert isinstance(_full(m, site.certificate, head=head), str)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    which=st.integers(0, len(CITIZENS) - 1),
    part=st.sampled_from(["payload", "proof", "head"]),
    start=st.integers(0, 400),
    stop=st.integers(0, 400),
    insert=st.binary(max_size=4),
    index_shift=st.sampled_from([0, 0, 0, 1, -1]),
)
def test_whatever_is_edited_the_one_pass_check_accepts_only_what_the_full_one_accepts(
    site: keys.KeyPair,
    members: list[Stored],
    which: int,
    part: str,
    start: int,
    stop: int,
    insert: bytes,
    index_shift: int,
) -> None:
    """Any edit of a member's bytes or index: accepted by the one-pass check only if the full verification
    accepts it with exactly the stored dose's values (the head's time then); never a refusal turned into a
    passport."""
    m = members[which]
    raw: bytes = getattr(m, part)
    start, stop = sorted((min(start, len(raw)), min(stop, len(raw))))
    changes: dict[str, Any] = {
        part: raw[:start] + insert + raw[stop:],
        "index": max(0, m.index + index_shift),
    }
    fast = _fast(m, site.certificate, **changes)
    if fast is not None:
        assert _full(m, site.certificate, **changes) == m.values
        assert fast == NOW


_codes = st.text(st.characters(blacklist_categories=("Cs",)), min_size=0, max_size=12)


@settings(max_examples=300, deadline=None)
@given(
    site_id=st.sampled_from(["HN-001", "HN-001", "HCM-042", "hn-001", "HN 001", ""]),
    mp=st.sampled_from(["EU/1/20/1528", "EU/1/20/1528", "Vero\u00a0Cell", ""]) | _codes,
    lot=st.sampled_from(["FK0001", "FK0001", "lô 7", " ", "L\x00T", ""]),
    dt=st.sampled_from(["2021-09-01", "2021-09-01", "2024-02-29", "2021-02-30", "2021-9-01", ""]),
    dn=st.sampled_from([1, 2, 3]) | st.integers(-1, 30),
    salt=st.binary(min_size=16, max_size=16),
    same_citizen=st.booleans(),
)
def test_leaf_is_holds_exactly_when_the_decoded_leaf_says_these_values(
    site_id: str, mp: str, lot: str, dt: str, dn: int, salt: bytes, same_citizen: bool
) -> None:
    """For payloads encoded from any values (valid or not): _leaf_is is True only when the decoder accepts the
    payload, reads these values and the citizen matches; and it is True for every valid one of this citizen."""
    citizen = "001090000001"
    raw = _encode_leaf(
        site=site_id,
        cid=citizen_hash(citizen, salt),
        salt=salt,
        mp=mp,
        ma="ORG-1",
        vp="J07BX03",
        lot=lot,
        dt=dt,
        dn=dn,
    )
    asked = citizen if same_citizen else "001090000002"
    shown = _leaf_is(
        raw, citizen_id=asked, site=site_id, mp=mp, ma="ORG-1", vp="J07BX03", lot=lot, dt=dt, dn=dn
    )
    try:
        claims = _decode_leaf(raw, b"kid", NOW)
    except VaxcredError:
        assert not shown
        return
    assert (claims.site_id, claims.mp, claims.lot, claims.date, claims.dose_number) == (
        site_id,
        mp,
        lot,
        dt,
        dn,
    )
    assert shown == claims.matches_citizen(asked)


_pick = st.sampled_from


@settings(max_examples=500, deadline=None)
@given(
    site=_pick(["HN-001", "VN079-S01", "hn-001", "HN 001", "", "HN-001\n"]) | _codes,
    mp=_pick(["EU/1/20/1528", "x" * 80, "x" * 81, "a\x7f", ""]) | _codes,
    ma=_pick(["ORG-100030215", "", "\t"]) | _codes,
    vp=_pick(["J07BX03", "1119349007", ""]) | _codes,
    lot=_pick(["FK0001", " ", "  x ", "L\x00T", "", "x" * 81]) | _codes,
    dt=_pick(["2021-09-01", "2024-02-29", "2023-02-29", "2021-13-01", "2021-9-01", "２０２１-09-01", ""])
    | _codes,
)
def test_the_text_checks_give_the_claims_verdict(
    site: str, mp: str, ma: str, vp: str, lot: str, dt: str
) -> None:
    """_valid_text_fields accepts exactly the text values _claims accepts (same regular expressions, blank lot,
    calendar date), valid and invalid ones alike."""
    payload: dict[object, object] = {
        "site": site,
        "cid": bytes(32),
        "salt": bytes(16),
        "mp": mp,
        "ma": ma,
        "vp": vp,
        "lot": lot,
        "dt": dt,
        "dn": 1,
    }
    try:
        _claims(payload, b"kid", NOW)
    except VaxcredError:
        accepted = False
    else:
        accepted = True
    assert _valid_text_fields(site, mp, ma, vp, lot, dt) == accepted


@pytest.mark.parametrize(
    "change",
    [
        {"citizen_id": "0010900\ud80000001"},
        {"site": "HN-\ud800"},
        {"lot": "FK\ud800"},
        {"mp": "EU/\ud800"},
        {"ma": "\udfff"},
        {"vp": "J07\ud800"},
        {"dt": "2021-09-0\ud800"},
        {"dt": "2021-02-30"},
        {"lot": "   "},
        {"dn": 0},
        {"dn": 10},
        {"dn": True},
        {"lot": 7},
        {"mp": None},
    ],
)
def test_leaf_is_is_false_for_values_no_valid_payload_holds(
    members: list[Stored], change: dict[str, Any]
) -> None:
    """Values UTF-8 cannot encode, that the decoder refuses, or of another type: _leaf_is answers False (never
    raises), for the genuine payload of the member whose values are otherwise these."""
    m = members[1]
    values: dict[str, Any] = {
        "citizen_id": m.citizen_id,
        "site": m.values["site_id"],
        "mp": m.values["mp"],
        "ma": m.values["ma"],
        "vp": m.values["vp"],
        "lot": m.values["lot"],
        "dt": m.values["date"],
        "dn": m.values["dose_number"],
    }
    assert _leaf_is(m.payload, **values)
    assert not _leaf_is(m.payload, **{**values, **change})


def test_now_in_any_zone_is_the_same_instant_and_a_naive_now_is_refused(
    site: keys.KeyPair, members: list[Stored]
) -> None:
    """`now` is read as an instant whatever its zone (UTC itself skips the conversion): the same verdicts as the
    full check; a naive `now` is no verdict (None), never an exception."""
    genuine = members[2]
    zones = [ZoneInfo("Asia/Ho_Chi_Minh"), ZoneInfo("UTC"), timezone(timedelta(hours=-5))]
    for zone in zones:
        assert _fast(genuine, site.certificate, now=NOW.astimezone(zone)) == NOW, zone
        earlier = (NOW - timedelta(microseconds=1)).astimezone(zone)
        assert _fast(genuine, site.certificate, now=earlier) is None, zone
        assert _full(genuine, site.certificate, now=earlier) == "sitesign.signed_in_future"
    assert _fast(genuine, site.certificate, now=NOW.replace(tzinfo=None)) is None
    assert _fast(genuine, site.certificate, now="2021-10-01T08:30:15Z") is None
