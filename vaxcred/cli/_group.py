"""The click group behind ``vaxcred`` (extra ``cli``): subcommands imported on first use from
:data:`vaxcred.cli.COMMANDS`."""

from __future__ import annotations

import importlib

from vaxcred import __version__
from vaxcred._extras import requires_extra
from vaxcred.cli import COMMANDS

with requires_extra("cli", feature="the vaxcred command"):
    import click

    from vaxcred.cli._common import EXIT_USAGE

__all__ = ["cli", "click_main"]


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
        with requires_extra(None, feature=f"vaxcred {cmd_name}"):  # the extra that provides what is missing
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
    vaxcred sync https://ministry.example/vaxcred --into data --anchor csca.pem
    vaxcred verify qr.png --data data --anchor csca.pem
    vaxcred serve --trust-list trust.cbor --anchor KEYS/csca.pem --workers 2

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


def click_main(argv: list[str] | None) -> int:
    """Run the group; usage errors exit 3 (click's own default, 2, means NEEDS_CHECK here)."""
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
