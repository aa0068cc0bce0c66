"""Central issuance on PostgreSQL: one round trip per batch — store batch N and claim batch N+1 in one call.

::

    worker                                   server: pg_temp.vaxcred_issuance_batch(...), one transaction
    ──────                                   ─────────────────────────────────────────────────────────────────────
    sign batch N (outside any transaction)   (1) claim N+1: persons VERIFIED, id > cursor, no ACTIVE passport, no
    build its log entries, with the              live claim, ORDER BY id LIMIT batch FOR NO KEY UPDATE SKIP LOCKED;
      passport ids reserved at its claim         claim upsert (free rows only); a passport id per claimed person
    one call ──────────────────────────────►     (nextval); their newest check, doses, current signatures, batch
                                                 heads, and the revoked passport a re-issue supersedes
                                             (2) store N: our claims → done; the persons FOR KEY SHARE;
                                                 re-check (signatures current, dose set and newest check
                                                 unchanged, same predecessor); INSERT passports ON CONFLICT (one
                                                 ACTIVE per person) DO NOTHING; passport_doses; the log entries
                                                 under the log_state row lock (taken last, held only to the commit)
    ◄────────────────────────────────────── rows: batch N+1's candidates, batch N's persons not stored and why

The function is created once per connection in the session's own temporary schema (``pg_temp``: nothing to
migrate, no other session sees it, and the worker's code and its SQL are always the same version). It runs with
the batch planner settings of :meth:`~vaxcred.storage.Database.for_batches` (its ``SET`` clause), and in
autocommit: the call is its own transaction, with no ``BEGIN`` / ``COMMIT`` round trips. A VOLATILE PL/pgSQL
function takes a fresh snapshot for each statement (READ COMMITTED), as the separate statements of
:mod:`~vaxcred.pipeline.issuance.claims` and :mod:`~vaxcred.pipeline.issuance.store` did, and the locks are the
same, so every guarantee of :mod:`~vaxcred.pipeline.issuance.stage` holds as stated there:

* *exactly once*: the claim upsert's ``WHERE`` and the partial unique index, as before;
* *crash safety*: the call is one transaction; ``kill -9`` at any moment leaves batch N either stored with
  batch N+1 claimed, or neither (its claims then wait for the lease, or a ``lease=0`` re-run);
* *a changed record is not issued*: the re-check runs in the storing transaction, after the persons stored are
  locked ``FOR KEY SHARE`` (a correction locks its person ``FOR UPDATE`` first:
  :func:`~vaxcred.pipeline.issuance.store.lock_persons`); a predecessor read at claim time is re-checked too;
* *log entries in the passport's transaction*: entries are built by the worker from the values it sends and the
  passport ids reserved at claim time (a passport that is not stored leaves a gap in ``passports.id``, as an
  ``ON CONFLICT DO NOTHING`` always could); the server gives them their leaf indexes.

After an integrity error (the whole call rolls back) the batch is stored by :func:`~vaxcred.pipeline.issuance.
store.commit`, person by person where needed, and the next batch is claimed by a call that stores nothing.
Site certificates a batch names that the worker has not met yet are read in a separate query (a handful per
worker: one per site certificate). The call's array parameters and its rows travel in PostgreSQL's binary format
(no per-element quoting in Python, no hex text for the byte strings either way). Nothing here logs personal data.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from sqlalchemy.engine import Connection

from vaxcred.merkle import leaf_hash
from vaxcred.pipeline import log
from vaxcred.pipeline.issuance.claims import Job, utc
from vaxcred.pipeline.issuance.roundtrip_sql import CALL, FUNCTION
from vaxcred.pipeline.issuance.rows import Candidate, DoseRow, SiteCertificates, dose_row
from vaxcred.pipeline.issuance.select import Reason
from vaxcred.pipeline.issuance.store import Signed
from vaxcred.storage import Database
from vaxcred.storage.database import driver_errors

__all__ = ["Claimed", "RoundTrips", "Stored", "round_trips"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Claimed:
    """A batch claimed: ``cursor`` the last person id looked at (None: the queue is empty); the candidates; the
    passport id reserved for each and the revoked passport a re-issue supersedes (by person id)."""

    cursor: int | None
    candidates: list[Candidate] = field(default_factory=list)
    passport_ids: dict[int, int] = field(default_factory=dict)
    supersedes: dict[int, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class Stored:
    """What storing a batch did: passports issued, and why the others were not (by person id)."""

    issued: int = 0
    reasons: dict[int, Reason] = field(default_factory=dict)


_REASONS: Final = {r.value: r for r in (Reason.CLAIM_LOST, Reason.RECORD_CHANGED, Reason.ALREADY_ACTIVE)}


class RoundTrips:
    """One worker's connection in autocommit, with the batch function created on it: :meth:`step`."""

    def __init__(self, conn: Connection, job: Job, worker: str) -> None:
        self._conn = conn
        self._job = job
        self._worker = worker

    def step(
        self,
        cursor: int | None,
        claimed: Sequence[int] = (),
        signed: Sequence[Signed] = (),
        reserved: Claimed | None = None,
    ) -> tuple[Stored, Claimed]:
        """Store ``signed`` (the batch ``reserved`` claimed: ``claimed`` persons, ``signed`` ones among them)
        and claim the batch after ``cursor`` (None: claim nothing), in one call. ``IntegrityError`` (SQLAlchemy's)
        when the store broke a constraint: nothing of the call is kept."""
        from vaxcred.storage.pg_arrays import bigint_array  # PostgreSQL only (see _column_types)

        job = self._job
        at = utc(job.clock(), "clock()")
        arrays = _store_arrays(job, signed, reserved)
        parameters = (
            self._worker,
            at,
            at - job.lease,
            job.run_started,
            0 if cursor is None else cursor,
            0 if cursor is None else job.batch_size,
            bigint_array(sorted(claimed)),
            *arrays,
            job.now,
        )
        # the rows in binary too: the server sends bytea (records, audit paths, batch heads, certificates) as it
        # stores them instead of hex text, and the driver reads ids and byte strings without parsing
        with driver_errors(self._conn) as raw:
            rows = raw.execute(CALL, parameters, binary=True).fetchall()
        return _read(rows, len(signed))


@functools.cache
def _column_types() -> tuple[Callable[[Any], bytes], ...]:
    """The binary array builder of each of the function's store columns, in its order (``s_person`` …
    ``l_sig``). :mod:`vaxcred.storage.pg_arrays` is imported on PostgreSQL only, here and in
    :func:`round_trips`: it imports psycopg (the ``postgres`` extra), and SQLite runs load this module too."""
    from vaxcred.storage import pg_arrays as arrays

    return (
        (arrays.bigint_array,) * 2
        + (arrays.text_array,) * 2
        + (arrays.bytea_array,)
        + (arrays.timestamptz_array,) * 2
        + (arrays.bigint_array,) * 2
        + (arrays.bytea_array,) * 2
        + (arrays.bigint_array,) * 4
    )


def _store_arrays(job: Job, signed: Sequence[Signed], reserved: Claimed | None) -> tuple[bytes, ...]:
    """The signed batch as the function's column arrays (each in PostgreSQL's binary array format), with each
    passport's log entry and leaf hash."""
    columns = _store_columns(job, signed, reserved)
    return tuple(build(column) for build, column in zip(_column_types(), columns, strict=True))


def _store_columns(job: Job, signed: Sequence[Signed], reserved: Claimed | None) -> tuple[list[Any], ...]:
    """The signed batch as the function's columns, as lists."""
    columns: tuple[list[Any], ...] = tuple([] for _ in range(15))
    if not signed or reserved is None:
        return columns
    (person, passport, uvci, hc1, kid, iat, exp, check, supersedes, entry, leaf) = columns[:11]
    l_person, l_passport, l_dose, l_sig = columns[11:]
    for s in sorted(signed, key=lambda s: s.eligible.person_id):
        e, p = s.eligible, s.passport
        passport_id = reserved.passport_ids[e.person_id]
        predecessor = reserved.supersedes.get(e.person_id)
        built = log.passport_entry(
            passport_id=passport_id,
            person_id=e.person_id,
            hc1=p.hc1,
            kid=p.kid,
            iat=p.iat,
            exp=p.exp,
            issued_at=job.now,
            registry_check_id=e.check_id,
            doses=e.links,
            supersedes=predecessor,
        )
        person.append(e.person_id)
        passport.append(passport_id)
        uvci.append(p.uvci)
        hc1.append(p.hc1)
        kid.append(p.kid)
        iat.append(p.iat)
        exp.append(p.exp)
        check.append(e.check_id)
        supersedes.append(predecessor)
        entry.append(built)
        leaf.append(leaf_hash(built))
        for dose_id, sig_id in e.links:
            l_person.append(e.person_id)
            l_passport.append(passport_id)
            l_dose.append(dose_id)
            l_sig.append(sig_id)
    return columns


def _read(rows: Sequence[tuple[Any, ...]], signed: int) -> tuple[Stored, Claimed]:
    """The function's rows: the cursor, the claimed persons' rows (ordered by person, then dose), the
    outcomes of the stored batch."""
    cursor: int | None = None
    reasons: dict[int, Reason] = {}
    candidates: list[Candidate] = []
    passport_ids: dict[int, int] = {}
    supersedes: dict[int, int] = {}
    doses: list[DoseRow] = []
    person: tuple[Any, ...] | None = None

    def close() -> None:
        if person is not None:
            candidates.append(
                Candidate(
                    person_id=person[1],
                    citizen_id=person[3],
                    full_name=person[4],
                    dob=person[5],
                    check_id=person[6],
                    check_status=person[7],
                    doses=tuple(doses),
                )
            )

    for row in rows:
        kind = row[0]
        if kind == "person":
            if person is None or person[1] != row[1]:
                close()
                person, doses = row, []
                passport_ids[row[1]] = row[2]
                if row[8] is not None:
                    supersedes[row[1]] = row[8]
            if row[9] is not None:
                doses.append(dose_row(*row[9:]))
        elif kind == "cursor":
            cursor = row[1]
        else:
            reasons[row[1]] = _REASONS[kind]
    close()
    stored = Stored(issued=signed - len(reasons), reasons=reasons)
    return stored, Claimed(
        cursor=cursor, candidates=candidates, passport_ids=passport_ids, supersedes=supersedes
    )


@contextlib.contextmanager
def round_trips(db: Database, job: Job, worker: str) -> Iterator[RoundTrips]:
    """A connection of ``db`` for this worker's batches: autocommit, the batch function created (one round trip,
    once per connection), given back to the pool as it was."""
    with db.engine.connect() as conn:
        with driver_errors(conn) as raw:
            raw.rollback()  # nothing open (a no-op when idle), so that autocommit may be switched on
            raw.autocommit = True
            from vaxcred.storage import pg_arrays  # PostgreSQL only (see _column_types)

            pg_arrays.register(raw)
        try:
            with driver_errors(conn) as raw:
                raw.execute(FUNCTION)
            yield RoundTrips(conn, job, worker)
        finally:
            with driver_errors(conn) as raw:
                raw.autocommit = False


def load_certificates(db: Database, certificates: SiteCertificates, candidates: Sequence[Candidate]) -> None:
    """Read the site certificates ``candidates`` name that the worker has not met yet (its own short read)."""
    fingerprints, kids = certificates.missing(candidates)
    if fingerprints or kids:
        with db.connect() as conn:
            certificates.read(conn, fingerprints, kids)
