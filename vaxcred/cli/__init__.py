"""The ``vaxcred`` command line: thin click commands over the library.

``main()`` maps outcomes to exit codes: 0 VALID / success, 1 INVALID / refused, 2 NEEDS_CHECK, 3 usage error.
"""

from __future__ import annotations

import sys

import click

from vaxcred import __version__
from vaxcred.cli._common import EXIT_USAGE
from vaxcred.cli.corrections import corrections, revocations
from vaxcred.cli.issue import issue
from vaxcred.cli.keys import keys
from vaxcred.cli.pipeline import db_group, import_, registry_check, report
from vaxcred.cli.signing import certificate_pdf, issue_batch, sign_sites
from vaxcred.cli.trustlist import trustlist
from vaxcred.cli.verify import verify

__all__ = ["cli", "main", "run"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="vaxcred")
def cli() -> None:
    """vaxcred: issue and verify EU-DCC compatible vaccine passports (HC1 QR codes).

    \b
    vaxcred keys init KEYS            ministry key chain (CSCA, DSC, trust-list key, site CA)
    vaxcred issue person.json --keys KEYS --png qr.png
    vaxcred verify qr.png --trust-list trust.cbor --anchor KEYS/csca.pem
    vaxcred verify "HC1:..." --dsc dsc.pem --at 2021-06-01T00:00:00Z --json

    \b
    national pipeline (--db URL or $VAXCRED_DB, default sqlite:///vaxcred.db):
    vaxcred db init                   create / upgrade the schema
    vaxcred import doses.csv --rejects rejects.csv
    vaxcred registry-check --registry registry.csv      (or an http(s):// URL)
    vaxcred report --chart quality.png
    vaxcred sign-sites --keys KEYS    each site signs its verified records
    vaxcred issue-batch --keys KEYS --workers 2
    vaxcred corrections file|list|resolve|reject|overdue
    vaxcred revocations export --out revocations.json
    vaxcred certificate-pdf --citizen-id ID --out certificate.pdf
    """


cli.add_command(keys)
cli.add_command(issue)
cli.add_command(verify)
cli.add_command(trustlist)
cli.add_command(db_group)
cli.add_command(import_)
cli.add_command(registry_check)
cli.add_command(report)
cli.add_command(sign_sites)
cli.add_command(issue_batch)
cli.add_command(corrections)
cli.add_command(revocations)
cli.add_command(certificate_pdf)


def main(argv: list[str] | None = None) -> int:
    """Entry point; usage errors exit 3 (click's own default, 2, means NEEDS_CHECK here)."""
    try:
        # standalone_mode=False: click returns ctx.exit()'s code instead of calling sys.exit
        code = cli.main(args=argv, prog_name="vaxcred", standalone_mode=False)
    except click.exceptions.Exit as e:
        return int(e.exit_code)
    except click.UsageError as e:
        e.show()
        return EXIT_USAGE
    except click.ClickException as e:
        e.show()
        return e.exit_code
    except click.Abort:
        click.echo("aborted", err=True)
        return EXIT_USAGE
    return code if isinstance(code, int) else 0


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
