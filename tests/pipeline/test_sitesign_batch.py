"""vaxcred.pipeline.site_signing.batch: one site signature per batch, each record standalone (head + audit path)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pycose.messages import Sign1Message

from tests.interop.cose_keys import pycose_public_key
from vaxcred import keys
from vaxcred.codec import cbor, cose
from vaxcred.crypto import Algorithm
from vaxcred.errors import CoseError, DecodeError, KeyUsageError, KidError, SignatureError, VerificationError
from vaxcred.merkle import inclusion_proof, leaf_hash, root
from vaxcred.pipeline.errors import PipelineError
from vaxcred.pipeline.log.entries import site_record
from vaxcred.pipeline.records.model import DoseRecord
from vaxcred.pipeline.site_signing.batch import (
    BatchMember,
    SignedBatch,
    _head_outcome,
    sign_batch,
)
from vaxcred.pipeline.site_signing.batch_codec import (
    BATCH_CONTENT_TYPE,
    MAX_BATCH_MEMBERS,
    encode_batch_record,
)
from vaxcred.pipeline.site_signing.encoding import _encode_leaf
from vaxcred.pipeline.site_signing.record import (
    CONTENT_TYPE,
    citizen_hash,
    sign_dose,
    verify_dose,
    verify_stored_dose,
)

CA_TIME = datetime(2021, 1, 1, tzinfo=UTC)
NOW = datetime(2021, 10, 1, 8, 30, 15, 250_000, tzinfo=UTC)
NOW_S = NOW.replace(microsecond=0)
CITIZENS = [f"0010900{i:05d}" for i in range(13)]


@pytest.fixture(scope="module")
def site_ca() -> keys.KeyPair:
    return keys.make_site_ca(now=CA_TIME)


@pytest.fixture(scope="module")
def site_a(site_ca: keys.KeyPair) -> keys.KeyPair:
    return keys.make_site_certificate(
        site_ca, site_id="HN-001", site_name="Trạm Y tế Láng Thượng", now=CA_TIME
    )


@pytest.fixture(scope="module")
def site_a2(site_ca: keys.KeyPair) -> keys.KeyPair:
    """A second certificate of the same site (a new key)."""
    return keys.make_site_certificate(
        site_ca, site_id="HN-001", site_name="Trạm Y tế Láng Thượng", now=CA_TIME
    )


@pytest.fixture(scope="module")
def site_b(site_ca: keys.KeyPair) -> keys.KeyPair:
    return keys.make_site_certificate(site_ca, site_id="HCM-042", site_name="Bệnh viện Quận 1", now=CA_TIME)


def _dose(i: int = 0, **overrides: Any) -> DoseRecord:
    fields: dict[str, Any] = {
        "citizen_id": CITIZENS[i],
        "vaccine": "Comirnaty",
        "lot": f"FK{i:04d}",
        "date": "2021-09-01",
        "dose_number": 1 + i % 3,
        "site_id": "HN-001",
    }
    fields.update(overrides)
    return DoseRecord(**fields)


@pytest.fixture(scope="module")
def batch(site_a: keys.KeyPair) -> SignedBatch:
    return sign_batch([_dose(i) for i in range(len(CITIZENS))], signer=site_a.signer(), now=NOW)


def _members(batch: SignedBatch) -> list[BatchMember]:
    return [m for m in batch.outcomes if isinstance(m, BatchMember)]


def _forge_head(
    pair: keys.KeyPair, payload: dict[str, object], content_type: str = BATCH_CONTENT_TYPE
) -> bytes:
    """A batch head built by hand and signed with ``pair``'s key, bypassing sign_batch."""
    protected = cbor.dumps({1: int(Algorithm.ES256), 3: content_type, 4: pair.kid})
    raw = cbor.dumps(payload)
    return cose.encode_sign1(protected, raw, pair.signer().sign(cose.sig_structure_for(protected, raw)))


# --- round trip and layout ----------------------------------------------------------------------------------


def test_every_member_verifies_on_its_own(
    batch: SignedBatch, site_a: keys.KeyPair, site_ca: keys.KeyPair
) -> None:
    """Each standalone record verifies with the certificate, site CA and its citizen, giving back its dose."""
    assert batch.size == len(CITIZENS)
    assert batch.signed_at == NOW_S
    assert batch.kid == site_a.kid
    for i, member in enumerate(_members(batch)):
        claims = verify_dose(
            batch.record(member),
            site_certificate=site_a.certificate,
            site_ca=site_ca.certificate,
            citizen_id=CITIZENS[i],
            now=NOW,
        )
        assert (claims.site_id, claims.lot, claims.dose_number, claims.date) == (
            "HN-001",
            f"FK{i:04d}",
            1 + i % 3,
            "2021-09-01",
        )
        assert claims.signed_at == NOW_S
        assert claims.kid == site_a.kid
        with pytest.raises(VerificationError) as info:
            verify_dose(batch.record(member), site_certificate=site_a.certificate, citizen_id=CITIZENS[i - 1])
        assert info.value.code == "sitesign.citizen_mismatch"


def test_layout_checked_by_pycose_and_cbor2(batch: SignedBatch, site_a: keys.KeyPair) -> None:
    """pycose verifies the head's COSE_Sign1; cbor2 reads canonical text-keyed payloads; the root is the members'."""
    assert batch.head is not None
    msg = Sign1Message.decode(batch.head)
    msg.key = pycose_public_key(site_a.certificate.public_key())
    assert msg.verify_signature() is True
    assert dict(cbor2.loads(cose.decode_sign1(batch.head).protected_bytes)) == {
        1: -7,
        3: BATCH_CONTENT_TYPE,
        4: site_a.kid,
    }
    head = cbor2.loads(msg.payload)
    members = _members(batch)
    assert head == {
        "v": 2,
        "site": "HN-001",
        "root": root([leaf_hash(m.payload) for m in members]),
        "size": len(members),
        "signed": int(NOW_S.timestamp()),
    }
    assert cbor2.dumps(head, canonical=True) == msg.payload
    for i, m in enumerate(members):
        payload = cbor2.loads(m.payload)
        assert set(payload) == {"v", "site", "cid", "salt", "mp", "ma", "vp", "lot", "dt", "dn"}
        assert payload["v"] == 2
        assert payload["cid"] == citizen_hash(CITIZENS[i], payload["salt"])
        assert cbor2.dumps(payload, canonical=True) == m.payload
        assert CITIZENS[i].encode() not in m.payload
        assert m.index == i
        assert m.proof == inclusion_proof([leaf_hash(x.payload) for x in members], i)
        record = batch.record(m)
        assert cbor2.loads(record) == [2, batch.head, i, list(m.proof), m.payload]
        assert cbor2.dumps(cbor2.loads(record), canonical=True) == record


def test_log_and_signer_assemble_the_same_record(batch: SignedBatch) -> None:
    """The stored form (payload, head, index, concatenated path) assembles to the signer's standalone bytes."""
    for m in _members(batch):
        assert site_record(m.payload, batch.head, m.index, b"".join(m.proof)) == batch.record(m)


def test_stored_parts_verify_like_the_standalone_record(batch: SignedBatch, site_a: keys.KeyPair) -> None:
    """verify_stored_dose on the columns gives the claims verify_dose gives on the standalone record."""
    assert batch.head is not None
    for i, m in enumerate(_members(batch)):
        stored = verify_stored_dose(
            m.payload,
            batch.head,
            m.index,
            b"".join(m.proof),
            site_certificate=site_a.certificate,
            citizen_id=CITIZENS[i],
        )
        assert stored == verify_dose(batch.record(m), site_certificate=site_a.certificate)


def test_a_dose_that_cannot_be_signed_is_refused_alone(site_a: keys.KeyPair) -> None:
    """A dose dated after the signing time and another site's dose are refused in outcomes; the rest form the
    tree."""
    doses = [_dose(0), _dose(1, date="2021-12-01"), _dose(2), _dose(3, site_id="HCM-042")]
    signed = sign_batch(doses, signer=site_a.signer(), now=NOW)
    codes = [o.code if isinstance(o, PipelineError) else o.index for o in signed.outcomes]
    assert codes == [0, "sitesign.bad_record", 1, "sitesign.not_own_record"]
    assert signed.size == 2
    for m in _members(signed):
        verify_dose(signed.record(m), site_certificate=site_a.certificate)
    nothing = sign_batch([_dose(1, date="2021-12-01")], signer=site_a.signer(), now=NOW)
    assert nothing.head is None
    assert nothing.size == 0


def test_a_passport_signer_cannot_sign_a_batch(site_ca: keys.KeyPair) -> None:
    """The signer is refused as a whole: a CA (or a DSC) is not a site certificate."""
    with pytest.raises(PipelineError) as info:
        sign_batch([_dose()], signer=site_ca.signer(), now=NOW)
    assert info.value.code == "sitesign.wrong_purpose"
    with pytest.raises(ValueError, match="at most"):
        sign_batch([_dose()] * (MAX_BATCH_MEMBERS + 1), signer=site_ca.signer(), now=NOW)


def test_one_signature_check_per_head(site_a: keys.KeyPair) -> None:
    """Verifying every member of a fresh batch checks its head once (the cache), then only hashes."""
    fresh = sign_batch([_dose(i) for i in range(8)], signer=site_a.signer(), now=NOW + timedelta(seconds=3))
    before = _head_outcome.cache_info()
    for m in _members(fresh):
        verify_dose(fresh.record(m), site_certificate=site_a.certificate)
    after = _head_outcome.cache_info()
    assert after.misses - before.misses == 1
    assert after.hits - before.hits == 7


# --- what must fail -----------------------------------------------------------------------------------------


def _fails(data: bytes, cert: keys.KeyPair, code: str, kind: type[Exception] = SignatureError) -> None:
    with pytest.raises(kind) as info:
        verify_dose(data, site_certificate=cert.certificate)
    assert getattr(info.value, "code", None) == code


def test_tampered_payload_fails(batch: SignedBatch, site_a: keys.KeyPair) -> None:
    """One byte of a member's payload changed (still a valid payload): its path no longer reaches the root."""
    assert batch.head is not None
    m = _members(batch)[3]
    payload = m.payload.replace(b"FK0003", b"FK0004")
    _fails(encode_batch_record(batch.head, m.index, m.proof, payload), site_a, "sitesign.not_in_batch")


def test_wrong_short_or_long_proof_fails(batch: SignedBatch, site_a: keys.KeyPair) -> None:
    """Another member's path, a path cut short, a path with a hash added: all sitesign.not_in_batch."""
    assert batch.head is not None
    members = _members(batch)
    m, other = members[5], members[6]
    for proof in (other.proof, m.proof[:-1], (*m.proof, m.proof[0]), ()):
        _fails(encode_batch_record(batch.head, m.index, proof, m.payload), site_a, "sitesign.not_in_batch")


def test_wrong_index_fails(batch: SignedBatch, site_a: keys.KeyPair) -> None:
    """The right path under a neighbour's index, or an index past the batch size: sitesign.not_in_batch."""
    assert batch.head is not None
    m = _members(batch)[4]
    for index in (5, 3, batch.size, batch.size + 100):
        _fails(encode_batch_record(batch.head, index, m.proof, m.payload), site_a, "sitesign.not_in_batch")


def test_a_member_moved_under_another_head_fails(batch: SignedBatch, site_a: keys.KeyPair) -> None:
    """A member presented with another batch's head (same site, same key: a swapped root) is not in it."""
    other = sign_batch([_dose(i) for i in range(len(CITIZENS))], signer=site_a.signer(), now=NOW)
    assert other.head is not None
    m = _members(batch)[2]
    _fails(encode_batch_record(other.head, m.index, m.proof, m.payload), site_a, "sitesign.not_in_batch")


def test_a_head_with_another_root_or_size_fails(batch: SignedBatch, site_a: keys.KeyPair) -> None:
    """A correctly signed head announcing another root, or a size the path cannot belong to, fails.

    (A path does not pin the size exactly: leaf 6's path in a tree of 13 is also its path in trees of 9..16,
    whose root would differ; the size is as good as the signature over it, as RFC 9162 says of tree heads.)"""
    members = _members(batch)
    m = members[6]
    good = {
        "v": 2,
        "site": "HN-001",
        "root": root([leaf_hash(x.payload) for x in members]),
        "size": len(members),
        "signed": int(NOW_S.timestamp()),
    }
    assert verify_dose(
        encode_batch_record(_forge_head(site_a, good), m.index, m.proof, m.payload),
        site_certificate=site_a.certificate,
    )
    for changed in ({"root": bytes(32)}, {"size": 17}, {"size": 7}, {"size": 6}, {"size": 1}):
        head = _forge_head(site_a, {**good, **changed})
        _fails(encode_batch_record(head, m.index, m.proof, m.payload), site_a, "sitesign.not_in_batch")


def test_altered_head_bytes_fail(batch: SignedBatch, site_a: keys.KeyPair) -> None:
    """A flipped bit anywhere in the head's signed part or signature: the head fails (signature or decode)."""
    assert batch.head is not None
    m = _members(batch)[1]
    for position in (len(batch.head) - 1, len(batch.head) - 70, len(batch.head) // 2):
        head = bytearray(batch.head)
        head[position] ^= 0x01
        with pytest.raises((SignatureError, DecodeError)):
            verify_dose(
                encode_batch_record(bytes(head), m.index, m.proof, m.payload),
                site_certificate=site_a.certificate,
            )


def test_head_of_another_site_or_certificate_fails(
    batch: SignedBatch, site_a: keys.KeyPair, site_a2: keys.KeyPair, site_b: keys.KeyPair
) -> None:
    """Verified with another certificate of the same site (kid), or another site's: refused."""
    m = _members(batch)[0]
    record = batch.record(m)
    _fails(record, site_a2, "sitesign.kid_mismatch", KidError)
    _fails(record, site_b, "sitesign.kid_mismatch", KidError)
    # site B signs a head over site A's members: its own site's certificate, but the members are not its records
    members = _members(batch)
    forged = _forge_head(
        site_b,
        {
            "v": 2,
            "site": "HCM-042",
            "root": root([leaf_hash(x.payload) for x in members]),
            "size": len(members),
            "signed": int(NOW_S.timestamp()),
        },
    )
    _fails(
        encode_batch_record(forged, m.index, m.proof, m.payload),
        site_b,
        "sitesign.not_own_record",
        KeyUsageError,
    )
    # site B claims site A's id in its head: the certificate names site B
    forged = _forge_head(
        site_b,
        {
            "v": 2,
            "site": "HN-001",
            "root": root([leaf_hash(x.payload) for x in members]),
            "size": len(members),
            "signed": int(NOW_S.timestamp()),
        },
    )
    _fails(
        encode_batch_record(forged, m.index, m.proof, m.payload),
        site_b,
        "sitesign.not_own_record",
        KeyUsageError,
    )


def test_heads_and_records_never_pass_for_each_other(batch: SignedBatch, site_a: keys.KeyPair) -> None:
    """A head is not a v1 record, a v1 record is not a head, and a head with the v1 content type is refused."""
    assert batch.head is not None
    _fails(batch.head, site_a, "sitesign.bad_content_type", CoseError)
    v1 = sign_dose(_dose(), signer=site_a.signer(), now=NOW).cose
    m = _members(batch)[0]
    _fails(encode_batch_record(v1, 0, m.proof, m.payload), site_a, "sitesign.bad_content_type", CoseError)
    members = _members(batch)
    head = _forge_head(
        site_a,
        {
            "v": 2,
            "site": "HN-001",
            "root": root([leaf_hash(x.payload) for x in members]),
            "size": len(members),
            "signed": int(NOW_S.timestamp()),
        },
        content_type=CONTENT_TYPE,
    )
    _fails(
        encode_batch_record(head, m.index, m.proof, m.payload), site_a, "sitesign.bad_content_type", CoseError
    )
    # a v1 payload as a member (it has "signed"): not a member payload
    v1_payload = cose.decode_sign1(v1).payload
    single = _forge_head(
        site_a,
        {
            "v": 2,
            "site": "HN-001",
            "root": leaf_hash(v1_payload),
            "size": 1,
            "signed": int(NOW_S.timestamp()),
        },
    )
    _fails(encode_batch_record(single, 0, (), v1_payload), site_a, "sitesign.bad_payload", CoseError)


def test_malformed_stored_parts_fail(batch: SignedBatch, site_a: keys.KeyPair) -> None:
    """A stored path that is not whole hashes, or a member without an index: sitesign.not_in_batch."""
    assert batch.head is not None
    m = _members(batch)[0]
    for index, proof in ((m.index, b"".join(m.proof)[:-1]), (None, b"".join(m.proof))):
        with pytest.raises(SignatureError) as info:
            verify_stored_dose(m.payload, batch.head, index, proof, site_certificate=site_a.certificate)
        assert info.value.code == "sitesign.not_in_batch"


# --- hostile input ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"\x85\x02", "sitesign.bad_batch_record"),
        (b"\x85\x02" + b"\x40" * 4, "sitesign.bad_batch_record"),  # [2, h'', h'', h'', h'']: index not an int
        (cbor2.dumps([2, b"h", 0, [b"short"], b"p"]), "sitesign.bad_batch_record"),
        (cbor2.dumps([2, b"h", 0, [bytes(32)] * 17, b"p"]), "sitesign.bad_batch_record"),
        (cbor2.dumps([2, b"h", -1, [], b"p"]), "sitesign.bad_batch_record"),
        (cbor2.dumps([2, b"h", MAX_BATCH_MEMBERS, [], b"p"]), "sitesign.bad_batch_record"),
        (cbor2.dumps([2, b"h", 0, [[bytes(32)]], b"p"]), "sitesign.bad_batch_record"),  # nested too deep
        (cbor2.dumps([2, b"h", 0, [], b"p" * 2000]), "sitesign.bad_batch_record"),
        (cbor2.dumps([2, b"h", 0, [], b"p"]) + b"\x00", "sitesign.bad_batch_record"),
        (b"\x85\x02\x58\x01h\x18\x00\x80\x41p", "sitesign.not_canonical"),  # index 0 in two bytes
        (b"\x85\x02" + b"\x00" * 40_000, "sitesign.too_large"),
        (b"\x84\x02", "sitesign.bad_tag"),
        (b"\x85\x01", "sitesign.bad_tag"),
    ],
)
def test_malformed_batch_records_fail_typed(data: bytes, code: str, site_a: keys.KeyPair) -> None:
    """Each shape the batch record decoder refuses, with its stable code (DecodeError, never untyped)."""
    with pytest.raises(DecodeError) as info:
        verify_dose(data, site_certificate=site_a.certificate)
    assert info.value.code == code


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=400))
def test_garbage_after_the_batch_marker_raises_decode_errors_only(site_a: keys.KeyPair, tail: bytes) -> None:
    """Any bytes behind [2, ...: a DecodeError or VerificationError with a sitesign/cbor/cose code, nothing else."""
    with pytest.raises((DecodeError, VerificationError)) as info:
        verify_dose(b"\x85\x02" + tail, site_certificate=site_a.certificate)
    assert info.value.code.split(".")[0] in {"sitesign", "cbor", "cose", "signature"}


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_mutated_records_never_verify_as_something_else(
    batch: SignedBatch, site_a: keys.KeyPair, data: st.DataObject
) -> None:
    """A real record with one byte changed either fails typed or (the change outside signed data) still says
    exactly what the original said."""
    members = _members(batch)
    m = members[data.draw(st.integers(0, len(members) - 1))]
    record = bytearray(batch.record(m))
    position = data.draw(st.integers(0, len(record) - 1))
    record[position] = data.draw(st.integers(0, 255).filter(lambda b: b != record[position]))
    try:
        claims = verify_dose(bytes(record), site_certificate=site_a.certificate)
    except (DecodeError, VerificationError):
        return
    assert claims == verify_dose(batch.record(m), site_certificate=site_a.certificate)


# --- the hand-written encoders against cbor2 ----------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    st.binary(max_size=300),
    st.binary(max_size=300),
    st.integers(0, 2**40),
    st.lists(st.binary(min_size=32, max_size=32), max_size=20),
)
def test_site_record_is_the_canonical_cbor_list(
    head: bytes, payload: bytes, index: int, path: list[bytes]
) -> None:
    """The hand-assembled stored record is byte for byte cbor2's canonical [2, head, index, path, payload]."""
    expected = cbor2.dumps([2, head, index, path, payload], canonical=True)
    assert site_record(payload, head, index, b"".join(path)) == expected
    assert encode_batch_record(head, index, path, payload) == expected
    assert site_record(payload, None, index, b"".join(path)) == payload


_TEXT = st.text(min_size=1, max_size=30)


@settings(max_examples=200, deadline=None)
@given(
    st.fixed_dictionaries(
        {
            "site": _TEXT,
            "cid": st.binary(min_size=0, max_size=40),
            "salt": st.binary(min_size=0, max_size=20),
            "mp": _TEXT,
            "ma": _TEXT,
            "vp": _TEXT,
            "lot": _TEXT,
            "dt": _TEXT,
            "dn": st.integers(0, 300),
        }
    )
)
def test_member_payload_encoder_is_canonical_cbor(fields: dict[str, Any]) -> None:
    """The specialised member-payload encoder writes cbor2's canonical encoding of the same map."""
    assert _encode_leaf(**fields) == cbor2.dumps({"v": 2, **fields}, canonical=True)
