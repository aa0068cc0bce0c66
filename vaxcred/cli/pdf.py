"""``vaxcred pdf verify``: check the ministry's signature on a printable certificate PDF."""

from __future__ import annotations

from pathlib import Path

import click

from vaxcred.cli._common import EXIT_INVALID, EXIT_VALID, parse_at, safe
from vaxcred.cli._files import load_certificate_option, read_bounded
from vaxcred.text import clip

#: the largest PDF read (verify_certificate_pdf refuses more: reading one byte past says so)
_MAX_PDF = 8 * 1024 * 1024


@click.group("pdf")
def pdf_group() -> None:
    """Signed printable certificates (PDF, PAdES).

    \b
    vaxcred certificate-pdf --citizen-id ID --out C.pdf --keys KEYS   write a signed certificate
    vaxcred pdf verify C.pdf --anchor KEYS/csca.pem                   check its signature
    """


@pdf_group.command("verify")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--anchor",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The CSCA certificate (PEM or DER) the document signer must chain to.",
)
@click.option("--at", "at", metavar="ISO-8601", help="Verify as of this time (default: now).")
def verify(file: Path, anchor: Path, at: str | None) -> None:
    """Check the one PAdES signature of a certificate PDF: intact, valid, by a document signer chaining to
    --anchor at --at, covering the whole file. Prints the signer, the signing time and each problem.

    Exit code: 0 the signature holds; 1 it does not (or there is none); 3 usage error.
    """
    from vaxcred.pipeline.reports.pdf_signature import verify_certificate_pdf

    now = parse_at(at)
    root = load_certificate_option(anchor, "--anchor")
    pdf = read_bounded(
        file, _MAX_PDF, "FILE", refuse_larger=False
    )  # verify_certificate_pdf says it is too large
    report = verify_certificate_pdf(pdf, trust_roots=[root], now=now)
    click.secho("SIGNATURE VALID" if report.ok else "SIGNATURE NOT VALID", bold=True)
    click.echo(f"  signer:    {safe(report.signer) if report.signer else '(unknown)'}")
    signed_at = report.signed_at.isoformat() if report.signed_at else "(not given)"
    click.echo(f"  signed at: {signed_at} (as the signer states it)")
    for problem in report.problems:
        click.echo(f"  ✗ {safe(clip(problem, 300))}")
    click.get_current_context().exit(EXIT_VALID if report.ok else EXIT_INVALID)
