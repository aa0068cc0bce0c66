"""The ``vaxcred`` command line: thin click commands over the library.

``main()`` maps outcomes to exit codes: 0 VALID / success, 1 INVALID / refused, 2 NEEDS_CHECK, 3 usage error.
"""

from __future__ import annotations

import importlib
import sys

import click

from vaxcred import __version__
from vaxcred.cli._common import EXIT_USAGE

__all__ = ["cli", "main", "run"]

#: command name -> ("module:attribute", one-line help); a command's module (and its dependencies: SQLAlchemy,
#: Pillow, ...) is imported only when that command runs or its own help is shown, so ``vaxcred verify``
#: starts quickly. A new command adds one line here (tests check the line against the command's docstring).
COMMANDS: dict[str, tuple[str, str]] = {
    "keys": ("vaxcred.cli.keys:keys", "Create and rotate the signing key chain"),
    "issue": ("vaxcred.cli.issue:issue", "Sign a vaccination certificate and print its HC1 text"),
    "verify": ("vaxcred.cli.verify:verify", "Verify an HC1 string, a file holding one, or a QR image"),
    "trustlist": (
        "vaxcred.cli.trustlist:trustlist",
        "Trust lists: EU gateway JSON or a signed national list",
    ),
    "db": ("vaxcred.cli.pipeline:db_group", "The pipeline database (SQLite file or PostgreSQL server)"),
    "import": ("vaxcred.cli.pipeline:import_", "Import dose records (CSV or JSON Lines)"),
    "registry-check": (
        "vaxcred.cli.pipeline:registry_check",
        "Check recorded persons against the population registry",
    ),
    "report": ("vaxcred.cli.pipeline:report", "The data-quality report"),
    "sign-sites": ("vaxcred.cli.signing:sign_sites", "Each site signs its verified dose records"),
    "issue-batch": ("vaxcred.cli.signing:issue_batch", "Central issuance of passports"),
    "corrections": ("vaxcred.cli.corrections:corrections", "Citizens' correction requests"),
    "revocations": (
        "vaxcred.cli.corrections:revocations",
        "Revoked passports: EU gateway revocation batches",
    ),
    "certificate-pdf": ("vaxcred.cli.signing:certificate_pdf", "The printable vaccination certificate (PDF)"),
    "sites": (
        "vaxcred.cli.sites:sites",
        "Vaccination sites: names, provinces and certificates, many at once",
    ),
}


class _LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use (from :data:`COMMANDS`)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        target = entry[0]
        module_name, _, attribute = target.partition(":")
        command = getattr(importlib.import_module(module_name), attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"{target} is not a click command")
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list from :data:`COMMANDS` alone: ``vaxcred --help`` imports no command module."""
        rows = [(name, COMMANDS[name][1]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
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
