"""``passport_doses`` without foreign keys: each link is checked by the transaction that stores it.

A passport's links — (passport, dose, site signature) — were checked three times each by the database (one
foreign-key trigger and one locking read of the parent row per key: ~7.5 per passport, about a sixth of the
PostgreSQL server's CPU per passport in issuance, 2026-12-07). The one writer of links already guarantees what
those checks did, in the same transaction:

* ``passport_id``: the passport is inserted by the same transaction, just before its links (``store.py``, and on
  PostgreSQL the batch function of ``roundtrip.py``); passports are never deleted (revoked: a status);
* ``dose_id``: the store re-checks that the person's current doses are exactly those linked (a withdrawn or a new
  dose stores no passport); doses are never deleted (withdrawn: a time);
* ``site_signature_id``: the store locks every linked signature ``FOR SHARE`` and checks it is current; site
  signatures are never deleted (superseded: a time).

And the issuance log covers the links: each passport's entry holds its (dose, signature) pairs, and ``vaxcred log
audit`` recomputes every entry from ``passport_doses`` and reports any difference. The primary key and the dose
index stay. SQLite rebuilds the table (its foreign keys cannot be dropped in place).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision: str | None = "0007"
branch_labels: str | None = None
depends_on: str | None = None

_FOREIGN_KEYS = (
    ("fk_passport_doses_passport_id_passports", "passports", ["passport_id"]),
    ("fk_passport_doses_dose_id_doses", "doses", ["dose_id"]),
    ("fk_passport_doses_site_signature_id_site_signatures", "site_signatures", ["site_signature_id"]),
)


def upgrade() -> None:
    with op.batch_alter_table("passport_doses") as table:
        for name, _parent, _columns in _FOREIGN_KEYS:
            table.drop_constraint(name, type_="foreignkey")


def downgrade() -> None:
    with op.batch_alter_table("passport_doses") as table:
        for name, parent, columns in _FOREIGN_KEYS:
            table.create_foreign_key(name, parent, columns, ["id"])
