"""The site-signing stage (ký số chứng nhận tiêm): each site signs its dose records that verified.

::

    doses ⋈ persons  WHERE registry_status = 'VERIFIED' AND site has a signer AND no current signature
        ─> batch of ≤ N (one site, dose id order) ─> batch.sign_batch per M of them (one signature each) ─>
           one transaction: INSERT site_certificates (if absent, by fingerprint) + INSERT site_signature_batches
           (the heads) + INSERT site_signatures (skipping doses signed meanwhile) + the log entries

* **Work queue.** A dose needs a signature while it has no *current* one (``site_signatures.superseded_at IS
  NULL``; a unique partial index allows at most one). Sites are taken one after the other, each walked along the
  index (site_id, id), so a batch costs the same at any table size. With ``pipelined=False`` the batch is read,
  signed (CPU only, no I/O) and stored in one transaction, so a crash loses at most that batch and a re-run signs
  exactly what is missing; a concurrent run's duplicate is dropped by the index (``signed`` counts only stored
  rows). On PostgreSQL the batch's dose and person rows are read ``FOR SHARE``: a correction changing one of them
  waits for the batch, then supersedes its fresh signature.
* **Pipelined** (one process, the default where the platform can fork): a forked child signs each batch while
  this process reads the next and stores the one before, re-checking it in the storing transaction as the
  parallel workers do (below); a crash loses the (at most two) batches in flight. See
  :mod:`~vaxcred.pipeline.site_signing.pipelined`.
* **Parallel** (``workers`` > 1): forked processes take the sites one at a time (id ranges of them when there
  are fewer than 16 sites a process, so that no process signs a large site alone at the end); each reads a
  batch, signs it outside any transaction and stores it in its own transaction that keeps a signature only for a
  dose still exactly as signed (PostgreSQL: the member INSERT compares the rows' versions as read; SQLite, or a
  row changed: the batch's rows re-read; a dose changed meanwhile is signed again inside that transaction). Same
  guarantees as above; see :func:`_run_parallel`.
* **A site signs only its own records.** ``signers`` maps a site id to that site's signer; a signer whose
  certificate is not a site certificate, names another site or is not valid at ``now`` is refused before
  anything is signed (:class:`PipelineError` ``sitesign.wrong_purpose`` / ``sitesign.not_own_record`` /
  ``sitesign.cert_not_valid``), and :func:`~vaxcred.pipeline.site_signing.record.sign_dose` checks each record again.
* **Corrections.** :func:`supersede_signature` marks a dose's current signature superseded (the correction's
  transaction does it when it changes the dose); the next run signs the dose again. Every transaction that
  changes a dose or supersedes a signature calls :func:`lock_out_signing` first (PostgreSQL: the signing lock
  exclusive, which the guarded member INSERT holds shared), so it never interleaves with a store in flight.
* **Independent verification.** :func:`verify_stored_signatures` re-verifies current signatures from the stored
  bytes and the stored site certificate alone (chain to the site CA, validity at signing time, citizen hash)
  and checks that the signed content is the dose as stored now.

Nothing here logs personal data: log lines carry dose row ids, site ids and error codes.
"""

from __future__ import annotations

import datetime as dt
import logging
import multiprocessing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from vaxcred.crypto import Signer
from vaxcred.pipeline.errors import PipelineError
from vaxcred.pipeline.site_signing.audit import (
    NO_CERTIFICATE,
    RECORD_MISMATCH,
    SignatureCheck,
    check_stored_signatures,
    verify_stored_signatures,
)
from vaxcred.pipeline.site_signing.batch_codec import MAX_BATCH_MEMBERS
from vaxcred.pipeline.site_signing.member_rows import SIGNING_LOCK
from vaxcred.pipeline.site_signing.pipelined import _run_pipelined
from vaxcred.pipeline.site_signing.record import is_site_certificate, site_id_of
from vaxcred.pipeline.site_signing.sign_rows import _certificate_row, _sign_rows
from vaxcred.pipeline.site_signing.store import ProgressCallback, _store_batch
from vaxcred.pipeline.site_signing.work_queue import _VERIFIED, _current, _has_current_signature, _queue_rows
from vaxcred.pipeline.site_signing.workers import _run_parallel
from vaxcred.storage import Database
from vaxcred.storage.schema import doses, persons, site_signature_batches, site_signatures
from vaxcred.trust.store import require_utc

# The queue reads, signing and storing a batch, the workers and the audit live in work_queue, queue_versions,
# sign_rows, store, workers and audit; the private names imported above as ``name`` stay importable from here.
__all__ = [
    "BATCH_SIZE",
    "NO_CERTIFICATE",
    "PER_SIGNATURE",
    "RECORD_MISMATCH",
    "SignatureCheck",
    "SigningReport",
    "check_stored_signatures",
    "lock_out_signing",
    "run_site_signing",
    "supersede_signature",
    "unsigned_count",
    "verify_stored_signatures",
]

logger = logging.getLogger(__name__)

#: doses per transaction
BATCH_SIZE = 500
#: doses under one site signature (a Merkle batch; a transaction holds several): see docs/pipeline.md
PER_SIGNATURE = 128


@dataclass(frozen=True, slots=True, kw_only=True)
class SigningReport:
    """What one run did.

    After the run every dose still without a current signature is in exactly one of: ``skipped_unverified``
    (its person is not ``VERIFIED``), ``skipped_no_key`` (verified, but its site has no signer here) or
    ``failed`` (this run could not sign it: an invalid stored record, see the log for the dose row ids).
    """

    signed: int = 0
    skipped_no_key: int = 0
    skipped_unverified: int = 0
    failed: int = 0


def _check_signers(signers: Mapping[str, Signer], now: dt.datetime) -> None:
    """Refuse, before anything is signed, a signer that could not sign its mapping key's records now."""
    at = now.replace(microsecond=0)
    for site_id, signer in signers.items():
        cert = signer.certificate
        if not is_site_certificate(cert):
            raise PipelineError(
                f"the signer given for site {site_id!r} does not hold a site certificate",
                code="sitesign.wrong_purpose",
            )
        own = site_id_of(cert)
        if own != site_id:
            raise PipelineError(
                f"the signer given for site {site_id!r} holds the certificate of site {own!r}: "
                "a site signs only its own records",
                code="sitesign.not_own_record",
                field="site_id",
            )
        if not cert.not_valid_before_utc <= at <= cert.not_valid_after_utc:
            raise PipelineError(
                f"the site certificate of {site_id} is not valid at {at.isoformat()}",
                code="sitesign.cert_not_valid",
            )


def run_site_signing(
    db: Database,
    signers: Mapping[str, Signer],
    *,
    now: dt.datetime,
    batch_size: int = BATCH_SIZE,
    on_progress: ProgressCallback | None = None,
    workers: int = 1,
    per_signature: int = PER_SIGNATURE,
    pipelined: bool = True,
) -> SigningReport:
    """Sign, as of ``now`` (aware), every dose of a ``VERIFIED`` person recorded by a site in ``signers``
    that has no current signature; one transaction per ``batch_size`` doses, site by site, in dose id order.

    ``workers`` > 1 runs that many processes, each signing whole sites or id ranges of them (forked, where the platform can fork:
    they inherit ``signers``, so no key crosses a pipe; the signers must survive a fork, as
    :class:`~vaxcred.crypto.LocalSigner` does — an HSM session may not): see :func:`_run_parallel`. It pays on
    PostgreSQL; on SQLite (one writer) one process measured faster (docs/benchmarks.md, "National pipeline").

    ``workers`` = 1 with ``pipelined`` (the default, where the platform can fork) reads and signs in one forked
    child process while this one stores the batch before (:mod:`.pipelined`: two cores, one writer; the same
    signatures as without it). ``pipelined=False`` reads, signs and stores each batch in this process, in one
    transaction: for a signer that cannot survive a fork. An in-memory SQLite database (``Database.in_memory``:
    another process would open an empty one) is always signed that way.

    Each transaction's doses are signed ``per_signature`` at a time under one batch head (one signature over
    the Merkle root, an audit path per record: :mod:`vaxcred.pipeline.site_signing.batch`).

    ``on_progress(signed_so_far)`` is called after each committed batch. Idempotent: a second run signs
    nothing new. Errors propagate after the batches before them were committed.
    """
    counted = db  # the closing count reads whole tables: the default planner's hash joins and scans
    db = db.for_batches()  # PostgreSQL: index plans for id-keyed batches (Database.for_batches)
    now = require_utc(now)
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError("batch_size must be an int >= 1")
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise ValueError("workers must be an int >= 1")
    if (
        not isinstance(per_signature, int)
        or isinstance(per_signature, bool)
        or not 1 <= per_signature <= MAX_BATCH_MEMBERS
    ):
        raise ValueError(f"per_signature must be an int in 1..{MAX_BATCH_MEMBERS}")
    _check_signers(signers, now)
    certificates = {site_id: _certificate_row(signer) for site_id, signer in signers.items()}
    site_ids = sorted(signers)
    # the forked processes read on connections of their own (Database.url_for_workers): an in-memory database
    # is signed here, serially
    forks = not db.in_memory and "fork" in multiprocessing.get_all_start_methods()
    if workers > 1 and forks:
        signed, failed = _run_parallel(
            db, signers, certificates, now, (batch_size, per_signature), on_progress, workers
        )
    elif pipelined and forks:
        signed, failed = _run_pipelined(
            db, signers, certificates, now, (batch_size, per_signature), on_progress
        )
    else:
        signed, failed = _run_serial(db, signers, certificates, now, (batch_size, per_signature), on_progress)
    no_key, unverified = _unsigned_counts(counted, site_ids)
    # PostgreSQL: issuance plans with statistics of the signatures it joins
    db.analyze(site_signatures, site_signature_batches, changed_rows=signed)
    return SigningReport(signed=signed, skipped_no_key=no_key, skipped_unverified=unverified, failed=failed)


def _run_serial(
    db: Database,
    signers: Mapping[str, Signer],
    certificates: Mapping[str, dict[str, Any]],
    now: dt.datetime,
    sizes: tuple[int, int],
    on_progress: ProgressCallback | None,
) -> tuple[int, int]:
    """Read, sign and store each batch in one transaction (PostgreSQL: its doses and persons ``FOR SHARE``)."""
    batch_size, per_signature = sizes
    signed = failed = 0
    for site_id in sorted(signers):
        last_id = 0
        while True:
            with db.begin() as conn:
                rows = _queue_rows(conn, site_id, last_id, batch_size, lock=True)
                if not rows:
                    break
                last_id = rows[-1].id
                added, bad = _store_batch(
                    db, conn, rows, _sign_rows(rows, signers, now, per_signature), certificates
                )
            signed += added
            failed += bad
            if on_progress is not None:
                on_progress(signed)
    return signed, failed


def _unsigned_counts(db: Database, site_ids: list[str]) -> tuple[int, int]:
    """(doses of verified persons at sites without a signer, doses of persons not verified) among the doses
    without a current signature: one aggregate query."""
    verified = persons.c.registry_status == _VERIFIED  # NULL (never checked) counts as not verified
    keyless = sa.and_(verified, doses.c.site_id.not_in(site_ids)) if site_ids else verified
    query = (
        sa.select(
            sa.func.coalesce(sa.func.sum(sa.case((keyless, 1), else_=0)), 0),
            sa.func.coalesce(sa.func.sum(sa.case((verified, 0), else_=1)), 0),
        )
        .select_from(doses.join(persons, persons.c.id == doses.c.person_id))
        .where(~_has_current_signature(), doses.c.withdrawn_at.is_(None))
    )
    with db.connect() as conn:
        no_key, unverified = conn.execute(query).one()
    return int(no_key), int(unverified)


def lock_out_signing(conn: Connection) -> None:
    """PostgreSQL: take :data:`~vaxcred.pipeline.site_signing.member_rows.SIGNING_LOCK` exclusive until the end
    of ``conn``'s transaction; SQLite: nothing (``BEGIN IMMEDIATE`` serialises writers, and a store re-reads
    when another connection committed). Every transaction that changes a dose row or supersedes a current
    signature calls this **first**, before it locks or changes any row or appends to the log: a signing store
    in flight (it holds the lock shared from its member INSERT to its commit) finishes first and the caller's
    supersede then sees its signatures; a store that comes later waits for the caller's commit and finds the
    rows at new versions (re-read: a changed dose signed again, a person no longer ``VERIFIED`` left out).
    Taking it first is also what keeps it deadlock-free: a store holding it shared waits for no row lock."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(SIGNING_LOCK)))


def supersede_signature(conn: Connection, dose_id: int, *, now: dt.datetime) -> bool:
    """Mark the current signature of ``dose_id`` superseded at ``now`` (in the caller's transaction, the one
    that changes the dose, which has called :func:`lock_out_signing` first); returns whether there was one. The
    next signing run signs the dose again."""
    now = require_utc(now)
    result = conn.execute(
        site_signatures.update()
        .where(site_signatures.c.dose_id == dose_id, _current)
        .values(superseded_at=now)
    )
    return bool(result.rowcount)


def unsigned_count(db: Database, site_ids: list[str] | tuple[str, ...]) -> int:
    """Doses of VERIFIED persons recorded at ``site_ids`` without a current signature: what a run would sign
    (a progress bar's length)."""
    current = sa.exists().where(
        site_signatures.c.dose_id == doses.c.id, site_signatures.c.superseded_at.is_(None)
    )
    query = (
        sa.select(sa.func.count())
        .select_from(doses.join(persons, persons.c.id == doses.c.person_id))
        .where(
            persons.c.registry_status == _VERIFIED,
            doses.c.site_id.in_(sorted(site_ids)),
            doses.c.withdrawn_at.is_(None),
            ~current,
        )
    )
    with db.connect() as conn:
        return int(conn.execute(query).scalar_one())
