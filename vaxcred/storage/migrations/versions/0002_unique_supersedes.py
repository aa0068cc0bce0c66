"""A passport is superseded at most once: unique partial index on passports.supersedes.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    where = sa.text("supersedes IS NOT NULL")
    op.create_index(
        "uq_passports_supersedes",
        "passports",
        ["supersedes"],
        unique=True,
        sqlite_where=where,
        postgresql_where=where,
    )


def downgrade() -> None:
    op.drop_index("uq_passports_supersedes", table_name="passports")
