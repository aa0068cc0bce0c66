"""``vaxcred pdf verify``: check the ministry's signature on a printable certificate PDF."""

from __future__ import annotations

from pathlib import Path

import click

from vaxcred import errors
from vaxcred.cli._common import EXIT_INVALID, EXIT_VALID, parse_at, safe
from vaxcred.text import clip

#: the largest PDF read (verify_certificate_pdf refuses more: reading one byte past says so)
_MAX_PDF = 8 * 1024 * 1024
_MAX_CERT = 64 * 1024


@click.group("pdf")
def pdf_group() -> None:
    """Signed printable certificates (PDF, PAdES).

    \b
    vaxcred certificate-pdf --citizen-id ID --out C.pdf --keys KEYS   write a signed certificate
    vaxcred pdf verify C.pdf --anchor KEYS/csca.pem                   check its signature
    """


def _read(path: Path, limit: int, option: str) -> bytes:
    try:
        with path.open("rb") as stream:
            return stream.read(limit + 1)
    except (OSError, ValueError) as e:
        raise click.BadParameter(f"cannot read {safe(clip(str(path)))}: {e}", param_hint=option) from e


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
    from cryptography import x509

    from vaxcred.pipeline.reports.pdf_signature import verify_certificate_pdf
    from vaxcred.x509util import load_certificate_bytes

    now = parse_at(at)
    data = _read(anchor, _MAX_CERT, "--anchor")
    try:
        if len(data) > _MAX_CERT:
            raise errors.KeyStoreError(f"larger than {_MAX_CERT} bytes", code="keys.bad_certificate")
        root = x509.load_der_x509_certificate(load_certificate_bytes(data))
    except errors.VaxcredError as e:
        raise click.BadParameter(f"[{e.code}] {safe(e.message)}", param_hint="--anchor") from e
    except ValueError as e:
        raise click.BadParameter(f"not a certificate: {safe(clip(str(e)))}", param_hint="--anchor") from e
    report = verify_certificate_pdf(_read(file, _MAX_PDF, "FILE"), trust_roots=[root], now=now)
    click.secho("SIGNATURE VALID" if report.ok else "SIGNATURE NOT VALID", bold=True)
    click.echo(f"  signer:    {safe(report.signer) if report.signer else '(unknown)'}")
    signed_at = report.signed_at.isoformat() if report.signed_at else "(not given)"
    click.echo(f"  signed at: {signed_at} (as the signer states it)")
    for problem in report.problems:
        click.echo(f"  ✗ {safe(clip(problem, 300))}")
    click.get_current_context().exit(EXIT_VALID if report.ok else EXIT_INVALID)
