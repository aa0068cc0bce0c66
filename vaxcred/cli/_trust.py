"""Trust for the CLI: bounded file reads, trust-list loading by kind, the on-disk rollback state.

The library is pure (:mod:`vaxcred.trust`); this module owns the files:

- every trust-list, anchor and ``--dsc`` file is read under the passport size cap (:data:`MAX_FILE`);
- a gateway JSON list is authenticated with ``--anchor`` (the gateway trust anchor), or accepted
  unchecked only with ``--unsafe-unauthenticated-trust-list`` (a warning on stderr; never VALID);
- a national signed list is checked against ``--anchor`` and the rollback state: the highest sequence
  accepted per environment, kept in ``--trust-state FILE`` (default
  ``$XDG_STATE_HOME/vaxcred/trust-state.json``, else ``~/.local/state/vaxcred/trust-state.json``),
  written atomically (temporary file, fsync, rename) with mode 0600 in a 0700 directory, read-checked-
  written under an exclusive ``flock`` on ``trust-state.json.lock`` (concurrent verifiers never lose an
  update or lower the sequence).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import click
from cryptography import x509

from vaxcred import errors
from vaxcred.cli._common import safe
from vaxcred.trust import (
    Environment,
    RejectedEntry,
    RollbackState,
    TrustStore,
    load_gateway_trust_list,
    load_gateway_trust_list_unsafe_unauthenticated,
    load_signed_trust_list,
)
from vaxcred.x509util import load_certificate_bytes

#: the same cap as a passport input (``vaxcred verify`` reads at most this much of any file)
MAX_FILE = 10 * 1024 * 1024
STATE_FILE_NAME = "trust-state.json"
#: seconds a verifier waits for another one's lock on the trust state before giving up (usage error)
STATE_LOCK_TIMEOUT = 10.0
UNSAFE_FLAG = "--unsafe-unauthenticated-trust-list"

_DURATION = re.compile(r"(?:(\d{1,6})d)?(?:(\d{1,6})h)?(?:(\d{1,6})m)?(?:(\d{1,9})s)?")


def read_capped(path: Path, param: str) -> bytes:
    """At most :data:`MAX_FILE` bytes of ``path``; larger, unreadable: a usage error naming ``param``."""
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_FILE + 1)
    except OSError as e:
        raise click.BadParameter(f"cannot read {path}: {e.strerror}", param_hint=param) from e
    if len(data) > MAX_FILE:
        raise click.BadParameter(f"{path} is larger than {MAX_FILE} bytes", param_hint=param)
    return data


def parse_duration(value: str) -> timedelta:
    """``72h``, ``3d``, ``1d12h``, ``90m``, ``3600s``: a positive duration."""
    match = _DURATION.fullmatch(value.strip())
    if not value.strip() or match is None:
        raise click.BadParameter(
            f"not a duration like 72h, 3d or 90m: {value!r}", param_hint="--max-trust-age"
        )
    days, hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    duration = timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    if duration <= timedelta(0):
        raise click.BadParameter("must be positive", param_hint="--max-trust-age")
    return duration


def default_state_path() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "vaxcred" / STATE_FILE_NAME


def read_state(path: Path) -> RollbackState:
    """The rollback state in ``path`` (empty if the file does not exist); unreadable: a usage error."""
    if not path.exists():
        return RollbackState()
    if not path.is_file():  # a FIFO would block the read for ever
        raise click.UsageError(f"cannot use the trust state {safe(str(path))}: not a regular file")
    try:
        return RollbackState.from_json(read_capped(path, "--trust-state"))
    except errors.TrustStoreError as e:
        raise click.UsageError(f"cannot use the trust state {path}: [{e.code}] {safe(e.message)}") from e


@contextlib.contextmanager
def state_lock(path: Path | None) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``<state>.lock`` (mode 0600) while the state is read and replaced.

    Guarantee: two processes accepting lists against the same state file are serialised, so the file
    only ever grows (no lost update, no lower sequence written over a higher one).  ``None``: no state.
    """
    if path is None:
        yield
        return
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    lock_path = path.with_name(path.name + ".lock")
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as e:
        raise click.UsageError(f"cannot lock the trust state {path}: {e.strerror}") from e
    try:
        _wait_for_lock(fd, path)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _wait_for_lock(fd: int, path: Path) -> None:
    """Take the lock within :data:`STATE_LOCK_TIMEOUT` seconds, else a usage error: a verifier hung while
    holding it must not hang every other verifier of the machine."""
    deadline = time.monotonic() + STATE_LOCK_TIMEOUT
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise click.UsageError(
                    f"the trust state {safe(str(path))} is locked by another process"
                    f" (waited {STATE_LOCK_TIMEOUT:g} s)"
                ) from None
            time.sleep(0.05)


def write_state(path: Path, state: RollbackState) -> None:
    """Replace ``path`` atomically with ``state`` (mode 0600; directory created 0700)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(state.to_json())
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise click.UsageError(f"cannot write the trust state {path}: {e.strerror}") from e


def _anchor(path: Path) -> x509.Certificate:
    try:
        return x509.load_der_x509_certificate(load_certificate_bytes(read_capped(path, "--anchor")))
    except (errors.VaxcredError, ValueError) as e:
        raise click.BadParameter(f"{path} is not a certificate", param_hint="--anchor") from e


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadedTrust:
    """A trust store with what the loader left out (gateway entries)."""

    store: TrustStore
    rejected: tuple[RejectedEntry, ...] = ()


def is_gateway_json(data: bytes) -> bool:
    return data.lstrip()[:1] == b"["


def load_trust_list(
    path: Path,
    *,
    anchor: Path | None,
    unsafe_unauthenticated: bool,
    environment: Environment,
    now: datetime,
    state_path: Path | None,
    retrieved_at: datetime | None = None,
) -> LoadedTrust:
    """Load ``path`` as gateway JSON or a signed national list, by the rules in the module docstring.

    ``state_path`` ``None`` leaves the rollback state alone (``trustlist import`` without a state file).
    """
    data = read_capped(path, "--trust-list")
    try:
        if is_gateway_json(data):
            if anchor is not None and unsafe_unauthenticated:
                raise click.UsageError(
                    f"{UNSAFE_FLAG} contradicts --anchor: with an anchor the list is checked"
                )
            if anchor is not None:
                loaded = load_gateway_trust_list(
                    data,
                    environment=environment,
                    anchors=[_anchor(anchor)],
                    now=now,
                    retrieved_at=retrieved_at,
                )
                store = loaded.store
                return LoadedTrust(store=store, rejected=loaded.rejected)
            if not unsafe_unauthenticated:
                raise click.UsageError(
                    "an EU gateway JSON list is authenticated only by its entries' signatures: give "
                    f"--anchor (the gateway trust anchor) to check them, or {UNSAFE_FLAG} to accept the "
                    "list unchecked (the result is then at best NEEDS_CHECK)"
                )
            click.secho(
                "warning: UNAUTHENTICATED trust list: its signatures are NOT checked; results are at best "
                "NEEDS_CHECK",
                fg="yellow",
                err=True,
            )
            loaded = load_gateway_trust_list_unsafe_unauthenticated(
                data, environment=environment, retrieved_at=retrieved_at
            )
            return LoadedTrust(store=loaded.store, rejected=loaded.rejected)
        if unsafe_unauthenticated:
            raise click.UsageError(f"{UNSAFE_FLAG} applies to EU gateway JSON only; a signed list is checked")
        if anchor is None:
            raise click.UsageError("a signed trust list needs --anchor (the CSCA or trust-list certificate)")
        if retrieved_at is not None:
            raise click.UsageError(
                "--trust-list-retrieved-at applies to EU gateway JSON only (a signed list is dated)"
            )
        cert = _anchor(anchor)
        with state_lock(state_path):
            # read, check and write under one lock: a concurrent verifier cannot slip an older list in
            # between, nor overwrite a higher sequence with a lower one
            state = read_state(state_path) if state_path is not None else RollbackState()
            store = load_signed_trust_list(
                data,
                anchor=cert,
                environment=environment,
                now=now,
                min_sequence=state.min_sequence(environment),
            )
            updated = state.accept(store)
            if state_path is not None and updated != state:
                write_state(state_path, updated)
        return LoadedTrust(store=store)
    except errors.VaxcredError as e:
        raise click.UsageError(f"cannot load the trust list: [{e.code}] {safe(e.message)}") from e


_F = TypeVar("_F", bound=Callable[..., Any])


def trust_source_options(*, environment_help: str) -> Callable[[_F], _F]:
    """The options naming where trust comes from, shared by ``verify`` and ``serve``: ``--dsc`` (repeatable),
    ``--trust-list``, ``--anchor`` and ``--environment`` (parameters ``dscs``, ``trust_list``, ``anchor``,
    ``env``)."""
    options = [
        click.option(
            "--dsc",
            "dscs",
            multiple=True,
            metavar="CERT",
            help="A DSC certificate (PEM, DER or base64 DER) trusted as is; repeatable. Chain not checked.",
        ),
        click.option(
            "--trust-list",
            type=click.Path(dir_okay=False, exists=True, path_type=Path),
            help="A vaxcred signed national trust list, or EU gateway trust-list JSON; needs --anchor.",
        ),
        click.option(
            "--anchor",
            type=click.Path(dir_okay=False, exists=True, path_type=Path),
            help="Pinned anchor: the CSCA (or trust-list certificate) of a signed list; for gateway JSON the "
            "gateway trust anchor, which must have signed the entries (CMS).",
        ),
        click.option(
            "--environment",
            "env",
            type=click.Choice(["PROD", "ACC", "TST"]),
            default="PROD",
            show_default=True,
            help=environment_help,
        ),
    ]

    def apply(func: _F) -> _F:
        for option in reversed(options):
            func = option(func)
        return func

    return apply
