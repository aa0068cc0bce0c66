"""Central issuance (ký xác nhận tập trung): a passport for every eligible person, exactly once, crash-safe.

::

    claim (one short write transaction)                 outside any transaction            commit (one transaction)
    ─────────────────────────────────────────           ──────────────────────             ──────────────────────────────
    persons VERIFIED, id > cursor, no ACTIVE passport,   rules (1)–(7) of                   claims 'claimed'→'done' (ours only)
      no live claim, not yet done in this run           issuance_select: verify site       re-check: signatures current,
      ORDER BY id LIMIT batch                            signatures, build the DCC           newest check & doses unchanged
      FOR NO KEY UPDATE OF persons SKIP LOCKED  (PG)    Issuer.issue (sign)                 INSERT passports ON CONFLICT
    UPSERT issuance_claims → 'claimed' by this worker                                        (one ACTIVE per person) DO NOTHING
    then (a read transaction) the claimed persons'                                          INSERT passport_doses
    checks, doses, signatures

On PostgreSQL the commit of batch N and the claim of batch N+1 are one call, one transaction, one round trip
(the same statements server-side, in a PL/pgSQL function: :mod:`~vaxcred.pipeline.issuance.roundtrip`).

Modules: who is eligible and what the DCC holds — :mod:`~vaxcred.pipeline.issuance.select`; the stored rows a
batch reads and the site-certificate cache — :mod:`~vaxcred.pipeline.issuance.rows`; the claim transaction —
:mod:`~vaxcred.pipeline.issuance.claims`; the commit transaction — :mod:`~vaxcred.pipeline.issuance.store`; both
in one round trip on PostgreSQL — :mod:`~vaxcred.pipeline.issuance.roundtrip`; a worker's loop and the process
pool — :mod:`~vaxcred.pipeline.issuance.workers`; this module: :func:`run_issuance` and
:class:`KeyChainIssuerFactory`.

**Guarantees.**

* *Exactly one ACTIVE passport per person* — the partial unique index ``uq_passports_active_person`` is the last
  line of defence: the passport insert is ``ON CONFLICT DO NOTHING`` on it, so a person who received a passport
  from someone else meanwhile is counted ``passport.already_active`` and the run goes on. Should the batch
  transaction fail on any integrity error anyway, it is rolled back and redone person by person, each in its own
  transaction: a failing person is counted ``issue.refused`` and the others are stored.
* *Claims* (``issuance_claims``, one row per person): the claim upsert only takes a row that is free — never
  claimed, ``done`` before this run started (``run_started``; e.g. a passport since revoked), or ``claimed`` by a
  worker whose lease has run out (``claimed_at`` older than ``lease``: a worker killed with ``-9``). Whatever the
  SELECT saw, the upsert's ``WHERE`` decides against the newest committed row, so two workers never both hold a
  claim. At commit a worker turns only *its own* claims to ``done`` (``worker`` = its unique id): a worker that
  lost a claim to lease expiry stores nothing for that person (``claim.lost``). ``done`` also marks persons found
  ineligible, so the other workers of the same run do not evaluate them again; the next run does.
* *Crash safety* — a passport, its ``passport_doses`` links (and ``supersedes``, the revoked passport a re-issue
  replaces: :func:`vaxcred.pipeline.corrections.predecessors_of`), and its claim turning ``done`` commit together.
  After ``kill -9`` at any moment, nothing half-stored exists: the dead worker's claims stay ``claimed`` until the
  lease expires, then any run takes them. A re-run right away passes ``lease=timedelta(0)``: it takes the claims
  made before it started (when no other run is running: a live run's claims would be taken too, and the unique
  index would still keep one passport per person), never the claims of its own workers (made since it started).
  Persons left out because another run holds them are counted in ``held_elsewhere``. Worker processes die with
  the process that started them. Signed passports that were never committed are lost with the process — their UVCIs were never stored or
  shown anywhere.
* *Concurrency* — PostgreSQL: several workers (processes, machines) share one database; ``SKIP LOCKED`` keeps them
  off each other's rows while claiming, and the claim rows keep them apart afterwards. ``NO KEY UPDATE`` (rather
  than ``UPDATE``) does not block imports whose foreign-key checks take ``KEY SHARE`` on persons. The commit takes
  ``FOR KEY SHARE`` on the persons it stores before its re-check, and a correction takes its person ``FOR UPDATE``
  before changing anything, so one waits for the other: a correction after the commit revokes the passport, a
  commit after the correction refuses the changed record (the corrections flow must lock the person before it
  supersedes, withdraws or adds, and look for the passport to revoke after). SQLite: ``BEGIN IMMEDIATE`` makes
  the claim and commit transactions one writer at a time (one machine); signing runs outside them.
* *Sensitive data* — log lines carry counts and person row ids only.

**Parallel**: ``workers=N`` starts N processes (``multiprocessing``, spawn); each opens the database from its URL,
builds its own :class:`~vaxcred.issue.Issuer` with ``issuer_factory()`` and claims batches until none are left.
``issuer_factory`` must be picklable: a module-level function, a ``functools.partial`` of one, or
:class:`KeyChainIssuerFactory` (a key-chain folder; the passphrase is read from an environment variable in each
worker, so it never crosses a pipe). ``on_progress(done)`` runs in the calling process with the number of persons
evaluated so far across all workers. ``clock`` (the lease clock; default the wall clock) must be picklable too.
A script that asks for ``workers > 1`` must start from an ``if __name__ == "__main__":`` guard (spawned
processes import the main module). Claim times come from each worker's ``clock``: machines sharing a database must
keep their clocks in step (NTP) — the lease (minutes) is the tolerance.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from vaxcred.issue import DEFAULT_CERTIFICATE_ISSUER, IssuancePolicy, Issuer
from vaxcred.keys import KeyChainDir
from vaxcred.pipeline.issuance.claims import Clock, Job, active_passport, held_elsewhere, utc
from vaxcred.pipeline.issuance.rows import SiteCertificates
from vaxcred.pipeline.issuance.select import registry_reason
from vaxcred.pipeline.issuance.workers import WORKER_FAILED, IssuanceReport, run_processes, work, worker_id
from vaxcred.pipeline.registry.lookup import RegistryStatus
from vaxcred.storage import Database
from vaxcred.storage.schema import PassportStatus, passports, persons

__all__ = [
    "BATCH_SIZE",
    "DEFAULT_LEASE",
    "WORKER_FAILED",
    "IssuanceReport",
    "KeyChainIssuerFactory",
    "pending_count",
    "run_issuance",
]

logger = logging.getLogger(__name__)

BATCH_SIZE: Final = 1000
#: a claim older than this belongs to a worker presumed dead
DEFAULT_LEASE: Final = dt.timedelta(minutes=10)

ProgressCallback = Callable[[int], None]


def _wall_clock() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyChainIssuerFactory:
    """A picklable ``issuer_factory``: the newest DSC of a :class:`~vaxcred.keys.KeyChainDir` that may sign at
    ``at``. The passphrase (or, for keys on a PKCS#11 token, the PIN from ``VAXCRED_PKCS11_PIN``) is read from the
    environment in the worker, so every worker process opens its own token session."""

    folder: Path
    at: dt.datetime
    passphrase_env: str = "VAXCRED_PASSPHRASE"  # noqa: S105 - the name of a variable, not a secret
    policy: IssuancePolicy | None = None

    def __call__(self) -> Issuer:
        chain = KeyChainDir.from_env(Path(self.folder), passphrase_env=self.passphrase_env)
        return Issuer(chain.load_dsc_signer(now=self.at), policy=self.policy)


# --- the run --------------------------------------------------------------------------------------------------


def _standing(db: Database) -> IssuanceReport:
    """Persons this run will not look at: those already holding an ACTIVE passport, and those whose registry
    status is not VERIFIED (skipped, by reason)."""
    with db.connect() as conn:
        already = conn.execute(
            sa.select(sa.func.count())
            .select_from(passports)
            .where(passports.c.status == PassportStatus.ACTIVE.value)
        ).scalar_one()
        by_status = conn.execute(
            sa.select(persons.c.registry_status, sa.func.count())
            .where(
                sa.or_(
                    persons.c.registry_status.is_(None),
                    persons.c.registry_status != RegistryStatus.VERIFIED.value,
                ),
                ~active_passport(persons.c.id),
            )
            .group_by(persons.c.registry_status)
        ).all()
    reasons: Counter[str] = Counter()
    for status, count in by_status:
        reasons[registry_reason(status).value] += count
    return IssuanceReport(skipped_ineligible=sum(reasons.values()), already_issued=already, reasons=reasons)


def pending_count(db: Database) -> int:
    """Persons a run would look at now (VERIFIED, no ACTIVE passport): a progress bar's length."""
    with db.connect() as conn:
        return int(
            conn.execute(
                sa.select(sa.func.count())
                .select_from(persons)
                .where(
                    persons.c.registry_status == RegistryStatus.VERIFIED.value,
                    ~active_passport(persons.c.id),
                )
            ).scalar_one()
        )


def run_issuance(
    db: Database,
    issuer_factory: Callable[[], Issuer],
    *,
    now: dt.datetime,
    site_ca: x509.Certificate,
    workers: int = 1,
    batch_size: int = BATCH_SIZE,
    worker_name: str | None = None,
    on_progress: ProgressCallback | None = None,
    lease: dt.timedelta = DEFAULT_LEASE,
    clock: Clock | None = None,
    certificate_issuer: str = DEFAULT_CERTIFICATE_ISSUER,
    site_crl: x509.CertificateRevocationList | None = None,
) -> IssuanceReport:
    """Issue a passport to every eligible person (module docstring), ``batch_size`` persons per transaction.

    ``now`` (aware) is the passports' issuance time (``iat``, ``issued_at``); ``site_ca`` the root the site
    certificates must chain to; ``workers`` processes (1: in this process); ``worker_name`` prefixes the claim
    owner (default the host name); ``lease`` after which another worker's claim is taken; ``clock`` the time
    used for claims (default the wall clock); ``certificate_issuer`` goes into ``v.is``; ``site_crl`` the site CA's
    CRL (records a revoked site certificate signed at or after its revocation time are refused).
    Raises :class:`PipelineError` (``pipeline.issuance_worker_failed``) when a worker process fails and
    :class:`~vaxcred.errors.IssuanceError` when the issuer cannot sign at all (e.g. the DSC is not valid at
    ``now``); everything committed before stays, and a re-run continues.
    """
    db = db.for_batches()  # PostgreSQL: index plans for id-keyed batches (Database.for_batches)
    now = utc(now, "now")
    if not isinstance(site_ca, x509.Certificate):
        raise TypeError("site_ca must be an x509.Certificate")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError("workers must be an int >= 1")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or not 1 <= batch_size <= 5000:
        raise ValueError("batch_size must be an int within 1–5000")
    if not isinstance(lease, dt.timedelta) or lease < dt.timedelta(0):
        raise ValueError("lease must be a non-negative timedelta")
    SiteCertificates(site_ca, site_crl)  # refuses a CRL the site CA did not sign, before any worker starts
    clock = clock or _wall_clock
    job = Job(
        now=now,
        site_ca_der=site_ca.public_bytes(Encoding.DER),
        batch_size=batch_size,
        lease=lease,
        run_started=utc(clock(), "clock()"),
        certificate_issuer=certificate_issuer,
        clock=clock,
        site_crl_der=None if site_crl is None else site_crl.public_bytes(Encoding.DER),
    )
    standing = _standing(db)
    done = 0

    def on_batch(batch: IssuanceReport) -> None:
        nonlocal done
        done += batch.evaluated
        if on_progress is not None:
            on_progress(done)

    if workers == 1 or db.in_memory:  # the processes open the database (Database.url_for_workers)
        report = work(db, issuer_factory(), job, worker_id(worker_name), on_batch)
    else:
        report = run_processes(db, issuer_factory, job, workers, worker_name, on_batch)
    report = report + IssuanceReport(held_elsewhere=held_elsewhere(db, job))
    logger.info(
        "issuance: %d issued, %d skipped, %d failed (%d held a passport already, %d held by another run)",
        report.issued,
        report.skipped_ineligible + standing.skipped_ineligible,
        report.failed,
        standing.already_issued,
        report.held_elsewhere,
    )
    return standing + report
