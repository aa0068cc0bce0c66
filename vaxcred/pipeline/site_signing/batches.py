"""One signing batch of :mod:`vaxcred.pipeline.site_signing.stage`: the work queue query, signing rows, storing them.

A transaction's rows (one site) are signed in Merkle batches of ``per_signature`` records each
(:func:`~vaxcred.pipeline.site_signing.batch.sign_batch`: one signature per batch head) and stored set-based:
the heads in one multi-row INSERT … RETURNING id, the members in one INSERT naming their head, leaf index and audit
path that skips doses signed meanwhile (:mod:`~vaxcred.pipeline.site_signing.member_rows`: ``ON CONFLICT DO
NOTHING`` on SQLite, a plain INSERT in a savepoint first on PostgreSQL), then one log entry per head listing its
stored members (:func:`vaxcred.pipeline.log.append`, ``dose_batch``). A member's batch, site and certificate are
checked by one composite foreign key (storage migration 0009).

Shared by the serial path (:func:`~vaxcred.pipeline.site_signing.stage.run_site_signing`) and the forked workers
(:mod:`vaxcred.pipeline.site_signing.workers`). Nothing here logs personal data: log lines carry dose row ids,
site ids and error codes.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import sqlalchemy as sa
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy.engine import Connection

from vaxcred.crypto import Signer
from vaxcred.errors import VaxcredError
from vaxcred.pipeline import log
from vaxcred.pipeline.records.model import DoseRecord
from vaxcred.pipeline.registry.lookup import RegistryStatus
from vaxcred.pipeline.site_signing.batch import SignedBatch, sign_batch, sign_dose_rows
from vaxcred.pipeline.site_signing.member_rows import insert_certificates, insert_heads, insert_members
from vaxcred.pipeline.site_signing.record import site_id_of
from vaxcred.storage import Database
from vaxcred.storage.database import driver_errors
from vaxcred.storage.schema import doses, persons, site_signatures

#: the signing stage's logger (the name it had before the stage was split into modules)
logger = logging.getLogger("vaxcred.pipeline.site_signing.stage")

ProgressCallback = Callable[[int], None]

_VERIFIED = RegistryStatus.VERIFIED.value
_current = site_signatures.c.superseded_at.is_(None)


def _fingerprint(der: bytes) -> bytes:
    return hashlib.sha256(der).digest()


class _DoseRow(NamedTuple):
    """A dose to sign, as read (plain values: it crosses to a signing process)."""

    id: int
    dose_number: int
    date: dt.date
    site_id: str
    vaccine: str
    lot: str
    citizen_id: str


_DOSE_COLUMNS = (
    doses.c.id,
    doses.c.dose_number,
    doses.c.date,
    doses.c.site_id,
    doses.c.vaccine,
    doses.c.lot,
    persons.c.citizen_id,
)

#: a batch's row versions, PostgreSQL: dose id → (``doses.xmin``, ``persons.xmin``) as read with the row (the
#: server's text of each ``xid``). The store's member INSERT keeps a signature only where both are still the
#: same (:mod:`~vaxcred.pipeline.site_signing.member_rows`, the row-version guard); ``None`` on SQLite
Versions = dict[int, tuple[str, str]]
#: the row versions the PostgreSQL queue read adds to :data:`_DOSE_COLUMNS`
_VERSION_COLUMNS: tuple[sa.ColumnClause[Any], ...] = (
    sa.literal_column("doses.xmin"),
    sa.literal_column("persons.xmin"),
)


class _Head(NamedTuple):
    """A signed batch head, not stored yet."""

    site_id: str
    kid: bytes
    cose: bytes
    size: int
    signed_at: dt.datetime


class _Signed(NamedTuple):
    """One signed dose: its batch head, leaf index, audit path and payload, and what its batch's log entry hashes
    of the row that will store them (:func:`vaxcred.pipeline.log.dose_batch_member_digest`)."""

    dose_id: int
    head: _Head
    leaf_index: int
    proof: bytes  # the audit path's hashes, concatenated
    payload: bytes
    digest: bytes


def _dose_record(row: _DoseRow) -> DoseRecord:
    return DoseRecord(
        citizen_id=row.citizen_id,
        vaccine=row.vaccine,
        lot=row.lot,
        date=row.date.isoformat(),
        dose_number=row.dose_number,
        site_id=row.site_id,
    )


def _certificate_row(signer: Signer) -> dict[str, Any]:
    cert = signer.certificate
    der = cert.public_bytes(Encoding.DER)
    return {
        "fingerprint": _fingerprint(der),
        "site_id": site_id_of(cert),
        "kid": signer.kid,
        "der": der,
        "not_before": cert.not_valid_before_utc,
        "not_after": cert.not_valid_after_utc,
    }


def _sign_rows(
    rows: Sequence[_DoseRow], signers: Mapping[str, Signer], now: dt.datetime, per_signature: int
) -> list[_Signed | str]:
    """Sign the rows (CPU only, no database), ``per_signature`` of one site under each batch head: a
    :class:`_Signed` per row, or the error code of a row that cannot be signed."""
    out: list[_Signed | str] = []
    start = 0
    while start < len(rows):
        site_id = rows[start].site_id
        end = start + 1
        while end < len(rows) and end - start < per_signature and rows[end].site_id == site_id:
            end += 1
        out.extend(_sign_chunk(rows[start:end], site_id, signers[site_id], now))
        start = end
    return out


def _sign_chunk(
    chunk: Sequence[_DoseRow], site_id: str, signer: Signer, now: dt.datetime
) -> list[_Signed | str]:
    """One batch head's rows (one site) signed: the usual rows' payloads written straight from them
    (:func:`~vaxcred.pipeline.site_signing.batch.sign_dose_rows`), any other batch the records' general way."""
    try:
        straight = sign_dose_rows(chunk, signer=signer, now=now)
        if straight is None:
            return _members(
                chunk, sign_batch([_dose_record(row) for row in chunk], signer=signer, now=now), signer
            )
    except (VaxcredError, ValueError, TypeError) as e:
        return [e.code if isinstance(e, VaxcredError) else type(e).__name__] * len(chunk)
    # every row signed, row i at leaf i
    head = _Head(site_id, straight.kid, straight.head, len(chunk), straight.signed_at)
    proofs = [b"".join(proof) for proof in straight.proofs]
    digests = log.dose_batch_member_digests(
        site_id,
        _fingerprint(signer.certificate.public_bytes(Encoding.DER)),
        head.kid,
        head.signed_at,
        zip(range(len(chunk)), proofs, straight.payloads, strict=True),
    )
    return [
        _Signed(row.id, head, index, proof, payload, digest)
        for row, index, proof, payload, digest in zip(
            chunk, range(len(chunk)), proofs, straight.payloads, digests, strict=True
        )
    ]


def _members(chunk: Sequence[_DoseRow], batch: SignedBatch, signer: Signer) -> list[_Signed | str]:
    """The :class:`_Signed` of each row ``batch`` signed, the error code of each it refused."""
    if batch.head is None:
        return [o.code if isinstance(o, VaxcredError) else "sitesign.bad_record" for o in batch.outcomes]
    head = _Head(batch.site_id, batch.kid, batch.head, batch.size, batch.signed_at)
    members = [
        (row.id, o.index, b"".join(o.proof), o.payload)
        for row, o in zip(chunk, batch.outcomes, strict=True)
        if not isinstance(o, VaxcredError)
    ]
    fingerprint = _fingerprint(signer.certificate.public_bytes(Encoding.DER))
    digests = iter(
        log.dose_batch_member_digests(
            batch.site_id, fingerprint, head.kid, head.signed_at, [m[1:] for m in members]
        )
    )
    signed = iter(members)
    out: list[_Signed | str] = []
    for outcome in batch.outcomes:
        if isinstance(outcome, VaxcredError):
            out.append(outcome.code)
            continue
        dose_id, index, proof, payload = next(signed)
        out.append(_Signed(dose_id, head, index, proof, payload, next(digests)))
    return out


def _store_batch(
    db: Database,
    conn: Connection,
    rows: Sequence[_DoseRow],
    outcomes: Sequence[_Signed | str],
    certificates: Mapping[str, dict[str, Any]],
    *,
    versions: Versions | None = None,
) -> tuple[int, int]:
    """Store one batch's signatures; returns (signatures stored, doses that could not be signed).

    ``versions`` (PostgreSQL, the rows' versions as read): the member INSERT is guarded by them and raises
    :class:`~vaxcred.pipeline.site_signing.member_rows.RowsChanged` if any row changed (see
    :func:`~vaxcred.pipeline.site_signing.member_rows.insert_members`; the caller rolls back to a savepoint)."""
    signed: list[tuple[_DoseRow, _Signed]] = []
    failed = 0
    for row, outcome in zip(rows, outcomes, strict=True):
        if isinstance(outcome, str):
            failed += 1
            logger.warning("site signing: dose row %d not signed (%s)", row.id, outcome)
            continue
        signed.append((row, outcome))
    if not signed:
        return 0, failed
    used = sorted({row.site_id for row, _ in signed})
    insert_certificates(db, conn, [certificates[site] for site in used])
    heads = list(
        {id(s.head): s.head for _, s in signed}.values()
    )  # the heads with members to store, in order
    head_ids = insert_heads(
        conn,
        [
            (
                head.site_id,
                certificates[head.site_id]["fingerprint"],
                head.kid,
                head.cose,
                head.size,
                head.signed_at,
            )
            for head in heads
        ],
    )
    batch_ids = {id(head): batch_id for head, batch_id in zip(heads, head_ids, strict=True)}
    values = [
        (
            row.id,
            row.site_id,
            certificates[row.site_id]["fingerprint"],
            s.head.kid,
            s.payload,
            s.head.signed_at,
            batch_ids[id(s.head)],
            s.leaf_index,
            s.proof,
        )
        for row, s in signed
    ]
    inserted = insert_members(
        conn, values, versions=None if versions is None else [versions[row.id] for row, _ in signed]
    )
    # the issuance log records each batch with its members in the transaction that stores them
    # (vaxcred.pipeline.log: one entry per batch head, listing its members), built from the values just
    # inserted (what build_entries would read back; the audit recomputes it from the rows)
    by_dose = {v[0]: v for v in values}
    digest_of = {s.dose_id: s.digest for _, s in signed}
    members: dict[int, list[log.BatchMemberRow]] = {batch_id: [] for batch_id in batch_ids.values()}
    digests: dict[int, list[bytes]] = {batch_id: [] for batch_id in batch_ids.values()}
    for sig_id, dose_id in sorted(inserted):
        _, site_id, certificate, kid, cose, signed_at, batch_id, leaf_index, proof = by_dose[dose_id]
        members[batch_id].append(
            (sig_id, dose_id, site_id, certificate, kid, signed_at, leaf_index, proof, cose)
        )
        digests[batch_id].append(digest_of[dose_id])
    entries = {
        batch_ids[id(head)]: log.dose_batch_entry(
            batch_id=batch_ids[id(head)],
            site_id=head.site_id,
            certificate=certificates[head.site_id]["fingerprint"],
            kid=head.kid,
            signed_at=head.signed_at,
            size=head.size,
            head=head.cose,
            members=members[batch_ids[id(head)]],
            member_digests=digests[batch_ids[id(head)]],
        )
        for head in heads
    }
    log.append_entries(conn, log.Kind.DOSE_BATCH, entries, now=max(head.signed_at for head in heads))
    return len(inserted), failed


#: PostgreSQL, before a work-queue read: price a random page like a sequential one (the batch's rows are in
#: memory or on SSD). With the default 4.0 the planner walks ``pk_doses`` from ``after`` and filters by site (the
#: generic plan: every other site's doses read and dropped, ~21 rows per dose kept with the benchmark's 21 sites,
#: whatever the table size) or gathers all the site's remaining doses in a bitmap and sorts them (the custom plan:
#: a cost that grows with the site) instead of walking the (site_id, id) index, which holds exactly the site's
#: rows in id order, and stopping after the batch (measured, 20 k people: 14,500 rows and 6.6 ms per batch of
#: 500 against 620 rows and 1.6 ms; tests/pipeline/test_sitesign_queue_plan.py)
_PG_QUEUE_PLAN = "SET LOCAL random_page_cost = 1.1"


def _queue_rows(
    conn: Connection, site_id: str, after: int, limit: int, *, lock: bool = False
) -> list[_DoseRow]:
    """:func:`_to_sign` read in ``conn``'s transaction, along the (site_id, id) index on both backends; ``lock``:
    the rows read ``FOR SHARE`` of doses and persons (PostgreSQL; SQLite has no row locks)."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(_PG_QUEUE_PLAN)
        return _driver_rows(
            conn, ("queue", lock), _queue_statement, {"site_id": site_id, "after": after, "limit": limit}
        )
    # the statement built once (building it and its cache key each batch cost more than the SQL it runs)
    return [
        _DoseRow(*row)
        for row in conn.execute(_queue_statement(lock), {"site_id": site_id, "after": after, "limit": limit})
    ]


def _queue_batch(
    conn: Connection, site_id: str, after: int, limit: int
) -> tuple[list[_DoseRow], Versions | None]:
    """:func:`_queue_rows` for a batch signed outside the transaction that stores it, with each row's versions
    on PostgreSQL (:data:`Versions`; SQLite: ``None``)."""
    if conn.dialect.name != "postgresql":
        return _queue_rows(conn, site_id, after, limit), None
    conn.exec_driver_sql(_PG_QUEUE_PLAN)
    fetched = _driver_fetch(
        conn,
        ("queue-versions", False),
        _versioned_queue_statement,
        {"site_id": site_id, "after": after, "limit": limit},
    )
    width = len(_DOSE_COLUMNS)
    return [_DoseRow._make(row[:width]) for row in fetched], {
        row[0]: (row[width], row[width + 1]) for row in fetched
    }


def _versioned_queue_statement(_: bool) -> sa.Select[Any]:
    """:func:`_queue_statement` (not locking) with :data:`_VERSION_COLUMNS` after the dose columns."""
    return _queue_statement(False).add_columns(*_VERSION_COLUMNS)


@functools.cache
def _queue_statement(lock: bool) -> sa.Select[Any]:
    """:func:`_to_sign` with its site, lower bound and limit as bound parameters (compiled once)."""
    statement = _to_sign(sa.bindparam("site_id"), sa.bindparam("after"), sa.bindparam("limit"))
    return statement.with_for_update(read=True, of=[doses, persons]) if lock else statement


#: PostgreSQL: the SQL text and fixed parameters of each dose-row read, compiled once per process
_COMPILED: dict[tuple[str, bool], tuple[str, dict[str, Any]]] = {}


def _driver_rows(
    conn: Connection,
    key: tuple[str, bool],
    build: Callable[[bool], sa.Select[Any]],
    parameters: Mapping[str, Any],
) -> list[_DoseRow]:
    """Rows of the statement ``build(key[1])`` (columns :data:`_DOSE_COLUMNS`), PostgreSQL only (see
    :func:`_driver_fetch`)."""
    return list(map(_DoseRow._make, _driver_fetch(conn, key, build, parameters)))


def _driver_fetch(
    conn: Connection,
    key: tuple[str, bool],
    build: Callable[[bool], sa.Select[Any]],
    parameters: Mapping[str, Any],
) -> list[tuple[Any, ...]]:
    """The rows of the statement ``build(key[1])``, PostgreSQL only: compiled once by SQLAlchemy for this
    dialect, then run on the driver's own cursor in ``conn``'s transaction and fetched at once (per batch,
    building, caching and compiling the statement cost more than reading its rows, and SQLAlchemy's result
    fetched them one by one: ~1 µs a row; psycopg returns the columns' Python types)."""
    compiled = _COMPILED.get(key)
    if compiled is None:
        statement = build(key[1]).compile(dialect=conn.dialect)
        compiled = _COMPILED[key] = (str(statement), dict(statement.params))
    text, fixed = compiled
    with driver_errors(conn) as driver, driver.cursor() as cursor:
        cursor.execute(text, {**fixed, **parameters})
        fetched: list[tuple[Any, ...]] = cursor.fetchall()
        return fetched


def _to_sign(site_id: Any, after: Any, limit: Any) -> sa.Select[Any]:
    """The next ``limit`` doses of ``site_id`` after dose id ``after`` that need a signature.

    One site per query: it walks the index (site_id, id) in order, so every batch costs the same however many
    doses the other sites hold (an ``IN`` over all sites made SQLite merge and sort every site's remaining
    doses for each batch: quadratic in the number of doses).
    """
    return (
        sa.select(*_DOSE_COLUMNS)
        .join(persons, persons.c.id == doses.c.person_id)
        .where(
            doses.c.site_id == site_id,
            doses.c.id > after,
            doses.c.withdrawn_at.is_(None),
            persons.c.registry_status == _VERIFIED,
            ~_has_current_signature(),
        )
        .order_by(doses.c.id)
        .limit(limit)
    )


def _has_current_signature() -> sa.Exists:
    return sa.exists().where(site_signatures.c.dose_id == doses.c.id, _current)
