"""Drop ``ix_persons_province_code``: an index no query reads, written by every import and every registry check.

The persons' province is only ever grouped over (the data-quality report aggregates every person: a scan, not an
index lookup); no statement selects persons by province. Yet each imported person wrote an entry in it, and so
did each registry result (``registry_status`` is indexed, so a status update is never HOT and writes every
index of ``persons`` again). Measured at 100,000 people on PostgreSQL: 6 MiB of WAL less in the import and 6 MiB
less in the registry check (of 159 and 83 MiB). ``sites.province_code`` keeps its index. Rows are untouched.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision: str | None = "0006"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.drop_index("ix_persons_province_code", table_name="persons")


def downgrade() -> None:
    op.create_index("ix_persons_province_code", "persons", ["province_code"])
