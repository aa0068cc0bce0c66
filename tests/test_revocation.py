"""vaxcred.revocation: DCC.md §7 hashes, the gateway batch JSON, the (kid, hash type) lookup."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from vaxcred.crypto import Algorithm, der_to_raw, verify_signature
from vaxcred.errors import TrustStoreError
from vaxcred.revocation import (
    UNKNOWN_KID,
    HashType,
    RevocationBatch,
    RevocationEntry,
    RevocationList,
    batches_for,
    revocation_entries,
    revocation_hashes,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
UVCI = "URN:UVCI:01:VN:8Y2K4T9QW7XJ#E"
KID = bytes.fromhex("0102030405060708")
OTHER_KID = bytes.fromhex("1112131415161718")
#: P-256 group order
N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551

# SHA-256 values computed outside Python (coreutils sha256sum), first 16 bytes:
#   printf '%s' 'URN:UVCI:01:VN:8Y2K4T9QW7XJ#E' | sha256sum
UCI_HASH = bytes.fromhex("09874b05d0e62bb64b94c196b9223168")
#   printf '%s' 'VNURN:UVCI:01:VN:8Y2K4T9QW7XJ#E' | sha256sum
VN_UCI_HASH = bytes.fromhex("95401a6b31ad133d44ffcffdf58a0e5d")
#   printf '%s' 'DEURN:UVCI:01:VN:8Y2K4T9QW7XJ#E' | sha256sum
DE_UCI_HASH = bytes.fromhex("04821e7d07df0edac4cce269af85b6d5")
#   the bytes 00 01 … 1f (r of the ES256 signature 00 01 … 3f) | sha256sum
R_HASH = bytes.fromhex("630dcd2966c4336691125448bbb25b4f")
#   256 bytes of 0xAB | sha256sum
PS256_HASH = bytes.fromhex("1080e279b51b8594a78556e2fdb4dfe9")
ES256_SIG = bytes(range(64))
PS256_SIG = b"\xab" * 256


def _hash(i: int) -> bytes:
    return i.to_bytes(16, "big")


def _batch(**overrides: Any) -> RevocationBatch:
    fields: dict[str, Any] = {
        "country": "VN",
        "expires": NOW + timedelta(days=365),
        "kid": KID,
        "hash_type": HashType.UCI,
        "entries": (UCI_HASH,),
    }
    fields.update(overrides)
    return RevocationBatch(**fields)


def _document(**overrides: Any) -> bytes:
    document: dict[str, Any] = {
        "country": "VN",
        "expires": "2027-03-01T12:00:00Z",
        "kid": base64.b64encode(KID).decode(),
        "hashType": "UCI",
        "entries": [{"hash": base64.b64encode(UCI_HASH).decode()}],
    }
    document.update(overrides)
    return json.dumps(document).encode()


# --- hashes -------------------------------------------------------------------------------------------


def test_hashes_match_sha256_computed_outside_python() -> None:
    """UCI, COUNTRYCODEUCI and the ES256 r-only SIGNATURE hash equal sha256sum's first 16 bytes."""
    hashes_ = revocation_hashes(uvci=UVCI, country="VN", signature=ES256_SIG, alg=Algorithm.ES256)
    assert hashes_ == {
        HashType.UCI: UCI_HASH,
        HashType.COUNTRYCODEUCI: VN_UCI_HASH,
        HashType.SIGNATURE: R_HASH,
    }


def test_ps256_signature_hash_covers_the_whole_signature() -> None:
    """PS256: SHA-256 of every signature byte."""
    hashes_ = revocation_hashes(uvci=UVCI, country="VN", signature=PS256_SIG, alg=Algorithm.PS256)
    assert hashes_[HashType.SIGNATURE] == PS256_HASH


def test_country_is_upper_cased() -> None:
    """COUNTRYCODEUCI uses the upper-case country whatever the case given."""
    hashes_ = revocation_hashes(uvci=UVCI, country="vn", signature=ES256_SIG, alg=Algorithm.ES256)
    assert hashes_[HashType.COUNTRYCODEUCI] == VN_UCI_HASH


def test_es256_malleated_signature_has_the_same_signature_hash() -> None:
    """(r, n − s) verifies too, and hashes to the same SIGNATURE value: only r is hashed."""
    key = ec.generate_private_key(ec.SECP256R1())
    data = b"Sig_structure stand-in"
    raw = der_to_raw(key.sign(data, ec.ECDSA(hashes.SHA256())))
    r, s = raw[:32], int.from_bytes(raw[32:], "big")
    malleated = r + (N - s).to_bytes(32, "big")
    assert malleated != raw
    verify_signature(key.public_key(), Algorithm.ES256, data, malleated)  # a valid second signature
    first = revocation_hashes(uvci=UVCI, country="VN", signature=raw, alg=Algorithm.ES256)
    second = revocation_hashes(uvci=UVCI, country="VN", signature=malleated, alg=Algorithm.ES256)
    assert first[HashType.SIGNATURE] == second[HashType.SIGNATURE]


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"signature": b"\x00" * 63, "alg": -7}, ValueError),
        ({"alg": -8}, ValueError),
        ({"country": "VNM"}, ValueError),
        ({"uvci": ""}, ValueError),
        ({"signature": "not bytes"}, TypeError),
    ],
)
def test_bad_hash_arguments_are_caller_mistakes(kwargs: dict[str, Any], error: type[Exception]) -> None:
    """Wrong lengths, algorithms or types raise ValueError / TypeError."""
    arguments: dict[str, Any] = {"uvci": UVCI, "country": "VN", "signature": ES256_SIG, "alg": -7}
    arguments.update(kwargs)
    with pytest.raises(error):
        revocation_hashes(**arguments)


# --- batches ------------------------------------------------------------------------------------------


def test_batch_json_round_trip() -> None:
    """to_json then from_json gives back an equal batch, in the gateway shape."""
    batch = _batch(entries=(UCI_HASH, _hash(1), _hash(2)))
    data = batch.to_json()
    assert json.loads(data) == {
        "country": "VN",
        "expires": "2027-03-01T12:00:00Z",
        "kid": "AQIDBAUGBwg=",
        "hashType": "UCI",
        "entries": [
            {"hash": base64.b64encode(UCI_HASH).decode()},
            {"hash": "AAAAAAAAAAAAAAAAAAAAAQ=="},
            {"hash": "AAAAAAAAAAAAAAAAAAAAAg=="},
        ],
    }
    assert RevocationBatch.from_json(data) == batch


def test_unknown_kid_round_trips() -> None:
    """kid None is written and read as UNKNOWN_KID."""
    batch = _batch(kid=None, hash_type=HashType.SIGNATURE)
    assert json.loads(batch.to_json())["kid"] == UNKNOWN_KID
    assert RevocationBatch.from_json(batch.to_json()) == batch


def test_expires_with_offset_is_read_as_utc() -> None:
    """An ISO time with an offset becomes the same instant in UTC."""
    batch = RevocationBatch.from_json(_document(expires="2027-03-01T14:00:00+02:00"))
    assert batch.expires == datetime(2027, 3, 1, 12, 0, tzinfo=UTC)
    assert batch.expires.tzinfo is UTC


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("not json", b"{"),
        ("not an object", b"[]"),
        ("not utf-8", b'{"country": "\xff"}'),
        ("duplicate key", b'{"country": "VN", "country": "DE"}'),
        ("missing field", json.dumps({"country": "VN"}).encode()),
        ("unknown field", _document(extra=1)),
        ("lower-case country", _document(country="vn")),
        ("three-letter country", _document(country="VNM")),
        ("country not a string", _document(country=84)),
        ("expires without zone", _document(expires="2027-03-01T12:00:00")),
        ("expires not a date", _document(expires="2027-02-30T12:00:00Z")),
        ("kid bad base64", _document(kid="AQID*AUGBwg=")),
        ("kid wrong length", _document(kid=base64.b64encode(b"\x01" * 9).decode())),
        ("kid null", _document(kid=None)),
        ("hashType unknown", _document(hashType="SHA1")),
        ("hashType lower case", _document(hashType="uci")),
        ("no entries", _document(entries=[])),
        (
            "1001 entries",
            _document(entries=[{"hash": base64.b64encode(_hash(i)).decode()} for i in range(1001)]),
        ),
        ("entries not an array", _document(entries={"hash": "x"})),
        ("entry not an object", _document(entries=["AAAAAAAAAAAAAAAAAAAAAQ=="])),
        ("entry extra key", _document(entries=[{"hash": "AAAAAAAAAAAAAAAAAAAAAQ==", "x": 1}])),
        ("hash bad base64", _document(entries=[{"hash": "AAAAAAAAAAAAAAAAAAAA!Q=="}])),
        ("hash unpadded", _document(entries=[{"hash": "AAAAAAAAAAAAAAAAAAAAAQ"}])),
        ("hash 32 bytes", _document(entries=[{"hash": base64.b64encode(b"\x00" * 32).decode()}])),
        ("hash 15 bytes", _document(entries=[{"hash": base64.b64encode(b"\x00" * 15).decode()}])),
        ("hash not a string", _document(entries=[{"hash": 5}])),
        ("NaN constant", b'{"country": NaN}'),
    ],
)
def test_malformed_batch_is_refused(name: str, data: bytes) -> None:
    """Anything but the strict gateway shape raises TrustStoreError(revocation.malformed)."""
    with pytest.raises(TrustStoreError) as info:
        RevocationBatch.from_json(data)
    assert info.value.code == "revocation.malformed", name


def test_1000_entries_is_the_limit() -> None:
    """Exactly 1000 entries load."""
    entries = [{"hash": base64.b64encode(_hash(i)).decode()} for i in range(1000)]
    assert len(RevocationBatch.from_json(_document(entries=entries)).entries) == 1000


@pytest.mark.parametrize(
    "overrides",
    [
        {"entries": ()},
        {"entries": tuple(_hash(i) for i in range(1001))},
        {"entries": (b"\x00" * 32,)},
        {"country": "Vn"},
        {"kid": b"\x01"},
        {"expires": datetime(2027, 1, 1)},  # naive on purpose
    ],
)
def test_batch_built_with_bad_values_raises_value_error(overrides: dict[str, Any]) -> None:
    """A hand-built batch is validated: caller mistakes raise ValueError."""
    with pytest.raises(ValueError):
        _batch(**overrides)


# --- lookup -------------------------------------------------------------------------------------------


def test_lookup_finds_each_hash_type() -> None:
    """A passport listed by UCI, COUNTRYCODEUCI or SIGNATURE is found under that type."""
    args: dict[str, Any] = {"kid": KID, "uvci": UVCI, "country": "VN", "signature": ES256_SIG, "alg": -7}
    for hash_type, value in (
        (HashType.UCI, UCI_HASH),
        (HashType.COUNTRYCODEUCI, VN_UCI_HASH),
        (HashType.SIGNATURE, R_HASH),
    ):
        rl = RevocationList.from_batches([_batch(hash_type=hash_type, entries=(value,))], now=NOW)
        assert rl.check(**args) is hash_type
        assert rl.is_revoked(**args)


def test_not_listed_is_not_revoked() -> None:
    """Other hashes, or the same hash under another kid, do not revoke."""
    rl = RevocationList.from_batches([_batch(entries=(_hash(1),)), _batch(kid=OTHER_KID)], now=NOW)
    assert rl.check(kid=KID, uvci=UVCI, country="VN", signature=ES256_SIG, alg=-7) is None
    assert RevocationList().check(kid=KID, uvci=UVCI, country="VN", signature=ES256_SIG, alg=-7) is None


def test_unknown_kid_entries_apply_to_every_kid() -> None:
    """A hash under UNKNOWN_KID revokes a passport whatever its DSC (and one without a kid)."""
    rl = RevocationList.from_batches(
        [_batch(kid=None, hash_type=HashType.SIGNATURE, entries=(R_HASH,))], now=NOW
    )
    for kid in (KID, OTHER_KID, None):
        assert rl.check(kid=kid, uvci=UVCI, country="VN", signature=ES256_SIG, alg=-7) is HashType.SIGNATURE
    assert rl.hashes(None, HashType.SIGNATURE) == {R_HASH}
    assert rl.hashes(KID, HashType.SIGNATURE) == frozenset()


def test_expired_batch_is_dropped() -> None:
    """A batch whose expires is not after now is not used; a later one is."""
    expired = _batch(expires=NOW)
    rl = RevocationList.from_batches([expired], now=NOW)
    assert len(rl) == 0
    assert not rl.is_revoked(kid=KID, uvci=UVCI, country="VN", signature=ES256_SIG, alg=-7)
    rl = RevocationList.from_batches([expired], now=NOW - timedelta(seconds=1))
    assert rl.is_revoked(kid=KID, uvci=UVCI, country="VN", signature=ES256_SIG, alg=-7)


def test_country_code_uci_is_also_tested_with_a_different_iss() -> None:
    """When the CWT iss differs from co, COUNTRYCODEUCI is computed with both."""
    rl = RevocationList.from_batches(
        [_batch(hash_type=HashType.COUNTRYCODEUCI, entries=(DE_UCI_HASH,))], now=NOW
    )
    args: dict[str, Any] = {"kid": KID, "uvci": UVCI, "country": "VN", "signature": ES256_SIG, "alg": -7}
    assert rl.check(**args) is None
    assert rl.check(**args, iss="DE") is HashType.COUNTRYCODEUCI
    assert rl.check(**args, iss="not a country") is None


def test_from_batches_requires_aware_now() -> None:
    """A naive now is a caller mistake."""
    with pytest.raises(ValueError):
        RevocationList.from_batches([], now=datetime(2026, 1, 1))  # naive


# --- export -------------------------------------------------------------------------------------------


def test_revocation_entries_cover_every_hash_type() -> None:
    """A passport's entries carry its kid, expiry and the three hashes."""
    entries = revocation_entries(
        kid=KID, uvci=UVCI, country="VN", signature=ES256_SIG, alg=-7, expires=NOW + timedelta(days=30)
    )
    assert {(e.hash_type, e.hash) for e in entries} == {
        (HashType.UCI, UCI_HASH),
        (HashType.COUNTRYCODEUCI, VN_UCI_HASH),
        (HashType.SIGNATURE, R_HASH),
    }
    assert {e.kid for e in entries} == {KID}


def test_batches_for_groups_by_kid_and_type_and_splits_at_the_limit() -> None:
    """Entries split into batches of one (kid, type), at most max_per_batch each, duplicates dropped."""
    soon, late = NOW + timedelta(days=10), NOW + timedelta(days=300)
    entries = [
        RevocationEntry(kid=KID, hash_type=HashType.UCI, hash=_hash(i), expires=late if i >= 3 else soon)
        for i in range(5)
    ]
    entries.append(RevocationEntry(kid=KID, hash_type=HashType.UCI, hash=_hash(0), expires=soon))  # duplicate
    entries.append(RevocationEntry(kid=None, hash_type=HashType.SIGNATURE, hash=_hash(9), expires=soon))
    batches = batches_for(entries, country="VN", max_per_batch=2)
    assert [(b.kid, b.hash_type, b.entries, b.expires) for b in batches] == [
        (None, HashType.SIGNATURE, (_hash(9),), soon),
        (KID, HashType.UCI, (_hash(0), _hash(1)), soon),
        (KID, HashType.UCI, (_hash(2), _hash(3)), late),
        (KID, HashType.UCI, (_hash(4),), late),
    ]
    rl = RevocationList.from_batches(
        [RevocationBatch.from_json(b.to_json()) for b in batches], now=NOW + timedelta(days=20)
    )
    assert rl.hashes(KID, HashType.UCI) == {_hash(3), _hash(4), _hash(2)}
    assert batches_for([], country="VN") == ()


def test_batches_for_default_limit_is_1000() -> None:
    """2500 entries of one kid and type make batches of 1000, 1000, 500."""
    entries = [
        RevocationEntry(kid=KID, hash_type=HashType.UCI, hash=_hash(i), expires=NOW) for i in range(2500)
    ]
    assert [len(b.entries) for b in batches_for(entries, country="VN")] == [1000, 1000, 500]
