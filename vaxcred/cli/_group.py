"""The click group behind ``vaxcred`` (extra ``cli``): subcommands imported on first use from
:data:`vaxcred.cli.COMMANDS`."""

from __future__ import annotations

import importlib
import os
import sys

from vaxcred import __version__
from vaxcred._extras import MissingExtraError, requires_extra
from vaxcred.cli import COMMANDS

with requires_extra("cli", feature="the vaxcred command"):
    import click

    from vaxcred.cli._common import EXIT_INVALID, EXIT_USAGE, safe
    from vaxcred.text import clip

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
    vaxcred log sign-head --keys KEYS  signed head of the tamper-evident issuance log; log audit, log prove
    """


def click_main(argv: list[str] | None) -> int:
    """Run the group; usage errors exit 3 (click's own default, 2, means NEEDS_CHECK here)."""
    args = sys.argv[1:] if argv is None else list(argv)
    for index, arg in enumerate(args, start=1):
        problem = _argument_problem(arg)
        if problem:
            click.echo(f"Error: argument {index} {problem}", err=True)
            return EXIT_USAGE
    try:
        # standalone_mode=False: click returns ctx.exit()'s code instead of calling sys.exit
        code = cli.main(args=args, prog_name="vaxcred", standalone_mode=False)
    except click.exceptions.Exit as e:
        return int(e.exit_code)
    except click.UsageError as e:
        # messages may quote arguments, file names and library errors: shown without raw controls
        click.UsageError(safe(e.format_message()), ctx=e.ctx).show()
        return EXIT_USAGE
    except click.ClickException as e:
        click.ClickException(safe(e.format_message())).show()
        return e.exit_code
    except click.Abort:
        click.echo("aborted", err=True)
        return EXIT_USAGE
    except MissingExtraError:
        raise  # vaxcred.cli.main names the extra to install
    except OSError as e:  # the file system refused a path the user named (missing, a folder, too long, ...)
        name = e.filename
        shown = os.fsdecode(name) if isinstance(name, str | bytes) else str(name)
        where = f": {safe(clip(shown))}" if name is not None else ""
        click.echo(f"Error: {safe(e.strerror or type(e).__name__)}{where}", err=True)
        return EXIT_USAGE
    except Exception as e:  # a defect of ours, never the user's: no traceback on their screen, fail closed
        click.echo(f"vaxcred: internal error ({type(e).__name__}); please report it", err=True)
        return EXIT_INVALID
    return code if isinstance(code, int) else 0


def _argument_problem(arg: str) -> str | None:
    """Why a command-line argument cannot be used as text at all (``None`` if it can)."""
    if "\x00" in arg:
        return "holds a NUL byte"
    try:
        arg.encode("utf-8")
    except UnicodeEncodeError:  # undecodable bytes, carried as lone surrogates (PEP 383)
        return "is not valid UTF-8"
    return None
