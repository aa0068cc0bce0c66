"""Central issuance on PostgreSQL: one round trip per batch — store batch N and claim batch N+1 in one call.

::

    worker                                   server: pg_temp.vaxcred_issuance_batch(...), one transaction
    ──────                                   ─────────────────────────────────────────────────────────────────────
    sign batch N (outside any transaction)   (1) claim N+1: persons VERIFIED, id > cursor, no ACTIVE passport, no
    build its log entries, with the              live claim, ORDER BY id LIMIT batch FOR NO KEY UPDATE SKIP LOCKED;
      passport ids reserved at its claim         claim upsert (free rows only); a passport id per claimed person
    one call ──────────────────────────────►     (nextval); their newest check, doses, current signatures, batch
                                                 heads, and the revoked passport a re-issue supersedes
                                             (2) store N: our claims → done; signatures relied on FOR SHARE;
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
* *a changed record is not issued*: the re-check runs in the storing transaction, after the signatures are
  locked ``FOR SHARE``; a predecessor read at claim time is re-checked too;
* *log entries in the passport's transaction*: entries are built by the worker from the values it sends and the
  passport ids reserved at claim time (a passport that is not stored leaves a gap in ``passports.id``, as an
  ``ON CONFLICT DO NOTHING`` always could); the server gives them their leaf indexes.

After an integrity error (the whole call rolls back) the batch is stored by :func:`~vaxcred.pipeline.issuance.
store.commit`, person by person where needed, and the next batch is claimed by a call that stores nothing.
Site certificates a batch names that the worker has not met yet are read in a separate query (a handful per
worker: one per site certificate). Nothing here logs personal data.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from sqlalchemy.engine import Connection

from vaxcred.merkle import leaf_hash
from vaxcred.pipeline import log
from vaxcred.pipeline.issuance.claims import Job, utc
from vaxcred.pipeline.issuance.rows import Candidate, DoseRow, SiteCertificates, dose_row
from vaxcred.pipeline.issuance.select import Reason
from vaxcred.pipeline.issuance.store import Signed
from vaxcred.pipeline.registry.lookup import RegistryStatus
from vaxcred.storage import Database
from vaxcred.storage.database import driver_errors
from vaxcred.storage.schema import ClaimState, PassportStatus

__all__ = ["Claimed", "RoundTrips", "Stored", "round_trips"]

_CLAIMED: Final = ClaimState.CLAIMED.value
_DONE: Final = ClaimState.DONE.value
_ACTIVE: Final = PassportStatus.ACTIVE.value
_REVOKED: Final = PassportStatus.REVOKED.value
_VERIFIED: Final = RegistryStatus.VERIFIED.value

#: the function: its SQL is built only from the constants above (state names), never from data
_FUNCTION: Final = f"""
CREATE OR REPLACE FUNCTION pg_temp.vaxcred_issuance_batch(
    p_worker text, p_at timestamptz, p_stale_before timestamptz, p_run_started timestamptz,
    p_cursor bigint, p_limit integer,
    p_claimed bigint[],
    s_person bigint[], s_passport bigint[], s_uvci text[], s_hc1 text[], s_kid bytea[],
    s_iat timestamptz[], s_exp timestamptz[], s_check bigint[], s_supersedes bigint[],
    s_entry bytea[], s_leaf bytea[],
    l_person bigint[], l_passport bigint[], l_dose bigint[], l_sig bigint[],
    p_issued_at timestamptz
) RETURNS TABLE (
    r_kind text, r_person bigint, r_passport bigint, r_citizen text, r_name text, r_dob text,
    r_check bigint, r_check_status text, r_supersedes bigint,
    r_dose bigint, r_dose_number integer, r_date date, r_site text, r_vaccine text, r_lot text,
    r_sig bigint, r_sig_site text, r_certificate bytea, r_kid bytea, r_cose bytea,
    r_leaf_index integer, r_proof bytea, r_head bytea
) LANGUAGE plpgsql VOLATILE
SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off SET enable_material = off
AS $fn$
DECLARE
    v_ids bigint[];
    v_got bigint[];
    v_passports bigint[];
    v_sequence regclass;
    v_done bigint[];
    v_drop bigint[];
    v_current bigint[];
    v_stale bigint[];
    v_inserted bigint[];
    v_base bigint;
BEGIN
    -- (1) claim the next batch (p_limit = 0: none)
    IF p_limit > 0 THEN
        v_ids := ARRAY(
            SELECT p.id FROM persons p
            WHERE p.registry_status = '{_VERIFIED}' AND p.id > p_cursor
              AND NOT EXISTS (SELECT 1 FROM passports a WHERE a.person_id = p.id AND a.status = '{_ACTIVE}')
              AND NOT EXISTS (
                  SELECT 1 FROM issuance_claims c WHERE c.person_id = p.id AND (
                      (c.state = '{_CLAIMED}' AND (c.claimed_at > p_stale_before OR c.claimed_at >= p_run_started))
                      OR (c.state = '{_DONE}' AND c.claimed_at >= p_run_started)))
            ORDER BY p.id LIMIT p_limit
            FOR NO KEY UPDATE OF p SKIP LOCKED);
        IF cardinality(v_ids) > 0 THEN
            r_kind := 'cursor';
            r_person := v_ids[cardinality(v_ids)];
            RETURN NEXT;
            -- the authority on claims: a row is taken only while free, judged on the newest committed row
            WITH got AS (
                INSERT INTO issuance_claims AS c (person_id, state, worker, claimed_at)
                SELECT id, '{_CLAIMED}', p_worker, p_at FROM unnest(v_ids) AS id
                ON CONFLICT (person_id) DO UPDATE
                    SET state = excluded.state, worker = excluded.worker, claimed_at = excluded.claimed_at
                    WHERE NOT (
                        (c.state = '{_CLAIMED}' AND (c.claimed_at > p_stale_before OR c.claimed_at >= p_run_started))
                        OR (c.state = '{_DONE}' AND c.claimed_at >= p_run_started))
                RETURNING c.person_id)
            SELECT coalesce(array_agg(person_id ORDER BY person_id), '{{}}') INTO v_got FROM got;
            v_sequence := pg_get_serial_sequence('passports', 'id')::regclass;
            v_passports := ARRAY(SELECT nextval(v_sequence) FROM generate_series(1, cardinality(v_got)));
            RETURN QUERY
            SELECT 'person', g.person_id, g.passport_id, p.citizen_id::text, p.full_name::text, p.dob::text,
                   chk.id, chk.status::text, pred.id,
                   d.id, d.dose_number::integer, d.date, d.site_id::text, d.vaccine::text, d.lot::text,
                   s.id, s.site_id::text, s.certificate, s.kid, s.cose, s.leaf_index, s.proof, b.head
            FROM unnest(v_got, v_passports) AS g(person_id, passport_id)
            JOIN persons p ON p.id = g.person_id
            LEFT JOIN LATERAL (
                SELECT r.id, r.status FROM registry_checks r WHERE r.person_id = g.person_id
                ORDER BY r.id DESC LIMIT 1) AS chk ON true
            LEFT JOIN LATERAL (
                SELECT max(q.id) AS id FROM passports q
                WHERE q.person_id = g.person_id AND q.status = '{_REVOKED}'
                  AND NOT EXISTS (SELECT 1 FROM passports n WHERE n.supersedes = q.id)) AS pred ON true
            LEFT JOIN doses d ON d.person_id = g.person_id AND d.withdrawn_at IS NULL
            LEFT JOIN site_signatures s ON s.dose_id = d.id AND s.superseded_at IS NULL
            LEFT JOIN site_signature_batches b ON b.id = s.batch_id
            ORDER BY g.person_id, d.id;
        END IF;
    END IF;

    -- (2) store the signed batch: only our own claims turn done
    IF cardinality(p_claimed) > 0 THEN
        WITH done AS (
            UPDATE issuance_claims SET state = '{_DONE}', claimed_at = p_at
            WHERE person_id = ANY(p_claimed) AND worker = p_worker AND state = '{_CLAIMED}'
            RETURNING person_id)
        SELECT coalesce(array_agg(person_id), '{{}}') INTO v_done FROM done;
        r_kind := 'claim.lost';
        v_drop := '{{}}';
        FOR r_person IN SELECT unnest(s_person) EXCEPT SELECT unnest(v_done) LOOP
            v_drop := v_drop || r_person;
            RETURN NEXT;
        END LOOP;
        -- the signatures relied on: a correction that supersedes one waits for this transaction
        v_current := ARRAY(
            SELECT id FROM site_signatures WHERE id = ANY(l_sig) AND superseded_at IS NULL
            ORDER BY id FOR SHARE);
        v_stale := ARRAY(SELECT unnest(l_sig) EXCEPT SELECT unnest(v_current));
        r_kind := 'record.changed';
        FOR r_person IN
            WITH cur AS MATERIALIZED (
                SELECT d.person_id, d.id FROM doses d
                WHERE d.person_id = ANY(s_person) AND d.withdrawn_at IS NULL),
            relied AS MATERIALIZED (SELECT * FROM unnest(l_person, l_dose) AS l(person_id, id))
            SELECT changed.person_id FROM (
                SELECT l.person_id FROM unnest(l_person, l_sig) AS l(person_id, sig_id)
                WHERE l.sig_id = ANY(v_stale)
                UNION
                SELECT x.person_id FROM (
                    (SELECT * FROM cur EXCEPT SELECT * FROM relied)
                    UNION ALL
                    (SELECT * FROM relied EXCEPT SELECT * FROM cur)) AS x
                UNION
                SELECT s.person_id FROM unnest(s_person, s_check) AS s(person_id, check_id)
                WHERE s.check_id IS DISTINCT FROM (
                    SELECT max(r.id) FROM registry_checks r WHERE r.person_id = s.person_id)
                UNION
                SELECT s.person_id FROM unnest(s_person, s_supersedes) AS s(person_id, supersedes)
                WHERE s.supersedes IS DISTINCT FROM (
                    SELECT max(q.id) FROM passports q
                    WHERE q.person_id = s.person_id AND q.status = '{_REVOKED}'
                      AND NOT EXISTS (SELECT 1 FROM passports n WHERE n.supersedes = q.id))
            ) AS changed
            WHERE NOT (changed.person_id = ANY(v_drop))
        LOOP
            v_drop := v_drop || r_person;
            RETURN NEXT;
        END LOOP;
        WITH ins AS (
            INSERT INTO passports
                (id, person_id, uvci, hc1, kid, iat, exp, issued_at, status, registry_check_id, supersedes)
            SELECT s.passport_id, s.person_id, s.uvci, s.hc1, s.kid, s.iat, s.exp, p_issued_at, '{_ACTIVE}',
                   s.check_id, s.supersedes
            FROM unnest(s_person, s_passport, s_uvci, s_hc1, s_kid, s_iat, s_exp, s_check, s_supersedes)
                AS s(person_id, passport_id, uvci, hc1, kid, iat, exp, check_id, supersedes)
            WHERE NOT (s.person_id = ANY(v_drop))
            ORDER BY s.person_id
            ON CONFLICT (person_id) WHERE status = '{_ACTIVE}' DO NOTHING
            RETURNING person_id)
        SELECT coalesce(array_agg(person_id), '{{}}') INTO v_inserted FROM ins;
        r_kind := 'passport.already_active';
        FOR r_person IN SELECT unnest(s_person) EXCEPT SELECT unnest(v_drop) EXCEPT SELECT unnest(v_inserted)
        LOOP
            v_drop := v_drop || r_person;
            RETURN NEXT;
        END LOOP;
        INSERT INTO passport_doses (passport_id, dose_id, site_signature_id)
        SELECT l.passport_id, l.dose_id, l.sig_id
        FROM unnest(l_person, l_passport, l_dose, l_sig) AS l(person_id, passport_id, dose_id, sig_id)
        WHERE NOT (l.person_id = ANY(v_drop));
        -- the log: gap-free leaf indexes under the log_state row lock, taken last (held only to the commit)
        IF cardinality(v_inserted) > 0 THEN
            UPDATE log_state SET size = size + cardinality(v_inserted) WHERE id = 1
            RETURNING size - cardinality(v_inserted) INTO v_base;
            INSERT INTO issuance_log (seq, kind, object_id, entry, leaf_hash, logged_at)
            SELECT v_base + row_number() OVER (ORDER BY s.passport_id) - 1, '{log.Kind.PASSPORT.value}',
                   s.passport_id, s.entry, s.leaf, p_issued_at
            FROM unnest(s_person, s_passport, s_entry, s_leaf) AS s(person_id, passport_id, entry, leaf)
            WHERE NOT (s.person_id = ANY(v_drop));
        END IF;
    END IF;
END
$fn$
"""  # noqa: S608

_CALL: Final = (
    "SELECT * FROM pg_temp.vaxcred_issuance_batch("
    "%s, %s, %s, %s, %s, %s, %s::bigint[], "
    "%s::bigint[], %s::bigint[], %s::text[], %s::text[], %s::bytea[], "
    "%s::timestamptz[], %s::timestamptz[], %s::bigint[], %s::bigint[], %s::bytea[], %s::bytea[], "
    "%s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[], %s)"
)


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
            sorted(claimed),
            *arrays,
            job.now,
        )
        with driver_errors(self._conn) as raw:
            rows = raw.execute(_CALL, parameters).fetchall()
        return _read(rows, len(signed))


def _store_arrays(job: Job, signed: Sequence[Signed], reserved: Claimed | None) -> tuple[list[Any], ...]:
    """The signed batch as the function's column arrays, with each passport's log entry and leaf hash."""
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
        try:
            with driver_errors(conn) as raw:
                raw.execute(_FUNCTION)
            yield RoundTrips(conn, job, worker)
        finally:
            with driver_errors(conn) as raw:
                raw.autocommit = False


def load_certificates(db: Database, certificates: SiteCertificates, candidates: Sequence[Candidate]) -> None:
    """Read the site certificates ``candidates`` name that the worker has not met yet (its own short read)."""
    if any(certificates.missing(candidates)):
        with db.connect() as conn:
            certificates.load(conn, candidates)
