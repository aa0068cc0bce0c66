"""The site-signing stage (ký số chứng nhận tiêm): each site signs its dose records that verified.

::

    doses ⋈ persons  WHERE registry_status = 'VERIFIED' AND site has a signer AND no current signature
        ─> batch of ≤ N (one site, dose id order) ─> sitesign.sign_dose ─> one transaction:
           INSERT site_certificates (if absent, by fingerprint) + INSERT site_signatures (ON CONFLICT DO NOTHING)

* **Work queue.** A dose needs a signature while it has no *current* one (``site_signatures.superseded_at IS
  NULL``; a unique partial index allows at most one). Sites are taken one after the other, each walked along the
  index (site_id, id), so a batch costs the same at any table size. The batch is read, signed (CPU only, no I/O)
  and stored in one transaction, so a crash loses at most that batch and a re-run signs exactly what is missing;
  a concurrent run's duplicate is dropped by the index (``signed`` counts only stored rows). On PostgreSQL the
  batch's dose and person rows are read ``FOR SHARE``: a correction changing one of them waits for the batch,
  then supersedes its fresh signature.
* **Parallel** (``workers`` > 1): forked processes take the sites one at a time; each reads a batch, signs it
  outside any transaction and stores it in its own transaction that re-reads the batch's rows first and keeps a
  signature only for a dose still exactly as signed (a dose changed meanwhile is signed again inside that
  transaction). Same guarantees as above; see :func:`_run_parallel`.
* **A site signs only its own records.** ``signers`` maps a site id to that site's signer; a signer whose
  certificate is not a site certificate, names another site or is not valid at ``now`` is refused before
  anything is signed (:class:`PipelineError` ``sitesign.wrong_purpose`` / ``sitesign.not_own_record`` /
  ``sitesign.cert_not_valid``), and :func:`~vaxcred.pipeline.sitesign.sign_dose` checks each record again.
* **Corrections.** :func:`supersede_signature` marks a dose's current signature superseded (the correction's
  transaction does it when it changes the dose); the next run signs the dose again.
* **Independent verification.** :func:`verify_stored_signatures` re-verifies current signatures from the stored
  bytes and the stored site certificate alone (chain to the site CA, validity at signing time, citizen hash)
  and checks that the signed content is the dose as stored now.

Nothing here logs personal data: log lines carry dose row ids, site ids and error codes.
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import hashlib
import logging
import multiprocessing
import queue
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeAlias

import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy.engine import Connection, Row

from vaxcred.crypto import Signer
from vaxcred.errors import VaxcredError
from vaxcred.pipeline.errors import PipelineError
from vaxcred.pipeline.records import DoseRecord, vaccine_codes
from vaxcred.pipeline.registry import RegistryStatus
from vaxcred.pipeline.sitesign import DoseClaims, is_site_certificate, sign_dose, site_id_of, verify_dose
from vaxcred.storage import Database, open_database
from vaxcred.storage.schema import doses, persons, site_certificates, site_signatures
from vaxcred.trust.store import require_utc

__all__ = [
    "BATCH_SIZE",
    "NO_CERTIFICATE",
    "RECORD_MISMATCH",
    "SignatureCheck",
    "SigningReport",
    "check_stored_signatures",
    "run_site_signing",
    "supersede_signature",
    "verify_stored_signatures",
]

logger = logging.getLogger(__name__)

#: doses per transaction
BATCH_SIZE = 500
#: :class:`SignatureCheck` code: the signature's site certificate is not stored (or does not parse)
NO_CERTIFICATE = "sitesign.no_certificate"
#: :class:`SignatureCheck` code: the signature verifies but signs other content than the dose as stored now
RECORD_MISMATCH = "sitesign.record_mismatch"

ProgressCallback = Callable[[int], None]
_Row: TypeAlias = Row[*tuple[Any, ...]]

_VERIFIED = RegistryStatus.VERIFIED.value
_current = site_signatures.c.superseded_at.is_(None)


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


class SignatureCheck(NamedTuple):
    """One stored signature re-verified: ``code`` is ``None`` when ``ok``, else the error code."""

    dose_id: int
    ok: bool
    code: str | None


def _fingerprint(der: bytes) -> bytes:
    return hashlib.sha256(der).digest()


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


class _Signed(NamedTuple):
    dose_id: int
    kid: bytes
    cose: bytes
    signed_at: dt.datetime


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
    rows: Sequence[_DoseRow], signers: Mapping[str, Signer], now: dt.datetime
) -> list[_Signed | str]:
    """Sign each row (CPU only, no database): a :class:`_Signed`, or the error code of a row that cannot be."""
    out: list[_Signed | str] = []
    for row in rows:
        try:
            signed = sign_dose(_dose_record(row), signer=signers[row.site_id], now=now)
        except (VaxcredError, ValueError, TypeError) as e:
            out.append(e.code if isinstance(e, VaxcredError) else type(e).__name__)
            continue
        out.append(_Signed(row.id, signed.kid, signed.cose, signed.signed_at))
    return out


def _store_batch(
    db: Database,
    conn: Connection,
    rows: Sequence[_DoseRow],
    outcomes: Sequence[_Signed | str],
    certificates: Mapping[str, dict[str, Any]],
) -> tuple[int, int]:
    """Store one batch's signatures; returns (signatures stored, doses that could not be signed)."""
    values: list[dict[str, Any]] = []
    failed = 0
    for row, outcome in zip(rows, outcomes, strict=True):
        if isinstance(outcome, str):
            failed += 1
            logger.warning("site signing: dose row %d not signed (%s)", row.id, outcome)
            continue
        values.append(
            {
                "dose_id": row.id,
                "site_id": row.site_id,
                "certificate": certificates[row.site_id]["fingerprint"],
                "kid": outcome.kid,
                "cose": outcome.cose,
                "signed_at": outcome.signed_at,
            }
        )
    if not values:
        return 0, failed
    used = sorted({v["site_id"] for v in values})
    conn.execute(
        db.insert_ignoring_conflicts(site_certificates, on=["fingerprint"]),
        [certificates[site] for site in used],
    )
    inserted = conn.execute(
        db.insert_ignoring_conflicts(site_signatures, on=["dose_id"], where=_current).returning(
            site_signatures.c.id
        ),
        values,
    ).all()
    return len(inserted), failed


def _to_sign(site_id: str, after: int, limit: int) -> sa.Select[Any]:
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
            persons.c.registry_status == _VERIFIED,
            ~_has_current_signature(),
        )
        .order_by(doses.c.id)
        .limit(limit)
    )


def run_site_signing(
    db: Database,
    signers: Mapping[str, Signer],
    *,
    now: dt.datetime,
    batch_size: int = BATCH_SIZE,
    on_progress: ProgressCallback | None = None,
    workers: int = 1,
) -> SigningReport:
    """Sign, as of ``now`` (aware), every dose of a ``VERIFIED`` person recorded by a site in ``signers``
    that has no current signature; one transaction per ``batch_size`` doses, site by site, in dose id order.

    ``workers`` > 1 runs that many processes, each signing whole sites (forked, where the platform can fork:
    they inherit ``signers``, so no key crosses a pipe; the signers must survive a fork, as
    :class:`~vaxcred.crypto.LocalSigner` does — an HSM session may not): see :func:`_run_parallel`. It pays on
    PostgreSQL; on SQLite (one writer) one process measured faster (docs/benchmarks.md, "National pipeline").

    ``on_progress(signed_so_far)`` is called after each committed batch. Idempotent: a second run signs
    nothing new. Errors propagate after the batches before them were committed.
    """
    now = require_utc(now)
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError("batch_size must be an int >= 1")
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise ValueError("workers must be an int >= 1")
    _check_signers(signers, now)
    certificates = {site_id: _certificate_row(signer) for site_id, signer in signers.items()}
    site_ids = sorted(signers)
    if workers > 1 and "fork" in multiprocessing.get_all_start_methods():
        signed, failed = _run_parallel(db, signers, certificates, now, batch_size, on_progress, workers)
    else:
        signed, failed = _run_serial(db, signers, certificates, now, batch_size, on_progress)
    no_key, unverified = _unsigned_counts(db, site_ids)
    return SigningReport(signed=signed, skipped_no_key=no_key, skipped_unverified=unverified, failed=failed)


def _run_serial(
    db: Database,
    signers: Mapping[str, Signer],
    certificates: Mapping[str, dict[str, Any]],
    now: dt.datetime,
    batch_size: int,
    on_progress: ProgressCallback | None,
) -> tuple[int, int]:
    """Read, sign and store each batch in one transaction (PostgreSQL: its doses and persons ``FOR SHARE``)."""
    signed = failed = 0
    for site_id in sorted(signers):
        last_id = 0
        while True:
            with db.begin() as conn:
                rows = [
                    _DoseRow(*row)
                    for row in conn.execute(
                        _to_sign(site_id, last_id, batch_size).with_for_update(read=True, of=[doses, persons])
                    )
                ]
                if not rows:
                    break
                last_id = rows[-1].id
                added, bad = _store_batch(db, conn, rows, _sign_rows(rows, signers, now), certificates)
            signed += added
            failed += bad
            if on_progress is not None:
                on_progress(signed)
    return signed, failed


# --- parallel signing -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _ForkState:
    """What forked signing processes inherit (set only while the pool is being started): no key crosses a pipe."""

    url: str
    signers: Mapping[str, Signer]
    certificates: Mapping[str, dict[str, Any]]
    now: dt.datetime
    batch_size: int
    progress: Any  # a multiprocessing queue: (signed, failed) after each committed batch


_FORK_STATE: _ForkState | None = None
_CHILD_DB: Database | None = None


def _child_init() -> None:
    global _CHILD_DB
    assert _FORK_STATE is not None, "a signing process must be forked by _run_parallel"
    _CHILD_DB = open_database(_FORK_STATE.url)  # its own connections, never the parent's


def _sign_site_in_child(site_id: str) -> None:
    """A worker process: sign every pending dose of ``site_id``, batch by batch (see :func:`_run_parallel`)."""
    state, db = _FORK_STATE, _CHILD_DB
    assert state is not None
    assert db is not None
    last_id = 0
    while True:
        with db.connect() as conn:
            rows = [_DoseRow(*row) for row in conn.execute(_to_sign(site_id, last_id, state.batch_size))]
        if not rows:
            return
        last_id = rows[-1].id
        outcomes = _sign_rows(rows, state.signers, state.now)
        with db.begin() as conn:
            rows, outcomes = _recheck(conn, rows, outcomes, state.signers, state.now)
            added, bad = _store_batch(db, conn, rows, outcomes, state.certificates)
        state.progress.put((added, bad))


def _run_parallel(
    db: Database,
    signers: Mapping[str, Signer],
    certificates: Mapping[str, dict[str, Any]],
    now: dt.datetime,
    batch_size: int,
    on_progress: ProgressCallback | None,
    workers: int,
) -> tuple[int, int]:
    """``workers`` forked processes take the sites one at a time; each reads, signs and stores its site's batches.

    A batch is read in a short read transaction and signed outside any transaction, so the processes sign at the
    same time (SQLite has one writer: only the stores take turns). Its store transaction first re-reads the
    batch's doses and persons (PostgreSQL: ``FOR SHARE``) and keeps a signature only for a dose whose stored
    content and person (still ``VERIFIED``) are exactly what was signed; a dose changed meanwhile is signed again
    there, from its current content, inside the transaction; a dose whose person is no longer verified is left.
    So a stored signature always signs the dose as it is when the signature commits — as in the serial path —
    and a crash loses at most the batches not yet committed (a re-run signs them).
    """
    global _FORK_STATE
    context = multiprocessing.get_context("fork")
    progress = context.Queue()
    url = db.engine.url.render_as_string(hide_password=False)
    db.engine.dispose()  # no open connection is carried across the fork
    signed = failed = 0

    def drain(timeout: float) -> None:
        nonlocal signed, failed
        try:
            added, bad = progress.get(timeout=timeout)
        except queue.Empty:
            return
        signed += added
        failed += bad
        if on_progress is not None:
            on_progress(signed)

    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context, initializer=_child_init) as pool:
        # the processes are forked at the first submit: the state is there for them, and only then
        _FORK_STATE = _ForkState(url, signers, certificates, now, batch_size, progress)
        try:
            futures = [pool.submit(_sign_site_in_child, site_id) for site_id in sorted(signers)]
        finally:
            _FORK_STATE = None
        try:
            while not all(f.done() for f in futures):
                drain(0.2)
            for f in futures:
                f.result()  # a worker's exception (or a dead worker: BrokenProcessPool) propagates
        except BaseException:
            for f in futures:
                f.cancel()
            raise
        finally:
            while not progress.empty():
                drain(0.2)
    return signed, failed


def _recheck(
    conn: Connection,
    rows: Sequence[_DoseRow],
    outcomes: Sequence[_Signed | str],
    signers: Mapping[str, Signer],
    now: dt.datetime,
) -> tuple[list[_DoseRow], list[_Signed | str]]:
    """The batch's rows as stored now (locked on PostgreSQL) with their signatures: a worker's where the row is
    unchanged, a fresh one for a changed row; rows of persons no longer verified are dropped."""
    current = {
        row.id: _DoseRow(*row)
        for row in conn.execute(
            sa.select(*_DOSE_COLUMNS)
            .join(persons, persons.c.id == doses.c.person_id)
            .where(doses.c.id.in_([row.id for row in rows]), persons.c.registry_status == _VERIFIED)
            .order_by(doses.c.id)
            .with_for_update(read=True, of=[doses, persons])
        )
    }
    kept_rows: list[_DoseRow] = []
    kept: list[_Signed | str] = []
    for row, outcome in zip(rows, outcomes, strict=True):
        now_row = current.get(row.id)
        if now_row is None:
            continue
        if now_row != row:
            if now_row.site_id not in signers:
                continue
            logger.info("site signing: dose row %d changed while being signed; signed again", row.id)
            outcome = _sign_rows([now_row], signers, now)[0]
        kept_rows.append(now_row)
        kept.append(outcome)
    return kept_rows, kept


def _has_current_signature() -> sa.Exists:
    return sa.exists().where(site_signatures.c.dose_id == doses.c.id, _current)


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
        .where(~_has_current_signature())
    )
    with db.connect() as conn:
        no_key, unverified = conn.execute(query).one()
    return int(no_key), int(unverified)


def supersede_signature(conn: Connection, dose_id: int, *, now: dt.datetime) -> bool:
    """Mark the current signature of ``dose_id`` superseded at ``now`` (in the caller's transaction, the one
    that changes the dose); returns whether there was one. The next signing run signs the dose again."""
    now = require_utc(now)
    result = conn.execute(
        site_signatures.update()
        .where(site_signatures.c.dose_id == dose_id, _current)
        .values(superseded_at=now)
    )
    return bool(result.rowcount)


def _claims_match(row: _Row, claims: DoseClaims) -> bool:
    try:
        codes = vaccine_codes(row.vaccine)
    except ValueError:
        return False
    return (
        claims.site_id == row.dose_site_id == row.site_id
        and claims.dose_number == row.dose_number
        and claims.date == row.date.isoformat()
        and claims.lot == row.lot
        and (claims.mp, claims.ma, claims.vp) == (codes.mp, codes.ma, codes.vp)
    )


def check_stored_signatures(
    db: Database,
    *,
    site_ca: x509.Certificate,
    dose_ids: Iterable[int] | None = None,
    now: dt.datetime | None = None,
    batch_size: int = 1000,
) -> Iterator[SignatureCheck]:
    """Re-verify current signatures one by one (streaming, ``batch_size`` rows per read), in signature order.

    Each is verified from its stored bytes and its stored site certificate only
    (:func:`~vaxcred.pipeline.sitesign.verify_dose` with ``site_ca``, the citizen ID stored now, and ``now`` as
    the upper bound of the signing time when given), then its content is compared with the dose as stored now.
    Codes: :data:`NO_CERTIFICATE`, the ``sitesign.*`` / ``cose.*`` / ``signature.*`` / ``chain.*`` codes of
    ``verify_dose``, :data:`RECORD_MISMATCH`.
    """
    if not isinstance(site_ca, x509.Certificate):
        raise TypeError("site_ca must be an x509.Certificate")
    if now is not None:
        now = require_utc(now)
    query = (
        sa.select(
            site_signatures.c.id.label("signature_id"),
            site_signatures.c.dose_id,
            site_signatures.c.site_id,
            site_signatures.c.kid,
            site_signatures.c.cose,
            site_signatures.c.certificate,
            site_certificates.c.der,
            doses.c.site_id.label("dose_site_id"),
            doses.c.dose_number,
            doses.c.date,
            doses.c.vaccine,
            doses.c.lot,
            persons.c.citizen_id,
        )
        .select_from(
            site_signatures.join(doses, doses.c.id == site_signatures.c.dose_id)
            .join(persons, persons.c.id == doses.c.person_id)
            .outerjoin(site_certificates, site_certificates.c.fingerprint == site_signatures.c.certificate)
        )
        .where(_current)
        .order_by(site_signatures.c.id)
    )
    chunks: Iterator[list[int] | None]
    if dose_ids is None:
        chunks = iter([None])
    else:
        wanted = sorted({int(i) for i in dose_ids})
        chunks = iter([wanted[i : i + batch_size] for i in range(0, len(wanted), batch_size)])
    parsed: dict[bytes, x509.Certificate | None] = {}
    for chunk in chunks:
        last_id = 0
        while True:
            page = query.where(site_signatures.c.id > last_id).limit(batch_size)
            if chunk is not None:
                page = page.where(site_signatures.c.dose_id.in_(chunk))
            with db.connect() as conn:
                rows = conn.execute(page).all()
            if not rows:
                break
            last_id = rows[-1].signature_id
            for row in rows:
                yield _check_one(row, site_ca, now, parsed)


def _load_certificate(row: _Row, parsed: dict[bytes, x509.Certificate | None]) -> x509.Certificate | None:
    if row.der is None:
        return None
    if row.certificate not in parsed:
        try:
            cert: x509.Certificate | None = x509.load_der_x509_certificate(row.der)
        except ValueError:
            cert = None
        if cert is not None and _fingerprint(row.der) != row.certificate:
            cert = None
        parsed[row.certificate] = cert
    return parsed[row.certificate]


def _check_one(
    row: _Row,
    site_ca: x509.Certificate,
    now: dt.datetime | None,
    parsed: dict[bytes, x509.Certificate | None],
) -> SignatureCheck:
    cert = _load_certificate(row, parsed)
    if cert is None:
        return SignatureCheck(row.dose_id, False, NO_CERTIFICATE)
    try:
        claims = verify_dose(
            row.cose, site_certificate=cert, site_ca=site_ca, citizen_id=row.citizen_id, now=now
        )
    except VaxcredError as e:
        return SignatureCheck(row.dose_id, False, e.code)
    if claims.kid != row.kid or not _claims_match(row, claims):
        return SignatureCheck(row.dose_id, False, RECORD_MISMATCH)
    return SignatureCheck(row.dose_id, True, None)


def verify_stored_signatures(
    db: Database,
    *,
    site_ca: x509.Certificate,
    dose_ids: Iterable[int] | None = None,
    now: dt.datetime | None = None,
) -> list[SignatureCheck]:
    """:func:`check_stored_signatures` as a list of ``(dose_id, ok, code)`` (for issuance and audits of a
    known set; stream with :func:`check_stored_signatures` over a whole database)."""
    return list(check_stored_signatures(db, site_ca=site_ca, dose_ids=dose_ids, now=now))
