"""A batch member names only its batch: its site, certificate and kid are the batch's.

Until now every ``site_signatures`` row of a batch repeated its batch head's site (~10 bytes), certificate
fingerprint (32) and kid (32), under a composite key (batch_id, site_id, certificate) → the batch (0009) that only
made sure they agreed. Every reader of a member already joins its batch (for the head), so the copies were ~77
bytes of heap and WAL a signed dose, and a wider key check, for nothing. Now:

* ``site_id`` and ``kid`` become nullable; a batch member stores NULL in ``site_id``, ``certificate`` and
  ``kid`` (the readers take the batch's), a v1 row (``batch_id`` NULL; nothing writes one since 0004) keeps its
  own: CHECK ``ck_site_signatures_v1_or_member`` — so a member cannot name another site, certificate or kid
  than its batch's at all, instead of being refused by a key when it does;
* the member key becomes ``batch_id`` → ``site_signature_batches.id`` (the name it had before 0009; on
  PostgreSQL checked once a statement by the triggers of 0011, re-created for the one column), and the batch
  table's unique index on (id, site_id, certificate), which only that key named, goes.

Existing members are checked first: one whose site, certificate or kid is not its batch's (changed by SQL after
it was stored: the log audit reports it) stops the upgrade with its row ids before anything is changed
(:class:`~vaxcred.errors.VaxcredError` ``storage.migration_blocked``): clearing the copies would erase the
evidence. Then the members' copies are cleared. The log entries are unchanged: a member's entry hashes its
batch's site, certificate and kid, which were the same values.

SQLite cannot alter a column's nullability or add a CHECK: the table is rebuilt as 0009 does (the rows set aside,
the table dropped and created again, the rows put back under ``PRAGMA defer_foreign_keys``). Downgrade copies the
batch's site, certificate and kid back into its members and restores 0011's table.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07
"""

from __future__ import annotations

import importlib
from typing import Any

import sqlalchemy as sa
from alembic import op

from vaxcred.errors import VaxcredError
from vaxcred.storage.schema import Id, UtcDateTime

revision = "0012"
down_revision: str | None = "0011"
branch_labels: str | None = None
depends_on: str | None = None

#: 0011's statement-checked keys (the trigger SQL of a key: one source, the revision that introduced it)
_keys = importlib.import_module("vaxcred.storage.migrations.versions.0011_keys_checked_by_statement")

#: :class:`~vaxcred.errors.VaxcredError` code: existing rows the new table would lose (nothing changed)
MIGRATION_BLOCKED = "storage.migration_blocked"
_BATCH_KEY = "uq_site_signature_batches_id_site_id_certificate"
_MEMBER_KEY = "fk_site_signatures_batch_id_site_signature_batches"
_CHECK = "ck_site_signatures_v1_or_member"
_CHECK_SQL = (
    "(batch_id IS NULL AND site_id IS NOT NULL AND kid IS NOT NULL)"
    " OR (batch_id IS NOT NULL AND site_id IS NULL AND certificate IS NULL AND kid IS NULL)"
)
_COMPOSITE = _keys.Key(
    _MEMBER_KEY,
    "site_signatures",
    ("batch_id", "site_id", "certificate"),
    "site_signature_batches",
    ("id", "site_id", "certificate"),
)
_SINGLE = _keys.Key(_MEMBER_KEY, "site_signatures", ("batch_id",), "site_signature_batches", ("id",))
_COPIED = ("site_id", "certificate", "kid")
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
    members = sa.table("site_signatures", *(sa.column(c) for c in ("id", "batch_id", *_COPIED)))
    batches = sa.table("site_signature_batches", *(sa.column(c) for c in ("id", *_COPIED)))
    bad = (
        op.get_bind()
        .execute(
            sa.select(members.c.id)
            .join(batches, batches.c.id == members.c.batch_id)
            .where(sa.or_(*(members.c[c].is_distinct_from(batches.c[c]) for c in _COPIED)))
            .order_by(members.c.id)
        )
        .scalars()
        .all()
    )
    if bad:
        shown = ", ".join(str(i) for i in bad[:20]) + (", …" if len(bad) > 20 else "")
        raise VaxcredError(
            f"0012: {len(bad)} site_signatures rows name another site, certificate or kid than their batch "
            f"(ids {shown}); `vaxcred log audit` reports them as altered. Restore or remove them, then migrate "
            "again (nothing was changed)",
            code=MIGRATION_BLOCKED,
        )


def _signature_table(*constraints: sa.Constraint, members_name_batch: bool) -> list[sa.schema.SchemaItem]:
    """site_signatures for SQLite's rebuild: 0011's (``members_name_batch`` False) or 0012's."""
    return [
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("dose_id", Id, nullable=False),
        sa.Column("site_id", sa.String(64), nullable=members_name_batch),
        sa.Column("certificate", sa.LargeBinary(32), nullable=True),
        sa.Column("kid", sa.LargeBinary(32), nullable=members_name_batch),
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


def _rebuild_sqlite(select: str, *constraints: sa.Constraint, members_name_batch: bool) -> None:
    """Set the rows aside, drop the table, create it with ``constraints`` and put the rows back (ids kept),
    ``select`` giving :data:`_COLUMNS` from the rows set aside (``_old``)."""
    conn = op.get_bind()
    conn.exec_driver_sql("PRAGMA defer_foreign_keys = ON")  # until this transaction commits
    conn.exec_driver_sql("CREATE TEMPORARY TABLE _site_signatures_0012 AS SELECT * FROM site_signatures")
    op.drop_table("site_signatures")
    op.create_table("site_signatures", *_signature_table(*constraints, members_name_batch=members_name_batch))
    conn.exec_driver_sql(f"INSERT INTO site_signatures ({', '.join(_COLUMNS)}) {select}")
    conn.exec_driver_sql("DROP TABLE _site_signatures_0012")
    conn.exec_driver_sql("PRAGMA defer_foreign_keys = OFF")
    op.create_index(
        "uq_site_signatures_current",
        "site_signatures",
        ["dose_id"],
        unique=True,
        sqlite_where=sa.text("superseded_at IS NULL"),
    )
    op.create_index("ix_site_signatures_batch_id", "site_signatures", ["batch_id"])


def _drop_key_triggers(key: Any) -> None:
    short = _keys._short(key)
    for suffix in ("ins", "upd"):
        op.execute(f"DROP TRIGGER {short}_{suffix} ON site_signatures")
        op.execute(f"DROP FUNCTION {short}_{suffix}()")


def upgrade() -> None:
    _refuse_disagreeing_members()
    if op.get_bind().dialect.name == "sqlite":
        cleared = ", ".join(
            f"CASE WHEN batch_id IS NULL THEN {c} END AS {c}" if c in _COPIED else c for c in _COLUMNS
        )
        _rebuild_sqlite(
            f"SELECT {cleared} FROM _site_signatures_0012",  # noqa: S608 - constants only
            sa.ForeignKeyConstraint(["batch_id"], ["site_signature_batches.id"], name=_MEMBER_KEY),
            sa.CheckConstraint(_CHECK_SQL, name=op.f(_CHECK)),
            members_name_batch=True,
        )
    else:
        _drop_key_triggers(_COMPOSITE)
        op.alter_column("site_signatures", "site_id", nullable=True)
        op.alter_column("site_signatures", "kid", nullable=True)
        op.execute(
            "UPDATE site_signatures SET site_id = NULL, certificate = NULL, kid = NULL WHERE batch_id IS NOT NULL"
        )
        op.create_check_constraint(op.f(_CHECK), "site_signatures", sa.text(_CHECK_SQL))
        _keys._create_key(_SINGLE)
    op.drop_index(_BATCH_KEY, table_name="site_signature_batches")


def downgrade() -> None:
    op.create_index(_BATCH_KEY, "site_signature_batches", ["id", "site_id", "certificate"], unique=True)
    composite = sa.ForeignKeyConstraint(
        list(_COMPOSITE.columns),
        [f"site_signature_batches.{c}" for c in _COMPOSITE.parent_columns],
        name=_MEMBER_KEY,
    )
    if op.get_bind().dialect.name == "sqlite":
        filled = ", ".join(
            f"coalesce((SELECT b.{c} FROM site_signature_batches AS b WHERE b.id = _old.batch_id), _old.{c})"  # noqa: S608
            if c in _COPIED
            else f"_old.{c}"
            for c in _COLUMNS
        )
        _rebuild_sqlite(
            f"SELECT {filled} FROM _site_signatures_0012 AS _old",  # noqa: S608 - constants only
            composite,
            members_name_batch=False,
        )
        return
    _drop_key_triggers(_SINGLE)
    op.drop_constraint(op.f(_CHECK), "site_signatures", type_="check")
    op.execute(
        "UPDATE site_signatures AS s SET site_id = b.site_id, certificate = b.certificate, kid = b.kid "
        "FROM site_signature_batches AS b WHERE b.id = s.batch_id"
    )
    op.alter_column("site_signatures", "site_id", nullable=False)
    op.alter_column("site_signatures", "kid", nullable=False)
    _keys._create_key(_COMPOSITE)
