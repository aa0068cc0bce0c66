"""vaxcred.cli: subcommands load lazily; the table of commands matches the commands themselves."""

from __future__ import annotations

import importlib
import subprocess
import sys

import click
import pytest

from vaxcred.cli import COMMANDS, cli


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_listed_command_loads_under_its_name(name: str) -> None:
    """Each COMMANDS entry names a click command whose own name is the listed one."""
    command = cli.get_command(click.Context(cli), name)
    assert isinstance(command, click.Command)
    assert command.name == name


def test_unknown_command_is_none() -> None:
    """A name outside the table is no command (click turns it into a usage error)."""
    assert cli.get_command(click.Context(cli), "no-such-command") is None


@pytest.mark.parametrize("argv", [["--help"], ["verify", "--help"]])
def test_help_imports_no_pipeline_or_image_library(argv: list[str]) -> None:
    """`vaxcred --help` and `vaxcred verify --help` import no extra's library but click (MODULE_EXTRAS)."""
    code = (
        "import sys\n"
        "from vaxcred.cli import main\n"
        f"rc = main({argv!r})\n"
        "from vaxcred._extras import MODULE_EXTRAS\n"
        "heavy = sorted(m for m, extra in MODULE_EXTRAS.items() if extra != 'cli' and m in sys.modules)\n"
        "print(rc, heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "0 []"


def test_command_modules_exist() -> None:
    """Every target module imports (a typo in the table would only show when the command runs)."""
    for target, _help in COMMANDS.values():
        module_name, _, attribute = target.partition(":")
        assert hasattr(importlib.import_module(module_name), attribute), target
