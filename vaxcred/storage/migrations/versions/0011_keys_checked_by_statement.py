"""PostgreSQL: the hot foreign keys checked once a statement, set-based, instead of once a row.

A row-level foreign key runs, for every inserted row, one SPI query with its own executor start-up and a ``FOR KEY
SHARE`` lock on the parent row (a lock is a write: the parent's page dirtied, WAL). On the bulk inserts that was the
largest server cost left: ~35–40 % of site signing's server CPU (two keys a member row), and a share of the
import's (two a dose), the registry check's (one a check) and issuance's (two a passport, one a claim). Each of these keys becomes:

* **on the child, an ``AFTER INSERT … FOR EACH STATEMENT`` trigger with a transition table**: one anti-join of the
  statement's rows against the parent's key index; a row whose parent does not exist fails the statement with
  SQLSTATE 23503 (``foreign_key_violation``) naming the constraint, as the foreign key did (no key values in the
  message: they can be personal data). MATCH SIMPLE as before: a row with a key column NULL is not checked.
* **on the child, an ``AFTER UPDATE OF`` the key columns ``FOR EACH ROW`` trigger** (transition tables cannot have
  column lists, and a statement trigger without one would fire on every update): it runs only when a key column
  is in the SET list and its value changes (the ``WHEN`` clause), and checks that row's new key.
* **on the parent, nothing is ever deleted, truncated or re-keyed**: the check takes no lock on the parent row, so
  a concurrent DELETE or key UPDATE could otherwise remove a parent a child committed a moment later points to.
  By design these rows are kept (a dose is withdrawn, a person's status reset, a batch, site or registry check
  never removed):
  ``BEFORE DELETE`` and ``BEFORE TRUNCATE`` statement triggers refuse (23503) before any row is touched, and a
  ``BEFORE UPDATE OF`` the key ``FOR EACH ROW … WHEN`` (old key ≠ new key) trigger refuses a changed key
  (``UPDATE doses SET id = id``, the corrections' no-op new row version, is not a change and passes).

Visibility (READ COMMITTED): the check's query sees what the foreign key's saw — parents committed before it
started, and those of its own transaction; a parent inserted by another, uncommitted transaction is invisible to
both (the foreign key did not wait for it either: it failed). Every writer inserts a child's parent earlier in its
own transaction or finds it committed (the import's ``INSERT … ON CONFLICT DO NOTHING`` of sites and persons
waits for a concurrent inserter of the same key to commit, before the dose INSERT's check runs).

The trigger functions plan their probe once a session with hash and merge joins off: a plan cached from a large
first statement must not hash the whole parent for every later one.

Keys converted (each a measured cost, docs/pipeline.md, session 8): ``site_signatures.dose_id → doses``,
``site_signatures (batch_id, site_id, certificate) → site_signature_batches``, ``doses.person_id → persons``,
``doses.site_id → sites``, ``registry_checks.person_id → persons``, ``passports.person_id → persons``,
``passports.registry_check_id → registry_checks``, ``issuance_claims.person_id → persons``. Every other key stays
a foreign key (``passports.supersedes``, ``revocations``, ``corrections``, ``site_certificates``, the batches' own). SQLite
keeps all of them (its checks are an index probe in the same B-tree code, no lock: nothing to gain). Downgrade
drops the triggers and functions and adds the foreign keys back (``NOT VALID``, then ``VALIDATE``).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07
"""

from __future__ import annotations

from typing import NamedTuple

from alembic import op

revision = "0011"
down_revision: str | None = "0010"
branch_labels: str | None = None
depends_on: str | None = None


class Key(NamedTuple):
    name: str  #: the foreign key's constraint name (kept for the error's constraint field and the downgrade)
    child: str
    columns: tuple[str, ...]
    parent: str
    parent_columns: tuple[str, ...]


#: the keys checked by statement from this revision on (written out: a revision keeps meaning what it meant)
KEYS = (
    Key("fk_site_signatures_dose_id_doses", "site_signatures", ("dose_id",), "doses", ("id",)),
    Key(
        "fk_site_signatures_batch_id_site_signature_batches",
        "site_signatures",
        ("batch_id", "site_id", "certificate"),
        "site_signature_batches",
        ("id", "site_id", "certificate"),
    ),
    Key("fk_doses_person_id_persons", "doses", ("person_id",), "persons", ("id",)),
    Key("fk_doses_site_id_sites", "doses", ("site_id",), "sites", ("site_id",)),
    Key("fk_registry_checks_person_id_persons", "registry_checks", ("person_id",), "persons", ("id",)),
    Key("fk_passports_person_id_persons", "passports", ("person_id",), "persons", ("id",)),
    Key(
        "fk_passports_registry_check_id_registry_checks",
        "passports",
        ("registry_check_id",),
        "registry_checks",
        ("id",),
    ),
    Key("fk_issuance_claims_person_id_persons", "issuance_claims", ("person_id",), "persons", ("id",)),
)
#: the parents of those keys and their key columns: never deleted, truncated or re-keyed
PARENTS = {
    "doses": ("id",),
    "site_signature_batches": ("id", "site_id", "certificate"),
    "persons": ("id",),
    "sites": ("site_id",),
    "registry_checks": ("id",),
}
_TRANSITION = "vaxcred_new_rows"


def _short(key: Key) -> str:
    """A name for the key's triggers and functions (identifiers stop at 63 bytes): fk_… → vaxcred_fk_…"""
    return "vaxcred_" + key.name.removeprefix("fk_")[:40]


def _missing(key: Key, row: str) -> str:
    """A condition true when ``row``'s key is all set and names no parent row."""
    set_ = " AND ".join(f"{row}.{c} IS NOT NULL" for c in key.columns)
    match = " AND ".join(f"p.{pc} = {row}.{c}" for c, pc in zip(key.columns, key.parent_columns, strict=True))
    return f"{set_} AND NOT EXISTS (SELECT FROM {key.parent} AS p WHERE {match})"


def _raise(key: Key) -> str:
    return (
        "RAISE EXCEPTION USING ERRCODE = 'foreign_key_violation', "
        f'MESSAGE = \'insert or update on table "{key.child}" violates foreign key constraint "{key.name}"\', '
        f"CONSTRAINT = '{key.name}', TABLE = '{key.child}', SCHEMA = TG_TABLE_SCHEMA;"
    )


_PLAN = "SET enable_hashjoin = off SET enable_mergejoin = off"


def _create_key(key: Key) -> None:
    short = _short(key)
    op.execute(f"""
CREATE FUNCTION {short}_ins() RETURNS trigger LANGUAGE plpgsql {_PLAN} AS $fn$
BEGIN
    IF EXISTS (SELECT FROM {_TRANSITION} AS c WHERE {_missing(key, "c")}) THEN
        {_raise(key)}
    END IF;
    RETURN NULL;
END
$fn$""")
    op.execute(f"""
CREATE FUNCTION {short}_upd() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    IF {_missing(key, "NEW")} THEN
        {_raise(key)}
    END IF;
    RETURN NULL;
END
$fn$""")
    changed = " OR ".join(f"OLD.{c} IS DISTINCT FROM NEW.{c}" for c in key.columns)
    op.execute(
        f"CREATE TRIGGER {short}_ins AFTER INSERT ON {key.child} REFERENCING NEW TABLE AS {_TRANSITION} "
        f"FOR EACH STATEMENT EXECUTE FUNCTION {short}_ins()"
    )
    op.execute(
        f"CREATE TRIGGER {short}_upd AFTER UPDATE OF {', '.join(key.columns)} ON {key.child} "
        f"FOR EACH ROW WHEN ({changed}) EXECUTE FUNCTION {short}_upd()"
    )


def _create_guards() -> None:
    op.execute("""
CREATE FUNCTION vaxcred_parent_kept() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    RAISE EXCEPTION USING ERRCODE = 'foreign_key_violation',
        MESSAGE = format('%s on table "%s" refused: its rows are kept (keys referencing them are checked '
                         'without locking them)', TG_OP, TG_TABLE_NAME),
        TABLE = TG_TABLE_NAME, SCHEMA = TG_TABLE_SCHEMA;
END
$fn$""")
    for parent, columns in PARENTS.items():
        changed = " OR ".join(f"OLD.{c} IS DISTINCT FROM NEW.{c}" for c in columns)
        op.execute(
            f"CREATE TRIGGER vaxcred_kept_delete BEFORE DELETE ON {parent} "
            "FOR EACH STATEMENT EXECUTE FUNCTION vaxcred_parent_kept()"
        )
        op.execute(
            f"CREATE TRIGGER vaxcred_kept_truncate BEFORE TRUNCATE ON {parent} "
            "FOR EACH STATEMENT EXECUTE FUNCTION vaxcred_parent_kept()"
        )
        op.execute(
            f"CREATE TRIGGER vaxcred_kept_key BEFORE UPDATE OF {', '.join(columns)} ON {parent} "
            f"FOR EACH ROW WHEN ({changed}) EXECUTE FUNCTION vaxcred_parent_kept()"
        )


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    _create_guards()
    for key in KEYS:
        op.execute(f"ALTER TABLE {key.child} DROP CONSTRAINT {key.name}")
        _create_key(key)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for key in KEYS:
        short = _short(key)
        op.execute(f"DROP TRIGGER {short}_ins ON {key.child}")
        op.execute(f"DROP TRIGGER {short}_upd ON {key.child}")
        op.execute(f"DROP FUNCTION {short}_ins()")
        op.execute(f"DROP FUNCTION {short}_upd()")
        op.execute(
            f"ALTER TABLE {key.child} ADD CONSTRAINT {key.name} FOREIGN KEY ({', '.join(key.columns)}) "
            f"REFERENCES {key.parent} ({', '.join(key.parent_columns)}) NOT VALID"
        )
        op.execute(f"ALTER TABLE {key.child} VALIDATE CONSTRAINT {key.name}")
    for parent in PARENTS:
        for trigger in ("vaxcred_kept_delete", "vaxcred_kept_truncate", "vaxcred_kept_key"):
            op.execute(f"DROP TRIGGER {trigger} ON {parent}")
    op.execute("DROP FUNCTION vaxcred_parent_kept()")
