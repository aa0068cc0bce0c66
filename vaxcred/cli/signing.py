"""``vaxcred sign-sites``, ``issue-batch``, ``certificate-pdf``: the two signatures and the citizen's paper."""

from __future__ import annotations

import datetime as dt
import functools
import os
from collections.abc import Callable, Mapping
from pathlib import Path

import click

from vaxcred import errors
from vaxcred.cli._common import PASSPHRASE_ENV, RefusedError, fail, open_chain, parse_at, safe
from vaxcred.cli._pipeline import (
    at_option,
    db_option,
    exit_refused_if,
    keys_option,
    number,
    open_db,
    progress,
    site_ca_certificate,
    storage_errors,
)
from vaxcred.crypto import Signer
from vaxcred.issue import Issuer
from vaxcred.keys import KeyChainDir, load_certificate
from vaxcred.pipeline.issuance.stage import DEFAULT_LEASE, KeyChainIssuerFactory, pending_count, run_issuance
from vaxcred.pipeline.reports.certificate_data import certificate_data
from vaxcred.pipeline.site_signing.stage import run_site_signing, unsigned_count


def site_signers(chain: KeyChainDir, only: tuple[str, ...] = ()) -> dict[str, Signer]:
    """Every site key pair in the chain's ``sites/`` folder (or the sites in ``only``), by site id."""
    folder = chain.folder / "sites"
    found = sorted(p.stem for p in folder.glob("*.pem")) if folder.is_dir() else []
    wanted = list(dict.fromkeys(only)) or found
    missing = [s for s in wanted if s not in found]
    if missing:
        raise click.UsageError(
            f"no site key for {', '.join(missing)} in {folder} (run `vaxcred keys site {chain.folder} "
            "--site-id ID --site-name NAME`)"
        )
    return {site_id: chain.load(f"sites/{site_id}").signer() for site_id in wanted}


@click.command("sign-sites")
@keys_option
@click.option(
    "--site",
    "only",
    multiple=True,
    metavar="SITE_ID",
    help="Sign for this site only (repeatable; default: every site key in KEYS/sites/).",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="1: this process reads and stores while one forked process signs (the choice for SQLite, one writer); "
    "N > 1: N processes each sign and store whole sites (faster on PostgreSQL: 2 workers signed 100 k people's "
    "doses in 12.6 s against 18.4 s, docs/pipeline.md). The stored signatures are the same.",
)
@db_option
@at_option("Signing time; each site certificate must be valid then")
def sign_sites(folder: Path, only: tuple[str, ...], workers: int, db_url: str, at: str | None) -> None:
    """Site signing (ký số chứng nhận tiêm): each site signs its own dose records whose person VERIFIED.

    Every site key pair under KEYS/sites/ (made by `vaxcred keys site`) is loaded with the key passphrase
    ($VAXCRED_PASSPHRASE or a prompt); a site signs only the records it recorded, 128 under one signature
    (a Merkle batch: each record keeps its audit path and verifies on its own). 500 doses per transaction,
    signed in a second process while this one stores the batch before (both cores; a dose changed meanwhile is
    signed again before it is stored); re-running signs only what is missing. Exit code: 0 done; 1 a key could not be used or some doses could
    not be signed (see the log); 3 usage error.
    """
    now = parse_at(at)
    try:
        signers = site_signers(open_chain(folder), only)
    except errors.VaxcredError as e:
        raise fail(e) from e
    if not signers:
        raise click.UsageError(
            f"no site keys in {folder / 'sites'} (run `vaxcred sites register SITES.csv --keys {folder}`)"
        )
    db = open_db(db_url)
    try:
        with storage_errors():
            length = unsigned_count(db, sorted(signers))
            with progress("signing doses", length) as update:
                report = run_site_signing(db, signers, now=now, on_progress=update, workers=workers)
    finally:
        db.dispose()
    click.echo(f"{len(signers)} site keys: {number(report.signed)} doses signed")
    click.echo(
        f"not signed: {number(report.skipped_unverified)} (person not VERIFIED yet), "
        f"{number(report.skipped_no_key)} (no key here for the site), {number(report.failed)} failed"
    )
    exit_refused_if(report.failed > 0)


def _format_reasons(reasons: Mapping[str, int]) -> str:
    return ", ".join(f"{code} {number(n)}" for code, n in sorted(reasons.items(), key=lambda kv: -kv[1]))


@click.command("issue-batch")
@keys_option
@click.option(
    "--workers",
    type=click.IntRange(1, 256),
    default=1,
    show_default=True,
    help="Worker processes; more than 1 reads the passphrase from $VAXCRED_PASSPHRASE in each worker. "
    "Several machines may run issue-batch on one PostgreSQL database at once.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(1, 5000),
    default=200,
    show_default=True,
    help="Persons per transaction.",
)
@click.option(
    "--lease-minutes",
    type=click.FloatRange(min=0),
    default=DEFAULT_LEASE.total_seconds() / 60,
    show_default=True,
    help="A claim older than this belongs to a dead worker and is taken over. 0 after a crash, when no other "
    "run is running: finish the dead run's persons now (this run's own workers never take each other's claims).",
)
@click.option(
    "--worker-name", metavar="NAME", help="Prefix of this run's claim owner (default: the host name)."
)
@db_option
@at_option("Issuance time (iat); the DSC must be allowed to sign then")
def issue_batch(
    folder: Path,
    workers: int,
    batch_size: int,
    lease_minutes: float,
    worker_name: str | None,
    db_url: str,
    at: str | None,
) -> None:
    """Central issuance (ký xác nhận tập trung): a passport for every person whose identity is VERIFIED and
    whose doses are all site-signed (each signature checked against the site CA in KEYS), signed with the
    newest usable DSC in KEYS.

    Exactly one active passport per person, enforced by the database: re-running, running several workers or
    machines at once, or re-running after `kill -9` never issues twice. Each passport is stored with its
    UVCI, HC1, kid and links to the site-signed doses and the registry check it relied on. Exit code: 0 done;
    1 the DSC cannot sign, or some persons failed (run again to retry them); 3 usage error.
    """
    now = parse_at(at)
    if workers > 1 and not os.environ.get(PASSPHRASE_ENV) and not (folder / "token.json").exists():
        raise click.UsageError(f"--workers {workers} needs the key passphrase in ${PASSPHRASE_ENV}")
    try:
        signer = open_chain(folder).load_dsc_signer(now=now)  # fails fast: wrong passphrase, no usable DSC
    except errors.VaxcredError as e:
        raise fail(e) from e
    factory: Callable[[], Issuer]
    if workers > 1:
        factory = KeyChainIssuerFactory(folder=folder.resolve(), at=now, passphrase_env=PASSPHRASE_ENV)
    else:
        factory = functools.partial(Issuer, signer)
    site_ca = site_ca_certificate(folder)
    db = open_db(db_url)
    try:
        with storage_errors():
            length = pending_count(db)
            with progress("issuing passports", length) as update:
                report = run_issuance(
                    db,
                    factory,
                    now=now,
                    site_ca=site_ca,
                    site_crl=KeyChainDir(folder=folder).site_crl(),  # revoked site certificates
                    workers=workers,
                    batch_size=batch_size,
                    worker_name=worker_name,
                    lease=dt.timedelta(minutes=lease_minutes),
                    on_progress=update,
                )
    finally:
        db.dispose()
    click.echo(f"issued:             {number(report.issued)}")
    click.echo(f"held one already:   {number(report.already_issued)}")
    click.echo(f"not eligible:       {number(report.skipped_ineligible)}")
    click.echo(f"failed (retry):     {number(report.failed)}")
    if report.held_elsewhere:
        click.echo(
            f"held by another run: {number(report.held_elsewhere)} (claimed by a run still working, or by a dead "
            "one whose lease has not run out: run again later, or with --lease-minutes 0 if no other run is alive)"
        )
    if report.reasons:
        click.echo(f"reasons:            {_format_reasons(report.reasons)}")
    exit_refused_if(report.failed > 0)


def _write_private(path: Path, data: bytes) -> None:
    """Create or truncate ``path`` with mode 0600 (the file holds personal data) and write ``data``."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as stream:
        os.fchmod(stream.fileno(), 0o600)
        stream.write(data)


_DOCUMENT_SIGNER = "document-signer"


def _require_document_signer(folder: Path) -> None:
    if not (folder / f"{_DOCUMENT_SIGNER}.pem").exists():
        raise click.UsageError(
            f"no document signer in {safe(folder)} (run `vaxcred keys document-signer {safe(folder)}`)"
        )


def _sign_pdf(pdf: bytes, folder: Path, now: dt.datetime) -> tuple[bytes, str]:
    """``pdf`` signed (PAdES) by the document signer of the chain in ``folder`` (files or token), and its kid."""
    from vaxcred.pipeline.reports.pdf_signature import sign_certificate_pdf

    try:
        with open_chain(folder) as chain:
            pair = chain.load(_DOCUMENT_SIGNER)
            csca = load_certificate(folder / "csca.pem")
            signed = sign_certificate_pdf(pdf, pair.signer(), now=now, chain=[csca])
    except errors.VaxcredError as e:
        raise fail(e) from e
    except OSError as e:
        raise click.UsageError(f"cannot read the key chain in {safe(folder)}: {safe(str(e))}") from e
    return signed, pair.kid.hex()


@click.command("certificate-pdf")
@click.option(
    "--citizen-id",
    required=True,
    metavar="ID",
    help="The person's CCCD / CMND / other ID number.",
)
@click.option(
    "--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="The PDF file to write."
)
@click.option(
    "--keys",
    "folder",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="Key-chain folder: sign the PDF (PAdES) with its document signer (`vaxcred keys document-signer`). "
    "Without it the PDF is written unsigned.",
)
@click.option(
    "--site-records/--no-site-records",
    default=False,
    show_default=True,
    help="Also print each dose's site-signed record as a QR code. Off by default: a record holds a salted hash "
    "of the citizen ID, which whoever scans the paper can recover by trying candidate IDs.",
)
@db_option
@at_option("The PDF's creation date (and signing time)")
def certificate_pdf(
    citizen_id: str, out: Path, folder: Path | None, site_records: bool, db_url: str, at: str | None
) -> None:
    """The printable vaccination certificate (Vietnamese + English, with the passport's QR code) of one
    person's active passport, written to a PDF file (mode 0600). Personal data goes to the file only.
    Below the doses, one QR code per dose holds its standalone site-signed record (`vaxcred records verify`
    checks one with the site certificate) when --site-records asks for them: off by default, since a record's
    salted citizen-ID hash lets whoever scans the paper recover the ID.

    With --keys the PDF carries a PAdES signature by the ministry's document signer, which any PDF reader
    shows and `vaxcred pdf verify` checks; without it the PDF is unsigned (said on stderr).
    Exit code: 0 written; 1 no such person, no active passport or the key cannot sign; 3 usage error.
    """
    created = parse_at(at)
    if folder is not None:  # before any database work: a chain that cannot sign is found first
        _require_document_signer(folder)
    db = open_db(db_url)
    try:
        with storage_errors():
            data = certificate_data(db, citizen_id)
    finally:
        db.dispose()
    try:
        pdf = data.render(creation_date=created, site_records=site_records)
    except ValueError as e:
        raise RefusedError(f"[pipeline.bad_certificate] {e}") from e
    signed_by = None
    if folder is not None:
        pdf, signed_by = _sign_pdf(pdf, folder, created)
    _write_private(out, pdf)
    click.echo(f"certificate of passport {data.passport_id} ({len(data.doses)} doses) written to {out}")
    if signed_by is None:
        click.echo("note: the PDF is NOT signed (give --keys KEYS to sign it)", err=True)
    else:
        click.echo(f"signed by document signer {signed_by}")
