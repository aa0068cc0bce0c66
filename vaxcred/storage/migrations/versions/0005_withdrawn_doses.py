"""A dose record can be withdrawn (a duplicate entry, or one recorded by mistake), never deleted: doses.withdrawn_at.

NULL: the record is in force (every reader's filter: ``doses.withdrawn_at IS NULL``); a time: the resolved
``duplicate`` correction naming the dose withdrew it then (``corrections``: dose_id, field ``duplicate``,
state ``resolved``, ``resolved_at`` — the audit trail of who asked, which site answered, and when).

The downgrade drops the column in place (``ALTER TABLE … DROP COLUMN``; SQLite 3.35 or newer). Until 2026-12-07 it
used Alembic's batch mode, which on SQLite rebuilds ``doses`` by dropping it while site signatures, corrections and
passport links still point at it: on a database holding any of them the DROP failed (foreign keys are on) and the
downgrade rolled back. PostgreSQL runs the same statement as before.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from vaxcred.storage.schema import UtcDateTime

revision = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.add_column("doses", sa.Column("withdrawn_at", UtcDateTime, nullable=True))


def downgrade() -> None:
    op.drop_column("doses", "withdrawn_at")
