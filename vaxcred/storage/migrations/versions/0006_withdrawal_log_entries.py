"""Withdrawals enter the issuance log: one ``withdrawal`` entry for each dose withdrawn before they did.

From this revision on, resolving a ``duplicate`` correction appends the withdrawal's entry in its own transaction
(:func:`vaxcred.pipeline.log.entries.withdrawal_entry`), and ``vaxcred log audit`` reports a withdrawn dose without
one. Doses withdrawn under 0005 have none: this upgrade appends theirs, in dose id order, after the entries
already logged (the log stays append-only: the tree heads already signed still cover their prefix). Each names the
resolved ``duplicate`` correction of its dose, or none when there is no such correction — a withdrawal made by hand,
which the audit then reports for ever (``log.withdrawal_uncorrected``) instead of adopting it silently. The entry's
``logged_at`` is its withdrawal time (a migration reads no clock).

The entry is encoded here as revision 0006 defines it (a migration must not change when the code does); the
tests check it equals what the current builder makes.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from alembic import op

from vaxcred.codec import cbor
from vaxcred.merkle import leaf_hash
from vaxcred.storage.schema import corrections, doses, issuance_log, log_state

revision = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _entry(dose_id: int, correction_id: int | None, withdrawn_at: datetime) -> bytes:
    at = (withdrawn_at - _EPOCH) // timedelta(microseconds=1)
    digest = hashlib.sha256(cbor.dumps([dose_id, correction_id, at])).digest()
    return cbor.dumps(
        [2, "withdrawal", dose_id, digest, {"correction_id": correction_id, "withdrawn_at": at}]
    )


def upgrade() -> None:
    conn = op.get_bind()
    size = int(
        conn.execute(sa.select(log_state.c.size).where(log_state.c.id == 1).with_for_update()).scalar_one()
    )
    logged = sa.select(issuance_log.c.object_id).where(issuance_log.c.kind == "withdrawal")
    withdrawn = conn.execute(
        sa.select(doses.c.id, doses.c.withdrawn_at)
        .where(doses.c.withdrawn_at.is_not(None), doses.c.id.not_in(logged))
        .order_by(doses.c.id)
    ).all()
    if not withdrawn:
        return
    by_dose: dict[int, int] = dict(
        conn.execute(
            sa.select(corrections.c.dose_id, sa.func.min(corrections.c.id))
            .where(corrections.c.field == "duplicate", corrections.c.state == "resolved")
            .group_by(corrections.c.dose_id)
        ).all()
    )
    rows = []
    for seq, (dose_id, withdrawn_at) in enumerate(withdrawn, start=size):
        entry = _entry(dose_id, by_dose.get(dose_id), withdrawn_at)
        rows.append(
            {
                "seq": seq,
                "kind": "withdrawal",
                "object_id": dose_id,
                "entry": entry,
                "leaf_hash": leaf_hash(entry),
                "logged_at": withdrawn_at,
            }
        )
    conn.execute(sa.insert(issuance_log), rows)
    conn.execute(sa.update(log_state).where(log_state.c.id == 1).values(size=size + len(rows)))


def downgrade() -> None:
    """Nothing is removed: the log is append-only (an older vaxcred's audit reports the withdrawal entries as
    ``log.entry_malformed``: it does not know their kind)."""
