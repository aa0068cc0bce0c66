"""vaxcred.sync.index and .signed: the signed index — round trip, purpose separation, tampering, bounds."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.interop.payloads import DAY, NOW
from tests.sync.conftest import ENV, Publisher
from vaxcred import keys
from vaxcred.codec import cbor
from vaxcred.errors import SyncError, TrustStoreError
from vaxcred.sync import DataFreshnessPolicy, DataKind, IndexEntry, SyncIndex, load_signed_index, sign_index
from vaxcred.sync.signed import sign_document
from vaxcred.trust import Environment, load_signed_trust_list

ENTRY = IndexEntry(kind=DataKind.RULES, name="rules/VN.json", sha256=hashlib.sha256(b"[]").digest(), size=2)
#: an anchor for the property test (hypothesis does not take function-scoped fixtures)
_ANCHOR = keys.make_csca(now=NOW - 60 * DAY)
INDEX = SyncIndex(environment=ENV, issued_at=NOW, sequence=4, files=(ENTRY,))


def _code(data: bytes, csca: keys.KeyPair, **options: object) -> str:
    args: dict[str, object] = {"anchor": csca.certificate, "environment": ENV, "now": NOW + DAY}
    args.update(options)
    with pytest.raises(SyncError) as info:
        load_signed_index(data, **args)  # type: ignore[arg-type]
    return info.value.code


def test_round_trip(trust_signer: keys.KeyPair, csca: keys.KeyPair) -> None:
    """A signed index loads back equal, under the CSCA anchor or the pinned trust-list certificate itself."""
    signed = sign_index(INDEX, signer=trust_signer.signer())
    assert load_signed_index(signed, anchor=csca.certificate, environment=ENV, now=NOW) == INDEX
    assert load_signed_index(signed, anchor=trust_signer.certificate, environment=ENV, now=NOW) == INDEX


def test_trust_list_and_index_are_never_taken_for_each_other(
    publisher: Publisher, trust_signer: keys.KeyPair, csca: keys.KeyPair
) -> None:
    """The content type keeps them apart, both ways."""
    trust_list = publisher.trust_list(sequence=1, issued_at=NOW)
    assert _code(trust_list, csca) == "sync.wrong_purpose"
    with pytest.raises(TrustStoreError) as info:
        load_signed_trust_list(
            sign_index(INDEX, signer=trust_signer.signer()), anchor=csca.certificate, environment=ENV, now=NOW
        )
    assert info.value.code == "trust.wrong_purpose"


def test_every_flipped_bit_is_refused(trust_signer: keys.KeyPair, csca: keys.KeyPair) -> None:
    """One bit flipped anywhere in the signed index: a typed SyncError, never a loaded index."""
    signed = sign_index(INDEX, signer=trust_signer.signer())
    for at in range(0, len(signed), 7):
        flipped = signed[:at] + bytes([signed[at] ^ 0x10]) + signed[at + 1 :]
        with pytest.raises(SyncError):
            load_signed_index(flipped, anchor=csca.certificate, environment=ENV, now=NOW + DAY)


def test_only_a_trust_list_key_may_sign(dsc: keys.KeyPair, csca: keys.KeyPair) -> None:
    """A DSC cannot sign an index (nor can the publisher be made to try)."""
    with pytest.raises(SyncError) as info:
        sign_index(INDEX, signer=dsc.signer())
    assert info.value.code == "sync.wrong_purpose"


def test_environment_future_and_rollback(trust_signer: keys.KeyPair, csca: keys.KeyPair) -> None:
    """Another environment, an index issued after now, a sequence below the floor: each refused."""
    signed = sign_index(INDEX, signer=trust_signer.signer())
    assert _code(signed, csca, environment=Environment.PROD) == "sync.wrong_environment"
    assert _code(signed, csca, now=NOW - timedelta(seconds=1)) == "sync.issued_in_future"
    assert _code(signed, csca, min_sequence=5) == "sync.rollback"
    assert load_signed_index(signed, anchor=csca.certificate, environment=ENV, now=NOW, min_sequence=4)


@pytest.mark.parametrize(
    "payload",
    [
        {"environment": "TST", "issued_at": 1, "sequence": 1},
        {"environment": "XX", "issued_at": 1, "sequence": 1, "files": []},
        {"environment": "TST", "issued_at": -1, "sequence": 1, "files": []},
        {"environment": "TST", "issued_at": 1, "sequence": True, "files": []},
        {"environment": "TST", "issued_at": 1, "sequence": 1, "files": [{"kind": "trust"}]},
        {
            "environment": "TST",
            "issued_at": 1,
            "sequence": 1,
            "files": [{"kind": "rules", "name": "../../etc/passwd", "sha256": b"\x00" * 32, "size": 1}],
        },
        {
            "environment": "TST",
            "issued_at": 1,
            "sequence": 1,
            "files": [{"kind": "revocation", "name": "r", "sha256": b"\x00" * 32, "size": 10**9}],
        },
    ],
)
def test_a_malformed_payload_is_refused(
    payload: dict[str, object], trust_signer: keys.KeyPair, csca: keys.KeyPair
) -> None:
    """Well signed but not an index of the expected shape (names, kinds, sizes bounded): sync.malformed."""
    signed = sign_document(
        cbor.dumps(payload),
        content_type="application/vnd.vaxcred.sync-index+cbor",
        signer=trust_signer.signer(),
    )
    assert _code(signed, csca) == "sync.malformed"


def test_freshness_policy_defaults_and_validation() -> None:
    """Defaults: trust 72 h (the trust list's own), rules 7 d, value sets 30 d, revocation 2 d; non-positive ages are refused."""
    policy = DataFreshnessPolicy()
    assert [policy.max_age(k).days for k in DataKind] == [3, 7, 30, 2]
    assert policy.is_fresh(DataKind.REVOCATION, NOW, NOW + 2 * DAY)
    assert not policy.is_fresh(DataKind.REVOCATION, NOW, NOW + 2 * DAY + timedelta(seconds=1))
    with pytest.raises(ValueError):
        DataFreshnessPolicy(revocation=timedelta(0))


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=400))
def test_random_bytes_raise_only_sync_errors(data: bytes) -> None:
    """Any bytes as an index: SyncError, never another exception."""
    with pytest.raises(SyncError):
        load_signed_index(data, anchor=_ANCHOR.certificate, environment=ENV, now=NOW)
