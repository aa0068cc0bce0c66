"""Batch site signing: site_signature_batches (one signed head per batch), and on site_signatures the batch,
leaf index and audit path of a batch member (NULL for v1 rows, which keep their own COSE_Sign1).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from vaxcred.storage.schema import Id, UtcDateTime

revision = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "site_signature_batches",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("site_id", sa.String(64), nullable=False),
        sa.Column("certificate", sa.LargeBinary(32), nullable=False),
        sa.Column("kid", sa.LargeBinary(32), nullable=False),
        sa.Column("head", sa.LargeBinary, nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("signed_at", UtcDateTime, nullable=False),
        sa.ForeignKeyConstraint(
            ["certificate"],
            ["site_certificates.fingerprint"],
            name="fk_site_signature_batches_certificate_site_certificates",
        ),
        sa.ForeignKeyConstraint(
            ["site_id"], ["sites.site_id"], name="fk_site_signature_batches_site_id_sites"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_site_signature_batches"),
    )
    # SQLite cannot add a foreign key to an existing table: batch mode copies it (v1 rows keep NULLs)
    with op.batch_alter_table("site_signatures") as batch:
        batch.add_column(sa.Column("batch_id", Id, nullable=True))
        batch.add_column(sa.Column("leaf_index", sa.Integer, nullable=True))
        batch.add_column(sa.Column("proof", sa.LargeBinary, nullable=True))
        batch.create_foreign_key(
            "fk_site_signatures_batch_id_site_signature_batches",
            "site_signature_batches",
            ["batch_id"],
            ["id"],
        )
    op.create_index("ix_site_signatures_batch_id", "site_signatures", ["batch_id"])


def downgrade() -> None:
    op.drop_index("ix_site_signatures_batch_id", table_name="site_signatures")
    with op.batch_alter_table("site_signatures") as batch:
        batch.drop_constraint("fk_site_signatures_batch_id_site_signature_batches", type_="foreignkey")
        batch.drop_column("proof")
        batch.drop_column("leaf_index")
        batch.drop_column("batch_id")
    op.drop_table("site_signature_batches")
