"""The tamper-evident issuance log: issuance_log, log_tree_heads, log_state (one row, size 0).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from vaxcred.storage.schema import Id, UtcDateTime

revision = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "issuance_log",
        sa.Column("seq", Id, primary_key=True, autoincrement=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("object_id", Id, nullable=False),
        sa.Column("entry", sa.LargeBinary, nullable=False),
        sa.Column("leaf_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("logged_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_issuance_log"),
        sa.UniqueConstraint("kind", "object_id", name="uq_issuance_log_kind_object_id"),
    )
    op.create_table(
        "log_tree_heads",
        sa.Column("tree_size", Id, primary_key=True, autoincrement=False),
        sa.Column("root_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("signed_at", UtcDateTime, nullable=False),
        sa.Column("cose", sa.LargeBinary, nullable=False),
        sa.PrimaryKeyConstraint("tree_size", name="pk_log_tree_heads"),
    )
    log_state = op.create_table(
        "log_state",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("size", Id, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_log_state"),
        sa.CheckConstraint("id = 1", name="ck_log_state_single_row"),
    )
    op.bulk_insert(log_state, [{"id": 1, "size": 0}])


def downgrade() -> None:
    op.drop_table("log_state")
    op.drop_table("log_tree_heads")
    op.drop_table("issuance_log")
