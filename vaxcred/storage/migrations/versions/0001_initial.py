"""The initial schema: sites, persons, doses, registry checks, site signatures, corrections, passports.

Revision ID: 0001
Revises:
Create Date: 2024-05-01

Frozen: later revisions alter these tables, they never edit this file. Types are written out (no import of
vaxcred.storage.schema) so this revision keeps meaning what it meant when later code changes;
``UtcDateTime`` is ``DateTime(timezone=True)`` in the database.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def _id() -> sa.types.TypeEngine[int]:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _time() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "sites",
        sa.Column("site_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=True),
        sa.Column("province_code", sa.String(3), nullable=True),
        sa.PrimaryKeyConstraint("site_id", name="pk_sites"),
    )
    op.create_index("ix_sites_province_code", "sites", ["province_code"])

    op.create_table(
        "site_certificates",
        sa.Column("fingerprint", sa.LargeBinary(32), nullable=False),
        sa.Column("site_id", sa.String(64), nullable=False),
        sa.Column("kid", sa.LargeBinary(32), nullable=False),
        sa.Column("der", sa.LargeBinary(), nullable=False),
        sa.Column("not_before", _time(), nullable=False),
        sa.Column("not_after", _time(), nullable=False),
        sa.ForeignKeyConstraint(["site_id"], ["sites.site_id"], name="fk_site_certificates_site_id_sites"),
        sa.PrimaryKeyConstraint("fingerprint", name="pk_site_certificates"),
    )
    op.create_index("ix_site_certificates_kid", "site_certificates", ["kid"])
    op.create_index("ix_site_certificates_site_id", "site_certificates", ["site_id"])

    op.create_table(
        "persons",
        sa.Column("id", _id(), autoincrement=True, nullable=False),
        sa.Column("citizen_id", sa.String(20), nullable=False),
        sa.Column("id_type", sa.String(5), nullable=False),
        sa.Column("full_name", sa.String(200), nullable=False),
        sa.Column("dob", sa.String(10), nullable=False),
        sa.Column("gender", sa.String(1), nullable=False),
        sa.Column("province_code", sa.String(3), nullable=True),
        sa.Column("registry_status", sa.String(16), nullable=True),
        sa.Column("registry_checked_at", _time(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_persons"),
        sa.UniqueConstraint("citizen_id", name="uq_persons_citizen_id"),
    )
    op.create_index("ix_persons_province_code", "persons", ["province_code"])
    op.create_index("ix_persons_registry_status_id", "persons", ["registry_status", "id"])

    op.create_table(
        "doses",
        sa.Column("id", _id(), autoincrement=True, nullable=False),
        sa.Column("person_id", _id(), nullable=False),
        sa.Column("dose_number", sa.SmallInteger(), nullable=False),
        sa.Column("date", sa.Date(), nullable=False),
        sa.Column("site_id", sa.String(64), nullable=False),
        sa.Column("vaccine", sa.String(64), nullable=False),
        sa.Column("lot", sa.String(64), nullable=False),
        sa.CheckConstraint("dose_number >= 1", name="ck_doses_dose_number_positive"),
        sa.ForeignKeyConstraint(["person_id"], ["persons.id"], name="fk_doses_person_id_persons"),
        sa.ForeignKeyConstraint(["site_id"], ["sites.site_id"], name="fk_doses_site_id_sites"),
        sa.PrimaryKeyConstraint("id", name="pk_doses"),
        sa.UniqueConstraint("person_id", "dose_number", "date", "site_id", name="uq_doses_natural_key"),
    )
    op.create_index("ix_doses_site_id_id", "doses", ["site_id", "id"])

    op.create_table(
        "registry_checks",
        sa.Column("id", _id(), autoincrement=True, nullable=False),
        sa.Column("person_id", _id(), nullable=False),
        sa.Column("checked_at", _time(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("mismatch_fields", sa.String(64), server_default="", nullable=False),
        sa.Column("name_difference", sa.String(16), server_default="none", nullable=False),
        sa.Column("source", sa.String(200), nullable=False),
        sa.ForeignKeyConstraint(["person_id"], ["persons.id"], name="fk_registry_checks_person_id_persons"),
        sa.PrimaryKeyConstraint("id", name="pk_registry_checks"),
    )
    op.create_index("ix_registry_checks_person_id_id", "registry_checks", ["person_id", "id"])

    op.create_table(
        "site_signatures",
        sa.Column("id", _id(), autoincrement=True, nullable=False),
        sa.Column("dose_id", _id(), nullable=False),
        sa.Column("site_id", sa.String(64), nullable=False),
        sa.Column("certificate", sa.LargeBinary(32), nullable=True),
        sa.Column("kid", sa.LargeBinary(32), nullable=False),
        sa.Column("cose", sa.LargeBinary(), nullable=False),
        sa.Column("signed_at", _time(), nullable=False),
        sa.Column("superseded_at", _time(), nullable=True),
        sa.ForeignKeyConstraint(
            ["certificate"],
            ["site_certificates.fingerprint"],
            name="fk_site_signatures_certificate_site_certificates",
        ),
        sa.ForeignKeyConstraint(["dose_id"], ["doses.id"], name="fk_site_signatures_dose_id_doses"),
        sa.ForeignKeyConstraint(["site_id"], ["sites.site_id"], name="fk_site_signatures_site_id_sites"),
        sa.PrimaryKeyConstraint("id", name="pk_site_signatures"),
    )
    op.create_index(
        "uq_site_signatures_current",
        "site_signatures",
        ["dose_id"],
        unique=True,
        sqlite_where=sa.text("superseded_at IS NULL"),
        postgresql_where=sa.text("superseded_at IS NULL"),
    )

    op.create_table(
        "corrections",
        sa.Column("id", _id(), autoincrement=True, nullable=False),
        sa.Column("dose_id", _id(), nullable=False),
        sa.Column("site_id", sa.String(64), nullable=False),
        sa.Column("field", sa.String(32), nullable=False),
        sa.Column("proposed_value", sa.String(200), nullable=False),
        sa.Column("state", sa.String(10), server_default="open", nullable=False),
        sa.Column("filed_at", _time(), nullable=False),
        sa.Column("due_at", _time(), nullable=False),
        sa.Column("resolved_at", _time(), nullable=True),
        sa.Column("resolution", sa.String(200), nullable=True),
        sa.CheckConstraint("state IN ('open', 'resolved', 'rejected')", name="ck_corrections_state"),
        sa.ForeignKeyConstraint(["dose_id"], ["doses.id"], name="fk_corrections_dose_id_doses"),
        sa.ForeignKeyConstraint(["site_id"], ["sites.site_id"], name="fk_corrections_site_id_sites"),
        sa.PrimaryKeyConstraint("id", name="pk_corrections"),
    )
    op.create_index("ix_corrections_dose_id", "corrections", ["dose_id"])
    op.create_index("ix_corrections_site_id_state", "corrections", ["site_id", "state"])
    op.create_index("ix_corrections_state_due_at", "corrections", ["state", "due_at"])

    op.create_table(
        "passports",
        sa.Column("id", _id(), autoincrement=True, nullable=False),
        sa.Column("person_id", _id(), nullable=False),
        sa.Column("uvci", sa.String(64), nullable=False),
        sa.Column("hc1", sa.Text(), nullable=False),
        sa.Column("kid", sa.LargeBinary(32), nullable=False),
        sa.Column("iat", _time(), nullable=False),
        sa.Column("exp", _time(), nullable=False),
        sa.Column("issued_at", _time(), nullable=False),
        sa.Column("status", sa.String(8), server_default="active", nullable=False),
        sa.Column("revoked_at", _time(), nullable=True),
        sa.Column("supersedes", _id(), nullable=True),
        sa.Column("registry_check_id", _id(), nullable=False),
        sa.CheckConstraint("status IN ('active', 'revoked')", name="ck_passports_status"),
        sa.ForeignKeyConstraint(["person_id"], ["persons.id"], name="fk_passports_person_id_persons"),
        sa.ForeignKeyConstraint(
            ["registry_check_id"],
            ["registry_checks.id"],
            name="fk_passports_registry_check_id_registry_checks",
        ),
        sa.ForeignKeyConstraint(["supersedes"], ["passports.id"], name="fk_passports_supersedes_passports"),
        sa.PrimaryKeyConstraint("id", name="pk_passports"),
        sa.UniqueConstraint("uvci", name="uq_passports_uvci"),
    )
    op.create_index("ix_passports_person_id", "passports", ["person_id"])
    op.create_index(
        "uq_passports_active_person",
        "passports",
        ["person_id"],
        unique=True,
        sqlite_where=sa.text("status = 'active'"),
        postgresql_where=sa.text("status = 'active'"),
    )

    op.create_table(
        "passport_doses",
        sa.Column("passport_id", _id(), nullable=False),
        sa.Column("dose_id", _id(), nullable=False),
        sa.Column("site_signature_id", _id(), nullable=False),
        sa.ForeignKeyConstraint(["dose_id"], ["doses.id"], name="fk_passport_doses_dose_id_doses"),
        sa.ForeignKeyConstraint(
            ["passport_id"], ["passports.id"], name="fk_passport_doses_passport_id_passports"
        ),
        sa.ForeignKeyConstraint(
            ["site_signature_id"],
            ["site_signatures.id"],
            name="fk_passport_doses_site_signature_id_site_signatures",
        ),
        sa.PrimaryKeyConstraint("passport_id", "dose_id", name="pk_passport_doses"),
    )
    op.create_index("ix_passport_doses_dose_id", "passport_doses", ["dose_id"])

    op.create_table(
        "revocations",
        sa.Column("id", _id(), autoincrement=True, nullable=False),
        sa.Column("passport_id", _id(), nullable=False),
        sa.Column("hash_type", sa.String(16), nullable=False),
        sa.Column("hash", sa.LargeBinary(16), nullable=False),
        sa.Column("kid", sa.LargeBinary(32), nullable=False),
        sa.Column("revoked_at", _time(), nullable=False),
        sa.Column("expires", _time(), nullable=False),
        sa.Column("reason", sa.String(200), server_default="", nullable=False),
        sa.ForeignKeyConstraint(
            ["passport_id"], ["passports.id"], name="fk_revocations_passport_id_passports"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_revocations"),
        sa.UniqueConstraint("passport_id", "hash_type", name="uq_revocations_passport_id_hash_type"),
    )
    op.create_index("ix_revocations_kid_hash_type", "revocations", ["kid", "hash_type"])

    op.create_table(
        "issuance_claims",
        sa.Column("person_id", _id(), nullable=False),
        sa.Column("state", sa.String(8), nullable=False),
        sa.Column("worker", sa.String(64), nullable=False),
        sa.Column("claimed_at", _time(), nullable=False),
        sa.CheckConstraint("state IN ('claimed', 'done')", name="ck_issuance_claims_state"),
        sa.ForeignKeyConstraint(["person_id"], ["persons.id"], name="fk_issuance_claims_person_id_persons"),
        sa.PrimaryKeyConstraint("person_id", name="pk_issuance_claims"),
    )
    op.create_index("ix_issuance_claims_state_claimed_at", "issuance_claims", ["state", "claimed_at"])


def downgrade() -> None:
    for table in (
        "issuance_claims",
        "revocations",
        "passport_doses",
        "passports",
        "corrections",
        "site_signatures",
        "registry_checks",
        "doses",
        "persons",
        "site_certificates",
        "sites",
    ):
        op.drop_table(table)
