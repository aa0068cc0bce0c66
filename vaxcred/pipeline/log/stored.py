"""The issuance log's entries of objects as their rows hold them now: what the audit recomputes and what
:func:`~vaxcred.pipeline.log.store.append` logs. The entry formats are :mod:`vaxcred.pipeline.log.entries` (pure,
no database); this module only reads the rows each kind needs.
"""

from __future__ import annotations

__all__ = ["build_entries"]

from collections.abc import Sequence
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from vaxcred.pipeline.log.entries import (
    Kind,
    dose_batch_entry,
    dose_record_entry,
    revocation_entry,
    site_record,
    withdrawal_entry,
)
from vaxcred.pipeline.log.passport_entries import passport_entry
from vaxcred.storage.schema import (
    CorrectionState,
    corrections,
    doses,
    passport_doses,
    passports,
    revocations,
    site_signature_batches,
    site_signatures,
)


def build_entries(conn: Connection, kind: Kind, object_ids: Sequence[int]) -> dict[int, bytes]:
    """The entries of these objects as stored now (ids without a row are absent from the result)."""
    if not object_ids:
        return {}
    ids = sorted(set(object_ids))
    if kind is Kind.PASSPORT:
        return _passport_entries(conn, ids)
    if kind is Kind.DOSE_RECORD:
        return _dose_record_entries(conn, ids)
    if kind is Kind.DOSE_BATCH:
        return _dose_batch_entries(conn, ids)
    if kind is Kind.WITHDRAWAL:
        return _withdrawal_entries(conn, ids)
    return _revocation_entries(conn, ids)


#: the ``corrections.field`` of a correction that withdraws its dose (``CorrectionField.DUPLICATE``: corrections
#: sit above the log)
_DUPLICATE: Final = "duplicate"


def _passport_entries(conn: Connection, ids: list[int]) -> dict[int, bytes]:
    links: dict[int, list[tuple[int, int]]] = {}
    for row in conn.execute(
        sa.select(passport_doses.c.passport_id, passport_doses.c.dose_id, passport_doses.c.site_signature_id)
        .where(passport_doses.c.passport_id.in_(ids))
        .order_by(passport_doses.c.passport_id, passport_doses.c.dose_id)
    ):
        links.setdefault(row.passport_id, []).append((row.dose_id, row.site_signature_id))
    return {
        row.id: passport_entry(
            passport_id=row.id,
            person_id=row.person_id,
            hc1=row.hc1,
            kid=row.kid,
            iat=row.iat,
            exp=row.exp,
            issued_at=row.issued_at,
            registry_check_id=row.registry_check_id,
            doses=links.get(row.id, ()),
            supersedes=row.supersedes,
        )
        for row in conn.execute(sa.select(passports).where(passports.c.id.in_(ids)))
    }


def _dose_record_entries(conn: Connection, ids: list[int]) -> dict[int, bytes]:
    query = (
        sa.select(
            site_signatures.c.id,
            site_signatures.c.dose_id,
            # a batch member's are its batch's (storage migration 0012)
            *(
                sa.func.coalesce(site_signature_batches.c[c], site_signatures.c[c]).label(c)
                for c in ("site_id", "certificate", "kid")
            ),
            site_signatures.c.signed_at,
            site_signatures.c.batch_id,
            site_signatures.c.leaf_index,
            site_signatures.c.cose,
            site_signatures.c.proof,
            site_signature_batches.c.head,
        )
        .select_from(
            site_signatures.outerjoin(
                site_signature_batches, site_signature_batches.c.id == site_signatures.c.batch_id
            )
        )
        .where(site_signatures.c.id.in_(ids))
    )
    return {
        row.id: dose_record_entry(
            signature_id=row.id,
            dose_id=row.dose_id,
            site_id=row.site_id,
            certificate=row.certificate,
            kid=row.kid,
            signed_at=row.signed_at,
            batch_id=row.batch_id,
            leaf_index=row.leaf_index,
            record=site_record(row.cose, row.head, row.leaf_index, row.proof),
        )
        for row in conn.execute(query)
    }


def _dose_batch_entries(conn: Connection, ids: list[int]) -> dict[int, bytes]:
    heads = {
        row.id: row
        for row in conn.execute(sa.select(site_signature_batches).where(site_signature_batches.c.id.in_(ids)))
    }
    members: dict[int, list[Any]] = {batch_id: [] for batch_id in heads}
    # a member's site, certificate and kid are its batch's (storage migration 0012)
    for batch_id, *row in conn.execute(
        sa.select(
            site_signatures.c.batch_id,
            site_signatures.c.id,
            site_signatures.c.dose_id,
            site_signatures.c.signed_at,
            site_signatures.c.leaf_index,
            site_signatures.c.proof,
            site_signatures.c.cose,
        )
        .where(site_signatures.c.batch_id.in_(ids))
        .order_by(site_signatures.c.batch_id, site_signatures.c.id)
    ):
        head = heads[batch_id]
        members[batch_id].append((*row[:2], head.site_id, head.certificate, head.kid, *row[2:]))
    return {
        batch_id: dose_batch_entry(
            batch_id=batch_id,
            site_id=head.site_id,
            certificate=head.certificate,
            kid=head.kid,
            signed_at=head.signed_at,
            size=head.size,
            head=head.head,
            members=members[batch_id],
        )
        for batch_id, head in heads.items()
    }


def _revocation_entries(conn: Connection, ids: list[int]) -> dict[int, bytes]:
    return {
        row.id: revocation_entry(
            revocation_id=row.id,
            passport_id=row.passport_id,
            hash_type=row.hash_type,
            hash_value=row.hash,
            kid=row.kid,
            revoked_at=row.revoked_at,
            expires=row.expires,
        )
        for row in conn.execute(sa.select(revocations).where(revocations.c.id.in_(ids)))
    }


def _withdrawal_entries(conn: Connection, ids: list[int]) -> dict[int, bytes]:
    """The withdrawn doses among ``ids`` (a dose in force has no withdrawal: absent from the result)."""
    by_dose: dict[int, int] = dict(
        conn.execute(
            sa.select(corrections.c.dose_id, sa.func.min(corrections.c.id))
            .where(
                corrections.c.dose_id.in_(ids),
                corrections.c.field == _DUPLICATE,
                corrections.c.state == CorrectionState.RESOLVED.value,
            )
            .group_by(corrections.c.dose_id)
        ).all()
    )
    query = sa.select(doses.c.id, doses.c.withdrawn_at).where(
        doses.c.id.in_(ids), doses.c.withdrawn_at.is_not(None)
    )
    return {
        dose_id: withdrawal_entry(dose_id=dose_id, correction_id=by_dose.get(dose_id), withdrawn_at=at)
        for dose_id, at in conn.execute(query)
    }
