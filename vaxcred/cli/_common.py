"""Shared CLI plumbing: clock, passphrase, input reading, safe terminal text, exit codes."""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from vaxcred import errors
from vaxcred.text import clip, terminal_safe

if TYPE_CHECKING:
    from vaxcred.keys import KeyChainDir

EXIT_VALID = 0
EXIT_INVALID = 1
EXIT_NEEDS_CHECK = 2
EXIT_USAGE = 3

PASSPHRASE_ENV = "VAXCRED_PASSPHRASE"  # noqa: S105 - the variable name, not a secret


def safe(text: object) -> str:
    """Untrusted text made safe for a terminal (SECURITY.md pitfall 22): controls, bidi, separators and
    invisible characters shown as visible escapes (:func:`vaxcred.text.terminal_safe`)."""
    return terminal_safe(text)


def parse_at(value: str | None) -> datetime:
    """``--at`` as an aware UTC datetime (no zone = UTC); the wall clock when absent."""
    if value is None:
        return datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as e:
        raise click.BadParameter(f"not an ISO 8601 date-time: {safe(clip(value))}", param_hint="--at") from e
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError as e:  # 9999-12-31T23:59:59-12:00 is past the last instant datetime holds
        raise click.BadParameter(
            f"outside the years 1-9999 in UTC: {safe(clip(value))}", param_hint="--at"
        ) from e


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
    from vaxcred.keys import PIN_ENV  # local import: `vaxcred verify` starts without the key-chain code

    value = os.environ.get(PIN_ENV)
    if value:
        return value.encode("utf-8")
    if not sys.stdin.isatty():
        raise click.UsageError(f"set {PIN_ENV} or run interactively to type the token PIN")
    typed: str = click.prompt("Token PIN", hide_input=True)
    return typed.encode("utf-8")


def open_chain(folder: Path) -> KeyChainDir:
    from vaxcred.keys import KeyChainDir  # local import: `vaxcred verify` starts without the key-chain code

    if not (folder / "csca.pem").exists():
        raise click.UsageError(f"no key chain in {folder} (run `vaxcred keys init {folder}`)")
    if (folder / "token.json").exists():  # keys on a PKCS#11 token: the PIN, not a passphrase
        return KeyChainDir(folder=folder, pin=token_pin())
    return KeyChainDir(folder=folder, passphrase=passphrase())


def write_private(path: Path, data: bytes, *, option: str) -> None:
    """Write a bearer credential (passport text, its QR code) readable by its owner only: mode 0600 whatever
    the umask, an existing file truncated and narrowed to 0600, never through a symbolic link."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags, 0o600)
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), 0o600)
            fh.write(data)
    except (OSError, ValueError) as e:  # ValueError: a NUL byte in the name
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise click.BadParameter(f"cannot write {safe(clip(str(path)))}: {reason}", param_hint=option) from e


class RefusedError(click.ClickException):
    """A typed library error shown with its stable code; exit 1."""

    exit_code = EXIT_INVALID


def fail(exc: errors.VaxcredError) -> click.ClickException:
    """A typed library error as a CLI error (exit 1) with its stable code."""
    return RefusedError(f"[{exc.code}] {safe(exc.message)}")
