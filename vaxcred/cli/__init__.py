"""The ``vaxcred`` command line: thin click commands over the library.

``main()`` maps outcomes to exit codes: 0 VALID / success, 1 INVALID / refused, 2 NEEDS_CHECK, 3 usage error
(and a missing extra: ``vaxcred`` installed without ``[cli]``, or a command whose extra is missing, prints
the extra to install). This module imports neither click nor any command: the group lives in
:mod:`vaxcred.cli._group`, each command in its own module, loaded when it runs.
An unexpected exception (a defect) prints one line, never a traceback, and exits 1: fail closed.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from vaxcred._extras import MissingExtraError

if TYPE_CHECKING:
    from vaxcred.cli._group import cli

__all__ = ["COMMANDS", "cli", "main", "run"]

#: exit status when the command cannot run as asked (vaxcred.cli._common.EXIT_USAGE, which needs click)
_EXIT_USAGE = 3

#: command name -> ("module:attribute", one-line help); a command's module (and its dependencies: SQLAlchemy,
#: Pillow, ...) is imported only when that command runs or its own help is shown, so ``vaxcred verify``
#: starts quickly. A new command adds one line here (tests check the line against the command's docstring).
COMMANDS: dict[str, tuple[str, str]] = {
    "keys": ("vaxcred.cli.keys:keys", "Create and rotate the signing key chain"),
    "log": ("vaxcred.cli.log:log_group", "The tamper-evident issuance log: heads, audit, proofs"),
    "issue": ("vaxcred.cli.issue:issue", "Sign a vaccination certificate and print its HC1 text"),
    "verify": ("vaxcred.cli.verify:verify", "Verify an HC1 string, a file holding one, or a QR image"),
    "rules": (
        "vaxcred.cli.rules:rules",
        "Evaluate and validate CertLogic expressions and EU gateway business rules",
    ),
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
    "worker": ("vaxcred.cli.worker:worker", "Central issuance as a long-lived service (any number of hosts)"),
    "corrections": ("vaxcred.cli.corrections:corrections", "Citizens' correction requests"),
    "revocations": (
        "vaxcred.cli.corrections:revocations",
        "Revoked passports: EU gateway revocation batches",
    ),
    "sync": (
        "vaxcred.cli.sync:sync",
        "Download trust list, rules, value sets and revocations (or publish them)",
    ),
    "certificate-pdf": ("vaxcred.cli.signing:certificate_pdf", "The printable vaccination certificate (PDF)"),
    "pdf": ("vaxcred.cli.pdf:pdf_group", "Signed printable certificates (PDF, PAdES)"),
    "serve": ("vaxcred.cli.serve:serve", "Serve the verify API and the border officer's page"),
    "records": (
        "vaxcred.cli.records:records",
        "Standalone site-signed dose records: export them from the database, verify one offline",
    ),
    "sites": (
        "vaxcred.cli.sites:sites",
        "Vaccination sites: names, provinces and certificates, many at once",
    ),
}


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the command line; a missing extra is a message and exit status 3, not a traceback."""
    try:
        from vaxcred.cli._group import click_main

        return click_main(argv)
    except MissingExtraError as e:
        sys.stderr.write(f"vaxcred: {e}\n")
        return _EXIT_USAGE


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())


def __getattr__(name: str) -> Any:
    """``cli`` (the click group) is imported on first access: it needs the ``cli`` extra."""
    if name == "cli":
        from vaxcred.cli._group import cli

        return cli
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
