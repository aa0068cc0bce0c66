"""A batch member's batch, site and certificate: one composite foreign key instead of three.

``site_signatures`` had a foreign key each on ``batch_id``, ``site_id`` and ``certificate``; a batch member's
site and certificate are its batch head's (the head row carries them, checked by its own keys), so the three
checks each stored member cost on PostgreSQL (a trigger and an index probe each: the largest part of the
site-signing INSERT) were one too many twice. Now:

* ``site_signature_batches`` gets a unique index on (id, site_id, certificate) — what a foreign key must name;
* ``site_signatures``' keys on ``site_id`` and ``certificate`` go, and the one on ``batch_id`` becomes
  (batch_id, site_id, certificate) → that index (same name as before): a member that names another site or
  certificate than its batch is refused as well. MATCH SIMPLE, as every key here: a v1 row (``batch_id`` NULL;
  nothing writes one since 0004) is not checked any more — its site and certificate were when it was stored.

Existing members are checked first: one whose site or certificate is not its batch's (changed by SQL after it
was stored: the log audit reports it) stops the upgrade with their row ids, before anything is changed
(:class:`~vaxcred.errors.VaxcredError` ``storage.migration_blocked``).

SQLite cannot alter a table's constraints: the table is rebuilt. Alembic's batch mode drops the old table while
``passport_doses`` rows still point at it (an immediate foreign-key failure: why revision 0004 could not upgrade
a SQLite database that holds passports, until it did the same); here the rows are set aside, the table dropped and created again, and
the rows put back under ``PRAGMA defer_foreign_keys`` (each put-back row satisfies the references its drop
broke; SQLite checks the count at commit).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from vaxcred.errors import VaxcredError
from vaxcred.storage.schema import Id, UtcDateTime

revision = "0009"
down_revision: str | None = "0008"
branch_labels: str | None = None
depends_on: str | None = None

#: :class:`~vaxcred.errors.VaxcredError` code: existing rows the new constraint would refuse (nothing changed)
MIGRATION_BLOCKED = "storage.migration_blocked"
_BATCH_KEY = "uq_site_signature_batches_id_site_id_certificate"
_MEMBER_KEY = "fk_site_signatures_batch_id_site_signature_batches"  # the naming convention's, as before
_SITE_KEY = "fk_site_signatures_site_id_sites"
_CERTIFICATE_KEY = "fk_site_signatures_certificate_site_certificates"
_KEY_COLUMNS = ["batch_id", "site_id", "certificate"]
_BATCH_COLUMNS = ["id", "site_id", "certificate"]
_COLUMNS = (
    "id",
    "dose_id",
    "site_id",
    "certificate",
    "kid",
    "cose",
    "signed_at",
    "superseded_at",
    "batch_id",
    "leaf_index",
    "proof",
)


def _refuse_disagreeing_members() -> None:
    members = sa.table("site_signatures", *(sa.column(c) for c in ("id", *_KEY_COLUMNS)))
    batches = sa.table("site_signature_batches", *(sa.column(c) for c in _BATCH_COLUMNS))
    bad = (
        op.get_bind()
        .execute(
            sa.select(members.c.id)
            .join(batches, batches.c.id == members.c.batch_id)
            .where(
                members.c.certificate.is_not(None),
                sa.or_(
                    batches.c.site_id != members.c.site_id, batches.c.certificate != members.c.certificate
                ),
            )
            .order_by(members.c.id)
        )
        .scalars()
        .all()
    )
    if bad:
        shown = ", ".join(str(i) for i in bad[:20]) + (", …" if len(bad) > 20 else "")
        raise VaxcredError(
            f"0009: {len(bad)} site_signatures rows name another site or certificate than their batch "
            f"(ids {shown}); `vaxcred log audit` reports them as altered. Restore or remove them, then migrate "
            "again (nothing was changed)",
            code=MIGRATION_BLOCKED,
        )


def _signature_table(*constraints: sa.Constraint) -> list[sa.schema.SchemaItem]:
    """site_signatures as 0004 left it, with ``constraints`` as its foreign keys (SQLite's rebuild)."""
    return [
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("dose_id", Id, nullable=False),
        sa.Column("site_id", sa.String(64), nullable=False),
        sa.Column("certificate", sa.LargeBinary(32), nullable=True),
        sa.Column("kid", sa.LargeBinary(32), nullable=False),
        sa.Column("cose", sa.LargeBinary, nullable=False),
        sa.Column("signed_at", UtcDateTime, nullable=False),
        sa.Column("superseded_at", UtcDateTime, nullable=True),
        sa.Column("batch_id", Id, nullable=True),
        sa.Column("leaf_index", sa.Integer, nullable=True),
        sa.Column("proof", sa.LargeBinary, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_site_signatures"),
        sa.ForeignKeyConstraint(["dose_id"], ["doses.id"], name="fk_site_signatures_dose_id_doses"),
        *constraints,
    ]


def _rebuild_sqlite(*constraints: sa.Constraint) -> None:
    """Set the rows aside, drop the table, create it with ``constraints`` and put the rows back (ids kept)."""
    conn = op.get_bind()
    columns = ", ".join(_COLUMNS)
    conn.exec_driver_sql("PRAGMA defer_foreign_keys = ON")  # until this transaction commits
    conn.exec_driver_sql("CREATE TEMPORARY TABLE _site_signatures_0009 AS SELECT * FROM site_signatures")
    op.drop_table("site_signatures")
    op.create_table("site_signatures", *_signature_table(*constraints))
    conn.exec_driver_sql(
        f"INSERT INTO site_signatures ({columns}) SELECT {columns} FROM _site_signatures_0009"  # noqa: S608
    )
    conn.exec_driver_sql("DROP TABLE _site_signatures_0009")
    conn.exec_driver_sql("PRAGMA defer_foreign_keys = OFF")
    op.create_index(
        "uq_site_signatures_current",
        "site_signatures",
        ["dose_id"],
        unique=True,
        sqlite_where=sa.text("superseded_at IS NULL"),
    )
    op.create_index("ix_site_signatures_batch_id", "site_signatures", ["batch_id"])


def upgrade() -> None:
    _refuse_disagreeing_members()
    op.create_index(_BATCH_KEY, "site_signature_batches", _BATCH_COLUMNS, unique=True)
    member_key = sa.ForeignKeyConstraint(
        _KEY_COLUMNS, [f"site_signature_batches.{c}" for c in _BATCH_COLUMNS], name=_MEMBER_KEY
    )
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_sqlite(member_key)
        return
    for name in (_SITE_KEY, _CERTIFICATE_KEY, _MEMBER_KEY):
        op.drop_constraint(name, "site_signatures", type_="foreignkey")
    op.create_foreign_key(
        _MEMBER_KEY, "site_signatures", "site_signature_batches", _KEY_COLUMNS, _BATCH_COLUMNS
    )


def downgrade() -> None:
    keys = (
        sa.ForeignKeyConstraint(["site_id"], ["sites.site_id"], name=_SITE_KEY),
        sa.ForeignKeyConstraint(["certificate"], ["site_certificates.fingerprint"], name=_CERTIFICATE_KEY),
        sa.ForeignKeyConstraint(["batch_id"], ["site_signature_batches.id"], name=_MEMBER_KEY),
    )
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_sqlite(*keys)
    else:
        op.drop_constraint(_MEMBER_KEY, "site_signatures", type_="foreignkey")
        op.create_foreign_key(_SITE_KEY, "site_signatures", "sites", ["site_id"], ["site_id"])
        op.create_foreign_key(
            _CERTIFICATE_KEY, "site_signatures", "site_certificates", ["certificate"], ["fingerprint"]
        )
        op.create_foreign_key(_MEMBER_KEY, "site_signatures", "site_signature_batches", ["batch_id"], ["id"])
    op.drop_index(_BATCH_KEY, table_name="site_signature_batches")
