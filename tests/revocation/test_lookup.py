"""vaxcred.revocation.lookup: the builder (caps, rollback), the list's age, lookups without a ci."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from vaxcred.errors import TrustStoreError
from vaxcred.revocation import (
    HashType,
    RevocationBatch,
    RevocationList,
    RevocationListBuilder,
    revocation_hashes,
)

NOW = datetime(2026, 3, 1, tzinfo=UTC)
KID = bytes.fromhex("0102030405060708")
UVCI = "URN:UVCI:01:VN:8Y2K4T9QW7XJ#E"
SIG = bytes(range(64))
HASHES = revocation_hashes(uvci=UVCI, country="VN", signature=SIG, alg=-7)


def _batch(hash_type: HashType, *entries: bytes, days: int = 30) -> RevocationBatch:
    return RevocationBatch(
        country="VN", expires=NOW + timedelta(days=days), kid=KID, hash_type=hash_type, entries=entries
    )


def test_builder_drops_expired_batches_and_counts_entries() -> None:
    """Expired batches are refused with False; the list holds the rest."""
    builder = RevocationListBuilder(now=NOW)
    assert builder.add(_batch(HashType.UCI, HASHES[HashType.UCI]))
    assert not builder.add(_batch(HashType.SIGNATURE, HASHES[HashType.SIGNATURE], days=0))
    assert len(builder) == 1
    revoked = builder.build()
    assert revoked.check(kid=KID, uvci=UVCI, country="VN", signature=SIG, alg=-7) is HashType.UCI
    with pytest.raises(ValueError):
        builder.build()


def test_builder_cap_raises_too_many() -> None:
    """More entries than max_entries raise TrustStoreError(revocation.too_many)."""
    builder = RevocationListBuilder(now=NOW, max_entries=2)
    builder.add(_batch(HashType.UCI, b"\x01" * 16, b"\x02" * 16))
    with pytest.raises(TrustStoreError) as info:
        builder.add(_batch(HashType.UCI, b"\x03" * 16))
    assert info.value.code == "revocation.too_many"


def test_rollback_forgets_what_was_added_after_the_checkpoint() -> None:
    """A file refused half-way leaves nothing behind; what came before stays."""
    builder = RevocationListBuilder(now=NOW)
    builder.add(_batch(HashType.UCI, b"\x01" * 16))
    mark = builder.checkpoint()
    builder.add(_batch(HashType.UCI, b"\x02" * 16))
    builder.add(_batch(HashType.SIGNATURE, b"\x03" * 16))
    builder.rollback(mark)
    revoked = builder.build()
    assert len(revoked) == 1
    assert revoked.hashes(KID, HashType.UCI) == {b"\x01" * 16}
    assert revoked.hashes(KID, HashType.SIGNATURE) == frozenset()


def test_freshness_follows_issued_at_and_max_age() -> None:
    """Fresh up to issued_at + max_age inclusive; a list of unknown age is always fresh."""
    revoked = RevocationList.from_batches([], now=NOW, issued_at=NOW, max_age=timedelta(days=2))
    assert revoked.stale_after == NOW + timedelta(days=2)
    assert revoked.is_fresh(NOW + timedelta(days=2))
    assert not revoked.is_fresh(NOW + timedelta(days=2, seconds=1))
    assert RevocationList().is_fresh(NOW + timedelta(days=9999))
    with pytest.raises(ValueError):
        RevocationList(max_age=timedelta(0))
    with pytest.raises(ValueError):
        RevocationList(issued_at=datetime(2026, 1, 1))  # naive on purpose


def test_without_a_ci_only_the_signature_is_checked() -> None:
    """A payload without ci (it failed the schema) is still found by its SIGNATURE hash."""
    revoked = RevocationList.from_batches(
        [_batch(HashType.UCI, HASHES[HashType.UCI]), _batch(HashType.SIGNATURE, HASHES[HashType.SIGNATURE])],
        now=NOW,
    )
    assert revoked.check(kid=KID, uvci=None, country=None, signature=SIG, alg=-7) is HashType.SIGNATURE
    only_uci = RevocationList.from_batches([_batch(HashType.UCI, HASHES[HashType.UCI])], now=NOW)
    assert only_uci.check(kid=KID, uvci=None, country=None, signature=SIG, alg=-7) is None
