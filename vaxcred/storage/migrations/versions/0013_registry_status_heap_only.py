"""The registry check's status write becomes a heap-only (HOT) update: ``ix_persons_registry_status_id`` goes, and
``persons`` keeps room on each page for its rows' second version (``fillfactor = 45``, PostgreSQL).

* **Why.** The registry check writes every person (``registry_status``, ``registry_checked_at``). With the status
  indexed and a freshly imported heap full (fillfactor 100), that update was never HOT on PostgreSQL: each person
  got a new row version on another page and a new entry in each of the three indexes of ``persons`` (the primary
  key, ``citizen_id``, (status, id)), ~820 bytes of WAL a person, and after one check the heap and its primary
  key had doubled, the ``citizen_id`` index grown by half and the status index tripled. With no index naming
  either column and room on the page, the new version stays on its page: no index entry at all. Measured at
  100,000 persons (an ``UPDATE`` of 20,000 of them, after a checkpoint): 421 / 579 → 212 / 123 ms, WAL 16.0 /
  13.2 → 8.1 / 6.0 MB (the rest is full-page images of the heap). On SQLite (no HOT) the index is one entry
  less to delete and insert per person, and one less per imported person on both backends.
* **The readers of the index** walk the primary key instead, all of them in id order: the registry check's queue
  (``registry_status IS NULL AND id > :last ORDER BY id LIMIT n``: one pass over ``persons`` a run — the whole
  table when few are unchecked), issuance's claim (``registry_status = 'VERIFIED' AND id > :cursor ORDER BY id
  LIMIT n``: every person after the cursor, the non-verified ones filtered). Site signing reads persons by
  ``id`` only (joined from ``doses``). Counts (``unchecked_count``, the quality report) scan the table.
* **Size.** 45 % leaves room for one more version of every row (a person row is ~100 bytes, its checked version
  ~18 more; at 50 % ~7 % of the updates did not fit, measured). The heap after a check is ~9 % larger than the
  doubled heap a non-HOT check left, the indexes are not bloated (100,000 persons after a check: 5,144 pages →
  3,585). It applies to pages written from now on: rows already stored keep their pages until rewritten.

Rows are untouched. Downgrade resets the fillfactor and puts the index back.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-08
"""

from __future__ import annotations

from alembic import op

revision = "0013"
down_revision: str | None = "0012"
branch_labels: str | None = None
depends_on: str | None = None

#: ``persons``' fillfactor on PostgreSQL (schema.py's ``postgresql_with``): room for each row's checked version
PERSONS_FILLFACTOR = 45


def upgrade() -> None:
    op.drop_index("ix_persons_registry_status_id", table_name="persons")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"ALTER TABLE persons SET (fillfactor = {PERSONS_FILLFACTOR})")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE persons RESET (fillfactor)")
    op.create_index("ix_persons_registry_status_id", "persons", ["registry_status", "id"])
