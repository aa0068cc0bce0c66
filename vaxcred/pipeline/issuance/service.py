"""Central issuance as a long-lived service: pass after pass over the queue, for as long as the host runs.

One *pass* is what ``issue-batch`` does once — optionally site signing first, then :func:`work` over every
eligible person — with its own issuance time (``now``) and its own ``run_started`` (so persons found ineligible in
an earlier pass, e.g. a dose not yet site-signed, are looked at again). Between passes the service waits ``poll``
seconds (±20 % jitter, so workers on many hosts do not poll in step); after a failed pass it waits longer
(doubling, up to five minutes). Several services on several hosts share one database exactly as several
``issue-batch`` runs do (the claim queue of :mod:`~vaxcred.pipeline.issuance.claims`): exactly one passport per
person, and a worker killed with ``-9`` leaves nothing half-stored, only claims the others take after the lease.

Stopping: ``stop()`` is asked before every batch claim and during the wait, so the batch in hand is finished
(committed) and no new one is claimed. The caller (the CLI) reads the clock, waits and handles signals; this
module only calls what it is given. A failed pass (database unreachable, the DSC cannot sign) is reported in
the status (``errors``, ``last_error`` — an error code or exception type, never a message that could carry
personal data) and retried after the wait.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Final, Literal

import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from vaxcred.crypto import Signer
from vaxcred.errors import VaxcredError
from vaxcred.issue import DEFAULT_CERTIFICATE_ISSUER, Issuer
from vaxcred.pipeline.issuance.claims import Clock, Job, utc
from vaxcred.pipeline.issuance.rows import SiteCertificates
from vaxcred.pipeline.issuance.workers import IssuanceReport, work
from vaxcred.pipeline.site_signing.stage import run_site_signing
from vaxcred.storage import Database

__all__ = ["MAX_BACKOFF", "ServiceConfig", "WorkerState", "WorkerStatus", "serve_issuance"]

logger = logging.getLogger(__name__)

WorkerState = Literal["starting", "idle", "working", "stopping", "stopped"]
#: the longest wait after failed passes, seconds
MAX_BACKOFF: Final = 300.0
_JITTER: Final = 0.2


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceConfig:
    """What every pass of one service uses: the site CA (and its CRL) site signatures must chain to, the batch
    size, the claim lease, the seconds between passes, ``v.is``, and the site signers of the optional
    site-signing stage (empty: the service only issues)."""

    site_ca: x509.Certificate
    site_crl: x509.CertificateRevocationList | None = None
    batch_size: int = 200
    lease: dt.timedelta = dt.timedelta(minutes=10)
    poll: float = 30.0
    certificate_issuer: str = DEFAULT_CERTIFICATE_ISSUER
    site_signers: Mapping[str, Signer] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        if not isinstance(self.site_ca, x509.Certificate):
            raise TypeError("site_ca must be an x509.Certificate")
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int):
            raise TypeError("batch_size must be an int")
        if not 1 <= self.batch_size <= 5000:
            raise ValueError("batch_size must be within 1–5000")
        if not isinstance(self.lease, dt.timedelta) or self.lease <= dt.timedelta(0):
            raise ValueError("lease must be a positive timedelta")
        if not self.poll > 0:
            raise ValueError("poll must be > 0 seconds")
        SiteCertificates(self.site_ca, self.site_crl)  # refuses a CRL the site CA did not sign


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerStatus:
    """A service's health: its state, what it did since it started, and its errors (counts, codes, times)."""

    state: WorkerState
    worker: str
    started_at: dt.datetime
    updated_at: dt.datetime
    last_pass_at: dt.datetime | None = None
    last_batch_at: dt.datetime | None = None
    passes: int = 0
    issued: int = 0
    evaluated: int = 0
    failed: int = 0
    doses_signed: int = 0
    errors: int = 0
    last_error: str | None = None
    last_error_at: dt.datetime | None = None

    def to_json(self) -> dict[str, object]:
        """The status as JSON values (times ISO 8601 UTC)."""

        def stamp(value: dt.datetime | None) -> str | None:
            return None if value is None else value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")

        return {
            "state": self.state,
            "worker": self.worker,
            "started_at": stamp(self.started_at),
            "updated_at": stamp(self.updated_at),
            "last_pass_at": stamp(self.last_pass_at),
            "last_batch_at": stamp(self.last_batch_at),
            "passes": self.passes,
            "issued": self.issued,
            "evaluated": self.evaluated,
            "failed": self.failed,
            "doses_signed": self.doses_signed,
            "errors": self.errors,
            "last_error": self.last_error,
            "last_error_at": stamp(self.last_error_at),
        }


def _error_code(error: Exception) -> str:
    """A stable code for the status: the library's code, or the exception type (never its message)."""
    code = getattr(error, "code", None)
    if isinstance(error, VaxcredError) and isinstance(code, str):
        return code
    if isinstance(error, sa.exc.OperationalError):
        return "storage.unavailable"
    return f"storage.{type(error).__name__}"


def _wait_seconds(poll: float, errors_in_row: int, rng: random.Random) -> float:
    base = poll if errors_in_row == 0 else min(poll * 2 ** (errors_in_row - 1), max(poll, MAX_BACKOFF))
    return base * rng.uniform(1 - _JITTER, 1 + _JITTER)


def serve_issuance(
    db: Database,
    issuer_for: Callable[[dt.datetime], Issuer],
    config: ServiceConfig,
    *,
    worker: str,
    clock: Clock,
    stop: Callable[[], bool],
    wait: Callable[[float], None],
    on_status: Callable[[WorkerStatus], None] = lambda _status: None,
) -> WorkerStatus:
    """Run passes until ``stop()``; return the last status (state ``stopped``).

    ``issuer_for(now)`` gives the issuer of a pass whose issuance time is ``now`` (the caller may cache it);
    ``worker`` is the claim owner (unique: :func:`~vaxcred.pipeline.issuance.workers.worker_id`); ``clock`` gives
    the aware time (issuance time, claims, status); ``wait(seconds)`` waits between passes and should return
    early once ``stop()`` holds; ``on_status`` gets every new status (state changes and every batch).
    Exceptions other than library and database errors (a defect, an interrupt) propagate: the batch in hand
    releases its claims first (:func:`~vaxcred.pipeline.issuance.workers.work`).
    """
    db = db.for_batches()  # PostgreSQL: index plans for id-keyed batches (Database.for_batches)
    rng = random.Random()  # noqa: S311 - jitter, not a secret
    site_ca_der = config.site_ca.public_bytes(Encoding.DER)
    crl_der = None if config.site_crl is None else config.site_crl.public_bytes(Encoding.DER)
    started = utc(clock(), "clock()")
    status = WorkerStatus(state="starting", worker=worker, started_at=started, updated_at=started)
    errors_in_row = 0

    def publish(**changes: object) -> None:
        nonlocal status
        if stop() and changes.get("state", status.state) in ("working", "idle"):
            changes["state"] = "stopping"  # finishing the batch in hand, claiming no new one
        status = replace(status, updated_at=utc(clock(), "clock()"), **changes)  # type: ignore[arg-type]
        on_status(status)

    def on_batch(batch: IssuanceReport) -> None:
        at = utc(clock(), "clock()")
        publish(
            issued=status.issued + batch.issued,
            evaluated=status.evaluated + batch.evaluated,
            failed=status.failed + batch.failed,
            last_batch_at=at,
        )

    def failed(error: Exception, stage: str) -> None:
        code = _error_code(error)
        logger.warning("issuance service: %s failed (%s), retrying after the wait", stage, code)
        publish(errors=status.errors + 1, last_error=code, last_error_at=utc(clock(), "clock()"))

    publish()
    while not stop():
        now = utc(clock(), "clock()")
        publish(state="working")
        pass_failed = False
        if config.site_signers:  # its own failure (e.g. one site certificate expired) does not stop issuance
            try:
                signed = run_site_signing(db, config.site_signers, now=now, batch_size=config.batch_size)
                publish(doses_signed=status.doses_signed + signed.signed)
            except (VaxcredError, sa.exc.SQLAlchemyError) as e:
                failed(e, "site signing")
                pass_failed = True
        try:
            job = Job(
                now=now,
                site_ca_der=site_ca_der,
                batch_size=config.batch_size,
                lease=config.lease,
                run_started=now,
                certificate_issuer=config.certificate_issuer,
                clock=clock,
                site_crl_der=crl_der,
            )
            report = work(db, issuer_for(now), job, worker, on_batch, stop)
        except (VaxcredError, sa.exc.SQLAlchemyError) as e:
            failed(e, "issuance")
            pass_failed = True
            publish(state="idle")
        else:
            logger.info(
                "issuance service: pass %d: %d issued, %d skipped, %d failed",
                status.passes + 1,
                report.issued,
                report.skipped_ineligible,
                report.failed,
            )
            publish(state="idle", passes=status.passes + 1, last_pass_at=now)
        errors_in_row = errors_in_row + 1 if pass_failed else 0
        if stop():
            break
        wait(_wait_seconds(config.poll, errors_in_row, rng))
    publish(state="stopping")
    publish(state="stopped")
    return status
