"""``audit_log``: the issuance log checked end to end against the database and its signed tree heads.

(1) entries:  leaf indexes 0..n-1 without gaps, n = log_state.size; each stored leaf hash = HASH(0x00||entry);
              each entry well-formed and naming its own row (kind, object id)
(2) objects:  every logged object still exists and rebuilds to the same entry (bytes, times, evidence);
              a row removed, altered or back-dated is a finding
(3) coverage: every passport, site signature and revocation row is in the log (nothing signed outside it): a v1
              site signature by its own entry, a batch member by its batch's (which lists every member: a row
              added to, removed from or altered in a batch alters the batch's entry);
              a passport with a revocation row is still marked revoked (a revocation undone by hand is a finding);
              every withdrawn dose (doses.withdrawn_at set) has its withdrawal entry — a withdrawal set by hand
              is ``log.object_unlogged``, one cleared by hand ``log.withdrawal_undone``, one moved in time
              ``log.object_altered`` — and names a resolved ``duplicate`` correction (an entry adopted by
              migration 0006 for a withdrawal made without one is ``log.withdrawal_uncorrected``)
(4) heads:    every stored tree head verifies under the log signer's certificate, its size is within the log,
              and its root equals the root of the first tree_size stored leaves: an entry removed, altered or
              reordered after a head was signed is a finding even when the rows were edited consistently;
              heads the auditor kept (``published``) are checked the same way and must still be stored

The audit reads only; it reports every finding (stable ``log.*`` codes) rather than stopping at the first.
Entries past the newest head are not yet covered by a signature: the report says how many.
"""

from __future__ import annotations

__all__ = ["AuditReport", "Finding", "audit_log"]

from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from cryptography import x509
from sqlalchemy.engine import Connection

from vaxcred.errors import VaxcredError
from vaxcred.merkle import leaf_hash, root
from vaxcred.pipeline.log.entries import Kind, decode_entry
from vaxcred.pipeline.log.heads import TreeHead, verify_tree_head
from vaxcred.pipeline.log.store import log_size
from vaxcred.pipeline.log.stored import build_entries
from vaxcred.storage.schema import (
    PassportStatus,
    doses,
    issuance_log,
    log_tree_heads,
    passports,
    revocations,
    site_signature_batches,
    site_signatures,
)

_TABLES = {
    Kind.PASSPORT: passports,
    Kind.DOSE_RECORD: site_signatures,
    Kind.DOSE_BATCH: site_signature_batches,
    Kind.REVOCATION: revocations,
    Kind.WITHDRAWAL: doses,
}
#: the rows of a kind's table that need an entry of that kind: a batch member is covered by its batch's entry,
#: a dose needs a withdrawal entry once it is withdrawn
_NEEDS_ENTRY = {
    Kind.DOSE_RECORD: site_signatures.c.batch_id.is_(None),
    Kind.WITHDRAWAL: doses.c.withdrawn_at.is_not(None),
}
#: report at most this many findings of one code (a wholesale rewrite would otherwise print millions)
_MAX_PER_CODE = 50


@dataclass(frozen=True, slots=True, kw_only=True)
class Finding:
    """One problem: a stable code and a message naming the entry or row (ids only, no personal data)."""

    code: str
    message: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditReport:
    """``intact`` when there are no findings."""

    findings: tuple[Finding, ...]
    entries: int
    heads: int
    uncovered: int  # entries after the newest valid head

    @property
    def intact(self) -> bool:
        return not self.findings


class _Findings:
    def __init__(self) -> None:
        self.items: list[Finding] = []
        self.counts: dict[str, int] = {}

    def add(self, code: str, message: str) -> None:
        self.counts[code] = self.counts.get(code, 0) + 1
        if self.counts[code] <= _MAX_PER_CODE:
            self.items.append(Finding(code=code, message=message))
        elif self.counts[code] == _MAX_PER_CODE + 1:
            self.items.append(Finding(code=code, message=f"more {code} findings left out"))


def audit_log(
    conn: Connection, *, log_certificate: x509.Certificate, published: Sequence[bytes] = ()
) -> AuditReport:
    """Audit the log in ``conn`` (see the module docstring); ``log_certificate`` verifies its heads.

    ``published``: heads (COSE) the auditor kept from earlier (``vaxcred log sign-head --out``), checked like the
    stored ones and reported when the database no longer holds them: a head deleted or replaced by a consistent
    rewrite re-signed afterwards can only be caught by a head that left the building."""
    found = _Findings()
    size = log_size(conn)
    rows = conn.execute(sa.select(issuance_log).order_by(issuance_log.c.seq)).all()
    leaves: list[bytes] = []
    logged: dict[Kind, dict[int, tuple[int, bytes]]] = {kind: {} for kind in Kind}
    # (1) entries
    if len(rows) != size:
        found.add("log.size_mismatch", f"the log holds {len(rows)} entries but its size is {size}")
    for expected_seq, row in enumerate(rows):
        if row.seq != expected_seq:
            found.add("log.gap", f"entry {expected_seq} is missing (next stored index is {row.seq})")
        entry = bytes(row.entry)
        leaves.append(bytes(row.leaf_hash))
        if leaf_hash(entry) != bytes(row.leaf_hash):
            found.add("log.leaf_mismatch", f"entry {row.seq}: stored leaf hash is not the hash of its entry")
        try:
            kind, object_id, _, trace = decode_entry(entry)
        except ValueError as e:
            found.add("log.entry_malformed", f"entry {row.seq}: {e}")
            continue
        if kind.value != row.kind or object_id != row.object_id:
            found.add(
                "log.entry_mismatch", f"entry {row.seq} names {kind.value} {object_id}, its row another"
            )
        logged[kind][object_id] = (row.seq, entry)
        if kind is Kind.WITHDRAWAL and trace.get("correction_id") is None:
            found.add(
                "log.withdrawal_uncorrected",
                f"withdrawal of dose {object_id} (entry {row.seq}) names no resolved duplicate correction",
            )
    # (2) objects and (3) coverage
    for kind, table in _TABLES.items():
        entries = logged[kind]
        rebuilt = build_entries(conn, kind, list(entries))
        for object_id, (seq, entry) in sorted(entries.items()):
            now = rebuilt.get(object_id)
            if now is None and kind is Kind.WITHDRAWAL:
                found.add(
                    "log.withdrawal_undone",
                    f"dose {object_id} was withdrawn (entry {seq}) but is in force again or no longer stored",
                )
            elif now is None:
                found.add("log.object_missing", f"{kind.value} {object_id} (entry {seq}) is no longer stored")
            elif now != entry:
                found.add(
                    "log.object_altered",
                    f"{kind.value} {object_id} (entry {seq}) changed since it was logged",
                )
        needing = sa.select(table.c.id).order_by(table.c.id)
        if kind in _NEEDS_ENTRY:
            needing = needing.where(_NEEDS_ENTRY[kind])
        for (object_id,) in conn.execute(needing):
            if object_id not in entries:
                found.add("log.object_unlogged", f"{kind.value} {object_id} is not in the log")
    _revocations_undone(conn, found)
    # (4) heads: those stored beside the log, then those the auditor holds (published, sent to auditors)
    heads = conn.execute(sa.select(log_tree_heads).order_by(log_tree_heads.c.tree_size)).all()
    covered = 0
    for head in heads:
        verified = _check_head(
            bytes(head.cose), log_certificate, leaves, found, label=f"size {head.tree_size}"
        )
        if verified is None:
            continue
        if verified.tree_size != head.tree_size or verified.root_hash != bytes(head.root_hash):
            found.add(
                "log.head_mismatch",
                f"tree head at size {head.tree_size}: stored columns differ from its signed content",
            )
        if _covers(verified, leaves):
            covered = max(covered, verified.tree_size)
    stored = {(head.tree_size, bytes(head.root_hash)) for head in heads}
    for number, data in enumerate(published, start=1):
        verified = _check_head(data, log_certificate, leaves, found, label=f"published #{number}")
        if verified is not None and (verified.tree_size, verified.root_hash) not in stored:
            found.add(
                "log.head_missing",
                f"published tree head #{number} (size {verified.tree_size}) is no longer stored beside the log",
            )
    return AuditReport(
        findings=tuple(found.items), entries=len(rows), heads=len(heads), uncovered=len(rows) - covered
    )


def _revocations_undone(conn: Connection, found: _Findings) -> None:
    """A passport that has a revocation row but is no longer marked revoked (its status is not in its entry)."""
    undone = (
        sa.select(passports.c.id)
        .where(passports.c.status != PassportStatus.REVOKED.value)
        .where(sa.exists().where(revocations.c.passport_id == passports.c.id))
        .order_by(passports.c.id)
    )
    for (passport_id,) in conn.execute(undone):
        found.add(
            "log.revocation_undone", f"passport {passport_id} has a revocation but is not marked revoked"
        )


def _check_head(
    data: bytes, certificate: x509.Certificate, leaves: list[bytes], found: _Findings, *, label: str
) -> TreeHead | None:
    """The verified head when its signature holds (findings for its signature and its root otherwise)."""
    try:
        verified = verify_tree_head(data, certificate)
    except VaxcredError as e:
        found.add("log.head_signature", f"tree head at {label}: {e.message}")
        return None
    if verified.tree_size > len(leaves):
        found.add(
            "log.head_beyond_log",
            f"tree head at size {verified.tree_size}: the log has only {len(leaves)} entries",
        )
    elif not _covers(verified, leaves):
        found.add(
            "log.head_root_mismatch",
            f"tree head at size {verified.tree_size}: the stored entries no longer hash to its root "
            "(an entry was removed, altered or reordered after it was signed)",
        )
    return verified


def _covers(head: TreeHead, leaves: list[bytes]) -> bool:
    return head.tree_size <= len(leaves) and root(leaves[: head.tree_size]) == head.root_hash
