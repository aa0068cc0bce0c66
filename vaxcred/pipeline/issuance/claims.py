"""Central issuance, the claim queue: what a run shares (:class:`Job`), claiming a batch (one short write
transaction), giving claims back, and counting what other runs hold.

See :mod:`vaxcred.pipeline.issuance.stage` for the guarantees the claims give and how; this module holds the
statements (:mod:`~vaxcred.pipeline.issuance.store` stores a claimed batch; on PostgreSQL
:mod:`~vaxcred.pipeline.issuance.roundtrip` does both in one call). Nothing here signs or verifies anything, and
nothing here logs personal data.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from vaxcred.pipeline.issuance.rows import Candidate, SiteCertificates, load_candidates
from vaxcred.pipeline.registry.lookup import RegistryStatus
from vaxcred.storage import Database
from vaxcred.storage.bulk import id_rows
from vaxcred.storage.schema import ClaimState, PassportStatus, issuance_claims, passports, persons

__all__ = [
    "Clock",
    "Job",
    "active_passport",
    "claim",
    "held_elsewhere",
    "release",
    "take_claims",
    "utc",
]

Clock = Callable[[], dt.datetime]


@dataclass(frozen=True, slots=True, kw_only=True)
class Job:
    """What every worker of one run shares (picklable): the issuance time ``now``, the site CA (DER), the batch
    size, the claim ``lease``, when the run started (claims ``done`` since then are this run's) and the
    ``clock`` claims are stamped with."""

    now: dt.datetime
    site_ca_der: bytes
    batch_size: int
    lease: dt.timedelta
    run_started: dt.datetime
    certificate_issuer: str
    clock: Clock
    #: the site CA's CRL (DER), if any: site certificates it revokes sign nothing from their revocation on
    site_crl_der: bytes | None = None


def utc(value: dt.datetime, name: str) -> dt.datetime:
    """``value`` as aware UTC; TypeError / ValueError (naming ``name``) for a non-datetime or a naive one."""
    if not isinstance(value, dt.datetime):
        raise TypeError(f"{name} must be a datetime")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware (UTC)")
    return value.astimezone(dt.UTC)


def active_passport(person_id: sa.ColumnElement[int]) -> sa.Exists:
    """EXISTS an ACTIVE passport of ``person_id``."""
    return sa.exists().where(
        passports.c.person_id == person_id, passports.c.status == PassportStatus.ACTIVE.value
    )


def _taken(job: Job, stale_before: dt.datetime) -> sa.ColumnElement[bool]:
    """A claim row that keeps its person away: claimed within the lease or since this run started (never take a
    claim of this run's own workers, whatever the lease: ``lease=0`` takes only what a dead run left), or done
    since this run started."""
    c = issuance_claims.c
    return sa.or_(
        sa.and_(
            c.state == ClaimState.CLAIMED.value,
            sa.or_(c.claimed_at > stale_before, c.claimed_at >= job.run_started),
        ),
        sa.and_(c.state == ClaimState.DONE.value, c.claimed_at >= job.run_started),
    )


def held_elsewhere(db: Database, job: Job) -> int:
    """Persons waiting for a passport whose claim another run holds (live, by :func:`_taken`): run after this
    run's workers stopped (their claims are then done or released)."""
    now = utc(job.clock(), "clock()")
    c = issuance_claims.c
    with db.connect() as conn:
        return int(
            conn.execute(
                sa.select(sa.func.count())
                .select_from(issuance_claims.join(persons, persons.c.id == c.person_id))
                .where(
                    c.state == ClaimState.CLAIMED.value,
                    _taken(job, now - job.lease),
                    persons.c.registry_status == RegistryStatus.VERIFIED.value,
                    ~active_passport(persons.c.id),
                )
            ).scalar_one()
        )


def take_claims(
    db: Database,
    conn: Connection,
    person_ids: Sequence[int],
    *,
    job: Job,
    worker: str,
    claimed_at: dt.datetime,
) -> list[int]:
    """Claim ``person_ids`` for ``worker`` in the caller's transaction; returns those actually taken.

    The authority on claims: whatever the caller's SELECT saw, this upsert takes a row only while it is free
    (never claimed; ``done`` before ``job.run_started``; ``claimed`` longer ago than ``job.lease``), judged on
    the newest committed row (PostgreSQL waits for a concurrent claimer, then re-checks).
    """
    if not person_ids:
        return []
    insert = postgresql.insert if db.backend == "postgresql" else sqlite.insert
    # one row per id, in id order, from one array parameter (bulk.id_rows): the same rows as a multi-row VALUES
    # of every id, with four parameters instead of four per person (WHERE true: SQLite's upsert grammar needs a
    # WHERE after a SELECT's FROM)
    ids = id_rows(conn, sorted(person_ids))
    source = sa.select(
        ids.c.value,
        sa.literal(ClaimState.CLAIMED.value, type_=issuance_claims.c.state.type),
        sa.literal(worker, type_=issuance_claims.c.worker.type),
        sa.literal(claimed_at, type_=issuance_claims.c.claimed_at.type),
    ).where(sa.true())
    statement = insert(issuance_claims).from_select(["person_id", "state", "worker", "claimed_at"], source)
    free = sa.not_(_taken(job, claimed_at - job.lease))
    upsert = statement.on_conflict_do_update(
        index_elements=[issuance_claims.c.person_id],
        set_={
            "state": statement.excluded.state,
            "worker": statement.excluded.worker,
            "claimed_at": statement.excluded.claimed_at,
        },
        where=free,
    ).returning(issuance_claims.c.person_id)
    return sorted(conn.execute(upsert).scalars())


def claim(
    db: Database, job: Job, worker: str, cursor: int, certificates: SiteCertificates
) -> tuple[int | None, list[Candidate]]:
    """Claim the next batch after ``cursor``: (the last person id looked at, or None at the end; candidates).
    The claim is one short write transaction (the ids, the upsert); the candidates are read after it, in a read
    transaction."""
    with db.begin() as conn:
        claimed_at = utc(job.clock(), "clock()")
        stale_before = claimed_at - job.lease
        held = sa.exists().where(issuance_claims.c.person_id == persons.c.id, _taken(job, stale_before))
        ids = (
            conn.execute(
                sa.select(persons.c.id)
                .where(
                    persons.c.registry_status == RegistryStatus.VERIFIED.value,
                    persons.c.id > cursor,
                    ~active_passport(persons.c.id),
                    ~held,
                )
                .order_by(persons.c.id)
                .limit(job.batch_size)
                .with_for_update(of=persons, skip_locked=True, key_share=True)
            )
            .scalars()
            .all()
        )
        if not ids:
            return None, []
        got = take_claims(db, conn, ids, job=job, worker=worker, claimed_at=claimed_at)
    if not got:
        return ids[-1], []
    # read after the claims commit, outside the write transaction (SQLite: no write lock held while reading and
    # building a batch's rows; a deferred read sees the claims and every commit before them). The claims keep
    # the persons ours; what the read relied on is re-checked under the write lock when the batch is stored
    # (store.commit), exactly as for a change made after a read inside the claim transaction.
    try:
        with db.read() as conn:
            candidates = load_candidates(conn, got)
            certificates.load(conn, candidates)
    except BaseException:
        # as when the read was inside the claim: nothing left claimed (a crash: the lease)
        release(db, worker, got)
        raise
    return ids[-1], candidates


def release(db: Database, worker: str, claimed: Sequence[int]) -> None:
    """Give back this worker's claims after an error (a crash leaves them to expire with the lease)."""
    with contextlib.suppress(sa.exc.SQLAlchemyError), db.begin() as conn:
        conn.execute(
            sa.delete(issuance_claims).where(
                issuance_claims.c.person_id.in_(sorted(claimed)),
                issuance_claims.c.worker == worker,
                issuance_claims.c.state == ClaimState.CLAIMED.value,
            )
        )
