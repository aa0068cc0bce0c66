"""Batch site signing: site_signature_batches (one signed head per batch), and on site_signatures the batch,
leaf index and audit path of a batch member (NULL for v1 rows, which keep their own COSE_Sign1).

SQLite cannot add a foreign key to an existing table: ``site_signatures`` is rebuilt. Until 2026-12-07 this
revision used Alembic's batch mode, which drops the old table while ``passport_doses`` rows still point at it:
on a SQLite database holding passports (foreign keys on) the DROP failed and the upgrade rolled back. Now the rows
are set aside, the table dropped and created again as batch mode created it (same columns in the same order, same
named keys and indexes; only the table name in ``sqlite_master`` is no longer quoted), and the rows put back under
``PRAGMA defer_foreign_keys`` (each put-back row satisfies the references its drop broke; SQLite checks the count
at commit). The downgrade rebuilds the same way. Changing this revision alters no database that already upgraded:
one batch mode failed on rolled back and never got past 0004, and one it upgraded has the schema this creates.
PostgreSQL alters the table in place, with the same statements as before.

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

_MEMBER_KEY = "fk_site_signatures_batch_id_site_signature_batches"
#: site_signatures' columns at 0003, which both directions keep
_KEPT = ("id", "dose_id", "site_id", "certificate", "kid", "cose", "signed_at", "superseded_at")


def _member_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("batch_id", Id, nullable=True),
        sa.Column("leaf_index", sa.Integer, nullable=True),
        sa.Column("proof", sa.LargeBinary, nullable=True),
    ]


def _rebuild_sqlite(*, batched: bool) -> None:
    """Set site_signatures' rows aside, drop the table, create it as at 0004 (``batched``) or at 0003, and put the
    rows back (ids kept; the batch columns NULL on the way up, gone on the way down)."""
    conn = op.get_bind()
    columns = ", ".join(_KEPT)
    conn.exec_driver_sql("PRAGMA defer_foreign_keys = ON")  # until this transaction commits
    conn.exec_driver_sql("CREATE TEMPORARY TABLE _site_signatures_0004 AS SELECT * FROM site_signatures")
    op.drop_table("site_signatures")
    op.create_table(
        "site_signatures",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("dose_id", Id, nullable=False),
        sa.Column("site_id", sa.String(64), nullable=False),
        sa.Column("certificate", sa.LargeBinary(32), nullable=True),
        sa.Column("kid", sa.LargeBinary(32), nullable=False),
        sa.Column("cose", sa.LargeBinary, nullable=False),
        sa.Column("signed_at", UtcDateTime, nullable=False),
        sa.Column("superseded_at", UtcDateTime, nullable=True),
        *(_member_columns() if batched else ()),
        sa.PrimaryKeyConstraint("id", name="pk_site_signatures"),
        sa.ForeignKeyConstraint(
            ["certificate"],
            ["site_certificates.fingerprint"],
            name="fk_site_signatures_certificate_site_certificates",
        ),
        sa.ForeignKeyConstraint(["site_id"], ["sites.site_id"], name="fk_site_signatures_site_id_sites"),
        sa.ForeignKeyConstraint(["dose_id"], ["doses.id"], name="fk_site_signatures_dose_id_doses"),
        *(
            (sa.ForeignKeyConstraint(["batch_id"], ["site_signature_batches.id"], name=_MEMBER_KEY),)
            if batched
            else ()
        ),
    )
    conn.exec_driver_sql(
        f"INSERT INTO site_signatures ({columns}) SELECT {columns} FROM _site_signatures_0004"  # noqa: S608
    )
    conn.exec_driver_sql("DROP TABLE _site_signatures_0004")
    conn.exec_driver_sql("PRAGMA defer_foreign_keys = OFF")
    op.create_index(
        "uq_site_signatures_current",
        "site_signatures",
        ["dose_id"],
        unique=True,
        sqlite_where=sa.text("superseded_at IS NULL"),
    )


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
    if op.get_bind().dialect.name == "sqlite":  # no foreign key can be added to an existing table
        _rebuild_sqlite(batched=True)
    else:  # in place (batch mode: plain ALTER TABLE statements here), unchanged since 0004 was written
        with op.batch_alter_table("site_signatures") as batch:
            for column in _member_columns():
                batch.add_column(column)
            batch.create_foreign_key(_MEMBER_KEY, "site_signature_batches", ["batch_id"], ["id"])
    op.create_index("ix_site_signatures_batch_id", "site_signatures", ["batch_id"])


def downgrade() -> None:
    op.drop_index("ix_site_signatures_batch_id", table_name="site_signatures")
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_sqlite(batched=False)
    else:
        with op.batch_alter_table("site_signatures") as batch:
            batch.drop_constraint(_MEMBER_KEY, type_="foreignkey")
            batch.drop_column("proof")
            batch.drop_column("leaf_index")
            batch.drop_column("batch_id")
    op.drop_table("site_signature_batches")
