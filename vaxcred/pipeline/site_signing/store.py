"""Storing one signing batch set-based (:func:`_store_batch`): the heads in one multi-row INSERT … RETURNING id, the
members in one INSERT naming their head, leaf index and audit path that skips doses signed meanwhile
(:mod:`~vaxcred.pipeline.site_signing.member_rows`: ``ON CONFLICT DO NOTHING`` on SQLite, a plain INSERT in a
savepoint first on PostgreSQL), then one log entry per head listing its stored members
(:func:`vaxcred.pipeline.log.append`, ``dose_batch``). A member names only its batch (one key): its site,
certificate and kid are the batch's (storage migration 0012).

Shared by the serial path (:func:`~vaxcred.pipeline.site_signing.stage.run_site_signing`), the pipelined signing and
the forked workers. Nothing here logs personal data: log lines carry dose row ids, site ids and error codes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy.engine import Connection

from vaxcred.pipeline import log
from vaxcred.pipeline.site_signing.member_rows import insert_certificates, insert_heads, insert_members
from vaxcred.pipeline.site_signing.queue_versions import Versions
from vaxcred.pipeline.site_signing.sign_rows import _Signed
from vaxcred.pipeline.site_signing.work_queue import _DoseRow
from vaxcred.storage import Database

#: the signing stage's logger (the name it had before the stage was split into modules)
logger = logging.getLogger("vaxcred.pipeline.site_signing.stage")

#: the stage's progress callback: called with the number of doses done so far
ProgressCallback = Callable[[int], None]


def _store_batch(
    db: Database,
    conn: Connection,
    rows: Sequence[_DoseRow],
    outcomes: Sequence[_Signed | str],
    certificates: Mapping[str, dict[str, Any]],
    *,
    versions: Versions | None = None,
) -> tuple[int, int]:
    """Store one batch's signatures; returns (signatures stored, doses that could not be signed).

    ``versions`` (PostgreSQL, the rows' versions as read): the member INSERT is guarded by them and raises
    :class:`~vaxcred.pipeline.site_signing.member_rows.RowsChanged` if any row changed (see
    :func:`~vaxcred.pipeline.site_signing.member_rows.insert_members`; the caller rolls back to a savepoint)."""
    signed: list[tuple[_DoseRow, _Signed]] = []
    failed = 0
    for row, outcome in zip(rows, outcomes, strict=True):
        if isinstance(outcome, str):
            failed += 1
            logger.warning("site signing: dose row %d not signed (%s)", row.id, outcome)
            continue
        signed.append((row, outcome))
    if not signed:
        return 0, failed
    used = sorted({row.site_id for row, _ in signed})
    insert_certificates(db, conn, [certificates[site] for site in used])
    heads = list(
        {id(s.head): s.head for _, s in signed}.values()
    )  # the heads with members to store, in order
    head_ids = insert_heads(
        conn,
        [
            (
                head.site_id,
                certificates[head.site_id]["fingerprint"],
                head.kid,
                head.cose,
                head.size,
                head.signed_at,
            )
            for head in heads
        ],
    )
    batch_ids = {id(head): batch_id for head, batch_id in zip(heads, head_ids, strict=True)}
    values = [
        (row.id, s.payload, s.head.signed_at, batch_ids[id(s.head)], s.leaf_index, s.proof)
        for row, s in signed
    ]
    inserted = insert_members(
        conn, values, versions=None if versions is None else [versions[row.id] for row, _ in signed]
    )
    # the issuance log records each batch with its members in the transaction that stores them
    # (vaxcred.pipeline.log: one entry per batch head, listing its members), built from the values just
    # inserted and their batch's site, certificate and kid (what build_entries would read back; the audit
    # recomputes it from the rows)
    by_dose = {v[0]: v for v in values}
    digest_of = {s.dose_id: s.digest for _, s in signed}
    members: dict[int, list[log.BatchMemberRow]] = {batch_id: [] for batch_id in batch_ids.values()}
    digests: dict[int, list[bytes]] = {batch_id: [] for batch_id in batch_ids.values()}
    named = {
        batch_ids[id(head)]: (head.site_id, certificates[head.site_id]["fingerprint"], head.kid)
        for head in heads
    }
    for sig_id, dose_id in sorted(inserted):
        _, cose, signed_at, batch_id, leaf_index, proof = by_dose[dose_id]
        site_id, certificate, kid = named[batch_id]
        members[batch_id].append(
            (sig_id, dose_id, site_id, certificate, kid, signed_at, leaf_index, proof, cose)
        )
        digests[batch_id].append(digest_of[dose_id])
    entries = {
        batch_ids[id(head)]: log.dose_batch_entry(
            batch_id=batch_ids[id(head)],
            site_id=head.site_id,
            certificate=certificates[head.site_id]["fingerprint"],
            kid=head.kid,
            signed_at=head.signed_at,
            size=head.size,
            head=head.cose,
            members=members[batch_ids[id(head)]],
            member_digests=digests[batch_ids[id(head)]],
        )
        for head in heads
    }
    log.append_entries(conn, log.Kind.DOSE_BATCH, entries, now=max(head.signed_at for head in heads))
    return len(inserted), failed
