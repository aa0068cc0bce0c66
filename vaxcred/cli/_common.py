"""Shared CLI plumbing: clock, passphrase, input reading, safe terminal text, exit codes."""

from __future__ import annotations

import os
import re
import sys
from datetime import UTC, datetime
from pathlib import Path

import click

from vaxcred import errors
from vaxcred.keys import PIN_ENV, KeyChainDir

EXIT_VALID = 0
EXIT_INVALID = 1
EXIT_NEEDS_CHECK = 2
EXIT_USAGE = 3

PASSPHRASE_ENV = "VAXCRED_PASSPHRASE"  # noqa: S105 - the variable name, not a secret

# C0/C1 controls and Unicode bidi overrides/isolates: never echoed from untrusted data to a terminal
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def safe(text: object) -> str:
    """Untrusted text made safe for a terminal (SECURITY.md pitfall 22)."""
    return _UNSAFE.sub("\ufffd", str(text))


def parse_at(value: str | None) -> datetime:
    """``--at`` as an aware UTC datetime (no zone = UTC); the wall clock when absent."""
    if value is None:
        return datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as e:
        raise click.BadParameter(f"not an ISO 8601 date-time: {value!r}", param_hint="--at") from e
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def passphrase(*, confirm: bool = False) -> bytes:
    """From $VAXCRED_PASSPHRASE, else a hidden prompt (never a command-line argument)."""
    value = os.environ.get(PASSPHRASE_ENV)
    if value:
        return value.encode("utf-8")
    if not sys.stdin.isatty():
        raise click.UsageError(f"set {PASSPHRASE_ENV} or run interactively to type the key passphrase")
    typed: str = click.prompt("Key passphrase", hide_input=True, confirmation_prompt=confirm)
    return typed.encode("utf-8")


def token_pin() -> bytes:
    """The PKCS#11 token PIN: from $VAXCRED_PKCS11_PIN, else a hidden prompt (never an argument)."""
    value = os.environ.get(PIN_ENV)
    if value:
        return value.encode("utf-8")
    if not sys.stdin.isatty():
        raise click.UsageError(f"set {PIN_ENV} or run interactively to type the token PIN")
    typed: str = click.prompt("Token PIN", hide_input=True)
    return typed.encode("utf-8")


def open_chain(folder: Path) -> KeyChainDir:
    if not (folder / "csca.pem").exists():
        raise click.UsageError(f"no key chain in {folder} (run `vaxcred keys init {folder}`)")
    if (folder / "token.json").exists():  # keys on a PKCS#11 token: the PIN, not a passphrase
        return KeyChainDir(folder=folder, pin=token_pin())
    return KeyChainDir(folder=folder, passphrase=passphrase())


class RefusedError(click.ClickException):
    """A typed library error shown with its stable code; exit 1."""

    exit_code = EXIT_INVALID


def fail(exc: errors.VaxcredError) -> click.ClickException:
    """A typed library error as a CLI error (exit 1) with its stable code."""
    return RefusedError(f"[{exc.code}] {safe(exc.message)}")
