"""The tamper-evident issuance log (RFC 9162 style): every signed object appended in the transaction that stores
it, signed tree heads by a dedicated log key, inclusion proofs for passports and an end-to-end audit.

* :mod:`~vaxcred.pipeline.log.entries` — what an entry records about a site-signed dose record (v1) or batch of
  records (its head and members), a passport, a revocation, a dose record's withdrawal (hashes, ids, kids, times;
  no personal data), and the
  standalone form of a stored site signature (:func:`site_record`); pure builders, no database;
* :mod:`~vaxcred.pipeline.log.passport_entries` — a passport's entry, written by hand (issuance's hot path), in
  two steps when issuance drafts it before its storing transaction;
* :mod:`~vaxcred.pipeline.log.stored` — :func:`build_entries`, the entries of objects as their rows hold them now;
* :mod:`~vaxcred.pipeline.log.store` — :func:`append` (or :func:`append_entries` with entries the caller built) inside the caller's transaction, gap-free leaf indexes;
* :mod:`~vaxcred.pipeline.log.heads` — signed tree heads (COSE_Sign1 by the log signer);
* :mod:`~vaxcred.pipeline.log.proofs` — a passport's inclusion proof and its offline check;
* :mod:`~vaxcred.pipeline.log.audit` — :func:`audit_log`, the log against the database and its heads;
* :mod:`~vaxcred.pipeline.log.anomalies` — :func:`anomaly_report`: bursts, night signing, over-signing sites,
  passports without a verified registry result.

Hashing is :mod:`vaxcred.merkle` (one implementation for the log and for batch site signing).
"""

from __future__ import annotations

from vaxcred.pipeline.log.anomalies import AnomalyReport, SiteCount, SiteHour, anomaly_report
from vaxcred.pipeline.log.audit import AuditReport, Finding, audit_log
from vaxcred.pipeline.log.entries import (
    BatchMemberRow,
    Kind,
    decode_entry,
    dose_batch_entry,
    dose_batch_member_digest,
    dose_batch_member_digests,
    dose_record_entry,
    revocation_entry,
    site_record,
    withdrawal_entry,
)
from vaxcred.pipeline.log.heads import TreeHead, sign_tree_head, verify_tree_head
from vaxcred.pipeline.log.passport_entries import PassportEntryDraft, passport_entry, passport_entry_draft
from vaxcred.pipeline.log.proofs import PassportProof, passport_proof, verify_passport_proof
from vaxcred.pipeline.log.store import append, append_entries, leaf_hashes, log_size
from vaxcred.pipeline.log.stored import build_entries

__all__ = [
    "AnomalyReport",
    "AuditReport",
    "BatchMemberRow",
    "Finding",
    "Kind",
    "PassportEntryDraft",
    "PassportProof",
    "SiteCount",
    "SiteHour",
    "TreeHead",
    "anomaly_report",
    "append",
    "append_entries",
    "audit_log",
    "build_entries",
    "decode_entry",
    "dose_batch_entry",
    "dose_batch_member_digest",
    "dose_batch_member_digests",
    "dose_record_entry",
    "leaf_hashes",
    "log_size",
    "passport_entry",
    "passport_entry_draft",
    "passport_proof",
    "revocation_entry",
    "sign_tree_head",
    "site_record",
    "verify_passport_proof",
    "verify_tree_head",
    "withdrawal_entry",
]
