"""Central issuance, the database half: claiming a batch, and storing its passports (one transaction each).

See :mod:`vaxcred.pipeline.issuance.stage` for the guarantees these transactions give and how; this module holds the
statements. Nothing here signs or verifies anything, and nothing here logs personal data.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from vaxcred.issue import IssuedPassport
from vaxcred.pipeline import log
from vaxcred.pipeline.corrections import predecessors_of
from vaxcred.pipeline.issuance.rows import Candidate, SiteCertificates, load_candidates
from vaxcred.pipeline.issuance.select import Eligible, Reason
from vaxcred.pipeline.registry.lookup import RegistryStatus
from vaxcred.storage import Database
from vaxcred.storage.bulk import among, id_rows, insert_rows, stored_time
from vaxcred.storage.schema import (
    ClaimState,
    PassportStatus,
    doses,
    issuance_claims,
    passport_doses,
    passports,
    persons,
    registry_checks,
    site_signatures,
)

__all__ = [
    "Job",
    "Signed",
    "active_passport",
    "claim",
    "commit",
    "held_elsewhere",
    "release",
    "take_claims",
    "utc",
]

logger = logging.getLogger(__name__)

Clock = Callable[[], dt.datetime]

#: the conflict clause of the passports INSERT: the partial unique index ``uq_passports_active_person`` (an ON
#: CONFLICT target must name the index's predicate), skipping a person someone else's ACTIVE passport holds
_ONE_ACTIVE_PASSPORT: Final = (
    f"ON CONFLICT (person_id) WHERE status = '{PassportStatus.ACTIVE.value}' DO NOTHING"
)
_PASSPORT_COLUMNS: Final = (
    "person_id",
    "uvci",
    "hc1",
    "kid",
    "iat",
    "exp",
    "issued_at",
    "status",
    "registry_check_id",
    "supersedes",
)


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


@dataclass(frozen=True, slots=True)
class Signed:
    """An eligible person and the passport signed for them, not stored yet."""

    eligible: Eligible
    passport: IssuedPassport


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
    """Claim the next batch after ``cursor``: (the last person id looked at, or None at the end; candidates)."""
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
        candidates = load_candidates(conn, got)
        certificates.load(conn, candidates)
    return ids[-1], candidates


# --- storing --------------------------------------------------------------------------------------------------


def _still_current(conn: Connection, signed: Sequence[Signed]) -> set[int]:
    """The persons whose signatures, newest registry check and dose set are still those relied on."""
    if not signed:
        return set()
    person_ids = sorted(s.eligible.person_id for s in signed)
    signature_ids = sorted(sig for s in signed for _, sig in s.eligible.links)
    current_signatures = set(
        conn.execute(
            sa.select(site_signatures.c.id)
            .where(
                among(conn, site_signatures.c.id, signature_ids), site_signatures.c.superseded_at.is_(None)
            )
            .order_by(site_signatures.c.id)
            .with_for_update(read=True)
        ).scalars()
    )
    newest_check = dict(
        conn.execute(
            sa.select(registry_checks.c.person_id, sa.func.max(registry_checks.c.id))
            .where(among(conn, registry_checks.c.person_id, person_ids))
            .group_by(registry_checks.c.person_id)
        ).all()
    )
    dose_ids: dict[int, set[int]] = {}
    for person_id, dose_id in conn.execute(
        sa.select(doses.c.person_id, doses.c.id).where(
            among(conn, doses.c.person_id, person_ids), doses.c.withdrawn_at.is_(None)
        )
    ):
        dose_ids.setdefault(person_id, set()).add(dose_id)
    keep = set()
    for s in signed:
        e = s.eligible
        if (
            newest_check.get(e.person_id) == e.check_id
            and dose_ids.get(e.person_id, set()) == {d for d, _ in e.links}
            and all(sig in current_signatures for _, sig in e.links)
        ):
            keep.add(e.person_id)
    return keep


def _store(
    db: Database, conn: Connection, job: Job, worker: str, claimed: Sequence[int], signed: Sequence[Signed]
) -> tuple[int, dict[int, Reason]]:
    """One commit: our claims → done, the passports and their links. Returns (issued, reasons by person)."""
    reasons: dict[int, Reason] = {}
    done_at = utc(job.clock(), "clock()")
    owned = set(
        conn.execute(
            sa.update(issuance_claims)
            .where(
                among(conn, issuance_claims.c.person_id, sorted(claimed)),
                issuance_claims.c.worker == worker,
                issuance_claims.c.state == ClaimState.CLAIMED.value,
            )
            .values(state=ClaimState.DONE.value, claimed_at=done_at)
            .returning(issuance_claims.c.person_id)
        ).scalars()
    )
    mine = [s for s in signed if s.eligible.person_id in owned]
    for s in signed:
        if s.eligible.person_id not in owned:
            reasons[s.eligible.person_id] = Reason.CLAIM_LOST
    current = _still_current(conn, mine)
    to_insert = []
    for s in mine:
        if s.eligible.person_id not in current:
            reasons[s.eligible.person_id] = Reason.RECORD_CHANGED
        else:
            to_insert.append(s)
    if not to_insert:
        return 0, reasons
    to_insert.sort(key=lambda s: s.eligible.person_id)
    # a re-issue after a correction names the revoked passport it replaces (only one ACTIVE passport can)
    predecessors = predecessors_of(conn, [s.eligible.person_id for s in to_insert])
    times: dict[dt.datetime, object] = {}  # iat, exp and issued_at repeat across a batch: converted once each

    def bound(value: dt.datetime) -> object:
        found = times.get(value)
        if found is None:
            found = times[value] = stored_time(conn, value)
        return found

    issued_at = bound(job.now)
    rows = [
        (
            s.eligible.person_id,
            s.passport.uvci,
            s.passport.hc1,
            s.passport.kid,
            bound(s.passport.iat),
            bound(s.passport.exp),
            issued_at,
            PassportStatus.ACTIVE.value,
            s.eligible.check_id,
            predecessors.get(s.eligible.person_id),
        )
        for s in to_insert
    ]
    # the bulk INSERT of vaxcred.storage.bulk: the rows as the driver binds them, one statement a page
    inserted = {
        int(person_id): int(passport_id)  # type: ignore[call-overload]
        for passport_id, person_id in insert_rows(
            conn,
            passports,
            _PASSPORT_COLUMNS,
            rows,
            on_conflict=_ONE_ACTIVE_PASSPORT,
            returning=("id", "person_id"),
        )
    }
    links: list[tuple[object, ...]] = []
    entries: dict[int, bytes] = {}
    for s in to_insert:
        passport_id = inserted.get(s.eligible.person_id)
        if passport_id is None:  # someone else's ACTIVE passport won the unique index
            reasons[s.eligible.person_id] = Reason.ALREADY_ACTIVE
            continue
        links.extend((passport_id, dose_id, sig_id) for dose_id, sig_id in s.eligible.links)
        # the entry of the row just inserted, from the values inserted (the audit recomputes it from the rows)
        entries[passport_id] = log.passport_entry(
            passport_id=passport_id,
            person_id=s.eligible.person_id,
            hc1=s.passport.hc1,
            kid=s.passport.kid,
            iat=s.passport.iat,
            exp=s.passport.exp,
            issued_at=job.now,
            registry_check_id=s.eligible.check_id,
            doses=s.eligible.links,
            supersedes=predecessors.get(s.eligible.person_id),
        )
    insert_rows(conn, passport_doses, ("passport_id", "dose_id", "site_signature_id"), links)
    # the issuance log records each passport in the transaction that stores it (vaxcred.pipeline.log)
    log.append_entries(conn, log.Kind.PASSPORT, entries, now=job.now)
    return len(inserted), reasons


def commit(
    db: Database, job: Job, worker: str, claimed: Sequence[int], signed: Sequence[Signed]
) -> tuple[int, dict[int, Reason]]:
    """:func:`_store` the batch in one transaction; on an integrity error, person by person."""
    try:
        with db.begin() as conn:
            return _store(db, conn, job, worker, claimed, signed)
    except sa.exc.IntegrityError:
        logger.warning(
            "issuance: a batch hit an integrity error; storing its %d persons one by one", len(claimed)
        )
    by_person = {s.eligible.person_id: s for s in signed}
    issued = 0
    reasons: dict[int, Reason] = {}
    for person_id in claimed:
        one = [by_person[person_id]] if person_id in by_person else []
        try:
            with db.begin() as conn:
                n, r = _store(db, conn, job, worker, [person_id], one)
        except sa.exc.IntegrityError:
            logger.warning(
                "issuance: person row %d not stored (integrity error); left for a re-run", person_id
            )
            with db.begin() as conn:  # done for this run; the next run tries again
                _store(db, conn, job, worker, [person_id], [])
            reasons[person_id] = Reason.ISSUE_REFUSED
            continue
        issued += n
        reasons.update(r)
    return issued, reasons


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
