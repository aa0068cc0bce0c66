"""Issuance writes less per passport: two indexes no query reads go, and a claim turning ``done`` is a HOT update.

* ``ix_issuance_claims_state_claimed_at`` goes. Every claim is probed by its primary key (``person_id``: the
  claim's anti-join, the claim upsert, the store's ``claimed → done``); only the end-of-run count of claims held
  elsewhere filtered on ``state`` (a scan once a run). Yet every claim wrote an entry in it, and every ``claimed →
  done`` a second one — and, ``state`` and ``claimed_at`` being indexed, that update could never be HOT, so it
  wrote a new primary-key entry too.
* ``issuance_claims`` gets ``fillfactor = 50`` (PostgreSQL): a page keeps room for the new version of each of its
  rows, so ``claimed → done`` stays on the page — a heap-only (HOT) update, no index entry at all. It applies to
  pages written from now on (the claims of existing persons keep their pages until rewritten).
* ``ix_passport_doses_dose_id`` goes: every reader of ``passport_doses`` selects by ``passport_id`` (the primary
  key's leading column: the log audit, the certificate, a correction's "was the active passport issued on this
  dose", joined from the passport); none by dose alone. It cost an index entry per link (~2.5 a passport).

* ``ix_passports_person_id`` becomes ``ix_passports_revoked_person_id``, on revoked passports only: every reader
  of passports by person names the status — ``ACTIVE`` (the claim's anti-join, revocation, the certificate: the
  unique index ``uq_passports_active_person``) or ``REVOKED`` (the predecessor a re-issue supersedes, the
  successor repair) — so an issued passport writes one index entry less; a revocation (rare) writes one.

Rows are untouched. Downgrade puts the indexes back and resets the fillfactor.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision: str | None = "0009"
branch_labels: str | None = None
depends_on: str | None = None

#: ``issuance_claims``' fillfactor on PostgreSQL (schema.py's ``postgresql_with``): room for each row's second
#: version (claimed → done) on its own page
CLAIMS_FILLFACTOR = 50
_REVOKED = (
    "status = 'revoked'"  # PassportStatus.REVOKED, as the migration wrote it (a constant, not the enum)
)


def upgrade() -> None:
    op.drop_index("ix_issuance_claims_state_claimed_at", table_name="issuance_claims")
    op.drop_index("ix_passport_doses_dose_id", table_name="passport_doses")
    op.create_index(
        "ix_passports_revoked_person_id",
        "passports",
        ["person_id"],
        sqlite_where=sa.text(_REVOKED),
        postgresql_where=sa.text(_REVOKED),
    )
    op.drop_index("ix_passports_person_id", table_name="passports")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"ALTER TABLE issuance_claims SET (fillfactor = {CLAIMS_FILLFACTOR})")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE issuance_claims RESET (fillfactor)")
    op.create_index("ix_passports_person_id", "passports", ["person_id"])
    op.drop_index("ix_passports_revoked_person_id", table_name="passports")
    op.create_index("ix_passport_doses_dose_id", "passport_doses", ["dose_id"])
    op.create_index("ix_issuance_claims_state_claimed_at", "issuance_claims", ["state", "claimed_at"])
