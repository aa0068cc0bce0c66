"""The pipeline's tables (SQLAlchemy Core), the same on SQLite and PostgreSQL.

::

    sites ─┬─< site_certificates
           │
    persons ─┬─< doses >── sites                 UNIQUE natural key (person_id, dose_number, date, site_id)
             │                                   (fillfactor 45: the registry status write is a HOT update)
             │     ├─< site_signatures >── site_signature_batches   at most one current signature per dose;
             │     │                              a batch member points at its signed batch head,
             │     │                              whose site, certificate and kid are its own (0012)
             │     └─< corrections >── sites      routed to the site that recorded the dose
             ├─< registry_checks                  history: one row per check, newest = highest id
             ├─< passports ─< passport_doses >── doses, site_signatures
             │       └─< revocations              one row per hash type
             └── issuance_claims                  one row per person, claimed FOR UPDATE SKIP LOCKED
                                                  (fillfactor 50: claimed → done is a HOT update)

    issuance_log                                  append-only Merkle log (RFC 9162): one entry per signed
    log_tree_heads                                object (dose record, passport, revocation); signed heads;
    log_state                                     one row: the log size, locked by every append

A dose's natural key is (citizen ID, dose number, date, site). ``persons.citizen_id`` is unique and
``doses.person_id`` points at exactly one person, so the key is enforced as UNIQUE (person_id, dose_number,
date, site_id): the 12-character ID is stored once per person, not once per dose (212 M doses).

Citizen IDs, names and dates of birth are personal data: the ministry needs them, so ``persons`` stores them
in clear; nothing here logs them, and :func:`vaxcred.storage.open_database` builds engines with
``hide_parameters=True`` so a database error never carries them into a traceback or a log.

Times are :class:`UtcDateTime`: aware UTC in, aware UTC out, on both backends. States are plain strings
checked by CHECK constraints; their values are the :class:`PassportStatus`, :class:`CorrectionState` and
:class:`ClaimState` enums. Registry statuses and name differences are the pipeline's enums, stored by value.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

__all__ = [
    "KEPT_PARENTS",
    "STATEMENT_CHECKED_KEYS",
    "ClaimState",
    "CorrectionState",
    "PassportStatus",
    "UtcDateTime",
    "corrections",
    "doses",
    "issuance_claims",
    "issuance_log",
    "log_state",
    "log_tree_heads",
    "metadata",
    "passport_doses",
    "passports",
    "persons",
    "registry_checks",
    "revocations",
    "site_certificates",
    "site_signature_batches",
    "site_signatures",
    "sites",
]


class PassportStatus(enum.StrEnum):
    """``passports.status``: a person holds at most one ``ACTIVE`` passport."""

    ACTIVE = "active"
    REVOKED = "revoked"


class CorrectionState(enum.StrEnum):
    """``corrections.state``: ``OPEN`` → ``RESOLVED`` or ``REJECTED``."""

    OPEN = "open"
    RESOLVED = "resolved"
    REJECTED = "rejected"


class ClaimState(enum.StrEnum):
    """``issuance_claims.state``: a worker ``CLAIMED`` a person; ``DONE`` once the passport is stored."""

    CLAIMED = "claimed"
    DONE = "done"


class UtcDateTime(sa.types.TypeDecorator[dt.datetime]):
    """A timestamp that is aware UTC in Python on every backend.

    Naive datetimes are refused (``ValueError``): a time without a zone is a caller mistake. SQLite keeps the
    UTC wall time as ISO text (sortable); PostgreSQL a ``timestamptz``.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if type(value) is dt.datetime and value.tzinfo is dt.UTC:  # the usual case, bound for every row
            return value.replace(tzinfo=None) if dialect.name == "sqlite" else value
        if not isinstance(value, dt.datetime):
            raise TypeError(f"expected a datetime, got {type(value).__name__}")
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("naive datetime: pass an aware UTC time")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        assert isinstance(value, dt.datetime)
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


#: surrogate keys: BIGINT on PostgreSQL (212 M doses), INTEGER on SQLite (only that aliases the rowid)
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


def _one_of(column: str, values: type[enum.StrEnum]) -> str:
    return f"{column} IN ({', '.join(repr(v.value) for v in values)})"


sites = sa.Table(
    "sites",
    metadata,
    sa.Column("site_id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(200), nullable=True),
    # three-digit province code (the CCCD list); NULL while unknown (a site first seen in an import)
    sa.Column("province_code", sa.String(3), nullable=True, index=True),
)

site_certificates = sa.Table(
    "site_certificates",
    metadata,
    # SHA-256 of the certificate's DER
    sa.Column("fingerprint", sa.LargeBinary(32), primary_key=True),
    sa.Column("site_id", sa.String(64), sa.ForeignKey(sites.c.site_id), nullable=False, index=True),
    sa.Column("kid", sa.LargeBinary(32), nullable=False, index=True),
    sa.Column("der", sa.LargeBinary, nullable=False),
    sa.Column("not_before", UtcDateTime, nullable=False),
    sa.Column("not_after", UtcDateTime, nullable=False),
)

persons = sa.Table(
    "persons",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    # personal data: 12-digit CCCD, 9-digit CMND or another ID number; never logged
    sa.Column("citizen_id", sa.String(20), nullable=False, unique=True),
    sa.Column("id_type", sa.String(5), nullable=False),
    sa.Column("full_name", sa.String(200), nullable=False),  # NFC
    sa.Column("dob", sa.String(10), nullable=False),  # YYYY, YYYY-MM, YYYY-MM-DD or ""
    sa.Column("gender", sa.String(1), nullable=False),  # "M", "F" or ""
    # from a CCCD's first three digits; NULL for CMND and other IDs. Not indexed (migration 0007): only grouped
    # over (the quality report), while an index would be written by every import and registry update
    sa.Column("province_code", sa.String(3), nullable=True),
    # copy of the newest registry_checks row: NULL = never checked (the registry stage's work queue)
    sa.Column("registry_status", sa.String(16), nullable=True),
    sa.Column("registry_checked_at", UtcDateTime, nullable=True),
    # the work queues (WHERE registry_status IS NULL (to check) / = 'VERIFIED' (to issue) AND id > ? ORDER BY id)
    # walk the primary key: neither status column is indexed (migration 0013), and a page keeps room for each of
    # its rows' checked version, so the registry check's write is a HOT update (no index entry, same page)
    postgresql_with={"fillfactor": 45},
)

#: PostgreSQL (migration 0011): these foreign keys are checked once a statement by triggers (an anti-join of the
#: statement's rows, a transition table, against the parent's key; SQLSTATE 23503 as before) instead of once a row
#: with a lock on the parent; their parents (:data:`KEPT_PARENTS`) refuse DELETE, TRUNCATE and a changed key, so
#: the unlocked check cannot be raced. They stay declared here: SQLite keeps them as foreign keys, and they say
#: what the triggers check
STATEMENT_CHECKED_KEYS = frozenset(
    {
        "fk_site_signatures_dose_id_doses",
        "fk_site_signatures_batch_id_site_signature_batches",
        "fk_doses_person_id_persons",
        "fk_doses_site_id_sites",
        "fk_registry_checks_person_id_persons",
        "fk_passports_person_id_persons",
        "fk_passports_registry_check_id_registry_checks",
        "fk_issuance_claims_person_id_persons",
    }
)
#: PostgreSQL (migration 0011): the parents of :data:`STATEMENT_CHECKED_KEYS`: never deleted, truncated or re-keyed
KEPT_PARENTS = frozenset({"doses", "persons", "sites", "site_signature_batches", "registry_checks"})

doses = sa.Table(
    "doses",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("person_id", Id, sa.ForeignKey(persons.c.id), nullable=False),
    sa.Column("dose_number", sa.SmallInteger, nullable=False),
    sa.Column("date", sa.Date, nullable=False),
    sa.Column("site_id", sa.String(64), sa.ForeignKey(sites.c.site_id), nullable=False),
    sa.Column("vaccine", sa.String(64), nullable=False),  # VIETNAM_VACCINES key or mp code
    sa.Column("lot", sa.String(64), nullable=False),
    # set when a resolved `duplicate` correction withdrew the record (never deleted); every reader takes
    # `withdrawn_at IS NULL` only. The natural key below still holds it: a re-import does not bring it back
    sa.Column("withdrawn_at", UtcDateTime, nullable=True),
    # the natural key; also serves every "doses of this person" lookup (leading column)
    sa.UniqueConstraint("person_id", "dose_number", "date", "site_id", name="uq_doses_natural_key"),
    sa.CheckConstraint("dose_number >= 1", name="dose_number_positive"),
)
# per-site scans: site signing (a site signs its own records), per-site reports
sa.Index("ix_doses_site_id_id", doses.c.site_id, doses.c.id)

registry_checks = sa.Table(
    "registry_checks",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("person_id", Id, sa.ForeignKey(persons.c.id), nullable=False),
    sa.Column("checked_at", UtcDateTime, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # RegistryStatus value
    sa.Column("mismatch_fields", sa.String(64), nullable=False, server_default=""),  # "name,dob,gender"
    sa.Column("name_difference", sa.String(16), nullable=False, server_default="none"),  # NameDifference
    sa.Column("source", sa.String(200), nullable=False),  # which registry answered (adapter, base URL)
)
# newest check of a person: ORDER BY id DESC LIMIT 1 on this index
sa.Index("ix_registry_checks_person_id_id", registry_checks.c.person_id, registry_checks.c.id)

# a batch of site signatures (vaxcred.pipeline.site_signing.batch): the site's one signature over the Merkle root
site_signature_batches = sa.Table(
    "site_signature_batches",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("site_id", sa.String(64), sa.ForeignKey(sites.c.site_id), nullable=False),
    sa.Column(
        "certificate", sa.LargeBinary(32), sa.ForeignKey(site_certificates.c.fingerprint), nullable=False
    ),
    sa.Column("kid", sa.LargeBinary(32), nullable=False),
    sa.Column("head", sa.LargeBinary, nullable=False),  # COSE_Sign1 over {v, site, root, size, signed}
    sa.Column("size", sa.Integer, nullable=False),  # leaves under the root (members stored: at most that)
    sa.Column("signed_at", UtcDateTime, nullable=False),
)

site_signatures = sa.Table(
    "site_signatures",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("dose_id", Id, sa.ForeignKey(doses.c.id), nullable=False),
    # a v1 row's (batch_id NULL: nothing writes one since 0004) site, certificate and kid; a batch member has
    # none (NULL, the CHECK below): its batch's are its own (migration 0012; until then each member repeated
    # them, ~77 bytes a row, under a composite key to its batch)
    sa.Column("site_id", sa.String(64), nullable=True),
    sa.Column("certificate", sa.LargeBinary(32), nullable=True),
    sa.Column("kid", sa.LargeBinary(32), nullable=True),
    # v1 (batch_id NULL): the COSE_Sign1 over the canonical CBOR dose record; batch member: its payload (the leaf)
    sa.Column("cose", sa.LargeBinary, nullable=False),
    sa.Column("signed_at", UtcDateTime, nullable=False),
    # batch members only: the batch head, the leaf index and the audit path (32-byte hashes, concatenated)
    sa.Column("batch_id", Id, sa.ForeignKey(site_signature_batches.c.id), nullable=True),
    sa.Column("leaf_index", sa.Integer, nullable=True),
    sa.Column("proof", sa.LargeBinary, nullable=True),
    # set when a correction changes the dose: the record must be signed again
    sa.Column("superseded_at", UtcDateTime, nullable=True),
    # a v1 row names its site and kid; a batch member names only its batch (0012)
    sa.CheckConstraint(
        "(batch_id IS NULL AND site_id IS NOT NULL AND kid IS NOT NULL)"
        " OR (batch_id IS NOT NULL AND site_id IS NULL AND certificate IS NULL AND kid IS NULL)",
        name="v1_or_member",
    ),
)
# at most one current signature per dose; INSERT … ON CONFLICT (dose_id) WHERE superseded_at IS NULL
sa.Index(
    "uq_site_signatures_current",
    site_signatures.c.dose_id,
    unique=True,
    sqlite_where=site_signatures.c.superseded_at.is_(None),
    postgresql_where=site_signatures.c.superseded_at.is_(None),
)

# a batch's members (its log entry, the audit's rebuild): without it each batch scans every signature
sa.Index("ix_site_signatures_batch_id", site_signatures.c.batch_id)

corrections = sa.Table(
    "corrections",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("dose_id", Id, sa.ForeignKey(doses.c.id), nullable=False, index=True),
    # the site that recorded the dose: the one that must answer within 48 hours
    sa.Column("site_id", sa.String(64), sa.ForeignKey(sites.c.site_id), nullable=False),
    sa.Column("field", sa.String(32), nullable=False),
    sa.Column("proposed_value", sa.String(200), nullable=False),  # personal data
    sa.Column("state", sa.String(10), nullable=False, server_default=CorrectionState.OPEN.value),
    sa.Column("filed_at", UtcDateTime, nullable=False),
    sa.Column("due_at", UtcDateTime, nullable=False),
    sa.Column("resolved_at", UtcDateTime, nullable=True),
    sa.Column("resolution", sa.String(200), nullable=True),
    sa.CheckConstraint(_one_of("state", CorrectionState), name="state"),
)
# overdue report: open corrections by due time; a site's queue
sa.Index("ix_corrections_state_due_at", corrections.c.state, corrections.c.due_at)
sa.Index("ix_corrections_site_id_state", corrections.c.site_id, corrections.c.state)

passports = sa.Table(
    "passports",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("person_id", Id, sa.ForeignKey(persons.c.id), nullable=False),
    sa.Column("uvci", sa.String(64), nullable=False, unique=True),
    sa.Column("hc1", sa.Text, nullable=False),
    sa.Column("kid", sa.LargeBinary(32), nullable=False),
    sa.Column("iat", UtcDateTime, nullable=False),
    sa.Column("exp", UtcDateTime, nullable=False),
    sa.Column("issued_at", UtcDateTime, nullable=False),
    sa.Column("status", sa.String(8), nullable=False, server_default=PassportStatus.ACTIVE.value),
    sa.Column("revoked_at", UtcDateTime, nullable=True),
    sa.Column("supersedes", Id, sa.ForeignKey("passports.id"), nullable=True),
    # the registry result this passport relied on (traceability)
    sa.Column("registry_check_id", Id, sa.ForeignKey(registry_checks.c.id), nullable=False),
    sa.CheckConstraint(_one_of("status", PassportStatus), name="status"),
)
# exactly one valid passport per person, enforced by the database (issuance workers race on it)
sa.Index(
    "uq_passports_active_person",
    passports.c.person_id,
    unique=True,
    sqlite_where=passports.c.status == PassportStatus.ACTIVE.value,
    postgresql_where=passports.c.status == PassportStatus.ACTIVE.value,
)
# a person's revoked passports (the predecessor a re-issue supersedes): every reader by person names the status,
# ACTIVE (the unique index above) or REVOKED (this one), so issuing a passport writes no entry here (0010)
sa.Index(
    "ix_passports_revoked_person_id",
    passports.c.person_id,
    sqlite_where=passports.c.status == PassportStatus.REVOKED.value,
    postgresql_where=passports.c.status == PassportStatus.REVOKED.value,
)
# a passport is superseded at most once (corrections chain successors: old -> new)
sa.Index(
    "uq_passports_supersedes",
    passports.c.supersedes,
    unique=True,
    sqlite_where=passports.c.supersedes.is_not(None),
    postgresql_where=passports.c.supersedes.is_not(None),
)

# a passport's links to the doses and site signatures it was built from. No foreign keys (migration 0008): the one
# writer (issuance's store) inserts them in the passport's own transaction, after re-checking (the person locked
# first) that each dose is a current dose of the person and each signature current; none of the three parents is
# ever deleted; and the issuance log's passport entry holds the pairs, which `log audit` recomputes from these rows.
# Read by passport only (the primary key's leading column): no index on dose_id (migration 0010)
passport_doses = sa.Table(
    "passport_doses",
    metadata,
    sa.Column("passport_id", Id, primary_key=True),
    sa.Column("dose_id", Id, primary_key=True),
    sa.Column("site_signature_id", Id, nullable=False),
)

revocations = sa.Table(
    "revocations",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("passport_id", Id, sa.ForeignKey(passports.c.id), nullable=False),
    sa.Column("hash_type", sa.String(16), nullable=False),  # revocation.HashType value
    sa.Column("hash", sa.LargeBinary(16), nullable=False),
    sa.Column("kid", sa.LargeBinary(32), nullable=False),
    sa.Column("revoked_at", UtcDateTime, nullable=False),
    sa.Column("expires", UtcDateTime, nullable=False),
    sa.Column("reason", sa.String(200), nullable=False, server_default=""),
    sa.UniqueConstraint("passport_id", "hash_type"),
)
# export: batches per (kid, hash type)
sa.Index("ix_revocations_kid_hash_type", revocations.c.kid, revocations.c.hash_type)

issuance_claims = sa.Table(
    "issuance_claims",
    metadata,
    sa.Column("person_id", Id, sa.ForeignKey(persons.c.id), primary_key=True),
    sa.Column("state", sa.String(8), nullable=False),
    sa.Column("worker", sa.String(64), nullable=False),
    sa.Column("claimed_at", UtcDateTime, nullable=False),
    sa.CheckConstraint(_one_of("state", ClaimState), name="state"),
    # every claim is found by its primary key, and nothing else is indexed (migration 0010): `claimed → done`
    # stays on its page — a HOT update, no index entry — when the page has room for the new version
    postgresql_with={"fillfactor": 50},
)

issuance_log = sa.Table(
    "issuance_log",
    metadata,
    # the leaf index: 0, 1, 2, ... without gaps, assigned under the log_state row lock
    sa.Column("seq", Id, primary_key=True, autoincrement=False),
    sa.Column("kind", sa.String(16), nullable=False),  # vaxcred.pipeline.log.Kind
    sa.Column("object_id", Id, nullable=False),  # the row id in the kind's table
    sa.Column("entry", sa.LargeBinary, nullable=False),  # canonical CBOR: kind, object hash, trace (no PII)
    sa.Column("leaf_hash", sa.LargeBinary(32), nullable=False),  # RFC 9162 HASH(0x00 || entry)
    sa.Column("logged_at", UtcDateTime, nullable=False),
    sa.UniqueConstraint("kind", "object_id"),
)

log_tree_heads = sa.Table(
    "log_tree_heads",
    metadata,
    sa.Column("tree_size", Id, primary_key=True, autoincrement=False),
    sa.Column("root_hash", sa.LargeBinary(32), nullable=False),
    sa.Column("signed_at", UtcDateTime, nullable=False),
    sa.Column("cose", sa.LargeBinary, nullable=False),  # COSE_Sign1 by the log signer over the head
)

log_state = sa.Table(
    "log_state",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),  # always 1
    sa.Column("size", Id, nullable=False),
    sa.CheckConstraint("id = 1", name="single_row"),
)
