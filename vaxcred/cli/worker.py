"""``vaxcred worker``: central issuance (and optionally site signing) as a long-lived service on any host."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Final

import click

from vaxcred import errors
from vaxcred.cli._common import RefusedError, fail, safe
from vaxcred.cli._pipeline import (
    PROGRESS_ENV,
    db_option,
    keys_option,
    open_db,
    progress_line,
    site_ca_certificate,
    storage_errors,
)
from vaxcred.cli.signing import site_signers
from vaxcred.issue import Issuer
from vaxcred.keys import KeyChainDir
from vaxcred.pipeline.issuance.service import ServiceConfig, WorkerStatus, serve_issuance
from vaxcred.pipeline.issuance.stage import DEFAULT_LEASE
from vaxcred.pipeline.issuance.workers import worker_id

STAGES: Final = ("issue", "sign-sites")
#: seconds between two progress log lines while issuing (env VAXCRED_PROGRESS_SECONDS, as for the other commands)
_DEFAULT_LOG_SECONDS: Final = 30.0
#: seconds between two log lines of a worker with nothing to report
_HEARTBEAT: Final = 600.0


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class _StopNow(BaseException):
    """A second SIGTERM/SIGINT: leave at once (the batch in hand releases its claims; a crash leaves them to
    the lease)."""


class _Signals:
    """SIGTERM / SIGINT: the first asks for a graceful stop, the second stops at once."""

    def __init__(self) -> None:
        self.stopping = False
        self.finished = False

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self._handle)
        signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        if self.stopping and not self.finished:
            raise _StopNow(signum)
        self.stopping = True

    def stop(self) -> bool:
        return self.stopping

    def wait(self, seconds: float) -> None:
        """Sleep ``seconds``, waking early (within 0.2 s) once a stop is asked."""
        deadline = time.monotonic() + seconds
        while not self.stopping:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(left, 0.2))


@dataclass
class _Issuers:
    """The issuer of a pass: the newest DSC of the chain usable at ``now``, reloaded every hour (a new DSC is
    taken up without a restart) and whenever the one in hand is no longer valid."""

    chain: KeyChainDir
    hour: dt.datetime | None = None
    issuer: Issuer | None = None
    valid: tuple[dt.datetime, dt.datetime] | None = None

    def __call__(self, now: dt.datetime) -> Issuer:
        hour = now.replace(minute=0, second=0, microsecond=0)
        valid = self.valid
        if (
            self.issuer is not None
            and valid is not None
            and hour == self.hour
            and valid[0] <= now <= valid[1]
        ):
            return self.issuer
        signer = self.chain.load_dsc_signer(now=now)
        certificate = signer.certificate
        self.issuer = Issuer(signer)
        self.valid = (certificate.not_valid_before_utc, certificate.not_valid_after_utc)
        self.hour = hour
        return self.issuer


def _write_health(path: Path, status: WorkerStatus) -> None:
    """Replace ``path`` with the status as one JSON object, atomically (a reader never sees half a file)."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(status.to_json(), sort_keys=True) + "\n", encoding="utf-8")
    os.replace(temporary, path)


def _log_interval() -> float:
    try:
        return max(0.0, float(os.environ.get(PROGRESS_ENV, _DEFAULT_LOG_SECONDS)))
    except ValueError:
        return _DEFAULT_LOG_SECONDS


class _Reporter:
    """Writes the health file on every status, and a log line on stderr (counts and codes, no personal data):
    at start and stop, on every error, while there is progress at most every :data:`PROGRESS_ENV` seconds, and
    otherwise every :data:`_HEARTBEAT` seconds (not at every pass: an idle fleet would fill the journal)."""

    def __init__(self, health_file: Path | None) -> None:
        self.health_file = health_file
        self.started = time.monotonic()
        self.logged_at = 0.0
        self.logged: tuple[int, ...] = ()
        self.interval = _log_interval()
        self.health_failed = False

    def __call__(self, status: WorkerStatus) -> None:
        if self.health_file is not None:
            try:
                _write_health(self.health_file, status)
                self.health_failed = False
            except OSError as e:
                if not self.health_failed:  # once per outage, not once per batch
                    click.echo(f"worker: cannot write the health file: {safe(e.strerror or e)}", err=True)
                self.health_failed = True
        now = time.monotonic()
        counts = (status.issued, status.evaluated, status.doses_signed)
        due = now - self.logged_at >= self.interval
        if not (
            status.state in ("starting", "stopping", "stopped")
            or status.errors != (self.logged[3] if self.logged else 0)
            or (due and counts != self.logged[:3])
            or now - self.logged_at >= max(self.interval, _HEARTBEAT)
        ):
            return
        self.logged, self.logged_at = (*counts, status.errors), now
        issued = progress_line("passports issued", status.issued, None, now - self.started)
        line = (
            f"{status.updated_at:%Y-%m-%dT%H:%M:%SZ} worker {status.state}: {issued}, "
            f"{status.evaluated:,} looked at, {status.doses_signed:,} doses signed, "
            f"{status.passes:,} passes, {status.errors:,} errors"
        )
        if status.last_error:
            line += f" (last: {status.last_error})"
        click.echo(line, err=True)


def _parse_stages(value: str) -> frozenset[str]:
    stages = frozenset(s.strip() for s in value.split(",") if s.strip())
    unknown = sorted(stages - set(STAGES))
    if unknown or "issue" not in stages:
        raise click.BadParameter(
            f"expected issue or issue,sign-sites (got {safe(value)})", param_hint="--stages"
        )
    return stages


@click.command("worker")
@keys_option
@db_option
@click.option(
    "--stages",
    default="issue",
    show_default=True,
    metavar="issue[,sign-sites]",
    help="What each pass does: issue passports; with sign-sites, first sign the doses of every site key in "
    "KEYS/sites/ (one host is enough for that: concurrent signers only duplicate work the database drops).",
)
@click.option(
    "--poll",
    type=click.FloatRange(min=0.1),
    default=30.0,
    show_default=True,
    help="Seconds to wait between passes (±20 %% jitter); longer, doubling up to 5 minutes, after a failed pass.",
)
@click.option(
    "--batch", type=click.IntRange(1, 5000), default=200, show_default=True, help="Persons per transaction."
)
@click.option(
    "--lease-minutes",
    type=click.FloatRange(min=0, min_open=True),
    default=DEFAULT_LEASE.total_seconds() / 60,
    show_default=True,
    help="A claim older than this belongs to a dead worker and is taken over (longer than any batch takes).",
)
@click.option("--worker-name", metavar="NAME", help="Prefix of the claim owner (default: the host name).")
@click.option(
    "--health-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Keep this file replaced (atomically) with the worker's status as JSON: state (starting, idle, "
    "working, stopping, stopped), updated_at, last_pass_at, last_batch_at, issued, errors, last_error, ...",
)
def worker(
    folder: Path,
    db_url: str,
    stages: str,
    poll: float,
    batch: int,
    lease_minutes: float,
    worker_name: str | None,
    health_file: Path | None,
) -> None:
    """Central issuance as a long-lived service: issue a passport to every eligible person, wait --poll
    seconds, and again, picking up persons who became eligible since (registry checks, site signatures), until
    SIGTERM or SIGINT.

    Run it on any number of hosts against one PostgreSQL database (or several on one host with SQLite): every
    person gets exactly one passport, and a worker killed with -9 leaves nothing half-stored; the others take
    its persons once --lease-minutes has passed. The key secret comes from the environment only
    ($VAXCRED_PASSPHRASE, or $VAXCRED_PKCS11_PIN for keys on a token); the DSC is re-read every hour.

    SIGTERM or SIGINT: finish the batch in hand, exit 0; a second signal: give the batch's claims back and
    exit 1 at once. Status: --health-file (JSON); log lines on stderr at start and stop, on errors, every
    $VAXCRED_PROGRESS_SECONDS (30) while issuing and every 10 minutes when idle.
    Exit code: 0 stopped on request; 1 cannot start (keys, database) or stopped at once; 3 usage error.
    """
    wanted = _parse_stages(stages)
    if health_file is not None and not health_file.parent.is_dir():
        raise click.BadParameter(f"no folder {safe(health_file.parent)}", param_hint="--health-file")
    signals = _Signals()
    signals.install()  # before the slow start: a SIGTERM while loading keys stops after it
    try:
        _serve(folder, db_url, wanted, poll, batch, lease_minutes, worker_name, health_file, signals)
    except _StopNow:
        raise RefusedError("stopped at once by a second signal (the batch in hand was given back)") from None


def _serve(
    folder: Path,
    db_url: str,
    wanted: frozenset[str],
    poll: float,
    batch: int,
    lease_minutes: float,
    worker_name: str | None,
    health_file: Path | None,
    signals: _Signals,
) -> None:
    try:
        chain = KeyChainDir.from_env(folder)
    except errors.VaxcredError as e:
        raise fail(e) from e
    with chain:
        try:
            issuers = _Issuers(chain)
            issuers(_now())  # fails fast: wrong secret, no usable DSC
            signers = site_signers(chain) if "sign-sites" in wanted else {}
        except errors.VaxcredError as e:
            raise fail(e) from e
        if "sign-sites" in wanted and not signers:
            raise click.UsageError(f"--stages sign-sites: no site keys in {safe(folder / 'sites')}")
        config = ServiceConfig(
            site_ca=site_ca_certificate(folder),
            site_crl=KeyChainDir(folder=folder).site_crl(),
            batch_size=batch,
            lease=dt.timedelta(minutes=lease_minutes),
            poll=poll,
            site_signers=signers,
        )
        db = open_db(db_url)
        try:
            with storage_errors():
                serve_issuance(
                    db,
                    issuers,
                    config,
                    worker=worker_id(worker_name),
                    clock=_now,
                    stop=signals.stop,
                    wait=signals.wait,
                    on_status=_Reporter(health_file),
                )
            signals.finished = True  # stopped: a late second signal changes nothing now
        finally:
            db.dispose()
