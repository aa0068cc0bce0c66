"""Central issuance, the workers: one worker's loop, and a pool of worker processes sharing the queue.

A worker claims a batch (:func:`~vaxcred.pipeline.issuance.claims.claim`), evaluates and signs it outside any
transaction, and stores it (:func:`~vaxcred.pipeline.issuance.store.commit`), until no batch is left. A pool
(:func:`run_processes`) starts N spawned processes; each opens the database from its URL and builds its own
issuer with the (picklable) factory; batches are reported to the parent through a queue, and a failing worker
stops the others after their current batch. Workers die with the parent: killing ``issue-batch`` (even with
``kill -9``) kills its workers too (Linux ``PR_SET_PDEATHSIG``); their claims wait for the lease, or a
``lease=0`` re-run.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import multiprocessing
import os
import queue
import secrets
import socket
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

import sqlalchemy as sa
from cryptography import x509

from vaxcred.errors import IssuanceError, VaxcredError
from vaxcred.issue import IssuedPassport, Issuer
from vaxcred.pipeline.errors import PipelineError
from vaxcred.pipeline.issuance.claims import Job, claim, release
from vaxcred.pipeline.issuance.roundtrip import Claimed, Stored, load_certificates, round_trips
from vaxcred.pipeline.issuance.rows import Candidate, SiteCertificates
from vaxcred.pipeline.issuance.select import Eligible, Reason, evaluate
from vaxcred.pipeline.issuance.store import Signed, commit
from vaxcred.pipeline.processes import YOUNG_GC_THRESHOLD, failure_message, settle_heap_once
from vaxcred.pipeline.processes import die_with_parent as _die_with_parent
from vaxcred.storage import Database, open_database

__all__ = [
    "WORKER_FAILED",
    "YOUNG_GC_THRESHOLD",
    "IssuanceReport",
    "run_processes",
    "settle_heap_once",
    "work",
    "worker_id",
]

logger = logging.getLogger(__name__)

#: issuer errors that no person's data can cause: the run stops instead of failing every person
_ISSUER_CODES: Final = frozenset(
    {
        "issue.dsc_not_valid",
        "issue.outside_key_usage_period",
        "issue.exp_past_dsc",
        "issue.bad_validity",
        "issue.key_usage",
    }
)
#: :class:`PipelineError` code: a worker process failed (its message says how)
WORKER_FAILED: Final = "pipeline.issuance_worker_failed"


@dataclass(frozen=True, slots=True, kw_only=True)
class IssuanceReport:
    """What a run did. ``issued + skipped_ineligible + failed`` persons were looked at by this run;
    ``already_issued`` held an ACTIVE passport when it started. ``reasons`` counts skipped and failed persons by
    :class:`~vaxcred.pipeline.issuance.select.Reason` code (failed: ``dcc.invalid``, ``issue.refused``,
    ``record.changed``, ``claim.lost`` — a re-run retries them)."""

    issued: int = 0
    skipped_ineligible: int = 0
    failed: int = 0
    already_issued: int = 0
    #: persons waiting for a passport that another run (a live claim) holds: not looked at by this run
    held_elsewhere: int = 0
    reasons: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        object.__setattr__(self, "reasons", MappingProxyType(dict(self.reasons)))

    @property
    def evaluated(self) -> int:
        return self.issued + self.skipped_ineligible + self.failed

    def __add__(self, other: IssuanceReport) -> IssuanceReport:
        return IssuanceReport(
            issued=self.issued + other.issued,
            skipped_ineligible=self.skipped_ineligible + other.skipped_ineligible,
            failed=self.failed + other.failed,
            already_issued=self.already_issued + other.already_issued,
            held_elsewhere=self.held_elsewhere + other.held_elsewhere,
            reasons=Counter(self.reasons) + Counter(other.reasons),
        )

    def __reduce__(self) -> tuple[Any, ...]:  # MappingProxyType does not pickle
        return (
            _report,
            (
                self.issued,
                self.skipped_ineligible,
                self.failed,
                self.already_issued,
                dict(self.reasons),
                self.held_elsewhere,
            ),
        )


def _report(
    issued: int, skipped: int, failed: int, already: int, reasons: dict[str, int], held: int = 0
) -> IssuanceReport:
    return IssuanceReport(
        issued=issued,
        skipped_ineligible=skipped,
        failed=failed,
        already_issued=already,
        held_elsewhere=held,
        reasons=reasons,
    )


def _outcomes(issued: int, reasons: Sequence[Reason]) -> IssuanceReport:
    failed = sum(1 for r in reasons if r.is_failure)
    return IssuanceReport(
        issued=issued,
        skipped_ineligible=len(reasons) - failed,
        failed=failed,
        reasons=Counter(r.value for r in reasons),
    )


def worker_id(name: str | None) -> str:
    """Unique per worker process and run: ``<name or host>:<pid>:<random>`` (``issuance_claims.worker``)."""
    base = (name or socket.gethostname() or "worker")[:40]
    return f"{base}:{os.getpid()}:{secrets.token_hex(4)}"


def _sign(issuer: Issuer, eligible: Eligible, now: dt.datetime) -> IssuedPassport | Reason:
    try:
        return issuer.issue(eligible.dcc, now=now)
    except IssuanceError as e:
        if e.code in _ISSUER_CODES:
            raise
        return Reason.ISSUE_REFUSED
    except VaxcredError:
        return Reason.DCC_INVALID


def _evaluate_and_sign(
    issuer: Issuer, job: Job, candidates: Sequence[Candidate], certificates: SiteCertificates
) -> tuple[dict[int, Reason], list[Signed]]:
    """Rules (1)–(7) and the DCC for each candidate, then sign the eligible ones (no database access)."""
    reasons: dict[int, Reason] = {}
    signed: list[Signed] = []
    for candidate in candidates:
        outcome = evaluate(candidate, certificates, now=job.now, certificate_issuer=job.certificate_issuer)
        if isinstance(outcome, Reason):
            reasons[candidate.person_id] = outcome
            continue
        passport = _sign(issuer, outcome, job.now)
        if isinstance(passport, Reason):
            reasons[candidate.person_id] = passport
        else:
            signed.append(Signed(outcome, passport))
    return reasons, signed


def work(
    db: Database,
    issuer: Issuer,
    job: Job,
    worker: str,
    on_batch: Callable[[IssuanceReport], None],
    stop: Callable[[], bool] = lambda: False,
) -> IssuanceReport:
    """Claim, evaluate, sign and commit batches until the queue is empty (or ``stop()``). PostgreSQL: one round
    trip a batch (:func:`_work_in_round_trips`)."""
    site_ca = x509.load_der_x509_certificate(job.site_ca_der)
    crl = None if job.site_crl_der is None else x509.load_der_x509_crl(job.site_crl_der)
    certificates = SiteCertificates(site_ca, crl)
    if db.backend == "postgresql":
        return _work_in_round_trips(db, issuer, job, worker, on_batch, stop, certificates)
    total = IssuanceReport()
    cursor = 0
    while not stop():
        last, candidates = claim(db, job, worker, cursor, certificates)
        if last is None:
            break
        cursor = last
        if not candidates:
            continue
        claimed = [c.person_id for c in candidates]
        try:
            reasons, signed = _evaluate_and_sign(issuer, job, candidates, certificates)
            issued, stored_reasons = commit(db, job, worker, claimed, signed)
        except BaseException:
            release(db, worker, claimed)  # what is still ours and not done; a crash leaves it to the lease
            raise
        reasons.update(stored_reasons)
        total = total + _reported(claimed, issued, reasons, on_batch)
    return total


def _work_in_round_trips(
    db: Database,
    issuer: Issuer,
    job: Job,
    worker: str,
    on_batch: Callable[[IssuanceReport], None],
    stop: Callable[[], bool],
    certificates: SiteCertificates,
) -> IssuanceReport:
    """:func:`work` on PostgreSQL: each call stores the batch signed last and claims the next one
    (:mod:`~vaxcred.pipeline.issuance.roundtrip`); signing runs between the calls, outside any transaction."""
    total = IssuanceReport()
    with round_trips(db, job, worker) as trips:
        claimed = Claimed(cursor=0)
        persons: list[int] = []  # the batch claimed and signed, not stored yet
        signed: list[Signed] = []
        reasons: dict[int, Reason] = {}
        while claimed.cursor is not None:
            cursor = None if stop() else claimed.cursor  # None: store what is signed, claim nothing more
            try:
                try:
                    stored, claimed = trips.step(cursor, persons, signed, claimed)
                except sa.exc.IntegrityError:  # nothing of the call was kept: store alone, then claim alone
                    issued, lost = commit(db, job, worker, persons, signed)
                    stored = Stored(issued=issued, reasons=lost)
                    claimed = trips.step(cursor)[1]
            except BaseException:
                # what is still ours and not done; a crash leaves it to the lease
                release(db, worker, persons)
                raise
            if persons:
                reasons.update(stored.reasons)
                total = total + _reported(persons, stored.issued, reasons, on_batch)
            persons, signed, reasons = [c.person_id for c in claimed.candidates], [], {}
            if not persons:
                continue
            try:
                load_certificates(db, certificates, claimed.candidates)
                reasons, signed = _evaluate_and_sign(issuer, job, claimed.candidates, certificates)
            except BaseException:
                release(db, worker, persons)
                raise
    return total


def _reported(
    persons: Sequence[int],
    issued: int,
    reasons: Mapping[int, Reason],
    on_batch: Callable[[IssuanceReport], None],
) -> IssuanceReport:
    """A stored batch's outcomes, logged (counts and person row ids only) and passed to ``on_batch``."""
    batch = _outcomes(issued, list(reasons.values()))
    logger.debug(
        "issuance: persons %d–%d: %d issued, %d skipped, %d failed",
        persons[0],
        persons[-1],
        batch.issued,
        batch.skipped_ineligible,
        batch.failed,
    )
    on_batch(batch)
    return batch


def _worker_main(
    url: str,
    issuer_factory: Callable[[], Issuer],
    job: Job,
    worker_name: str | None,
    messages: Any,
    stop: Any,
    parent: int,
) -> None:
    """A worker process: run :func:`work`; report each batch, and the end or the error, on ``messages``.
    It dies with its parent (:func:`_die_with_parent`; elsewhere than Linux it stops after its batch when it
    sees the parent gone)."""
    _die_with_parent(parent)
    try:
        db = open_database(url).for_batches()
        settle = settle_heap_once()

        def on_batch(batch: IssuanceReport) -> None:
            messages.put(("batch", batch))
            settle()

        try:
            work(
                db,
                issuer_factory(),
                job,
                worker_id(worker_name),
                on_batch,
                lambda: stop.is_set() or os.getppid() != parent,
            )
        finally:
            db.dispose()
    except BaseException as e:  # report anything, then exit non-zero
        messages.put(("error", failure_message(e)))
        raise SystemExit(1) from None
    messages.put(("done", None))


def run_processes(
    db: Database,
    issuer_factory: Callable[[], Issuer],
    job: Job,
    workers: int,
    worker_name: str | None,
    on_batch: Callable[[IssuanceReport], None],
) -> IssuanceReport:
    """Run :func:`work` in ``workers`` spawned processes on the database at ``db``'s URL; ``on_batch`` runs here,
    in the caller, for every batch any of them committed. A failed worker makes this raise
    :class:`PipelineError` (:data:`WORKER_FAILED`) once all have stopped."""
    context = multiprocessing.get_context("spawn")
    messages = context.Queue()
    stop = context.Event()
    url = db.url_for_workers()
    processes = [
        context.Process(
            target=_worker_main,
            args=(url, issuer_factory, job, worker_name, messages, stop, os.getpid()),
            name=f"vaxcred-issuance-{i}",
            daemon=True,
        )
        for i in range(workers)
    ]
    total = IssuanceReport()
    errors: list[str] = []
    finished = 0
    with _terminated_on_exit(processes):
        for process in processes:
            process.start()
        while finished < workers:
            try:
                kind, payload = messages.get(timeout=0.5)
            except queue.Empty:
                if any(p.exitcode is None for p in processes):
                    continue
                try:  # every worker has exited: what it sent last is still on its way
                    kind, payload = messages.get(timeout=2.0)
                except queue.Empty:
                    codes = sorted(p.exitcode for p in processes if p.exitcode)
                    errors.append(f"{workers - finished} worker process(es) ended without reporting {codes}")
                    break
            if kind == "batch":
                total = total + payload
                on_batch(payload)
                continue
            finished += 1
            if kind == "error":
                errors.append(str(payload))
                stop.set()  # the others stop after their current batch
        for process in processes:
            process.join()
    if errors:
        raise PipelineError("issuance worker failed: " + "; ".join(errors), code=WORKER_FAILED)
    return total


@contextlib.contextmanager
def _terminated_on_exit(processes: Sequence[multiprocessing.process.BaseProcess]) -> Iterator[None]:
    try:
        yield
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()  # crash-safe by design: its claims expire with the lease
                process.join()
